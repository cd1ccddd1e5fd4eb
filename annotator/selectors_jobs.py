"""Reads about jobs for the pages and the API: which queue a job waits in and why, its badge, how long it took.

A job's queue is the one Celery routes its task to (``config.settings.CELERY_TASK_ROUTES`` and the task's
own ``queue``), asked from the Celery app itself, so the page and the workers never disagree.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from .models import Job, Round
from .services.jobs import WARNINGS_PHASE


def _task_of(job: Job):
    from learning.tasks import ping, round_select, round_train

    from .tasks import export_dataset, import_dataset

    if job.kind == Job.Kind.ROUND:
        # The same job trains (queue "training") and then selects (queue "default"): the round says which is due.
        selecting = job.round is not None and job.round.state == Round.State.SELECTING
        return round_select if selecting else round_train
    return {Job.Kind.IMPORT: import_dataset, Job.Kind.EXPORT: export_dataset, Job.Kind.PING: ping}.get(job.kind)


def job_queue(*, job: Job) -> str:
    """The Celery queue the job's (next) task goes to."""
    from config.celery import app

    task = _task_of(job)
    if task is None:
        return app.conf.task_default_queue
    return app.amqp.router.route(task._get_exec_options(), task.name)["queue"].name


def job_wait_note(*, job: Job) -> str:
    """Why a queued job has not started, as a sentence for the page; "" for a job that is not queued.

    Each queue has its own worker (``manage.py runstack``); a job waits for that worker to finish what is
    ahead of it there: the job it runs now and those queued earlier, of any project.
    """
    if job.state != Job.State.QUEUED:
        return ""
    queue = job_queue(job=job)
    active = (Job.objects.filter(state__in=Job.ACTIVE_STATES).exclude(pk=job.pk).select_related("round")
              .only("pk", "kind", "state", "created_at", "round__state"))
    ahead = [other for other in active
             if (other.state == Job.State.RUNNING or other.created_at < job.created_at)
             and job_queue(job=other) == queue]
    if not ahead:
        return (f"waiting for a worker on the '{queue}' queue to pick it up; nothing is ahead of it, so if this "
                f"lasts, no worker serves '{queue}' (make run starts one; its log is var/logs/worker-{queue}.log)")
    running = sum(other.state == Job.State.RUNNING for other in ahead)
    jobs = f"{len(ahead)} job{'s' if len(ahead) != 1 else ''} ahead"
    return f"waiting for a free worker on the '{queue}' queue; {jobs}" + (f" ({running} running)" if running else "")


def job_badge(*, job: Job) -> tuple[str, str]:
    """The job's state as its badge shows it: (text, css state). A queued job is "Queued", never "Running"."""
    if job.state == Job.State.SUCCEEDED and job.phase == WARNINGS_PHASE:
        return "Succeeded with warnings", "warning"
    return Job.State(job.state).label, job.state


@dataclass(frozen=True)
class JobTiming:
    """How long a job waited in its queue before a worker started it, and how long it has run since."""

    waited: float | None  # None: it never waited (no creation time) — only for rows made by hand
    ran: float | None  # None: it never started


def job_timing(*, job: Job, now: datetime | None = None) -> JobTiming:
    now = now or timezone.now()
    if job.started_at is None:
        end = job.finished_at or (now if not job.is_final else job.created_at)
        return JobTiming(waited=(end - job.created_at).total_seconds() if job.created_at else None, ran=None)
    waited = (job.started_at - job.created_at).total_seconds() if job.created_at else None
    end = job.finished_at or (now if not job.is_final else job.heartbeat_at or job.started_at)
    return JobTiming(waited=max(0.0, waited) if waited is not None else None,
                     ran=max(0.0, (end - job.started_at).total_seconds()))


def job_timing_text(*, job: Job, now: datetime | None = None) -> str:
    """"ran 12 s · waited 4 min 30 s": the time in the queue is never hidden in the run time ("Took")."""
    from .services.job_progress import duration_text

    timing = job_timing(job=job, now=now)
    if job.state == Job.State.QUEUED:
        ran = "not started yet" if timing.ran is None else f"ran {duration_text(timing.ran)} so far"
    else:
        ran = "never ran" if timing.ran is None else f"ran {duration_text(timing.ran)}"
    return ran + (f" · waited {duration_text(timing.waited)}" if timing.waited is not None else "")


def job_cancel_question(*, job: Job, now: datetime | None = None) -> str:
    """What to ask before cancelling ``job`` ("" when a click may cancel it at once): a round job loses the
    training it has done, so the lead confirms, told how long it has run."""
    from .services.job_progress import duration_text

    if job.kind != Job.Kind.ROUND or job.is_final:
        return ""
    what = f"round {job.round.number}'s job" if job.round else "this round job"
    if job.state == Job.State.QUEUED:
        return f"Cancel {what} before it starts? The round waits until you retry it."
    ran = job_timing(job=job, now=now).ran or 0.0
    return (f"Cancel {what}? It has run {duration_text(ran)}; the training done so far is lost, and the round "
            "waits, with nothing running, until you retry it (Retry starts the training over).")


@dataclass(frozen=True)
class RoundProgress:
    """What a round waiting for its model is doing, for the lead's dashboard and the annotators' queue page."""

    job: Job | None  # the round's newest job
    running: bool  # a job of the round is queued or running
    label: str  # the round's badge: "Training", "Selecting queries", "Training stopped", …
    css: str  # its badge class: training, selecting, stopped
    detail: str  # progress with elapsed time and ETA, why it waits, or why nothing runs


def round_progress(*, round_: Round, now: datetime | None = None) -> RoundProgress | None:
    """The round's training or selection as people should see it; None for a round that is labeling or closed.

    A round stays *training* (or *selecting*) until its model is made: after a lead cancels its job, or
    the job fails, nothing runs for it, and this says so ("… stopped") instead of showing it busy.
    """
    from .services.job_progress import duration_text

    if round_.state not in (Round.State.TRAINING, Round.State.SELECTING):
        return None
    job = round_.jobs.order_by("-created_at", "-pk").first()
    label = Round.State(round_.state).label
    if job is None or job.is_final:
        why = f"job {job.pk} was {job.get_state_display().lower()}" if job else "no job was queued for it"
        return RoundProgress(job=job, running=False, label=f"{label} stopped", css="stopped",
                             detail=f"Nothing runs for round {round_.number}: {why}. It goes on when a lead "
                                    "retries it (dashboard, Job history).")
    if job.state == Job.State.QUEUED:
        detail = job_wait_note(job=job)
        return RoundProgress(job=job, running=True, label=f"{label} (queued)", css=round_.state,
                             detail=detail[0].upper() + detail[1:] + ".")
    ran = job_timing(job=job, now=now).ran or 0.0
    detail = f"{job.progress} %" + (f" · {job.message}" if job.message else "") + f" · running for {duration_text(ran)}"
    return RoundProgress(job=job, running=True, label=label, css=round_.state, detail=detail)
