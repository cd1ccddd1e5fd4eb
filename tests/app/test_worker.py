"""A real Celery worker process consumes the default embedded broker (filesystem transport)."""
import pytest
from django.conf import settings

from annotator.models import Job
from annotator.services.jobs import job_create, job_enqueue
from learning.tasks import ping
from tests.conftest import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_default_broker_is_the_filesystem_transport_with_absolute_folders():
    if not settings.CELERY_BROKER_URL.startswith("filesystem://"):
        pytest.skip(f"CELERY_BROKER_URL is {settings.CELERY_BROKER_URL}, not the embedded default")
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        assert options[key].startswith("/")
    assert options["polling_interval"] <= 0.1


def test_worker_process_runs_a_task_through_the_broker(celery_worker_process):
    from django.db import transaction

    with transaction.atomic():
        job = job_create(kind=Job.Kind.PING)
        job_enqueue(job=job, task=ping)
    done = wait_for(
        lambda: Job.objects.filter(pk=job.pk, state=Job.State.SUCCEEDED).first(),
        timeout=90, what="the worker to run the ping task", log_path=celery_worker_process.log_path,
    )
    assert done.message.startswith("pong from ")
    assert done.celery_task_id
    assert done.attempts == 1
