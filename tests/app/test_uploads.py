"""Images uploaded from the browser: a few files per request, each checked like an imported file, answered per file."""
import io

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from annotator.models import Image, Round
from annotator.services.errors import ServiceError
from annotator.services.uploads import upload_batch
from tests.conftest import jpeg_bytes, png_bytes
from tests.factories import make_round

pytestmark = pytest.mark.django_db


def picture(seed: int, size=(40, 30)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)


def upload(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data)


def as_file(name: str, data: bytes) -> io.BytesIO:
    handle = io.BytesIO(data)
    handle.name = name
    return handle


def test_a_batch_imports_good_files_and_answers_each_bad_one(project):
    mask = np.zeros((30, 40), np.uint8)
    mask[10:] = 2
    results = upload_batch(project=project, domain="target", files=[
        upload("a.jpg", jpeg_bytes(picture(0))),
        upload("b.png", png_bytes(picture(1))),
        upload("broken.jpg", b"not a jpeg"),
        upload("again.jpg", jpeg_bytes(picture(0))),  # the same bytes as a.jpg
        upload("../../evil name?.png", png_bytes(picture(2))),
        upload("notes.txt", b"hello"),
    ], masks=[upload("b.png", png_bytes(mask)), upload("orphan.png", png_bytes(mask))])
    got = {r.name: (r.state, r.detail, r.mask) for r in results}
    assert got["a.jpg"] == ("imported", "", "")
    assert got["b.png"] == ("imported", "", "b.png")
    assert got["broken.jpg"][0] == "rejected" and "not a readable image" in got["broken.jpg"][1]
    assert got["again.jpg"] == ("skipped", "already imported (same content)", "")
    assert got["evil name_.png"][0] == "imported"  # the safe-name rule of the imports
    assert got["notes.txt"][0] == "rejected" and "not an image file" in got["notes.txt"][1]
    assert got["orphan.png"][0] == "rejected" and "no image with this file name" in got["orphan.png"][1]
    images = {i.original_name: i for i in project.images.all()}
    assert set(images) == {"a.jpg", "b.png", "evil name_.png"}
    assert all(i.split == "pool" and i.domain == "target" for i in images.values())
    assert images["b.png"].gt_mask and not images["a.jpg"].gt_mask


def test_a_bad_mask_rejects_only_its_image(project):
    results = upload_batch(project=project, domain="target", files=[upload("a.jpg", jpeg_bytes(picture(0)))],
                           masks=[upload("a.png", png_bytes(np.full((30, 40), 7, np.uint8)))])
    assert results[0].state == "rejected" and "mask a.png: mask holds values [7]" in results[0].detail
    assert not project.images.exists()


def test_validation_uploads_need_masks_and_stop_at_the_start(project):
    mask = np.zeros((30, 40), np.uint8)
    results = upload_batch(project=project, domain="target", split="val",
                           files=[upload("v.jpg", jpeg_bytes(picture(0))), upload("w.jpg", jpeg_bytes(picture(1)))],
                           masks=[upload("v.png", png_bytes(mask))])
    assert [(r.name, r.state) for r in results] == [("v.jpg", "imported"), ("w.jpg", "rejected")]
    assert "validation images need a ground-truth mask" in results[1].detail
    make_round(project, number=0, state=Round.State.LABELING)
    with pytest.raises(ServiceError, match="validation split is frozen"):
        upload_batch(project=project, domain="target", split="val", files=[upload("x.jpg", jpeg_bytes(picture(2)))],
                     masks=[upload("x.png", png_bytes(mask))])
    # The pool still takes images after the start, as the imports do.
    after = upload_batch(project=project, domain="target", files=[upload("y.jpg", jpeg_bytes(picture(3)))])
    assert after[0].state == "imported" and Image.objects.get(original_name="y.jpg").split == "pool"


def test_source_uploads_are_labeled_training_images(project):
    results = upload_batch(project=project, domain="source", files=[upload("s.jpg", jpeg_bytes(picture(0)))])
    assert results[0].state == "rejected" and "labeled source images need a mask" in results[0].detail
    with pytest.raises(ServiceError, match="source images may be uploaded to"):
        upload_batch(project=project, domain="source", split="pool", files=[upload("s.jpg", jpeg_bytes(picture(0)))])


def test_a_file_above_the_size_limit_is_refused_before_reading(project, settings):
    settings.MASKLOOP_IMPORT_MAX_FILE_BYTES = 100
    results = upload_batch(project=project, domain="target", files=[upload("big.png", png_bytes(picture(0)))])
    assert results[0].state == "rejected" and "above the limit of 100 bytes per file" in results[0].detail


def test_the_api_answers_per_file_and_only_to_leads(project, users):
    lead = APIClient()
    lead.force_login(users["lead"])
    url = f"/api/projects/{project.pk}/uploads/"
    response = lead.post(url, {"images": [as_file("a.jpg", jpeg_bytes(picture(0))), as_file("bad.jpg", b"x")],
                               "masks": [as_file("a.png", png_bytes(np.ones((30, 40), np.uint8)))]},
                         format="multipart")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["imported"], body["skipped"], body["rejected"]) == (1, 0, 1)
    assert [(r["name"], r["state"], r["mask"]) for r in body["results"]] == [
        ("a.jpg", "imported", "a.png"), ("bad.jpg", "rejected", "")]
    assert body["results"][0]["image_id"] == project.images.get().pk

    refused = lead.post(url, {"images": [as_file("b.jpg", jpeg_bytes(picture(1)))], "split": "train"},
                        format="multipart")
    assert refused.status_code == 400 and "target images may be uploaded to" in refused.json()["detail"]

    annotator = APIClient()
    annotator.force_login(users["annotator"])
    response = annotator.post(url, {"images": [as_file("c.jpg", jpeg_bytes(picture(2)))]}, format="multipart")
    assert response.status_code == 403
    outsider = APIClient()
    outsider.force_login(users["outsider"])
    assert outsider.post(url, {"images": [as_file("c.jpg", jpeg_bytes(picture(2)))]},
                         format="multipart").status_code == 404
    assert project.images.count() == 1
