"""Leads archive a project (read-only, listed apart) and delete one (with everything), from the pages and the API."""
from pathlib import Path

import numpy as np
import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from annotator.models import Annotation, Image, Job, Project, Round
from annotator.services.errors import ServiceError
from annotator.services.labeling import query_next
from annotator.services.projects import project_set_archived, project_update
from annotator.services.rounds import project_start
from tests.factories import make_annotation, make_image, make_job, make_model_version, make_query, make_round

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(users):
    def client_for(name: str) -> APIClient:
        client = APIClient()
        client.force_login(users[name])
        return client

    return client_for


def with_files(project):
    """A project with an image, two versions of its label (a parent chain) and a model on disk."""
    round_ = make_round(project, number=0, model_version=make_model_version(project))
    image = make_image(project)
    query = make_query(round_, image)
    make_annotation(query, np.zeros((48, 64), np.uint8), submitted=False)
    make_annotation(query, np.zeros((48, 64), np.uint8))
    return round_, image, query


def test_an_archived_project_is_read_only_and_hands_nothing_out(project, users):
    round_, _, _ = with_files(project)
    project_set_archived(project=project, archived=True)
    assert query_next(project=project, user=users["annotator"]) is None
    with pytest.raises(ServiceError, match="is archived"):
        project_update(project=project, description="changed")
    project_set_archived(project=project, archived=False)
    assert query_next(project=project, user=users["annotator"]) is not None


def test_archiving_waits_for_running_jobs(project):
    job = make_job(project, kind=Job.Kind.EXPORT, state=Job.State.RUNNING)
    with pytest.raises(ServiceError, match=f"job {job.pk} queued or running"):
        project_set_archived(project=project, archived=True)


def test_an_archived_project_cannot_start(project):
    make_image(project)
    project_set_archived(project=project, archived=True)
    with pytest.raises(ServiceError, match="is archived"):
        project_start(project=project)


def test_the_api_archives_lists_apart_and_unarchives(project, api):
    assert api("annotator").post(f"/api/projects/{project.pk}/archive/").status_code == 403
    response = api("lead").post(f"/api/projects/{project.pk}/archive/")
    assert response.status_code == 200 and response.json()["archived_at"]
    assert [p["name"] for p in api("lead").get("/api/projects/", {"archived": "true"}).json()["results"]] == [
        "Streets"]
    assert api("lead").get("/api/projects/", {"archived": "false"}).json()["results"] == []
    assert api("lead").patch(f"/api/projects/{project.pk}/", {"description": "x"}, format="json").status_code == 400
    assert api("lead").post(f"/api/projects/{project.pk}/unarchive/").json()["archived_at"] is None


def test_the_pages_archive_and_the_home_page_lists_archived_projects_apart(project, client, users):
    client.force_login(users["lead"])
    response = client.post(reverse("project-archive", args=[project.pk]), {"action": "archive"}, follow=True)
    assert "Archived Streets" in response.content.decode()
    project.refresh_from_db()
    assert project.archived_at is not None
    home = client.get("/").content.decode()
    assert "Archived projects (1)" in home and home.index("Streets") > home.index("Archived projects")
    settings_page = client.get(reverse("project-settings", args=[project.pk])).content.decode()
    assert 'id="archived-note"' in settings_page and "Unarchive the project" in settings_page
    client.force_login(users["annotator"])
    queue = client.get(reverse("labeling-queue-page", args=[project.pk])).content.decode()
    assert "This project is archived: nothing is handed out to label." in queue


def test_a_lead_deletes_a_project_with_its_files_after_typing_its_name(project, client, users, settings,
                                                                     django_capture_on_commit_callbacks):
    round_, image, _ = with_files(project)
    image_file = Path(image.file.path)
    model_dir = Path(settings.MODELS_STORE_ROOT) / f"project-{project.pk}"
    model_dir.mkdir(parents=True)
    (model_dir / "weights.pt").write_bytes(b"w")
    client.force_login(users["annotator"])
    assert client.post(reverse("project-delete", args=[project.pk]), {"confirm_name": "Streets"}).status_code == 403
    client.force_login(users["lead"])
    wrong = client.post(reverse("project-delete", args=[project.pk]), {"confirm_name": "streets"}, follow=True)
    assert "nothing was deleted" in wrong.content.decode() and Project.objects.filter(pk=project.pk).exists()
    settings_page = client.get(reverse("project-settings", args=[project.pk])).content.decode()
    assert 'data-confirm="Delete Streets for good' in settings_page  # the page asks once more before sending
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("project-delete", args=[project.pk]), {"confirm_name": "Streets"})
    assert response.status_code == 302 and response["Location"] == reverse("home")
    assert not Project.objects.filter(pk=project.pk).exists()
    assert not Image.objects.exists() and not Annotation.objects.exists() and not Round.objects.exists()
    assert not image_file.exists() and not model_dir.exists()


def test_the_api_deletes_for_leads_and_staff_only_and_never_under_a_running_job(project, api, users):
    with_files(project)
    assert api("annotator").delete(f"/api/projects/{project.pk}/").status_code == 403
    assert api("outsider").delete(f"/api/projects/{project.pk}/").status_code == 404
    job = make_job(project, state=Job.State.RUNNING)
    refused = api("lead").delete(f"/api/projects/{project.pk}/")
    assert refused.status_code == 400 and f"job {job.pk} queued or running" in refused.json()["detail"]
    Job.objects.filter(pk=job.pk).update(state=Job.State.CANCELLED)
    assert api("admin").delete(f"/api/projects/{project.pk}/").status_code == 204
    assert not Project.objects.filter(pk=project.pk).exists()


def test_the_labeling_api_says_the_project_is_archived(project, api):
    with_files(project)
    project_set_archived(project=project, archived=True)
    body = api("annotator").post(f"/api/labeling/projects/{project.pk}/next/").json()
    assert body == {"query": None, "detail": "The project is archived: nothing is handed out to label."}
