"""Job progress messages say how long a phase has run and about how long it has left."""
from __future__ import annotations

from annotator.services.job_progress import eta_text


def test_the_eta_follows_the_pace_so_far():
    assert eta_text(30.0, 10, 40) == ", 30 s elapsed, about 1 min 30 s left"
    assert eta_text(125.0, 40, 40) == ", 2 min 05 s elapsed"
    assert eta_text(0.2, 1, 40) == "" and eta_text(30.0, 0, 40) == ""
