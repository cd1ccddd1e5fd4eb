"""How long-running ML work reports progress and learns that it should stop.

Training, pretraining, the round step and the app's import/export jobs all
take the same two callables, so one adapter on the Django side
(``annotator.services.jobs.JobReporter``) serves them all, and one exception
says "the caller asked us to stop".
"""
from __future__ import annotations

from collections.abc import Callable

# progress(phase, step, total, loss): loss is None outside training loops.
ProgressFn = Callable[[str, int, int, "float | None"], None]
StopFn = Callable[[], bool]


class Cancelled(Exception):
    """Raised between two units of work when ``should_stop()`` returned True (cooperative cancellation)."""


def report(progress: ProgressFn | None, phase: str, step: int, total: int, loss: float | None = None) -> None:
    if progress is not None:
        progress(phase, step, total, loss)


def check_stop(should_stop: StopFn | None, what: str = "work") -> None:
    if should_stop is not None and should_stop():
        raise Cancelled(f"{what} cancelled")
