"""The round job's two steps, as the Celery tasks in ``learning.tasks`` run them; and their recovery.

``round_train_run``  (queue ``training``)
    train the round's model (:mod:`.round_training`); the round moves to
    *selecting* and the same job is handed to the selection queue.
``round_select_run`` (queue ``default``)
    propose and store the round's queries (:mod:`.round_selection`) and open
    the round, or, in the last round, finish the project. A large pool is
    first scored by ``learning.score_shard`` tasks (a chord whose callback
    is this task again; the job stays running meanwhile).

Each step is idempotent: a task delivered twice, or re-queued after its
worker died, finds the round further along and does only what is left.
"""
from __future__ import annotations

from django.conf import settings
from django.db import transaction

from learning.progress import check_stop
from models_store.selectors import model_version_current

from ..models import Job, Round
from .job_progress import job_end_with_error
from .jobs import job_enqueue, job_fail, job_requeue, job_start, job_succeed, jobs_orphaned
from .rounds import round_finish, round_mark_selecting, round_open


def _cancel_requested(job_id: int) -> bool:
    return Job.objects.filter(pk=job_id, cancel_requested=True).exists()


def _round_of_started_job(job_id: int, worker: str) -> Round | None:
    """Mark the job running; its round, or None when the job or round vanished or the job already ended."""
    job = job_start(job_id=job_id, worker=worker)
    return None if job is None else job.round


def round_train_run(*, job_id: int, worker: str = "") -> str:
    from .round_training import TRAIN_SHARE, train_round

    round_ = _round_of_started_job(job_id, worker)
    if round_ is None:
        return "gone"
    try:
        if round_.state == Round.State.TRAINING:
            trained = train_round(job_id, round_)
            # Keep-best: a rejected model is kept for the record; the current one goes on serving.
            serving = model_version_current(project=round_.project) if not trained.is_promoted else trained
            round_ = round_mark_selecting(round_=round_, model_version=serving or trained)
        if round_.state != Round.State.SELECTING:
            job_succeed(job_id=job_id, message=f"round {round_.number} is {round_.state} already")
            return "done"
        check_stop(lambda: _cancel_requested(job_id), "round job")
    except Exception as error:  # noqa: BLE001 - every end reaches the job row
        return job_end_with_error(job_id=job_id, error=error)
    _hand_over_to_selection(job_id, round_, progress=TRAIN_SHARE)
    return "trained"


def _hand_over_to_selection(job_id: int, round_: Round, *, progress: int) -> None:
    """The same job goes on in the selection queue; its task id is cleared until the broker takes the message,
    so a broker outage at this moment leaves a queued job the periodic sweep recognises and sends again."""
    from learning.tasks import round_select

    with transaction.atomic():
        Job.objects.filter(pk=job_id, state=Job.State.RUNNING).update(
            state=Job.State.QUEUED, worker="", phase="select", progress=progress, celery_task_id="",
            message=f"round {round_.number}: model trained; selection queued")
        job = Job.objects.filter(pk=job_id, state=Job.State.QUEUED).first()
        if job is not None:
            job_enqueue(job=job, task=round_select)


def round_select_run(*, job_id: int, worker: str = "") -> str:
    from .round_selection import select_round, select_round_cold
    from .round_training import TRAIN_SHARE

    round_ = _round_of_started_job(job_id, worker)
    if round_ is None:
        return "gone"
    try:
        if round_.state != Round.State.SELECTING:
            job_succeed(job_id=job_id, message=f"round {round_.number} is {round_.state} already")
            return "done"
        if round_.model_version is None:  # a cold start: nothing trained yet, people label a diverse first set
            stats = select_round_cold(job_id, round_)
            round_open(round_=round_, stats=stats)
            job_succeed(job_id=job_id, message=f"round {round_.number} open: {stats['queries']} images picked for "
                                               "diversity (no model yet)")
            return "opened"
        if round_.number >= round_.project.rounds_total:
            round_finish(round_=round_, stats={"final": True, "val_miou": round_.model_version.miou})
            job_succeed(job_id=job_id, message=f"round {round_.number}: final model evaluated; project finished")
            return "finished"
        stats = select_round(job_id, round_, start=TRAIN_SHARE, end=100)
        if stats is None:  # shard tasks score the pool on several workers; this task runs again after them
            return "scoring"
        if stats["queries"] == 0:
            round_finish(round_=round_, stats={**stats, "final": True})
            job_succeed(job_id=job_id, message="nothing left to label: project finished")
            return "finished"
        round_open(round_=round_, stats=stats)
        job_succeed(job_id=job_id, message=f"round {round_.number} open: {stats['queries']} queries, "
                                           f"{stats['query_pixels']} pixels")
        return "opened"
    except Exception as error:  # noqa: BLE001 - every end reaches the job row
        return job_end_with_error(job_id=job_id, error=error)


def jobs_recover(*, worker: str) -> list[int]:
    """Re-queue round jobs whose worker died (called when a worker starts); returns their ids."""
    from learning.tasks import round_select, round_train

    requeued = []
    for job in jobs_orphaned(worker=worker, stale_after_seconds=settings.MASKLOOP_JOB_STALE_SECONDS):
        if job.kind != Job.Kind.ROUND or job.round is None:
            job_fail(job_id=job.pk, error=f"its worker {job.worker} stopped while it ran; start it again")
            continue
        task = round_select if job.round.state == Round.State.SELECTING else round_train
        if job_requeue(job=job, task=task):
            requeued.append(job.pk)
    return requeued
