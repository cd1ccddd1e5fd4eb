"""A broker that cannot be reached: the request that queued a job still succeeds and loses nothing.

A round job stays queued and the sweep sends it once the broker is back; an
import or export, whose arguments live only in the message, fails with a
sentence (and an uploaded archive is removed). tests/integration/test_faults.py
does the same with a real redis-server killed and restarted.
"""
import datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from django.conf import settings
from django.urls import reverse
from kombu.exceptions import OperationalError
from rest_framework.test import APIClient

from annotator import tasks as annotator_tasks
from annotator.imaging import encode_png
from annotator.models import Job, Round
from annotator.services.jobs import job_create, job_enqueue
from learning import tasks
from tests.app.test_api_imports import zip_folder
from tests.factories import make_image, make_query, make_round

REFUSED = "Error 111 connecting to 127.0.0.1:6390. Connection refused."


@pytest.fixture
def broker(monkeypatch):
    """The messages of round, import and export tasks: refused while ``broker.down``, else kept in ``sent``."""
    broker = SimpleNamespace(down=True, sent=[])

    def apply_async(name):
        def send(kwargs, task_id=None, **options):
            if broker.down:
                raise OperationalError(REFUSED)
            broker.sent.append((name, kwargs))
            return SimpleNamespace(id=task_id or f"task-{len(broker.sent)}")
        return send

    for task in (tasks.round_train, tasks.round_select, annotator_tasks.export_dataset,
                 annotator_tasks.import_dataset):
        monkeypatch.setattr(task, "apply_async", apply_async(task.name))
    return broker


def client_of(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.mark.django_db(transaction=True)
def test_the_last_submit_while_the_broker_is_down_answers_201_and_keeps_its_mask(project, users, broker):
    """Real commits: the next round's job is sent when the submit's transaction commits."""
    round0 = make_round(project, number=0, state=Round.State.LABELING)
    query = make_query(round0, make_image(project, size=(8, 6)))
    url = reverse("labeling-query-submit", args=[query.pk]) + "?base_version=0"
    response = client_of(users["annotator"]).post(url, data=encode_png(np.ones((6, 8), np.uint8)),
                                                  content_type="image/png")
    assert response.status_code == 201 and response.json()["next_round"] == 1
    annotation = query.image.annotations.get()
    assert annotation.is_submitted and Path(annotation.mask.path).is_file()
    job = Job.objects.get(round__number=1)
    assert (job.state, job.celery_task_id) == (Job.State.QUEUED, "")
    assert "task broker could not be reached" in job.message and "sent again when the broker is back" in job.message


@pytest.mark.django_db
def test_the_sweep_sends_an_unsent_round_job_once_when_the_broker_is_back(project, broker,
                                                                        django_capture_on_commit_callbacks):
    round_ = make_round(project, number=0, state=Round.State.TRAINING)
    with django_capture_on_commit_callbacks(execute=True):
        job = job_create(kind=Job.Kind.ROUND, project=project, round_=round_)
        job_enqueue(job=job, task=tasks.round_train)
    assert Job.objects.get(pk=job.pk).celery_task_id == ""
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.jobs_sweep() == []  # younger than a sweep interval: its send may be under way
    broker.down = False
    Job.objects.filter(pk=job.pk).update(
        created_at=job.created_at - datetime.timedelta(seconds=settings.MASKLOOP_JOB_SWEEP_SECONDS + 1))
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.jobs_sweep() == [job.pk]
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.jobs_sweep() == []
    job.refresh_from_db()
    assert broker.sent == [("learning.round_train", {"job_id": job.pk})]
    assert job.state == Job.State.QUEUED and job.celery_task_id.count("-") == 4  # the uuid it was sent under
    assert "sent again" in job.log


@pytest.mark.django_db
def test_a_resend_that_fails_again_is_tried_at_the_next_sweep(project, broker, django_capture_on_commit_callbacks):
    round_ = make_round(project, number=0, state=Round.State.TRAINING)
    job = Job.objects.create(kind=Job.Kind.ROUND, project=project, round=round_)
    Job.objects.filter(pk=job.pk).update(created_at=job.created_at - datetime.timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.jobs_sweep() == [job.pk]  # claimed, then refused by the broker
    assert Job.objects.get(pk=job.pk).celery_task_id == ""
    broker.down = False
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.jobs_sweep() == [job.pk]
    assert broker.sent == [("learning.round_train", {"job_id": job.pk})]


@pytest.mark.django_db(transaction=True)
def test_an_export_queued_while_the_broker_is_down_fails_with_a_sentence(project, users, broker):
    response = client_of(users["lead"]).post(f"/api/projects/{project.pk}/exports/", {"format": "coco"},
                                             format="json")
    assert response.status_code == 202
    assert response.json()["state"] == "failed"
    job = Job.objects.get(pk=response.json()["id"])
    assert job.state == Job.State.FAILED and job.finished_at is not None
    assert job.message.startswith("the task broker could not be reached") and "start it again" in job.message


@pytest.mark.django_db(transaction=True)
def test_an_import_queued_while_the_broker_is_down_fails_and_removes_its_upload(project, users, broker,
                                                                              make_dataset):
    response = client_of(users["lead"]).post(f"/api/projects/{project.pk}/imports/",
                                             {"domain": "target", "archive": zip_folder(make_dataset(2))},
                                             format="multipart")
    assert response.status_code == 202 and response.json()["state"] == "failed"
    assert not list((Path(settings.MEDIA_ROOT) / "uploads").rglob("*.zip"))
