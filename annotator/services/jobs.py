"""Job rows: the durable record of a background run, its live progress and its end."""
from __future__ import annotations

import logging
import traceback
from collections.abc import Callable

from celery.utils import uuid
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerUnreachable

from ..models import Job
from .errors import ServiceError

log = logging.getLogger(__name__)


def job_create(*, kind: str, project=None, round_=None, message: str = "") -> Job:
    return Job.objects.create(kind=kind, project=project, round=round_, message=message)


def job_enqueue(*, job: Job, task, on_unsent: Callable[[], None] | None = None, **kwargs) -> None:
    """Send ``task(job_id=…, **kwargs)`` once the transaction that created the job commits.

    The worker must be able to read the row, so the message may not leave before the commit.
    A broker that cannot be reached never fails the request that queued the job (its rows
    are committed by then): see :func:`_job_unsent`; ``on_unsent`` then cleans up what only
    the task would have used (an uploaded archive).
    """
    transaction.on_commit(lambda: _send(job, task, kwargs, on_unsent=on_unsent), robust=True)


def _send(job: Job, task, kwargs: dict, *, task_id: str | None = None,
          on_unsent: Callable[[], None] | None = None) -> None:
    try:
        result = task.apply_async(kwargs={"job_id": job.pk, **kwargs}, task_id=task_id)
    except BrokerUnreachable as error:
        _job_unsent(job, error)
        if on_unsent is not None and job.state == Job.State.FAILED:
            on_unsent()
        return
    Job.objects.filter(pk=job.pk, celery_task_id__in=("", result.id)).update(celery_task_id=result.id)


def _job_unsent(job: Job, error: Exception) -> None:
    """The broker refused the message. A round job stays queued without a task id, and the
    sweep sends it again once the broker is back (:func:`jobs_orphaned`); any other job's
    arguments lived only in the message, so it fails with a sentence saying so."""
    reason = f"the task broker could not be reached ({error})"
    if job.kind == Job.Kind.ROUND:
        changes = {"celery_task_id": "", "message": f"{reason}; it is sent again when the broker is back"[:500]}
    else:
        changes = {"state": Job.State.FAILED, "finished_at": timezone.now(),
                   "message": f"{reason}: nothing ran, start it again"[:500]}
    Job.objects.filter(pk=job.pk, state=Job.State.QUEUED).update(**changes)
    for field, value in changes.items():  # the caller answers with this object
        setattr(job, field, value)
    log.warning("job %s (%s) not sent: %s", job.pk, job.kind, reason)


def job_start(*, job_id: int, worker: str = "") -> Job | None:
    """Mark a job running on ``worker``; None if it vanished or already ended (a duplicate delivery)."""
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.is_final:
            return None
        now = timezone.now()
        job.state = Job.State.RUNNING
        job.started_at = job.started_at or now
        job.heartbeat_at = now
        job.worker = worker[:255]
        job.attempts = F("attempts") + 1
        job.save(update_fields=["state", "started_at", "heartbeat_at", "worker", "attempts"])
    job.refresh_from_db()
    return job


def job_progress(*, job_id: int, phase: str, progress: float, message: str = "") -> bool:
    """Record progress and a heartbeat; returns True when a cancel was requested (cooperative cancellation)."""
    progress = int(max(0, min(100, round(progress))))
    Job.objects.filter(pk=job_id, state=Job.State.RUNNING).update(
        phase=phase[:64], progress=progress, message=message[:500], heartbeat_at=timezone.now()
    )
    return Job.objects.filter(pk=job_id, cancel_requested=True).exists()


def job_log(*, job_id: int, line: str) -> None:
    stamp = timezone.now().strftime("%H:%M:%S")
    job = Job.objects.filter(pk=job_id).only("log").first()
    if job is not None:
        Job.objects.filter(pk=job_id).update(log=(job.log + f"[{stamp}] {line}\n")[-20000:])


# The phase of a job that succeeded with warnings (an import that rejected some files): its badge says so.
WARNINGS_PHASE = "warnings"


def job_succeed(*, job_id: int, message: str = "", warnings: bool = False) -> None:
    Job.objects.filter(pk=job_id).update(
        state=Job.State.SUCCEEDED, progress=100, message=message[:500], finished_at=timezone.now(), error="",
        **({"phase": WARNINGS_PHASE} if warnings else {}),
    )


def job_fail(*, job_id: int, error: BaseException | str) -> None:
    text = error if isinstance(error, str) else "".join(traceback.format_exception_only(type(error), error)).strip()
    Job.objects.filter(pk=job_id).update(
        state=Job.State.FAILED, message=text.splitlines()[-1][:500] if text else "failed",
        error=text if isinstance(error, str) else traceback.format_exc()[-20000:], finished_at=timezone.now(),
    )


def job_cancel_request(*, job: Job) -> Job:
    """Ask a running job to stop at its next progress report; a queued one is cancelled at once.

    A job that has ended is refused (ServiceError): there is nothing left to stop.
    """
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        if not job.can_cancel:
            raise ServiceError(f"job {job.pk} has ended ({job.state}): a finished job cannot be cancelled")
        if job.state == Job.State.QUEUED:
            job.state, job.finished_at = Job.State.CANCELLED, timezone.now()
        job.cancel_requested = True
        job.save(update_fields=["state", "finished_at", "cancel_requested"])
    return job


def jobs_orphaned(*, worker: str, stale_after_seconds: float) -> list[Job]:
    """Jobs no worker will run: RUNNING on a dead worker, or a round job the broker never got.

    A worker that starts cannot be running anything yet, so every job still
    marked RUNNING under its name was killed with its previous process; a job
    of another worker is dead when silent for ``stale_after_seconds``. A
    QUEUED round job without a task id past one sweep interval was committed
    while the broker was down (:func:`_job_unsent`); a fresh one may still be
    on its way to the broker, the moment after its commit.
    """
    now = timezone.now()
    stale = now - timezone.timedelta(seconds=stale_after_seconds)
    running = Job.objects.filter(state=Job.State.RUNNING)
    unsent = Job.objects.filter(state=Job.State.QUEUED, kind=Job.Kind.ROUND, celery_task_id="",
                                created_at__lt=now - timezone.timedelta(seconds=settings.MASKLOOP_JOB_SWEEP_SECONDS))
    return (list(running.filter(worker=worker)) + list(running.exclude(worker=worker).filter(heartbeat_at__lt=stale))
            + list(unsent))


def job_requeue(*, job: Job, task) -> bool:
    """Put a RUNNING job back in the queue after its worker died, or send a round job the
    broker never got (QUEUED, no task id); False if someone else did first."""
    if job.state == Job.State.QUEUED:
        task_id = uuid()  # claimed in the row first, so two sweeps never send it twice
        with transaction.atomic():
            updated = Job.objects.filter(pk=job.pk, state=Job.State.QUEUED, celery_task_id="").update(
                celery_task_id=task_id, message="sent again: the task broker is reachable again")
            if updated:
                job_log(job_id=job.pk, line="the broker was unreachable when it was queued; sent again")
                transaction.on_commit(lambda: _send(job, task, {}, task_id=task_id), robust=True)
        return bool(updated)
    with transaction.atomic():
        updated = Job.objects.filter(pk=job.pk, state=Job.State.RUNNING, worker=job.worker).update(
            state=Job.State.QUEUED, worker="", message="re-queued: its worker stopped while running it"
        )
        if updated:
            job_log(job_id=job.pk, line=f"worker {job.worker or '?'} died; re-queued")
            transaction.on_commit(lambda: task.apply_async(kwargs={"job_id": job.pk}))
    return bool(updated)


def job_mark_cancelled(*, job_id: int) -> None:
    Job.objects.filter(pk=job_id).update(
        state=Job.State.CANCELLED, message="cancelled on request", finished_at=timezone.now()
    )
