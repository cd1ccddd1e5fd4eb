"""The image browser: each image's status, cached thumbnails behind membership, the read-only image page, and a
lead sending chosen images to the labeling round's queue within its budget."""
import os

import numpy as np
import pytest
from django.urls import reverse
from PIL import Image as PILImage
from rest_framework.test import APIClient

from annotator.models import Query, Round
from annotator.selectors import image_list_with_status, image_status_counts, validation_progress
from annotator.services.errors import ServiceError
from annotator.services.image_requests import image_request_label
from annotator.services.derived_images import image_thumbnail
from tests.factories import make_annotation, make_image, make_model_version, make_query, make_round, make_suggestion

pytestmark = pytest.mark.django_db

GT = np.zeros((48, 64), np.uint8)


@pytest.fixture
def campaign(project):
    """One image of each status, in a labeling round whose budget the selector filled with three queries."""
    round_ = make_round(project, number=0, state=Round.State.LABELING)
    images = {
        "unlabeled": make_image(project, name="unlabeled.jpg"),
        "queried": make_image(project, name="queried.jpg"),
        "labeled": make_image(project, name="labeled.jpg"),
        "imported": make_image(project, name="imported.jpg", gt=GT),
        "validation": make_image(project, name="validation.jpg", split="val"),
        "source": make_image(project, name="source.jpg", domain="source", split="train", gt=GT),
        "test": make_image(project, name="test.jpg", split="test"),
        "spare1": make_image(project, name="spare1.jpg"),
        "spare2": make_image(project, name="spare2.jpg"),
    }
    make_query(round_, images["validation"], kind=Query.Kind.VALIDATION)
    make_query(round_, images["queried"])
    make_query(round_, images["spare1"])
    make_query(round_, images["spare2"])
    done = make_query(round_, images["labeled"], status=Query.Status.SUBMITTED)
    make_annotation(done, GT)
    round_.budget_planned_pixels = 4 * 64 * 48  # the four label queries
    round_.save()
    return round_, images


def test_every_image_has_one_status(project, campaign):
    _, images = campaign
    status = {i.original_name: i.status for i in image_list_with_status(project=project)}
    assert status == {"unlabeled.jpg": "unlabeled", "queried.jpg": "queried", "labeled.jpg": "labeled",
                      "imported.jpg": "labeled", "validation.jpg": "validation", "source.jpg": "source",
                      "test.jpg": "test", "spare1.jpg": "queried", "spare2.jpg": "queried"}
    assert [i.original_name for i in image_list_with_status(project=project, status="labeled")] == [
        "imported.jpg", "labeled.jpg"]
    assert [i.original_name for i in image_list_with_status(project=project, domain="source")] == ["source.jpg"]
    assert image_status_counts(project=project) == {"unlabeled": 1, "queried": 3, "labeled": 2, "validation": 1,
                                                    "source": 1, "test": 1}


def test_a_pending_query_of_a_closed_round_no_longer_counts_as_queried(project, campaign):
    round_, _ = campaign
    Round.objects.filter(pk=round_.pk).update(state=Round.State.CLOSED)
    assert {i.original_name: i.status for i in image_list_with_status(project=project)}["queried.jpg"] == "unlabeled"


def test_validation_progress_counts_app_labels_until_enough(project, campaign):
    _, images = campaign
    progress = validation_progress(project=project)
    assert (progress.images, progress.imported, progress.labeled, progress.ready) == (1, 0, 0, False)
    make_annotation(images["validation"].queries.get(), GT)
    assert validation_progress(project=project).labeled == 1


def test_thumbnails_are_made_once_and_served_to_members_only(project, campaign, as_user):
    _, images = campaign
    image = images["unlabeled"]
    name = image_thumbnail(image=image)
    path = image.file.storage.path(name)
    with PILImage.open(path) as thumb:
        assert thumb.format == "JPEG" and max(thumb.size) <= 224
    made = os.stat(path).st_mtime_ns
    assert image_thumbnail(image=image) == name and os.stat(path).st_mtime_ns == made

    url = reverse("image-thumbnail", args=[image.pk])
    response = as_user("annotator").get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert "immutable" in response["Cache-Control"]
    assert as_user("outsider").get(url).status_code == 404
    assert APIClient().get(url).status_code in (401, 403)


def test_the_image_file_latest_mask_and_latest_suggestion(project, campaign, as_user):
    round_, images = campaign
    member = as_user("annotator")
    assert member.get(reverse("image-file", args=[images["labeled"].pk])).status_code == 200
    mask = member.get(reverse("image-mask", args=[images["labeled"].pk]))
    assert mask.status_code == 200 and mask["Content-Type"] == "image/png"
    assert member.get(reverse("image-mask", args=[images["imported"].pk])).status_code == 200  # ground truth
    assert member.get(reverse("image-mask", args=[images["unlabeled"].pk])).status_code == 404
    assert member.get(reverse("image-suggestion", args=[images["queried"].pk])).status_code == 404
    query = images["queried"].queries.get()
    make_suggestion(query, np.full((48, 64), 1, np.uint8), np.full((48, 64), 0.9),
                    model_version=make_model_version(project))
    assert member.get(reverse("image-suggestion", args=[images["queried"].pk])).status_code == 200


def test_label_this_one_replaces_the_lowest_ranked_untouched_query(project, campaign, users):
    round_, images = campaign
    spare2 = images["spare2"].queries.get()
    [query] = image_request_label(project=project, images=[images["unlabeled"]], user=users["lead"])
    assert (query.kind, query.region_key, query.priority, query.pixels) == ("label", "", 0, 64 * 48)
    assert not Query.objects.filter(pk=spare2.pk).exists()  # the selector's last pick made room
    assert round_.queries.order_by("priority", "pk").first() == query
    label_pixels = sum(round_.queries.filter(kind="label").values_list("pixels", flat=True))
    assert label_pixels == Round.objects.get(pk=round_.pk).budget_planned_pixels  # the budget holds
    assert Round.objects.get(pk=round_.pk).stats["requested_queries"] == [query.pk]

    # An image imported with a mask may be labeled again; the next untouched pick (spare1) pays for it.
    image_request_label(project=project, images=[images["imported"].pk])
    assert not images["spare1"].queries.exists()
    # Nothing untouched is left (queried.jpg is held by an annotator; the lead's own requests never go).
    Query.objects.filter(image=images["queried"]).update(assignee=users["annotator"],
                                                         locked_until="2999-01-01T00:00Z")
    make_image(project, name="more.jpg")
    with pytest.raises(ServiceError, match="would exceed round 0's budget"):
        image_request_label(project=project, images=[project.images.get(original_name="more.jpg")])


@pytest.mark.parametrize("which, reason", [
    ("validation", "is a validation image"), ("source", "is a source image"), ("test", "only pool images"),
    ("queried", "already asked for in round 0"), ("labeled", "already asked for in round 0"),
])
def test_label_this_one_refuses_what_cannot_be_queried(project, campaign, which, reason):
    _, images = campaign
    with pytest.raises(ServiceError, match=reason):
        image_request_label(project=project, images=[images[which]])


def test_label_this_one_needs_a_labeling_round(project):
    image = make_image(project)
    with pytest.raises(ServiceError, match="the project has not started"):
        image_request_label(project=project, images=[image])
    make_round(project, number=0, state=Round.State.SELECTING)
    with pytest.raises(ServiceError, match="round 0 is selecting queries"):
        image_request_label(project=project, images=[image])


def test_the_browse_page_filters_and_sends_images_to_the_queue(project, campaign, client):
    _, images = campaign
    client.force_login(project.memberships.get(role="lead").user)
    url = reverse("project-browse", args=[project.pk])
    page = client.get(url).content.decode()
    assert page.count('class="thumb"') == 9 and "Send chosen images to round 0" in page
    page = client.get(url, {"status": "validation"}).content.decode()
    assert page.count('class="thumb"') == 1 and "validation.jpg" in page
    response = client.post(reverse("project-images-request", args=[project.pk]),
                           {"image": [images["unlabeled"].pk], "next": url}, follow=True)
    assert "Sent 1 image(s) to the front of round 0" in response.content.decode()
    response = client.post(reverse("project-images-request", args=[project.pk]),
                           {"image": [images["validation"].pk], "next": url}, follow=True)
    assert "is a validation image" in response.content.decode()


def test_the_image_page_shows_overlays_and_offers_label_this_one(project, campaign, client):
    _, images = campaign
    client.force_login(project.memberships.get(role="lead").user)
    page = client.get(reverse("project-image", args=[project.pk, images["labeled"].pk]))
    html = page.content.decode()
    assert page.status_code == 200 and "version 1" in html
    assert reverse("image-mask", args=[images["labeled"].pk]) in html
    assert "Label this one" not in html and "labeled.jpg was already asked for in round 0" in html
    html = client.get(reverse("project-image", args=[project.pk, images["imported"].pk])).content.decode()
    assert "imported with the image" in html and "Label this one" in html
    html = client.get(reverse("project-image", args=[project.pk, images["validation"].pk])).content.decode()
    assert "Label this one" not in html and "is a validation image" in html


@pytest.mark.parametrize("who, expected", [("outsider", 404), ("annotator", 403), ("lead", 200)])
def test_browser_pages_are_for_leads(project, campaign, client, users, who, expected):
    _, images = campaign
    client.force_login(users[who])
    assert client.get(reverse("project-browse", args=[project.pk])).status_code == expected
    assert client.get(reverse("project-image", args=[project.pk, images["labeled"].pk])).status_code == expected


def test_the_dashboard_says_what_the_validation_waits_for(project, campaign, client):
    client.force_login(project.memberships.get(role="lead").user)
    html = client.get(reverse("project-dashboard", args=[project.pk])).content.decode()
    assert "mIoU needs 5 labeled validation images; only 1 were set aside" in html
    round_, _ = campaign
    for index in range(5):
        make_query(round_, make_image(project, name=f"v{index}.jpg", split="val"), kind=Query.Kind.VALIDATION)
    html = client.get(reverse("project-dashboard", args=[project.pk])).content.decode()
    assert "mIoU appears once 5 validation images are labeled (0 of 6 labeled)" in html


def test_a_validation_query_is_marked_on_the_labeling_page(project, campaign, client, users):
    _, images = campaign
    client.force_login(users["annotator"])
    query = images["validation"].queries.get()
    html = client.get(reverse("labeling-page", args=[project.pk, query.pk])).content.decode()
    assert "Validation image</strong>: label every pixel; it measures the model and never trains it." in html
    assert '"kind": "validation"' in html
    other = images["queried"].queries.get()
    html = client.get(reverse("labeling-page", args=[project.pk, other.pk])).content.decode()
    assert "Validation image</strong>" not in html
