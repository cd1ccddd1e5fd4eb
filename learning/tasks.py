"""Celery tasks: take ids, reload rows, hand the work to services. Job status lives on our Job rows."""
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
