"""Celery tasks of the round loop: take ids, hand the work to the round job services. Job status lives on Job rows.

The only module of ``learning`` that imports Django: the work itself is in
``annotator.services.round_jobs`` (rows → plain records → the ML core →
rows). Task names and queues are part of the deployment (workers subscribe
to queues by name): keep them.

Training runs on the ``training`` queue (GPU workers where there are any);
selection and suggestions on ``default``, and so do the shard tasks that score
a large pool on several workers at once (``MASKLOOP_SCORING_QUEUE``). Every task is safe to deliver twice:
the services check the round's state and rely on unique constraints. When a
worker starts it re-queues the round jobs its previous process was running
(killed mid-training) and any whose worker has been silent for too long.
"""
from __future__ import annotations

import logging
import socket

from celery import shared_task
from celery.signals import worker_ready

from annotator.services.jobs import job_start, job_succeed

log = logging.getLogger(__name__)


@shared_task(name="learning.ping", bind=True)
def ping(self, *, job_id: int) -> str:
    """Prove a worker consumes the queue and reaches the database (used by tests)."""
    job = job_start(job_id=job_id, worker=self.request.hostname or "")
    if job is None:
        return "gone"
    reply = f"pong from {socket.gethostname()}"
    job_succeed(job_id=job_id, message=reply)
    return reply


@shared_task(name="learning.round_train", queue="training", bind=True)
def round_train(self, *, job_id: int) -> str:
    """Train (or fine-tune) the round's model, evaluate it, store it; then hand over to selection."""
    from annotator.services.round_jobs import round_train_run

    return round_train_run(job_id=job_id, worker=self.request.hostname or "")


@shared_task(name="learning.round_select", queue="default", bind=True)
def round_select(self, *, job_id: int) -> str:
    """Score the pool with the round's model, store queries and suggestions, open the round."""
    from annotator.services.round_jobs import round_select_run

    return round_select_run(job_id=job_id, worker=self.request.hostname or "")


@shared_task(name="learning.score_shard", bind=True, acks_late=True, reject_on_worker_lost=True)
def score_shard(self, *, job_id: int, shard: int) -> str:
    """Score one shard of a round's pool into its selection store (sent by the round's selection task).

    Acknowledged only when done: if the worker dies mid-shard the broker
    delivers the message again and only this shard is redone (a shard is
    written atomically and skipped when already stored for the same labels).
    """
    from annotator.services.round_selection import score_round_shard

    return score_round_shard(job_id=job_id, shard=shard)


@worker_ready.connect
def recover_orphaned_jobs(sender=None, **kwargs) -> None:
    from annotator.services.round_jobs import jobs_recover

    hostname = getattr(sender, "hostname", "") or ""
    try:
        requeued = jobs_recover(worker=hostname)
    except Exception:  # a recovery problem must not keep the worker from starting
        log.exception("could not recover orphaned jobs")
        return
    if requeued:
        log.warning("re-queued jobs %s whose worker died", requeued)


# No worker has this name (Celery names are name@host, imports and exports run
# under ""): jobs_recover then re-queues only jobs silent past
# MASKLOOP_JOB_STALE_SECONDS and never touches a live job of any worker.
SWEEPER = "(periodic sweep)"


@shared_task(name="learning.jobs_sweep")
def jobs_sweep() -> list[int]:
    """Re-queue jobs whose worker died while the other workers stay up (Celery beat, every MASKLOOP_JOB_SWEEP_SECONDS)."""
    from annotator.services.round_jobs import jobs_recover

    requeued = jobs_recover(worker=SWEEPER)
    if requeued:
        log.warning("sweep: re-queued jobs %s whose worker stopped reporting", requeued)
    return requeued
