"""Lead pages: outsiders get 404, annotators 403, leads and staff use them; every POST goes through a service."""
import io
import zipfile

import numpy as np
import pytest
from django import forms
from django.urls import reverse

from annotator.models import Image, Job, Membership, Project, Round
from tests.factories import make_image, make_job, make_round

pytestmark = pytest.mark.django_db

PAGES = ["project-dashboard", "project-settings", "project-classes", "project-images", "project-members"]


@pytest.fixture
def as_user(client, users):
    def login(name: str):
        client.force_login(users[name])
        return client

    return login


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("who, expected", [("outsider", 404), ("annotator", 403), ("lead", 200), ("admin", 200)])
def test_page_permissions(project, as_user, page, who, expected):
    assert as_user(who).get(reverse(page, args=[project.pk])).status_code == expected


@pytest.mark.parametrize("who, expected", [("outsider", 404), ("annotator", 403)])
def test_posts_are_refused_to_non_leads(project, as_user, who, expected):
    client = as_user(who)
    before = Project.objects.values().get(pk=project.pk)
    assert client.post(reverse("project-settings", args=[project.pk]), {"name": "Hacked"}).status_code == expected
    assert client.post(reverse("project-start", args=[project.pk])).status_code == expected
    assert client.post(reverse("project-members", args=[project.pk]),
                       {"action": "add", "username": who, "role": "lead"}).status_code == expected
    assert Project.objects.values().get(pk=project.pk) == before
    assert not project.memberships.filter(user__username=who, role="lead").exists()


def test_anonymous_users_are_sent_to_login(client, project):
    response = client.get(reverse("project-dashboard", args=[project.pk]))
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_create_project_makes_the_user_its_lead(as_user, users):
    client = as_user("annotator")
    response = client.post(reverse("project-create"), {"name": "Harbour", "description": "",
                                                       "classes": "water #0000ff\nboat\nsky"})
    project = Project.objects.get(name="Harbour")
    assert response.status_code == 302 and response["Location"] == reverse("project-settings", args=[project.pk])
    assert project.memberships.get(user=users["annotator"]).role == Membership.Role.LEAD
    assert list(project.classes.values_list("name", "color", "hotkey")) == [
        ("water", "#0000ff", "1"), ("boat", "#ff7f0e", "2"), ("sky", "#2ca02c", "3")]
    again = client.post(reverse("project-create"), {"name": "Harbour"})
    assert "exists already" in again.content.decode()


def test_with_permitted_creators_the_create_page_is_forbidden_and_not_offered(as_user, users, project, settings):
    settings.MASKLOOP_PROJECT_CREATORS = "permitted"
    lead = as_user("lead")
    assert lead.get(reverse("project-create")).status_code == 403
    assert lead.post(reverse("project-create"), {"name": "Harbour", "classes": "water"}).status_code == 403
    assert not Project.objects.filter(name="Harbour").exists()
    assert "New project" not in lead.get(reverse("home")).content.decode()
    assert "New project" not in lead.get(reverse("project-settings", args=[project.pk])).content.decode()
    assert "New project" in as_user("admin").get(reverse("home")).content.decode()


def settings_post(project, **changes) -> dict:
    from frontend.forms import ProjectSettingsForm

    form = ProjectSettingsForm(instance=project)
    data = {}
    for name, field in form.fields.items():
        value = form.initial.get(name)
        if isinstance(field.widget, forms.CheckboxInput):
            if value:
                data[name] = "on"
        else:
            data[name] = "" if value is None else value
    for name, value in changes.items():
        if value is False:
            data.pop(name, None)
        else:
            data[name] = "on" if value is True else value
    return data


def test_lead_sets_budget_strategy_model_and_adaptation(project, as_user):
    client = as_user("lead")
    page = client.get(reverse("project-settings", args=[project.pk])).content.decode()
    for label in ("Budget and schedule", "Selection strategy", "Domain adaptation", "Suggestions"):
        assert label in page
    response = client.post(reverse("project-settings", args=[project.pk]), settings_post(
        project, query_unit="image", budget_unit="images", budget_per_round="8", rounds_total="3",
        strategy="entropy_diversity", uncertainty_measure="margin", diversity_weight="0.25",
        architecture="lraspp_mobilenet_v3_large", adversarial_adaptation=False, pixel_contrastive=True,
        suggestion_precision="0.9"))
    assert response.status_code == 302
    project.refresh_from_db()
    assert (project.query_unit, project.budget_unit, project.budget_per_round, project.rounds_total) == (
        "image", "images", 8, 3)
    assert (project.strategy, project.uncertainty_measure, project.diversity_weight) == (
        "entropy_diversity", "margin", 0.25)
    assert project.architecture == "lraspp_mobilenet_v3_large" and project.suggestion_precision == 0.9
    assert not project.adversarial_adaptation and project.pixel_contrastive


def test_settings_form_shows_the_services_refusal(project, as_user):
    response = as_user("lead").post(reverse("project-settings", args=[project.pk]),
                                    settings_post(project, budget_unit="pixel_percent", budget_per_round="250"))
    assert response.status_code == 200 and "at most 100" in response.content.decode()
    assert Project.objects.get(pk=project.pk).budget_per_round == 1.0


def test_architecture_is_disabled_after_the_start(project, as_user):
    project.state = Project.State.ACTIVE
    project.save()
    client = as_user("lead")
    response = client.post(reverse("project-settings", args=[project.pk]),
                           settings_post(project, architecture="deeplabv3_resnet101", budget_per_round="2"))
    assert response.status_code == 302
    project.refresh_from_db()
    assert project.architecture == "deeplabv3_mobilenet_v3_large" and project.budget_per_round == 2


def test_edit_classes_name_colour_hotkey(project, as_user):
    client = as_user("lead")
    data = {"classes-TOTAL_FORMS": "4", "classes-INITIAL_FORMS": "3", "classes-MIN_NUM_FORMS": "0",
            "classes-MAX_NUM_FORMS": "1000",
            "classes-0-name": "street", "classes-0-color": "#111111", "classes-0-hotkey": "q",
            "classes-1-name": "car", "classes-1-color": "#222222", "classes-1-hotkey": "w",
            "classes-2-name": "sky", "classes-2-color": "#333333", "classes-2-hotkey": "e", "classes-2-DELETE": "on",
            "classes-3-name": "tree", "classes-3-color": "#00ff00", "classes-3-hotkey": "r"}
    assert client.post(reverse("project-classes", args=[project.pk]), data).status_code == 302
    assert list(project.classes.values_list("index", "name", "color", "hotkey")) == [
        (0, "street", "#111111", "q"), (1, "car", "#222222", "w"), (2, "tree", "#00ff00", "r")]
    data["classes-1-hotkey"] = "q"
    response = client.post(reverse("project-classes", args=[project.pk]), data, follow=True)
    assert "share the hotkey" in response.content.decode()


def test_assign_change_and_remove_members(project, users, as_user):
    client = as_user("lead")
    url = reverse("project-members", args=[project.pk])
    client.post(url, {"action": "add", "username": "outsider", "role": "annotator"})
    assert project.memberships.get(user=users["outsider"]).role == "annotator"
    client.post(url, {"action": "role", "user": users["outsider"].pk, "role": "lead"})
    assert project.memberships.get(user=users["outsider"]).role == "lead"
    client.post(url, {"action": "remove", "user": users["outsider"].pk})
    assert not project.memberships.filter(user=users["outsider"]).exists()
    refused = client.post(url, {"action": "remove", "user": users["lead"].pk}, follow=True)
    assert "only lead" in refused.content.decode()


def test_import_page_starts_a_job_from_a_zip(project, as_user, make_dataset, django_capture_on_commit_callbacks):
    root = make_dataset(2)
    (root / "classes.json").unlink()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for path in root.rglob("*.*"):
            bundle.write(path, path.relative_to(root).as_posix())
    buffer.seek(0)
    buffer.name = "target.zip"
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = as_user("lead").post(reverse("project-images", args=[project.pk]),
                                        {"domain": "target", "val_count": "0", "archive": buffer})
    assert response.status_code == 302 and len(callbacks) == 1
    job = Job.objects.get(project=project)
    assert job.kind == Job.Kind.IMPORT and "target.zip" in job.message
    page = as_user("lead").get(reverse("project-images", args=[project.pk])).content.decode()
    assert f'data-job-id="{job.pk}"' in page


def test_mark_validation_images_then_frozen(project, as_user):
    gt = np.zeros((48, 64), np.uint8)
    images = [make_image(project, gt=gt) for _ in range(3)]
    client = as_user("lead")
    url = reverse("project-images-split", args=[project.pk])
    client.post(url, {"image": [images[0].pk, images[1].pk], "split": "val"})
    assert sorted(Image.objects.filter(split="val").values_list("pk", flat=True)) == [images[0].pk, images[1].pk]
    make_round(project, number=0, state=Round.State.TRAINING)
    response = client.post(url, {"image": [images[0].pk], "split": "pool"}, follow=True)
    assert "frozen" in response.content.decode()
    assert Image.objects.get(pk=images[0].pk).split == "val"
    page = client.get(reverse("project-images", args=[project.pk])).content.decode()
    assert "the validation split is frozen" in page


def test_start_shows_problems_then_starts(project, as_user, django_capture_on_commit_callbacks):
    client = as_user("lead")
    page = client.get(reverse("project-dashboard", args=[project.pk])).content.decode()
    assert "Import target images" in page and "disabled" in page
    gt = np.zeros((48, 64), np.uint8)
    make_image(project, domain="source", split="train", gt=gt)
    make_image(project)
    make_image(project, split="val", gt=gt)
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(reverse("project-start", args=[project.pk]), follow=True)
    assert "Started: round 0 is training" in response.content.decode()
    assert project.rounds.get().number == 0


def test_close_round_early_and_retry_and_cancel_jobs(project, as_user, django_capture_on_commit_callbacks):
    labeling = make_round(project, number=0, state=Round.State.LABELING)
    client = as_user("lead")
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(reverse("round-close", args=[project.pk, 0]), follow=True)
    assert "Closed round 0 early; round 1 is training" in response.content.decode()
    labeling.refresh_from_db()
    assert labeling.state == Round.State.CLOSED
    round1 = project.rounds.get(number=1)
    queued = round1.jobs.get()
    Job.objects.filter(pk=queued.pk).update(state=Job.State.FAILED, message="CUDA out of memory")
    with django_capture_on_commit_callbacks(execute=False):
        client.post(reverse("job-action", args=[project.pk, queued.pk, "retry"]))
    new = round1.jobs.exclude(pk=queued.pk).get()
    assert new.state == Job.State.QUEUED
    client.post(reverse("job-action", args=[project.pk, new.pk, "cancel"]))
    assert Job.objects.get(pk=new.pk).state == Job.State.CANCELLED
    other = make_job(Project.objects.create(name="Other"), state=Job.State.FAILED)
    assert client.post(reverse("job-action", args=[project.pk, other.pk, "retry"])).status_code == 404


# --- The Django admin (staff) goes through the same services --------------------------------------------------


@pytest.mark.parametrize("model", ["project", "membership", "labelclass", "image", "round", "query", "annotation",
                                   "suggestion", "job"])
def test_admin_lists_load(project, users, as_user, model):
    from tests.app.simulated_campaign import build_campaign

    build_campaign(project, annotator=users["annotator"], lead=users["lead"])
    assert as_user("admin").get(f"/admin/annotator/{model}/").status_code == 200
    assert as_user("admin").get("/admin/models_store/modelversion/").status_code == 200


def test_admin_refuses_a_locked_setting_and_an_impossible_budget(project, as_user):
    from django.forms.models import model_to_dict

    project.state = Project.State.ACTIVE
    project.save()
    data = {k: ("" if v is None else v) for k, v in model_to_dict(project).items()
            if k not in ("id", "state", "created_by") and v is not False}  # an unchecked box is not sent
    data.update({"classes-TOTAL_FORMS": "0", "classes-INITIAL_FORMS": "0", "memberships-TOTAL_FORMS": "0",
                 "memberships-INITIAL_FORMS": "0"})
    url = f"/admin/annotator/project/{project.pk}/change/"
    response = as_user("admin").post(url, {**data, "architecture": "deeplabv3_resnet50"})
    assert response.status_code == 200 and "Fixed once the project has started." in response.content.decode()
    response = as_user("admin").post(url, {**data, "budget_unit": "pixel_percent", "budget_per_round": "300"})
    assert "at most 100" in response.content.decode()
    assert as_user("admin").post(url, {**data, "budget_per_round": "2.5"}).status_code == 302
    project.refresh_from_db()
    assert project.budget_per_round == 2.5 and project.architecture == "deeplabv3_mobilenet_v3_large"


def test_admin_actions_call_the_services(project, as_user, django_capture_on_commit_callbacks):
    labeling = make_round(project, number=0, state=Round.State.LABELING)
    client = as_user("admin")
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post("/admin/annotator/round/", {"action": "close_rounds", "_selected_action": [labeling.pk]},
                               follow=True)
    assert "Closed 1 row(s)." in response.content.decode()
    assert project.rounds.get(number=1).state == Round.State.TRAINING
    response = client.post("/admin/annotator/project/", {"action": "start_projects",
                                                         "_selected_action": [project.pk]}, follow=True)
    assert "has started already" in response.content.decode()
    image = make_image(project)
    response = client.post("/admin/annotator/image/", {"action": "mark_validation", "_selected_action": [image.pk]},
                           follow=True)
    assert "frozen" in response.content.decode()
