"""/api/projects/: members read, leads change, staff do everything, outsiders see nothing."""
import numpy as np
import pytest
from rest_framework.test import APIClient

from annotator.models import Image, Job, Membership, Project, Round
from tests.factories import make_image

pytestmark = pytest.mark.django_db


def ready(project):
    """Make ``project`` startable: labeled source, a target pool and validation images with masks."""
    gt = np.zeros((48, 64), np.uint8)
    make_image(project, domain=Image.Domain.SOURCE, split=Image.Split.TRAIN, gt=gt)
    make_image(project)
    return make_image(project, split=Image.Split.VAL, gt=gt)


def test_list_shows_only_the_users_projects_with_their_role(project, as_user):
    Project.objects.create(name="Someone else's")
    assert as_user("outsider").get("/api/projects/").json()["results"] == []
    rows = as_user("annotator").get("/api/projects/").json()["results"]
    assert [(r["name"], r["role"]) for r in rows] == [("Streets", "annotator")]
    assert [c["name"] for c in rows[0]["classes"]] == ["road", "car", "sky"]
    staff = as_user("admin").get("/api/projects/").json()
    assert staff["count"] == 2 and {r["role"] for r in staff["results"]} == {"lead"}


def test_anonymous_requests_are_refused(project):
    assert APIClient().get("/api/projects/").status_code in (401, 403)
    assert APIClient().get(f"/api/projects/{project.pk}/metrics/").status_code in (401, 403)


@pytest.mark.parametrize("who, expected", [("outsider", 404), ("annotator", 403), ("lead", 200), ("admin", 200)])
def test_only_leads_and_staff_change_settings(project, as_user, who, expected):
    response = as_user(who).patch(f"/api/projects/{project.pk}/",
                                  {"budget_unit": "images", "budget_per_round": 4, "query_unit": "image",
                                   "strategy": "entropy_diversity", "diversity_weight": 0.3}, format="json")
    assert response.status_code == expected, response.content
    project.refresh_from_db()
    changed = (project.budget_unit, project.budget_per_round, project.strategy) == ("images", 4, "entropy_diversity")
    assert changed == (expected == 200)


@pytest.mark.parametrize("changes, message", [
    ({"budget_unit": "pixel_percent", "budget_per_round": 150}, "at most 100"),
    ({"budget_unit": "images", "budget_per_round": 2.5}, "whole number"),
    ({"budget_unit": "regions", "query_unit": "image"}, "needs region queries"),
    ({"diversity_weight": 1.5}, "diversity_weight"),
])
def test_impossible_budgets_are_refused_with_a_reason(project, as_user, changes, message):
    response = as_user("lead").patch(f"/api/projects/{project.pk}/", changes, format="json")
    assert response.status_code == 400
    assert message in str(response.json())


def test_architecture_is_fixed_once_the_project_started(project, as_user):
    project.state = Project.State.ACTIVE
    project.save()
    lead = as_user("lead")
    response = lead.patch(f"/api/projects/{project.pk}/", {"architecture": "deeplabv3_resnet50"}, format="json")
    assert response.status_code == 400 and "cannot change once the project has started" in response.json()["detail"]
    assert lead.patch(f"/api/projects/{project.pk}/", {"budget_per_round": 2.0}, format="json").status_code == 200


def test_any_user_creates_a_project_and_leads_it(users, as_user):
    response = as_user("annotator").post("/api/projects/", {
        "name": "Harbour", "query_unit": "image", "budget_unit": "images", "budget_per_round": 10,
        "classes": [{"index": 0, "name": "water", "color": "#0000ff", "hotkey": "1"},
                    {"index": 1, "name": "boat", "color": "#ff0000", "hotkey": "2"}],
    }, format="json")
    assert response.status_code == 201, response.content
    project = Project.objects.get(name="Harbour")
    assert response.json()["id"] == project.pk and response.json()["role"] == "lead"
    assert Membership.objects.get(project=project, user=users["annotator"]).role == "lead"
    assert list(project.classes.values_list("name", "hotkey")) == [("water", "1"), ("boat", "2")]


def test_with_permitted_creators_only_staff_and_permission_holders_create_projects(users, as_user, settings):
    from django.contrib.auth.models import Permission

    settings.MASKLOOP_PROJECT_CREATORS = "permitted"
    body = {"name": "Harbour", "classes": [{"index": 0, "name": "water", "color": "#0000ff", "hotkey": "1"}]}
    refused = as_user("annotator").post("/api/projects/", body, format="json")
    assert refused.status_code == 403 and "may not create projects" in refused.json()["detail"]
    assert not Project.objects.filter(name="Harbour").exists()
    assert as_user("admin").post("/api/projects/", body, format="json").status_code == 201
    users["annotator"].user_permissions.add(Permission.objects.get(codename="add_project"))
    body["name"] = "Harbour 2"
    assert as_user("annotator").post("/api/projects/", body, format="json").status_code == 201


def test_classes_read_by_members_replaced_by_leads(project, as_user):
    url = f"/api/projects/{project.pk}/classes/"
    assert [c["name"] for c in as_user("annotator").get(url).json()] == ["road", "car", "sky"]
    new = [{"index": 0, "name": "street", "color": "#111111", "hotkey": "q"},
           {"index": 1, "name": "car", "color": "#222222", "hotkey": "w"}]
    assert as_user("annotator").put(url, new, format="json").status_code == 403
    assert as_user("outsider").put(url, new, format="json").status_code == 404
    response = as_user("lead").put(url, new, format="json")
    assert response.status_code == 200 and [c["hotkey"] for c in response.json()] == ["q", "w"]
    clash = [{**new[0], "hotkey": "w"}, new[1]]
    assert "hotkey" in as_user("lead").put(url, clash, format="json").json()["detail"]


def test_leads_assign_and_remove_annotators(project, users, as_user):
    url = f"/api/projects/{project.pk}/members/"
    assert as_user("annotator").post(url, {"username": "outsider", "role": "annotator"}).status_code == 403
    lead = as_user("lead")
    assert lead.post(url, {"username": "nobody", "role": "annotator"}).status_code == 400
    assert lead.post(url, {"username": "outsider", "role": "annotator"}).status_code == 201
    assert {m["username"]: m["role"] for m in lead.get(url).json()} == {
        "lead": "lead", "annotator": "annotator", "outsider": "annotator"}
    assert lead.delete(f"{url}{users['outsider'].pk}/").status_code == 204
    assert not project.memberships.filter(user=users["outsider"]).exists()
    refused = lead.delete(f"{url}{users['lead'].pk}/")
    assert refused.status_code == 400 and "only lead" in refused.json()["detail"]


def test_start_reports_what_is_missing_then_opens_round_zero(project, as_user, django_capture_on_commit_callbacks):
    lead = as_user("lead")
    readiness = lead.get(f"/api/projects/{project.pk}/readiness/").json()
    assert not readiness["ready"] and any("target images" in p for p in readiness["problems"])
    refused = lead.post(f"/api/projects/{project.pk}/start/")
    assert refused.status_code == 400 and "cannot start yet" in refused.json()["detail"]
    ready(project)
    assert as_user("annotator").post(f"/api/projects/{project.pk}/start/").status_code == 403
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = lead.post(f"/api/projects/{project.pk}/start/")
    assert response.status_code == 201 and response.json()["number"] == 0
    assert len(callbacks) == 1  # the round job is sent once the transaction commits
    assert Job.objects.get(project=project).kind == Job.Kind.ROUND
    assert Project.objects.get(pk=project.pk).state == Project.State.ACTIVE


def test_validation_images_are_marked_before_the_start_and_frozen_after(project, as_user):
    gt = np.zeros((48, 64), np.uint8)
    with_gt, without_gt = make_image(project, gt=gt), make_image(project)
    url = f"/api/projects/{project.pk}/images/split/"
    lead = as_user("lead")
    assert as_user("annotator").post(url, {"image_ids": [with_gt.pk], "split": "val"}, format="json").status_code == 403
    assert lead.post(url, {"image_ids": [with_gt.pk], "split": "val"}, format="json").json() == {"changed": 1}
    refused = lead.post(url, {"image_ids": [without_gt.pk], "split": "val"}, format="json")
    assert refused.status_code == 400 and "no ground-truth mask" in refused.json()["detail"]
    Round.objects.create(project=project, number=0)
    frozen = lead.post(url, {"image_ids": [with_gt.pk], "split": "pool"}, format="json")
    assert frozen.status_code == 400 and "frozen" in frozen.json()["detail"]
    assert Image.objects.get(pk=with_gt.pk).split == "val"


def test_metrics_are_for_leads_and_staff(project, as_user):
    url = f"/api/projects/{project.pk}/metrics/"
    assert as_user("outsider").get(url).status_code == 404
    assert as_user("annotator").get(url).status_code == 403
    assert as_user("lead").get(url).status_code == 200
    assert as_user("admin").get(url).json()["classes"] == ["road", "car", "sky"]
