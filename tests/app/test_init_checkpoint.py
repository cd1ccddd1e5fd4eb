"""A project's initial checkpoint: only what staff placed under the roots, or the project's own models.

Any user may create a project, so a free server path would let anyone probe
files (exists → accepted, missing → refused) and warm-start from another
project's weights, then download them.
"""
from pathlib import Path

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from annotator.models import Project
from annotator.services.errors import ServiceError
from annotator.services.init_checkpoints import init_checkpoint_choices
from annotator.services.projects import project_create, project_update
from annotator.services.rounds import project_readiness
from models_store import storage
from tests.factories import make_model_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def shelf(settings, tmp_path) -> Path:
    """The staff's folder of checkpoints: a backbone file and a checkpoint folder."""
    root = tmp_path / "checkpoints"
    (root / "camvid-day").mkdir(parents=True)
    (root / "camvid-day" / "meta.json").write_text("{}")
    (root / "camvid-day" / "weights.pt").write_bytes(b"weights")
    (root / "imagenet.pth").write_bytes(b"backbone")
    settings.MASKLOOP_INIT_CHECKPOINT_ROOTS = [str(root)]
    return root


def refusal(project, value: str) -> str:
    with pytest.raises(ServiceError) as caught:
        project_update(project=project, init_checkpoint=value)
    return str(caught.value).replace(repr(value), "<value>")


def test_files_and_checkpoint_folders_under_the_roots_are_accepted_by_their_real_path(project, shelf):
    assert project_update(project=project, init_checkpoint=str(shelf / "imagenet.pth")).init_checkpoint == str(
        shelf.resolve() / "imagenet.pth")
    assert project_update(project=project, init_checkpoint="camvid-day").init_checkpoint == str(
        shelf.resolve() / "camvid-day")  # relative to a root


def test_missing_and_forbidden_paths_get_the_same_answer(project, shelf, tmp_path):
    outside = tmp_path / "secret.pt"
    outside.write_bytes(b"someone else's")
    (shelf / "escape.pt").symlink_to(outside)
    answers = {refusal(project, value) for value in (
        "/etc/passwd", str(outside), str(tmp_path / "missing.pt"), str(shelf / "missing.pt"),
        str(shelf / "camvid-day" / ".." / ".." / "secret.pt"), "../secret.pt", str(shelf / "escape.pt"),
        str(shelf), "a\x00b",
    )}
    assert len(answers) == 1 and "MASKLOOP_INIT_CHECKPOINT_ROOTS" in answers.pop()
    assert Project.objects.get(pk=project.pk).init_checkpoint == ""


def test_another_projects_model_is_refused_even_if_a_root_covers_the_store(project, users, settings, shelf):
    other = project_create(name="Other", created_by=users["outsider"])
    folder = storage.version_dir(make_model_version(other))
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text("{}")
    settings.MASKLOOP_INIT_CHECKPOINT_ROOTS = [str(shelf), str(settings.MODELS_STORE_ROOT)]
    with pytest.raises(ServiceError, match="MASKLOOP_INIT_CHECKPOINT_ROOTS"):
        project_update(project=project, init_checkpoint=str(folder))
    own = storage.version_dir(make_model_version(project))
    own.mkdir(parents=True)
    (own / "meta.json").write_text("{}")
    assert project_update(project=project, init_checkpoint=str(own)).init_checkpoint == str(own.resolve())
    assert [label for _, label in init_checkpoint_choices(project=project)] == [
        "model v1 of this project", "camvid-day/ (checkpoint folder)", "imagenet.pth"]


def test_the_api_refuses_a_path_outside_the_roots_without_telling_whether_it_exists(users, shelf, tmp_path):
    client = APIClient()
    client.force_login(users["outsider"])  # anyone may create a project
    answers = []
    for value in ("/etc/passwd", str(tmp_path / "missing.pt")):
        response = client.post("/api/projects/", {"name": f"probe {len(answers)}", "init_checkpoint": value},
                               format="json")
        assert response.status_code == 400
        answers.append(str(response.json()).replace(repr(value), "<value>"))
    assert answers[0] == answers[1] and not Project.objects.filter(name__startswith="probe").exists()
    created = client.post("/api/projects/", {"name": "warm", "init_checkpoint": "imagenet.pth"}, format="json")
    assert created.status_code == 201 and created.json()["init_checkpoint"] == str(shelf.resolve() / "imagenet.pth")


def test_the_settings_page_offers_the_shelf_and_refuses_anything_else(project, users, client, shelf):
    from tests.app.test_lead_pages import settings_post

    client.force_login(users["lead"])
    url = reverse("project-settings", args=[project.pk])
    page = client.get(url).content.decode()
    assert "imagenet.pth" in page and "camvid-day/ (checkpoint folder)" in page
    response = client.post(url, settings_post(project, init_checkpoint="/etc/passwd"))
    assert response.status_code == 200 and Project.objects.get(pk=project.pk).init_checkpoint == ""
    response = client.post(url, settings_post(project, init_checkpoint=str(shelf.resolve() / "camvid-day")))
    assert response.status_code == 302
    assert Project.objects.get(pk=project.pk).init_checkpoint == str(shelf.resolve() / "camvid-day")


def test_a_project_cannot_start_from_a_path_set_before_the_rule(project, shelf):
    Project.objects.filter(pk=project.pk).update(init_checkpoint="/etc/passwd")  # a row from before the fix
    problems = project_readiness(project=Project.objects.get(pk=project.pk))
    assert any("MASKLOOP_INIT_CHECKPOINT_ROOTS" in problem for problem in problems)
