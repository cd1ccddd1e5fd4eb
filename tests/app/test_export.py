"""Exports: the masks zip re-imports to the same pixels, COCO RLE decodes to the same pixels, models unzip and load."""
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from PIL import Image as PILImage
from rest_framework.test import APIClient

from annotator.models import Image, Job, Project
from annotator.services.exports import export_coco, export_masks, export_model
from annotator.services.imports import dataset_import
from annotator.tasks import export_dataset
from tests.app.simulated_campaign import build_campaign

pytestmark = [pytest.mark.django_db, pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools")]


@pytest.fixture
def campaign(project, users):
    return build_campaign(project, annotator=users["annotator"], lead=users["lead"])


def expected_masks(campaign) -> dict[str, np.ndarray]:
    """Path in the export → the mask it must hold (annotated pool images, imported source/val ground truth)."""
    images = Image.objects.in_bulk(list(campaign.masks))
    return {f"{images[pk].domain}/masks/{Path(images[pk].original_name).stem}.png": mask
            for pk, mask in campaign.masks.items()}


def test_masks_zip_keeps_file_names_and_pixels(campaign, tmp_path):
    report = export_masks(project=campaign.project, dest=tmp_path / "masks.zip")
    assert report.images == 7  # 2 source + 2 validation (imported) + 3 annotated pool images; drafts never
    with zipfile.ZipFile(tmp_path / "masks.zip") as bundle:
        names = set(bundle.namelist())
        for path, mask in expected_masks(campaign).items():
            stored = PILImage.open(io.BytesIO(bundle.read(path)))
            assert stored.mode == "L" and np.array_equal(np.asarray(stored), mask), path
        assert "target/images/dusk_0.jpg" in names and "target/masks/dusk_3.png" not in names
        classes = json.loads(bundle.read("classes.json"))
        manifest = json.loads(bundle.read("manifest.json"))
    assert [c["name"] for c in classes["classes"]] == ["road", "car", "sky"] and classes["ignore_index"] == 255
    origins = {row["image"]: (row["origin"], row["author"]) for row in manifest["images"]}
    assert origins["target/images/dusk_0.jpg"] == ("annotation", "annotator")
    assert origins["target/images/dusk_val_0.jpg"] == ("import", None)


def test_masks_zip_reimports_with_the_import_command_layout(campaign, tmp_path):
    export_masks(project=campaign.project, dest=tmp_path / "masks.zip", include_imported=False)
    with zipfile.ZipFile(tmp_path / "masks.zip") as bundle:
        bundle.extractall(tmp_path / "out")
    fresh = Project.objects.create(name="Re-imported")
    report = dataset_import(project=fresh, path=tmp_path / "out" / "target", domain="target")
    assert report.summary() == "imported 3, skipped 0, rejected 0"
    assert list(fresh.classes.values_list("name", flat=True)) == ["road", "car", "sky"]
    for image in fresh.images.all():
        original = campaign.project.images.get(original_name=image.original_name)
        assert np.array_equal(np.asarray(PILImage.open(image.gt_mask.path)), campaign.masks[original.pk])


def test_coco_rle_round_trips_through_pycocotools(campaign, tmp_path):
    from pycocotools.coco import COCO

    export_coco(project=campaign.project, dest=tmp_path / "coco.json")
    coco = COCO(str(tmp_path / "coco.json"))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["road", "car", "sky"]
    expected = expected_masks(campaign)
    assert len(coco.getImgIds()) == len(expected) == 7
    for image in coco.loadImgs(coco.getImgIds()):
        rebuilt = np.full((image["height"], image["width"]), 255, np.uint8)
        for annotation in coco.loadAnns(coco.getAnnIds(imgIds=image["id"])):
            pixels = coco.annToMask(annotation).astype(bool)
            assert not (rebuilt[pixels] != 255).any(), "one class per pixel: RLEs of an image never overlap"
            rebuilt[pixels] = annotation["category_id"] - 1
            assert annotation["area"] == pixels.sum()
        mask_path = image["file_name"].replace("/images/", "/masks/").rsplit(".", 1)[0] + ".png"
        assert np.array_equal(rebuilt, expected[mask_path]), image["file_name"]


def _save_real_checkpoint(model_version, settings):
    import torch

    from learning.checkpoint import save_checkpoint

    save_checkpoint(Path(settings.MODELS_STORE_ROOT) / model_version.path,
                    state_dict={"head.weight": torch.arange(6, dtype=torch.float32).reshape(3, 2)},
                    meta={"architecture": model_version.architecture, "classes": model_version.classes})


def test_model_export_holds_the_checkpoint_and_its_metrics(campaign, settings, tmp_path):
    from learning.checkpoint import load_checkpoint

    model = campaign.models[1]
    _save_real_checkpoint(model, settings)
    export_model(model_version=model, dest=tmp_path / "model.zip")
    with zipfile.ZipFile(tmp_path / "model.zip") as bundle:
        bundle.extractall(tmp_path / "model")
    state_dict, meta = load_checkpoint(tmp_path / "model" / "model", expected_classes=["road", "car", "sky"])
    assert state_dict["head.weight"].tolist() == [[0, 1], [2, 3], [4, 5]]
    info = json.loads((tmp_path / "model" / "maskloop.json").read_text())
    assert (info["version"], info["round"], info["metrics"]["miou"]) == (2, 1, 0.52)
    assert info["parent_version"] == 1 and info["class_colors"]["road"] == "#804080"


def test_model_download_endpoint(campaign, settings, users):
    model = campaign.models[1]
    client = APIClient()
    client.force_login(users["annotator"])
    assert client.get(f"/api/model-versions/{model.pk}/download/").status_code == 403  # leads only, like exports
    client.force_login(users["lead"])
    missing = client.get(f"/api/model-versions/{model.pk}/download/")
    assert missing.status_code == 400 and "checkpoint files are missing" in missing.json()["detail"]
    _save_real_checkpoint(model, settings)
    response = client.get(f"/api/model-versions/{model.pk}/download/")
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert 'filename="streets-model-v2.zip"' in response["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))) as bundle:
        assert sorted(bundle.namelist()) == ["maskloop.json", "model/meta.json", "model/weights.pt"]
    client.force_login(users["outsider"])
    assert client.get(f"/api/model-versions/{model.pk}/download/").status_code == 404


@pytest.mark.parametrize("fmt", ["masks", "coco"])
def test_export_job_via_the_api(campaign, users, fmt, django_capture_on_commit_callbacks):
    client = APIClient()
    client.force_login(users["annotator"])
    url = f"/api/projects/{campaign.project.pk}/exports/"
    assert client.post(url, {"format": fmt}).status_code == 403
    client.force_login(users["lead"])
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(url, {"format": fmt})
    assert response.status_code == 202 and len(callbacks) == 1
    job_id = response.json()["id"]
    assert client.get(f"/api/jobs/{job_id}/download/").status_code == 404  # not run yet
    export_dataset(job_id=job_id, fmt=fmt)  # what the worker runs
    job = Job.objects.get(pk=job_id)
    assert (job.state, job.progress) == (Job.State.SUCCEEDED, 100) and "7 labeled images" in job.message
    download = client.get(f"/api/jobs/{job_id}/download/")
    assert download.status_code == 200
    body = b"".join(download.streaming_content)
    assert (zipfile.is_zipfile(io.BytesIO(body)) if fmt == "masks" else len(json.loads(body)["images"]) == 7)
    client.force_login(users["annotator"])
    assert client.get(f"/api/jobs/{job_id}/download/").status_code == 403


def test_a_finished_export_keeps_only_the_newest_files(campaign, users, settings, django_capture_on_commit_callbacks):
    from annotator.services.exports import export_file, export_start

    settings.MASKLOOP_EXPORTS_KEEP = 2
    jobs = []
    for fmt in ("coco", "masks", "coco"):
        with django_capture_on_commit_callbacks(execute=False):
            job = export_start(project=campaign.project, fmt=fmt)
        export_dataset(job_id=job.pk, fmt=fmt)
        jobs.append(Job.objects.get(pk=job.pk))
    assert export_file(job=jobs[0]) is None  # the oldest file is gone ...
    assert [export_file(job=j)[1] for j in jobs[1:]] == ["masks", "coco"]  # ... the newest two stay
    assert "removed the files of 1 older export(s)" in jobs[2].log
    client = APIClient()
    client.force_login(users["lead"])
    assert client.get(f"/api/jobs/{jobs[0].pk}/download/").status_code == 404
    assert client.get(f"/api/jobs/{jobs[2].pk}/download/").status_code == 200


def test_management_commands(campaign, settings, tmp_path):
    call_command("export_masks", str(tmp_path / "m.zip"), "--project", "Streets", "--no-images")
    with zipfile.ZipFile(tmp_path / "m.zip") as bundle:
        assert not any("/images/" in name for name in bundle.namelist())
    call_command("export_coco", str(tmp_path / "c.json"), "--project", "Streets", "--only-annotated")
    assert len(json.loads((tmp_path / "c.json").read_text())["images"]) == 3
    with pytest.raises(CommandError, match="checkpoint files are missing"):
        call_command("export_model", str(tmp_path / "x.zip"), "--project", "Streets")
    _save_real_checkpoint(campaign.models[0], settings)
    call_command("export_model", str(tmp_path / "v1.zip"), "--project", "Streets", "--model-version", "1")
    assert zipfile.is_zipfile(tmp_path / "v1.zip")
    with pytest.raises(CommandError, match="no project"):
        call_command("export_coco", str(tmp_path / "c.json"), "--project", "Nope")
