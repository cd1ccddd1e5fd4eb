"""The same worker round trip on the production stack: PostgreSQL + Redis (run via tests/integration/run.py)."""
import os

import pytest
from django.conf import settings
from django.db import connection, transaction

from annotator.models import Job
from annotator.services.jobs import job_create, job_enqueue
from learning.tasks import ping
from tests.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

if os.environ.get("MASKLOOP_INTEGRATION") != "1":
    pytest.skip(
        "integration tier not configured: run `python tests/integration/run.py` (make test does) "
        "with PostgreSQL and Redis on 127.0.0.1",
        allow_module_level=True,
    )


def test_runs_on_postgresql_and_redis():
    assert connection.vendor == "postgresql"
    assert settings.CELERY_BROKER_URL.startswith("redis://")


def test_worker_round_trip_through_redis(celery_worker_process):
    with transaction.atomic():
        job = job_create(kind=Job.Kind.PING)
        job_enqueue(job=job, task=ping)
    done = wait_for(
        lambda: Job.objects.filter(pk=job.pk, state=Job.State.SUCCEEDED).first(),
        timeout=90, what="the worker to answer through Redis", log_path=celery_worker_process.log_path,
    )
    assert done.message.startswith("pong from ")
