"""Number formats of the lead pages: shares as percentages, deltas in points, durations, pixel counts."""
from __future__ import annotations

from django import template

register = template.Library()

NA = "–"


@register.filter
def pct(value, digits: int = 1) -> str:
    """0.523 → '52.3 %'; None → '–'."""
    if value is None or value == "":
        return NA
    return f"{float(value) * 100:.{int(digits)}f} %"


@register.filter
def points(value) -> str:
    """A difference of two shares in percentage points: 0.11 → '+11.0 pts'."""
    if value is None:
        return NA
    return f"{float(value) * 100:+.1f} pts"


@register.filter
def pixels(value) -> str:
    """12345678 → '12.3 M'; 5400 → '5.4 k'."""
    if value is None:
        return NA
    value = float(value)
    for size, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(value) >= size:
            return f"{value / size:.1f}{suffix}"
    return f"{value:.0f}"


@register.filter
def seconds(value) -> str:
    """Seconds as '42 s', '3 min 5 s', '2 h 10 min'."""
    if value is None:
        return NA
    value = float(value)
    if value < 60:
        return f"{value:.0f} s"
    if value < 3600:
        return f"{int(value // 60)} min {int(value % 60)} s"
    return f"{int(value // 3600)} h {int(value % 3600 // 60)} min"


@register.filter
def number(value, digits: int = 1) -> str:
    if value is None:
        return NA
    return f"{float(value):.{int(digits)}f}"


@register.simple_tag
def job_duration(job) -> str:
    """"ran 12 s · waited 4 min 30 s" (annotator.selectors_jobs.job_timing_text)."""
    from annotator.selectors_jobs import job_timing_text

    return job_timing_text(job=job)


@register.simple_tag
def job_wait_note(job) -> str:
    """Why a queued job waits ("" for any other): its queue and how many jobs are ahead of it there."""
    from annotator.selectors_jobs import job_wait_note as note

    return note(job=job)


@register.simple_tag
def job_badge(job) -> str:
    """The badge of a job's state (a queued job says "Queued"; an import with rejected files "with warnings")."""
    from django.utils.html import format_html

    from annotator.selectors_jobs import job_badge as badge

    text, state = badge(job=job)
    return format_html('<span class="badge job-state job-state-{}">{}</span>', state, text)
