"""Images, rounds, queries, annotations, suggestions, model versions, jobs: scoped, filtered, paginated."""
import io

import numpy as np
import pytest
from PIL import Image as PILImage
from rest_framework.test import APIClient

from annotator.models import Job, Round
from tests.app.simulated_campaign import build_campaign
from tests.factories import make_job, make_round

pytestmark = pytest.mark.django_db


@pytest.fixture
def campaign(project, users):
    return build_campaign(project, annotator=users["annotator"], lead=users["lead"])


LISTS = ["images", "rounds", "queries", "annotations", "suggestions", "model-versions", "jobs"]


@pytest.mark.parametrize("resource", LISTS)
def test_outsiders_see_empty_lists_and_404s(campaign, as_user, resource):
    member = as_user("annotator").get(f"/api/{resource}/").json()
    assert member["count"] > 0
    some_id = member["results"][0]["id"]
    outsider = as_user("outsider")
    assert outsider.get(f"/api/{resource}/").json()["count"] == 0
    assert outsider.get(f"/api/{resource}/{some_id}/").status_code == 404
    assert as_user("admin").get(f"/api/{resource}/{some_id}/").status_code == 200


@pytest.mark.parametrize("resource", LISTS)
def test_resources_are_read_only_for_members(campaign, as_user, resource):
    some_id = as_user("lead").get(f"/api/{resource}/").json()["results"][0]["id"]
    assert as_user("lead").delete(f"/api/{resource}/{some_id}/").status_code == 405
    assert as_user("lead").post(f"/api/{resource}/", {}).status_code == 405


def test_filters_narrow_lists_and_reject_bad_values(campaign, as_user):
    client = as_user("annotator")
    val = client.get("/api/images/", {"split": "val"}).json()
    assert sorted(r["original_name"] for r in val["results"]) == ["dusk_val_0.jpg", "dusk_val_1.jpg"]
    assert client.get("/api/images/", {"domain": "source", "has_ground_truth": "true"}).json()["count"] == 2
    assert client.get("/api/queries/", {"round": campaign.rounds[1].pk, "status": "pending"}).json()["count"] == 2
    assert client.get("/api/annotations/", {"is_submitted": "false"}).json()["count"] == 1
    bad = client.get("/api/images/", {"split": "holiday"})
    assert bad.status_code == 400 and "split" in bad.json()


def test_pagination_with_page_size(campaign, as_user):
    page = as_user("lead").get("/api/images/", {"page_size": 3, "ordering": "original_name"}).json()
    assert page["count"] == 9 and len(page["results"]) == 3 and page["next"]
    assert [r["original_name"] for r in page["results"]] == ["day_0.jpg", "day_1.jpg", "dusk_0.jpg"]


def test_token_authentication(campaign, users):
    response = APIClient().post("/api/auth/token/", {"username": "lead", "password": "pw-lead"})
    assert response.status_code == 200
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    assert client.get("/api/projects/").json()["results"][0]["name"] == "Streets"


def test_annotation_and_suggestion_masks_download_as_index_pngs(campaign, as_user):
    client = as_user("annotator")
    annotation = campaign.annotations[0]
    response = client.get(f"/api/annotations/{annotation.pk}/mask/")
    assert response["Content-Type"] == "image/png"
    mask = np.asarray(PILImage.open(io.BytesIO(b"".join(response.streaming_content))))
    assert np.array_equal(mask, campaign.masks[annotation.image_id])
    suggestion_id = client.get("/api/suggestions/", {"query": annotation.query_id}).json()["results"][0]["id"]
    assert client.get(f"/api/suggestions/{suggestion_id}/confidence/").status_code == 200
    assert as_user("outsider").get(f"/api/annotations/{annotation.pk}/mask/").status_code == 404


@pytest.mark.parametrize("who, expected", [("outsider", 404), ("annotator", 403), ("lead", 200), ("admin", 200)])
def test_closing_a_round_early_is_for_leads(campaign, as_user, who, expected, django_capture_on_commit_callbacks):
    round1 = campaign.rounds[1]
    with django_capture_on_commit_callbacks(execute=False):
        response = as_user(who).post(f"/api/rounds/{round1.pk}/close/")
    assert response.status_code == expected
    round1.refresh_from_db()
    assert (round1.state == Round.State.CLOSED) == (expected == 200)
    if expected == 200:
        assert response.json()["number"] == 2 and response.json()["state"] == "training"


def test_closing_a_round_that_is_not_labeling_is_refused(campaign, as_user):
    training = make_round(campaign.project, number=2, state=Round.State.TRAINING)
    response = as_user("lead").post(f"/api/rounds/{training.pk}/close/")
    assert response.status_code == 400 and "not labeling" in response.json()["detail"]


def test_jobs_cancel_and_retry(campaign, as_user, django_capture_on_commit_callbacks):
    training = make_round(campaign.project, number=2, state=Round.State.TRAINING)
    failed = make_job(campaign.project, round=training, state=Job.State.FAILED, error="Traceback…\nOOM",
                      message="OOM")
    queued = make_job(campaign.project, kind=Job.Kind.EXPORT, state=Job.State.QUEUED)
    assert as_user("annotator").post(f"/api/jobs/{failed.pk}/retry/").status_code == 403
    with django_capture_on_commit_callbacks(execute=False):
        retried = as_user("lead").post(f"/api/jobs/{failed.pk}/retry/")
    assert retried.status_code == 201 and retried.json()["state"] == "queued" and retried.json()["id"] != failed.pk
    assert as_user("lead").post(f"/api/jobs/{failed.pk}/retry/").status_code == 400  # one job at a time
    cancelled = as_user("lead").post(f"/api/jobs/{queued.pk}/cancel/")
    assert cancelled.json()["state"] == "cancelled"
    assert as_user("lead").post(f"/api/jobs/{queued.pk}/cancel/").status_code == 400
    active = as_user("annotator").get("/api/jobs/", {"project": campaign.project.pk, "active": "true"}).json()
    assert [j["id"] for j in active["results"]] == [retried.json()["id"]]
    detail = as_user("annotator").get(f"/api/jobs/{failed.pk}/").json()
    assert detail["error"].endswith("OOM") and "log" in detail


def test_jobs_without_a_project_are_for_staff(campaign, as_user):
    ping = Job.objects.create(kind=Job.Kind.PING)
    assert as_user("lead").get(f"/api/jobs/{ping.pk}/").status_code == 404
    assert as_user("admin").get(f"/api/jobs/{ping.pk}/").status_code == 200


def test_metrics_follow_the_rounds(campaign, as_user):
    data = as_user("lead").get(f"/api/projects/{campaign.project.pk}/metrics/").json()
    assert data["baseline_miou"] == pytest.approx(0.41) and data["latest_miou"] == pytest.approx(0.52)
    round0, round1 = data["rounds"]
    assert round0["per_class_iou"]["car"] is None  # n/a stays n/a, never 0
    assert (round0["submitted"], round1["submitted"], round1["pending"]) == (2, 1, 2)
    assert round0["suggestion_dice_median"] == pytest.approx(0.66)
    labeled0 = 32 * 24 + 32 * (24 - 4)  # round 0's two masks (the second leaves 4 rows void)
    assert round0["labeled_pixels"] == labeled0 and round1["labeled_pixels"] == 32 * 24
    assert round1["labeled_target_fraction"] == pytest.approx(labeled0 / (5 * 32 * 24))  # round 1's model's labels
    (person,) = data["annotators"]
    assert person["username"] == "annotator" and person["submitted"] == 3
    assert person["median_seconds"] == pytest.approx(40.0)
    assert person["queries_per_hour"] == pytest.approx(3 / (125 / 3600))


def test_job_tracebacks_are_for_staff_and_others_read_the_one_line_message(campaign, as_user):
    failed = make_job(campaign.project, state=Job.State.FAILED, message="RuntimeError: CUDA out of memory",
                      error='Traceback (most recent call last):\n  File "/srv/maskloop/learning/train.py"\n'
                            "RuntimeError: CUDA out of memory")
    for who in ("annotator", "lead"):
        assert as_user(who).get(f"/api/jobs/{failed.pk}/").json()["error"] == "RuntimeError: CUDA out of memory"
        listed = as_user(who).get("/api/jobs/", {"state": "failed"}).json()["results"]
        assert "/srv/maskloop" not in str(listed)
    assert "/srv/maskloop" in as_user("admin").get(f"/api/jobs/{failed.pk}/").json()["error"]


def test_model_downloads_are_for_leads_and_staff(campaign, as_user):
    model = campaign.models[0]
    assert as_user("annotator").get(f"/api/model-versions/{model.pk}/download/").status_code == 403
    for who in ("lead", "admin"):  # past the permission check: this campaign's models have no files
        assert as_user(who).get(f"/api/model-versions/{model.pk}/download/").status_code == 400


@pytest.mark.parametrize("value", ["9999999999999999999", "-9999999999999999999"])
def test_an_integer_filter_beyond_64_bits_is_a_400_not_a_500(campaign, as_user, value):
    response = as_user("annotator").get("/api/images/", {"project": value})
    assert response.status_code == 400 and "64-bit integer" in response.json()["project"]
    assert as_user("annotator").get("/api/images/", {"project": str(2**63 - 1)}).json()["count"] == 0
