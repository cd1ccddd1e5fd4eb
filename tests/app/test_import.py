"""import_dataset: per-file validation with a summary; a bad file never aborts or leaves half a record."""
import io
import os
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from PIL import Image as PILImage

from annotator.models import Image, Project
from annotator.services.errors import ServiceError
from annotator.services.imports import dataset_import
from tests.conftest import jpeg_bytes, png_bytes

pytestmark = pytest.mark.django_db


def stored_files(settings) -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_imports_images_masks_and_classes(make_dataset, settings):
    root = make_dataset(4)
    project = Project.objects.create(name="p")
    report = dataset_import(project=project, path=root, domain="source")
    assert report.summary() == "imported 4, skipped 0, rejected 0"
    assert list(project.classes.values_list("name", flat=True)) == ["class0", "class1", "class2"]
    image = project.images.get(original_name="frame_000.jpg")
    assert (image.width, image.height, image.split, image.domain) == (40, 30, "train", "source")
    assert len(image.checksum) == 64 and image.gt_mask
    assert len(stored_files(settings)) == 8


def test_target_split_keeps_last_frames_for_validation(make_dataset):
    root = make_dataset(5)
    project = Project.objects.create(name="p")
    dataset_import(project=project, path=root, domain="target", val_count=2)
    splits = dict(project.images.values_list("original_name", "split"))
    assert splits == {"frame_000.jpg": "pool", "frame_001.jpg": "pool", "frame_002.jpg": "pool",
                      "frame_003.jpg": "val", "frame_004.jpg": "val"}


def test_reimport_skips_duplicates(make_dataset):
    root = make_dataset(2)
    project = Project.objects.create(name="p")
    dataset_import(project=project, path=root, domain="source")
    report = dataset_import(project=project, path=root, domain="source")
    assert [reason for _, reason in report.skipped] == ["already imported (same content)"] * 2
    assert project.images.count() == 2


@pytest.mark.parametrize(
    "breakage, expected",
    [
        ("truncated_image", "truncated or corrupt"),
        ("not_an_image", "not a readable image"),
        ("huge_image", "above the limit"),
        ("mask_wrong_size", "mask frame_001.png: mask is 20×30 but the image is 40×30"),
        ("mask_bad_values", "values [7] that are neither class ids 0–2 nor 255"),
        ("mask_rgb", "single-channel index PNG"),
    ],
)
def test_bad_file_is_rejected_alone_with_a_clear_reason(make_dataset, settings, breakage, expected):
    root = make_dataset(3)
    image_path, mask_path = root / "images" / "frame_001.jpg", root / "masks" / "frame_001.png"
    if breakage == "truncated_image":
        image_path.write_bytes(image_path.read_bytes()[:300])
    elif breakage == "not_an_image":
        image_path.write_bytes(b"this is not a jpeg at all")
    elif breakage == "huge_image":
        image_path.write_bytes(jpeg_bytes(np.zeros((3000, 4000, 3), np.uint8)))
        settings.MASKLOOP_MAX_IMAGE_PIXELS = 10_000_000
    elif breakage == "mask_wrong_size":
        mask_path.write_bytes(png_bytes(np.zeros((30, 20), np.uint8)))
    elif breakage == "mask_bad_values":
        mask = np.zeros((30, 40), np.uint8)
        mask[3, 3] = 7
        mask[4, 4] = 255  # void is allowed
        mask_path.write_bytes(png_bytes(mask))
    elif breakage == "mask_rgb":
        mask_path.write_bytes(png_bytes(np.zeros((30, 40, 3), np.uint8)))
    project = Project.objects.create(name="p")
    report = dataset_import(project=project, path=root, domain="source")
    assert report.summary() == "imported 2, skipped 0, rejected 1"
    (name, reason), = report.rejected
    assert name == "frame_001.jpg" and expected in reason
    assert not project.images.filter(original_name="frame_001.jpg").exists()
    assert len(stored_files(settings)) == 4  # the two good images and their masks, nothing orphaned


def test_decompression_bomb_is_refused_before_decoding(tmp_path, settings):
    # A PNG header claiming 50000×50000 pixels; decoding it would need gigabytes.
    bomb = io.BytesIO()
    PILImage.new("1", (50000, 50000)).save(bomb, format="PNG")
    folder = tmp_path / "bombs"
    folder.mkdir()
    (folder / "bomb.png").write_bytes(bomb.getvalue())
    (folder / "classes.json").write_text('{"classes": [{"id": 0, "name": "a"}]}')
    report = dataset_import(project=Project.objects.create(name="p"), path=folder, domain="target")
    (name, reason), = report.rejected
    assert "decompression bomb" in reason or "above the limit" in reason


def test_image_only_folder_imports_into_the_pool(make_dataset):
    root = make_dataset(3, masks=False)
    project = Project.objects.create(name="p")
    # images/ alone, with classes.json one folder up (the dataset layout)
    report = dataset_import(project=project, path=root / "images", domain="target")
    assert report.summary() == "imported 3, skipped 0, rejected 0"
    assert set(project.images.values_list("split", flat=True)) == {"pool"}
    assert not project.images.exclude(gt_mask="").exists()


def test_image_only_folder_needs_classes_from_somewhere(make_dataset):
    root = make_dataset(2, masks=False)
    (root / "classes.json").unlink()
    project = Project.objects.create(name="p")
    with pytest.raises(ServiceError, match="no classes and the folder has no classes.json"):
        dataset_import(project=project, path=root / "images", domain="target")
    assert project.images.count() == 0


def test_source_images_without_masks_are_rejected(make_dataset):
    root = make_dataset(2, masks=False)
    report = dataset_import(project=Project.objects.create(name="p"), path=root, domain="source")
    assert [reason for _, reason in report.rejected] == ["labeled source images need a mask (masks/STEM.png)"] * 2


def test_class_list_mismatch_aborts_before_importing(make_dataset, project):
    root = make_dataset(2)
    with pytest.raises(ServiceError, match="classes.json lists"):
        dataset_import(project=project, path=root, domain="source")
    assert project.images.count() == 0


def test_command_prints_summary_and_reasons(make_dataset, capsys):
    root = make_dataset(2)
    (root / "images" / "frame_000.jpg").write_bytes(b"junk")
    call_command("import_dataset", str(root), "--project", "Cmd", "--domain", "source")
    out, err = capsys.readouterr()
    assert "Cmd: imported 1, skipped 0, rejected 1" in out
    assert "rejected frame_000.jpg: not a readable image" in err


def test_command_reports_missing_folder_as_command_error():
    with pytest.raises(CommandError, match="is not a folder"):
        call_command("import_dataset", "/nonexistent/folder", "--project", "x", "--domain", "target")


@pytest.mark.skipif(not Path("/work/shared/datasets/camvid-daydusk").exists()
                    and not (Path(__file__).resolve().parents[3] / "shared/datasets/camvid-daydusk").exists(),
                    reason="CamVid day→dusk dataset absent")
def test_imports_camvid_target_layout():
    candidates = [Path(__file__).resolve().parents[3] / "shared/datasets/camvid-daydusk",
                  Path("/work/shared/datasets/camvid-daydusk")]
    root = next(p for p in candidates if p.exists())
    project = Project.objects.create(name="camvid")
    report = dataset_import(project=project, path=root / "target", domain="target", val_count=16)
    assert report.summary() == "imported 62, skipped 0, rejected 0"
    assert project.classes.count() == 11
    assert project.images.filter(split="val").count() == 16
    last_pool = project.images.filter(split="pool").order_by("-original_name").first()
    first_val = project.images.filter(split="val").order_by("original_name").first()
    assert last_pool.original_name < first_val.original_name  # split by frame order
