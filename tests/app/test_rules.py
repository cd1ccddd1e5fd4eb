"""One owner per rule: "has started", "has masks", "can be cancelled / retried" decide the same everywhere.

Each rule lives on the model (``Project.has_started``, ``Project.has_masks``,
``Job.can_cancel``, ``Job.retry_refusal``); the services check it, and the
lead pages, the admin and the API only call those services.
"""
import numpy as np
import pytest
from django.contrib import admin
from django.test import RequestFactory
from django.urls import reverse
from rest_framework.test import APIClient

from annotator.admin import LabelClassInline, ProjectAdminForm
from annotator.models import Image, Job, Project, Round
from annotator.services.errors import ServiceError
from annotator.services.images import image_set_split
from annotator.services.jobs import job_cancel_request
from annotator.services.projects import ClassSpec, project_set_classes, project_update
from annotator.services.rounds import job_retry, project_start
from tests.factories import make_annotation, make_image, make_job, make_query, make_round

pytestmark = pytest.mark.django_db

FINAL_STATES = [Job.State.SUCCEEDED, Job.State.FAILED, Job.State.CANCELLED]


@pytest.fixture
def lead_client(client, users):
    client.force_login(users["lead"])
    return client


# --- Project.has_started ---------------------------------------------------------------------------------------


def test_a_draft_project_with_a_round_has_started_for_every_service(project):
    image = make_image(project, split=Image.Split.VAL, gt=np.zeros((48, 64), np.uint8))
    assert not project.has_started
    make_round(project, number=0, state=Round.State.TRAINING)  # state still draft
    assert project.has_started
    with pytest.raises(ServiceError, match="has started already"):
        project_start(project=project)
    with pytest.raises(ServiceError, match="frozen"):
        image_set_split(project=project, images=[image.pk], split=Image.Split.POOL)
    with pytest.raises(ServiceError, match="architecture cannot change once the project has started"):
        project_update(project=project, architecture=Project.Architecture.LRASPP_MOBILENET)


def test_the_admin_form_locks_the_same_settings_once_started(project):
    data = {field: value for field, value in ProjectAdminForm(instance=project).initial.items() if value is not None}
    data["architecture"] = Project.Architecture.LRASPP_MOBILENET
    assert ProjectAdminForm(data=data, instance=Project.objects.get(pk=project.pk)).is_valid()
    make_round(project, number=0, state=Round.State.TRAINING)  # state still draft
    form = ProjectAdminForm(data=data, instance=Project.objects.get(pk=project.pk))
    assert not form.is_valid() and "architecture" in form.errors


# --- Project.has_masks -----------------------------------------------------------------------------------------


def test_an_annotation_alone_fixes_the_class_ids_in_the_service_and_the_admin(project, users):
    query = make_query(make_round(project, number=0), make_image(project))
    assert not project.has_masks
    make_annotation(query, np.zeros((48, 64), np.uint8), author=users["annotator"])
    assert project.has_masks  # no imported ground truth: an annotator's mask is enough
    with pytest.raises(ServiceError, match="masks exist already"):
        project_set_classes(project=project, classes=[ClassSpec(0, "road", "#804080")])
    request = RequestFactory().get("/")
    request.user = users["admin"]
    assert not LabelClassInline(Project, admin.site).has_add_permission(request, project)


# --- Job.can_cancel --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", FINAL_STATES)
def test_a_finished_job_cannot_be_cancelled(project, state):
    job = make_job(project, state=state)
    assert not job.can_cancel
    with pytest.raises(ServiceError, match="a finished job cannot be cancelled"):
        job_cancel_request(job=job)
    job.refresh_from_db()
    assert job.state == state and not job.cancel_requested


def test_cancelling_a_finished_job_is_a_400_in_the_api_and_an_error_on_the_lead_page(project, users, lead_client):
    job = make_job(project, state=Job.State.SUCCEEDED)
    api = APIClient()
    api.force_login(users["lead"])
    response = api.post(f"/api/jobs/{job.pk}/cancel/")
    assert response.status_code == 400
    assert response.json() == {"detail": f"job {job.pk} has ended (succeeded): a finished job cannot be cancelled",
                               "code": "invalid"}
    page = lead_client.post(reverse("job-action", args=[project.pk, job.pk, "cancel"]), follow=True)
    assert "a finished job cannot be cancelled" in page.content.decode()
    assert not Job.objects.get(pk=job.pk).cancel_requested


def test_a_running_job_can_be_asked_to_stop(project):
    job = make_job(project, state=Job.State.RUNNING)
    assert job.can_cancel
    job = job_cancel_request(job=job)
    assert job.state == Job.State.RUNNING and job.cancel_requested


# --- Job.can_retry ---------------------------------------------------------------------------------------------


def test_the_lead_page_refuses_a_retry_while_another_job_of_the_round_is_queued(project, lead_client):
    training = make_round(project, number=0, state=Round.State.TRAINING)
    failed = make_job(project, round=training, state=Job.State.FAILED)
    make_job(project, round=training, state=Job.State.QUEUED)
    assert not failed.can_retry
    page = lead_client.post(reverse("job-action", args=[project.pk, failed.pk, "retry"]), follow=True).content.decode()
    assert "already has a job queued or running" in page
    assert training.jobs.count() == 2
    # The dashboard offers no Retry button for it either: the same rule decides.
    assert reverse("job-action", args=[project.pk, failed.pk, "retry"]) not in page


def test_a_failed_round_job_can_be_retried_once(project, django_capture_on_commit_callbacks):
    training = make_round(project, number=0, state=Round.State.TRAINING)
    failed = make_job(project, round=training, state=Job.State.FAILED)
    assert failed.can_retry and failed.retry_refusal() is None
    with django_capture_on_commit_callbacks(execute=False):
        job_retry(job=failed)
    assert not Job.objects.get(pk=failed.pk).can_retry


@pytest.mark.parametrize("kind, state, round_state, reason", [
    (Job.Kind.EXPORT, Job.State.FAILED, None, "only round jobs"),
    (Job.Kind.ROUND, Job.State.SUCCEEDED, Round.State.TRAINING, "only failed or cancelled"),
    (Job.Kind.ROUND, Job.State.FAILED, Round.State.LABELING, "nothing to retry"),
])
def test_retry_refusals(project, kind, state, round_state, reason):
    round_ = make_round(project, number=0, state=round_state) if round_state else None
    job = make_job(project, kind=kind, state=state, round=round_)
    assert reason in job.retry_refusal() and not job.can_retry
    with pytest.raises(ServiceError, match=reason):
        job_retry(job=job)
