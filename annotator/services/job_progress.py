"""One adapter between long-running work and its Job row: progress, cancellation, the end of a job.

Training, pretraining, the round step, imports and exports all report
through :class:`JobReporter` (the ML core's ``progress(phase, step, total,
loss)`` / ``should_stop()`` pair, see ``learning.progress``) and stop with
one exception, :class:`learning.progress.Cancelled`; :func:`job_end_with_error`
turns whatever ended a job early into its final state.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

from learning.progress import Cancelled

from .errors import ServiceError
from .jobs import job_fail, job_log, job_mark_cancelled, job_progress

log = logging.getLogger(__name__)

# Where each phase of a round's training sits inside its share of the progress bar.
TRAINING_PHASES = {"pseudo_labels": (0.0, 0.1), "teacher": (0.0, 0.1), "train": (0.1, 0.95),
                   "evaluate": (0.95, 1.0), "pretrain": (0.0, 1.0)}


class JobReporter:
    """Turns progress callbacks into throttled Job updates and answers "should I stop?".

    The job's bar runs from ``start`` to ``end`` (percent) for this piece of
    work; ``phases`` places each phase inside that span (a phase not listed
    spans all of it). Writes are throttled to one per ``min_interval`` seconds
    per phase, except the last step of a phase.
    """

    def __init__(self, job_id: int, *, start: float = 0.0, end: float = 100.0,
                 phases: dict[str, tuple[float, float]] | None = None, min_interval: float = 1.0):
        self.job_id, self.start, self.end, self.min_interval = job_id, start, end, min_interval
        self.phases = phases or {}
        self._last_write = 0.0
        self._last_phase = ""
        self._timed_phase, self._phase_started = "", time.monotonic()
        self.cancelled = False

    def __call__(self, phase: str, step: int, total: int, loss: float | None = None) -> None:
        now = time.monotonic()
        if phase == self._last_phase and now - self._last_write < self.min_interval and step < total:
            return
        if phase != self._timed_phase:
            self._timed_phase, self._phase_started = phase, now
        fraction = step / total if total else 0.0
        low, high = self.phases.get(phase, (0.0, 1.0))
        overall = self.start + (self.end - self.start) * (low + (high - low) * fraction)
        message = f"{phase} {step}/{total}" + (f", loss {loss:.3f}" if loss is not None else "")
        message += eta_text(now - self._phase_started, step, total)
        self.cancelled = job_progress(job_id=self.job_id, phase=phase, progress=overall, message=message)
        self._last_write, self._last_phase = now, phase

    def should_stop(self) -> bool:
        return self.cancelled

    def counter(self, phase: str) -> Callable[[int, int], None]:
        """A ``(done, total)`` callback for item-by-item work (imports, exports) that raises Cancelled."""

        def count(done: int, total: int) -> None:
            self(phase, done, total)
            if self.cancelled:
                raise Cancelled(f"{phase} cancelled")

        return count


def duration_text(seconds: float) -> str:
    """42 → "42 s", 125 → "2 min 05 s", 7500 → "2 h 05 min": the one way job pages write a duration."""
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def eta_text(elapsed: float, step: int, total: int) -> str:
    """", 1 min 10 s elapsed, about 4 min 30 s left" from a phase's pace so far ("" before it has one)."""
    if step <= 0 or total <= 0 or elapsed < 1.0:
        return ""
    left = elapsed / step * max(0, total - step)
    return f", {duration_text(elapsed)} elapsed" + (f", about {duration_text(left)} left" if step < total else "")


def job_end_with_error(*, job_id: int, error: BaseException) -> str:
    """Record why a job ended early; returns the outcome ("cancelled" or "failed").

    A cancel leaves a cancelled job; a ServiceError (a refused input) fails
    with its message only; anything else fails with its traceback.
    """
    if isinstance(error, Cancelled):
        job_log(job_id=job_id, line=f"{error}; what was finished so far stays")
        job_mark_cancelled(job_id=job_id)
        return "cancelled"
    if isinstance(error, ServiceError):
        job_fail(job_id=job_id, error=str(error))
        return "failed"
    log.error("job %s failed", job_id, exc_info=error)
    job_fail(job_id=job_id, error=error)
    return "failed"
