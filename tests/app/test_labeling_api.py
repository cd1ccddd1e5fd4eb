"""The labeling API and pages: next query, detail, files behind membership, saves (raw and multipart), 409s."""
from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
from django.urls import reverse
from PIL import Image as PILImage
from rest_framework.test import APIClient

from annotator.imaging import encode_png
from annotator.models import Query, Round
from annotator.services.labeling import query_claim
from tests.factories import make_annotation, make_image, make_query, make_round, make_suggestion

pytestmark = pytest.mark.django_db

W, H = 20, 10


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def decode(response) -> np.ndarray:
    data = b"".join(response.streaming_content) if response.streaming else response.content
    return np.asarray(PILImage.open(io.BytesIO(data)))


@pytest.fixture
def round_(project):
    return make_round(project, number=0, state=Round.State.LABELING)


@pytest.fixture
def query(project, round_):
    region = np.zeros((H, W), bool)
    region[2:8, 3:12] = True
    query = make_query(round_, make_image(project, size=(W, H)), region=region)
    suggestion = np.full((H, W), 255, np.uint8)
    suggestion[:, :10] = 1
    make_suggestion(query, suggestion, np.linspace(0, 1, W * H).reshape(H, W))
    return query


@pytest.fixture
def annotator(users):
    return client_for(users["annotator"])


def save(client, query, mask, *, base_version=0, url_name="labeling-query-save", **params):
    url = reverse(url_name, args=[query.pk])
    query_string = "&".join(f"{k}={v}" for k, v in {"base_version": base_version, **params}.items())
    return client.post(f"{url}?{query_string}", data=encode_png(mask), content_type="image/png")


def test_next_locks_and_describes_a_query(annotator, users, query):
    response = annotator.post(reverse("labeling-next", args=[query.round.project_id]))
    assert response.status_code == 200
    detail = response.json()["query"]
    assert detail["id"] == query.pk
    assert detail["image"] == {"id": query.image_id, "name": query.image.original_name, "width": W, "height": H,
                               "url": reverse("labeling-query-image", args=[query.pk])}
    assert [c["name"] for c in detail["classes"]] == ["road", "car", "sky"]
    assert detail["classes"][2]["hotkey"] == "3"
    assert detail["base_version"] == 0 and detail["annotation"] is None
    assert detail["region"]["bbox"] == [3, 2, 12, 8] and detail["region"]["pixels"] == 54
    assert detail["suggestion"]["coverage"] == pytest.approx(0.5)
    assert detail["assignee"] == "annotator"
    assert detail["urls"]["page"] == reverse("labeling-page", args=[query.round.project_id, query.pk])
    query.refresh_from_db()
    assert query.assignee == users["annotator"]


def test_next_says_why_there_is_nothing(annotator, project):
    make_round(project, number=0, state=Round.State.TRAINING)
    body = annotator.post(reverse("labeling-next", args=[project.pk])).json()
    assert body["query"] is None and "training" in body["detail"]


def test_outsiders_and_anonymous_users_get_nothing(users, query):
    outsider = client_for(users["outsider"])
    urls = [
        reverse("labeling-query", args=[query.pk]),
        reverse("labeling-query-image", args=[query.pk]),
        reverse("labeling-query-region", args=[query.pk]),
        reverse("labeling-query-suggestion", args=[query.pk, "mask"]),
        reverse("labeling-query-superpixels", args=[query.pk]),
        reverse("labeling-queue", args=[query.round.project_id]),
    ]
    for url in urls:
        assert outsider.get(url).status_code == 403, url
        assert APIClient().get(url).status_code in (401, 403), url
    assert outsider.post(reverse("labeling-next", args=[query.round.project_id])).status_code == 403
    assert save(outsider, query, np.zeros((H, W), np.uint8)).status_code == 403


def test_members_get_the_files(annotator, query):
    image = annotator.get(reverse("labeling-query-image", args=[query.pk]))
    assert image.status_code == 200 and image["Content-Type"] == "image/jpeg"
    assert "private" in image["Cache-Control"]
    region = decode(annotator.get(reverse("labeling-query-region", args=[query.pk])))
    assert region.shape == (H, W) and (region == 255).sum() == 54
    suggestion = decode(annotator.get(reverse("labeling-query-suggestion", args=[query.pk, "mask"])))
    assert (suggestion[:, :10] == 1).all() and (suggestion[:, 10:] == 255).all()
    confidence = decode(annotator.get(reverse("labeling-query-suggestion", args=[query.pk, "confidence"])))
    assert confidence[0, 0] == 0 and confidence[-1, -1] == 255
    assert annotator.get(reverse("labeling-query-suggestion", args=[query.pk, "other"])).status_code == 404
    superpixels = decode(annotator.get(reverse("labeling-query-superpixels", args=[query.pk])))
    assert superpixels.shape == (H, W) and superpixels.dtype in (np.uint16, np.int32)


def test_save_a_raw_png_then_a_multipart_one(annotator, users, query):
    query_claim(query=query, user=users["annotator"])
    mask = np.full((H, W), 255, np.uint8)
    mask[2:8, 3:12] = 2
    first = save(annotator, query, mask, time_spent=4.5)
    assert first.status_code == 201, first.content
    assert first.json()["annotation"]["version"] == 1 and first.json()["created"]
    mask[2, 3] = 0
    second = annotator.post(
        reverse("labeling-query-save", args=[query.pk]),
        {"mask": io.BytesIO(encode_png(mask)), "base_version": "1", "time_spent": "2"}, format="multipart",
    )
    assert second.status_code == 201, second.content
    body = second.json()["annotation"]
    assert body["version"] == 2 and body["author"] == "annotator"
    stored = decode(annotator.get(body["mask_url"]))
    assert (stored == mask).all()
    detail = annotator.get(reverse("labeling-query", args=[query.pk])).json()
    assert detail["base_version"] == 2 and detail["annotation"]["mask_url"] == body["mask_url"]
    query.refresh_from_db()
    assert query.time_spent_seconds == pytest.approx(6.5)


def test_an_identical_draft_answers_200_and_stores_nothing(annotator, users, query):
    query_claim(query=query, user=users["annotator"])
    mask = np.zeros((H, W), np.uint8)
    assert save(annotator, query, mask).status_code == 201
    again = save(annotator, query, mask, base_version=1)
    assert again.status_code == 200 and again.json()["created"] is False
    assert query.image.annotations.count() == 1


def test_a_stale_save_gets_409_with_the_latest_version(annotator, users, query):
    query_claim(query=query, user=users["annotator"])
    latest = make_annotation(query, np.ones((H, W), np.uint8), author=users["lead"], submitted=False)
    response = save(annotator, query, np.zeros((H, W), np.uint8), base_version=0)
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "stale_version"
    assert body["latest"]["version"] == 1 and body["latest"]["author"] == "lead"
    assert body["latest"]["mask_url"] == reverse("labeling-annotation-mask", args=[latest.pk])
    assert body["same_user"] is False
    assert query.image.annotations.count() == 1


def test_a_stale_save_over_my_own_newer_version_says_it_was_me(annotator, users, query):
    """The same annotator in two tabs: the 409 says the newer version is theirs, not "someone else's"."""
    query_claim(query=query, user=users["annotator"])
    assert save(annotator, query, np.zeros((H, W), np.uint8), base_version=0).status_code == 201  # tab one
    response = save(annotator, query, np.ones((H, W), np.uint8), base_version=0)  # tab two, opened at version 0
    assert response.status_code == 409
    body = response.json()
    assert body["same_user"] is True and body["latest"]["author"] == "annotator"
    assert "by you in another tab or window" in body["detail"]


def test_invalid_masks_get_400(annotator, users, query):
    query_claim(query=query, user=users["annotator"])
    wrong_size = save(annotator, query, np.zeros((H + 1, W), np.uint8))
    assert wrong_size.status_code == 400 and wrong_size.json()["code"] == "invalid_mask"
    assert "but the image is" in wrong_size.json()["detail"]
    bad_class = save(annotator, query, np.full((H, W), 7, np.uint8))
    assert bad_class.status_code == 400 and "neither class ids" in bad_class.json()["detail"]
    url = reverse("labeling-query-save", args=[query.pk])
    no_version = annotator.post(url, data=encode_png(np.zeros((H, W), np.uint8)), content_type="image/png")
    assert no_version.status_code == 400 and "base_version" in no_version.json()
    empty = annotator.post(f"{url}?base_version=0", data=b"", content_type="image/png")
    assert empty.status_code == 400
    assert query.image.annotations.count() == 0


def test_a_query_locked_by_someone_else_gets_409(users, query, django_user_model):
    from annotator.models import Membership
    from annotator.services.projects import membership_set

    query_claim(query=query, user=users["annotator"])
    second = django_user_model.objects.create_user("second", password="pw")
    membership_set(project=query.round.project, user=second, role=Membership.Role.ANNOTATOR)
    response = save(client_for(second), query, np.zeros((H, W), np.uint8))
    assert response.status_code == 409 and response.json()["code"] == "locked"
    claim = client_for(second).post(reverse("labeling-query-claim", args=[query.pk]))
    assert claim.status_code == 409


def test_submit_then_the_queue_counts_it(annotator, users, query):
    query_claim(query=query, user=users["annotator"])
    mask = np.full((H, W), 255, np.uint8)
    mask[2:8, 3:12] = 1
    response = save(annotator, query, mask, url_name="labeling-query-submit", time_spent=9)
    assert response.status_code == 201, response.content
    assert response.json()["annotation"]["is_submitted"]
    assert response.json()["annotation"]["suggestion_dice"] is not None
    assert response.json()["next_round"] == 1  # the only query: the round closed
    query.refresh_from_db()
    assert query.status == Query.Status.SUBMITTED
    queue = annotator.get(reverse("labeling-queue", args=[query.round.project_id])).json()
    assert queue["round"]["number"] == 1 and queue["pending"] == 0


def test_skip_needs_a_reason(annotator, users, query):
    query_claim(query=query, user=users["annotator"])
    url = reverse("labeling-query-skip", args=[query.pk])
    assert annotator.post(url, {"reason": ""}, format="json").status_code == 400
    response = annotator.post(url, {"reason": "too dark", "time_spent": 3}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "skipped"
    assert annotator.post(url, {"reason": "again"}, format="json").status_code == 409


def test_release_unlocks(annotator, users, query):
    query_claim(query=query, user=users["annotator"])
    response = annotator.post(reverse("labeling-query-release", args=[query.pk]), {}, format="json")
    assert response.status_code == 200 and response.json()["assignee"] is None


# --- pages ---------------------------------------------------------------------------------------


def test_home_links_each_project_to_its_queue(client, users, project):
    client.force_login(users["annotator"])
    page = client.get(reverse("home")).content.decode()
    assert reverse("labeling-queue-page", args=[project.pk]) in page


def test_queue_page_and_start_open_the_next_query(client, users, query):
    project_pk = query.round.project_id
    client.force_login(users["annotator"])
    page = client.get(reverse("labeling-queue-page", args=[project_pk]))
    assert page.status_code == 200 and "Start labeling" in page.content.decode()
    started = client.post(reverse("labeling-start", args=[project_pk]))
    assert started.status_code == 302
    assert started["Location"] == reverse("labeling-page", args=[project_pk, query.pk])
    label = client.get(started["Location"])
    assert label.status_code == 200
    html = label.content.decode()
    assert 'id="query-data"' in html and "labeler.js" in html
    embedded = re.search(r'<script id="query-data" type="application/json">(.*?)</script>', html, re.DOTALL)
    detail = json.loads(embedded.group(1))
    assert detail["id"] == query.pk and detail["suggestion"] is not None


def test_pages_hide_projects_from_outsiders(client, users, query):
    client.force_login(users["outsider"])
    project_pk = query.round.project_id
    assert client.get(reverse("labeling-queue-page", args=[project_pk])).status_code == 404
    assert client.get(reverse("labeling-page", args=[project_pk, query.pk])).status_code == 404
    assert client.post(reverse("labeling-start", args=[project_pk])).status_code == 404


def test_a_query_someone_else_holds_shows_who(client, users, query):
    query_claim(query=query, user=users["lead"])
    client.force_login(users["annotator"])
    page = client.get(reverse("labeling-page", args=[query.round.project_id, query.pk]))
    assert page.status_code == 409 and "lead is labeling this query" in page.content.decode()


def test_opening_the_labeling_page_assigns_nothing_its_script_claims_by_post(client, users, query):
    """A GET from a link on another site must not hand queries out; the page's script POSTs the claim (CSRF)."""
    url = reverse("labeling-page", args=[query.round.project_id, query.pk])
    client.force_login(users["annotator"])
    assert client.get(url).status_code == 200
    query.refresh_from_db()
    assert (query.assignee, query.locked_until) == (None, None)
    assert client.post(url).status_code == 405
    strict = APIClient(enforce_csrf_checks=True)
    strict.force_login(users["annotator"])
    assert strict.post(reverse("labeling-query-claim", args=[query.pk])).status_code == 403  # no CSRF token
    claimed = client.post(reverse("labeling-query-claim", args=[query.pk]))
    assert claimed.status_code == 200 and claimed.json()["assignee"] == "annotator"
