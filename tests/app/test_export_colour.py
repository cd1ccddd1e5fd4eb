"""Colour masks (Pascal VOC palette PNGs) beside index PNGs and COCO; clean download names."""
import io
import zipfile

import numpy as np
import pytest
from PIL import Image as PILImage
from rest_framework.test import APIClient

from annotator.models import Project
from annotator.services.exports import VOC_VOID_COLOR, export_voc, project_slug
from annotator.services.imports import dataset_import
from annotator.tasks import export_dataset
from tests.app.simulated_campaign import build_campaign
from tests.app.test_export import expected_masks

pytestmark = [pytest.mark.django_db, pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools")]


@pytest.fixture
def campaign(project, users):
    return build_campaign(project, annotator=users["annotator"], lead=users["lead"])


def test_colour_masks_keep_the_class_ids_and_colour_them_with_the_class_colours(campaign, tmp_path):
    report = export_voc(project=campaign.project, dest=tmp_path / "voc.zip")
    assert report.images == 7
    colours = {c.index: tuple(int(c.color[i:i + 2], 16) for i in (1, 3, 5)) for c in campaign.project.classes.all()}
    with zipfile.ZipFile(tmp_path / "voc.zip") as bundle:
        for path, mask in expected_masks(campaign).items():
            stored = PILImage.open(io.BytesIO(bundle.read(path)))
            assert stored.mode == "P" and np.array_equal(np.asarray(stored), mask), path  # values = class ids
            palette = np.asarray(stored.getpalette(), dtype=np.uint8).reshape(-1, 3)
            assert {index: tuple(palette[index]) for index in colours} == colours
            assert tuple(palette[255]) == VOC_VOID_COLOR
            rgb = np.asarray(stored.convert("RGB"))
            for index in np.unique(mask):
                assert tuple(rgb[mask == index][0]) == (colours.get(int(index)) or VOC_VOID_COLOR)


def test_colour_masks_reimport_as_they_are(campaign, tmp_path):
    export_voc(project=campaign.project, dest=tmp_path / "voc.zip", include_imported=False)
    with zipfile.ZipFile(tmp_path / "voc.zip") as bundle:
        bundle.extractall(tmp_path / "out")
    fresh = Project.objects.create(name="From colour masks")
    report = dataset_import(project=fresh, path=tmp_path / "out" / "target", domain="target")
    assert report.summary() == "imported 3, skipped 0, rejected 0"
    for image in fresh.images.all():
        original = campaign.project.images.get(original_name=image.original_name)
        assert np.array_equal(np.asarray(PILImage.open(image.gt_mask.path)), campaign.masks[original.pk])


@pytest.mark.parametrize("name, slug", [("Demo: streets, day → dusk", "demo-streets-day-dusk"),
                                        ("CamVid (day/dusk)", "camvid-day-dusk"), ("日本語", None)])
def test_download_names_are_clean_slugs(project, name, slug):
    project.name = name
    assert project_slug(project) == (slug or f"project-{project.pk}")


def test_a_colour_export_job_downloads_under_a_clean_name(campaign, users, django_capture_on_commit_callbacks):
    Project.objects.filter(pk=campaign.project.pk).update(name="Demo: streets, day → dusk")
    client = APIClient()
    client.force_login(users["lead"])
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(f"/api/projects/{campaign.project.pk}/exports/", {"format": "voc"})
    assert response.status_code == 202, response.content
    export_dataset(job_id=response.json()["id"], fmt="voc")
    download = client.get(f"/api/jobs/{response.json()['id']}/download/")
    assert download.status_code == 200
    assert 'filename="demo-streets-day-dusk-voc.zip"' in download["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content))) as bundle:
        assert PILImage.open(io.BytesIO(bundle.read("target/masks/dusk_0.png"))).mode == "P"


def test_the_dashboard_offers_the_colour_export(campaign, client, users):
    client.force_login(users["lead"])
    html = client.get(f"/projects/{campaign.project.pk}/dashboard/").content.decode()
    assert '<option value="voc">Colour masks (zip of Pascal VOC palette PNGs)</option>' in html


def test_the_export_command_writes_colour_masks(campaign, tmp_path):
    from django.core.management import call_command

    call_command("export_masks", str(tmp_path / "c.zip"), "--project", "Streets", "--no-images", "--colour")
    with zipfile.ZipFile(tmp_path / "c.zip") as bundle:
        assert PILImage.open(io.BytesIO(bundle.read("target/masks/dusk_0.png"))).mode == "P"
        assert "target/images/dusk_0.jpg" not in bundle.namelist()
