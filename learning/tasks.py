"""Celery tasks: take ids, reload rows, hand the work to learning.services. Job status lives on our Job rows.

Training runs on the ``training`` queue (GPU workers where there are any);
selection and suggestions on ``default``. Every task is safe to deliver twice:
the services check the round's state and rely on unique constraints.
"""
from __future__ import annotations

import socket

from celery import shared_task

from annotator.services.jobs import job_start, job_succeed


@shared_task(name="learning.ping")
def ping(*, job_id: int) -> str:
    """Prove a worker consumes the queue and reaches the database (used by tests and `manage.py check_worker`)."""
    job = job_start(job_id=job_id)
    if job is None:
        return "gone"
    reply = f"pong from {socket.gethostname()}"
    job_succeed(job_id=job_id, message=reply)
    return reply


@shared_task(name="learning.round_train", queue="training")
def round_train(*, job_id: int) -> str:
    """Train (or fine-tune) the round's model, evaluate it, store it; then hand over to selection."""
    from . import services

    return services.round_train_run(job_id=job_id)


@shared_task(name="learning.round_select", queue="default")
def round_select(*, job_id: int) -> str:
    """Score the pool with the round's model, store queries and suggestions, open the round."""
    from . import services

    return services.round_select_run(job_id=job_id)
