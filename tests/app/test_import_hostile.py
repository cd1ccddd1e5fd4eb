"""Hostile and unusual imports: zip bombs, failures that must not leak disk, odd image and mask formats, names."""
import io
import json
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image as PILImage
from PIL import ImageOps

from annotator.models import Job, Project
from annotator.services.errors import ServiceError
from annotator.services.exports import export_masks
from annotator.services.images import ArchiveLimits, ImportRequest, _copy_counted, archive_extract, staged_import
from annotator.services.imports import dataset_import
from learning.data import load_image, load_mask
from tests.conftest import jpeg_bytes, png_bytes
from tests.factories import make_image

pytestmark = pytest.mark.django_db


def encoded(image: PILImage.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def write_zip(path: Path, members: dict[str, bytes], *, zeros: dict[str, int] | None = None) -> Path:
    """A zip of ``members``, plus members of that many zero bytes, written in chunks (a bomb in a few KB)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
        for name, size in (zeros or {}).items():
            with bundle.open(name, "w", force_zip64=True) as out:
                for _ in range(size // 2**20):
                    out.write(bytes(2**20))
    return path


def unpacked_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def temp_dir(tmp_path, monkeypatch):
    """The system temp directory, redirected so a test can see what an import leaves there."""
    folder = tmp_path / "system-tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


# --- zip bombs -----------------------------------------------------------------------------------------------


def test_a_member_past_the_file_cap_refuses_the_archive_by_name(tmp_path, settings):
    settings.MASKLOOP_IMPORT_MAX_FILE_BYTES = 4 * 2**20
    bomb = write_zip(tmp_path / "bomb.zip", {}, zeros={"images/x.png": 64 * 2**20})
    assert bomb.stat().st_size < 2**20
    with pytest.raises(ServiceError, match=r"images/x.png unpacks to more than 4 MiB \(MASKLOOP_IMPORT_MAX_FILE_BYTES"):
        archive_extract(bomb, tmp_path / "out")
    assert unpacked_bytes(tmp_path / "out") == 0  # refused from the directory, before a byte was written


def test_a_member_expanding_past_the_ratio_is_stopped_while_it_unpacks(tmp_path, settings):
    settings.MASKLOOP_IMPORT_MAX_RATIO = 100
    bomb = write_zip(tmp_path / "bomb.zip", {}, zeros={"images/x.png": 32 * 2**20})  # ~1000:1
    with pytest.raises(ServiceError, match=r"images/x.png expands more than 100 times .* zip bomb"):
        archive_extract(bomb, tmp_path / "out")
    assert unpacked_bytes(tmp_path / "out") <= 9 * 2**20


def test_unpacking_counts_bytes_instead_of_trusting_the_declared_size(tmp_path):
    member = zipfile.ZipInfo("images/x.png")
    member.file_size, member.compress_size = 10, 10**9  # a directory that lies
    limits = ArchiveLimits(file_bytes=2**20, total_bytes=2**30, ratio=200, files=10)
    with pytest.raises(ServiceError, match="images/x.png unpacks to more than 1 MiB"):
        _copy_counted(io.BytesIO(bytes(3 * 2**20)), io.BytesIO(), member, limits, 0)


def test_the_total_and_the_member_count_are_capped(tmp_path, settings, make_dataset):
    root = make_dataset(4)
    members = {f"images/{p.name}": p.read_bytes() for p in sorted((root / "images").iterdir())}
    archive = write_zip(tmp_path / "a.zip", members)
    settings.MASKLOOP_IMPORT_MAX_FILES = 3
    with pytest.raises(ServiceError, match="holds 4 files, more than 3 \\(MASKLOOP_IMPORT_MAX_FILES\\)"):
        archive_extract(archive, tmp_path / "out")
    settings.MASKLOOP_IMPORT_MAX_FILES = 10
    settings.MASKLOOP_MAX_IMPORT_BYTES = sum(len(v) for v in members.values()) - 1
    with pytest.raises(ServiceError, match="images/frame_003.jpg \\(MASKLOOP_MAX_IMPORT_BYTES\\)"):
        archive_extract(archive, tmp_path / "out2")


def test_an_uploaded_bomb_is_refused_before_it_is_stored(project, lead, tmp_path, settings):
    settings.MASKLOOP_IMPORT_MAX_FILE_BYTES = 4 * 2**20
    bomb = write_zip(tmp_path / "bomb.zip", {}, zeros={"images/x.png": 64 * 2**20})
    upload = io.BytesIO(bomb.read_bytes())
    upload.name = "bomb.zip"
    response = lead.post(f"/api/projects/{project.pk}/imports/", {"domain": "target", "archive": upload},
                         format="multipart")
    assert response.status_code == 400 and "images/x.png unpacks to more than 4 MiB" in response.json()["detail"]
    assert not Job.objects.exists() and not list(Path(settings.MEDIA_ROOT).rglob("*.zip"))


def test_a_big_file_in_a_server_folder_is_rejected_without_reading_it(make_dataset, settings):
    root = make_dataset(2)
    settings.MASKLOOP_IMPORT_MAX_FILE_BYTES = 1000
    report = dataset_import(project=Project.objects.create(name="p"), path=root, domain="source")
    assert report.summary() == "imported 0, skipped 0, rejected 2"
    assert "above the limit of 1,000 bytes per file (MASKLOOP_IMPORT_MAX_FILE_BYTES)" in report.rejected[0][1]


# --- failed imports leave nothing behind --------------------------------------------------------------------


def corrupt_archive(make_dataset) -> io.BytesIO:
    """A zip whose directory is fine (it passes the upload check) but whose data fails its CRC."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as bundle:
        for path in sorted((make_dataset(2) / "images").iterdir()):
            bundle.write(path, f"images/{path.name}")
    data = bytearray(buffer.getvalue())
    data[200] ^= 0xFF  # inside the first member's stored bytes
    upload = io.BytesIO(bytes(data))
    upload.name = "corrupt.zip"
    return upload


def test_a_corrupt_archive_fails_the_job_and_leaves_no_temp_folder_or_upload(
        project, lead, make_dataset, eager_tasks, temp_dir, settings, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = lead.post(f"/api/projects/{project.pk}/imports/",
                             {"domain": "target", "archive": corrupt_archive(make_dataset)}, format="multipart")
    assert response.status_code == 202, response.content
    job = Job.objects.get(pk=response.json()["id"])
    assert job.state == "failed" and "corrupt.zip could not be unpacked: Bad CRC-32" in job.message
    assert list(temp_dir.iterdir()) == []
    assert not list(Path(settings.MEDIA_ROOT).rglob("*.zip"))


def test_an_import_failing_after_unpacking_cleans_up_too(project, make_dataset, temp_dir):
    root = make_dataset(2)  # its classes.json names class0..2; the project has road/car/sky
    archive = write_zip(temp_dir.parent / "ds.zip", {
        str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()})
    name = default_storage.save("uploads/ds.zip", ContentFile(archive.read_bytes()))
    with pytest.raises(ServiceError, match="classes.json lists"):
        with staged_import(ImportRequest(domain="source", archive=name)) as path:
            dataset_import(project=project, path=path, domain="source")
    assert list(temp_dir.iterdir()) == [] and not default_storage.exists(name)


def test_an_upload_cancelled_while_queued_is_deleted_when_its_task_arrives(project, lead, make_dataset, settings,
                                                                          django_capture_on_commit_callbacks):
    from annotator.services.jobs import job_cancel_request
    from annotator.tasks import import_dataset

    with django_capture_on_commit_callbacks(execute=False) as queued:  # the task waits in the queue
        response = lead.post(f"/api/projects/{project.pk}/imports/",
                             {"domain": "target", "archive": corrupt_archive(make_dataset)}, format="multipart")
    assert response.status_code == 202 and len(queued) == 1
    job = job_cancel_request(job=Job.objects.get(pk=response.json()["id"]))
    assert job.state == "cancelled" and list(Path(settings.MEDIA_ROOT).rglob("*.zip"))
    archive = str(next(Path(settings.MEDIA_ROOT).rglob("*.zip")).relative_to(settings.MEDIA_ROOT))
    assert import_dataset.run(job_id=job.pk, domain="target", archive=archive) == "gone"
    assert not list(Path(settings.MEDIA_ROOT).rglob("*.zip"))


def test_a_server_folder_is_never_deleted(project, make_dataset):
    root = make_dataset(2)
    with pytest.raises(ServiceError):
        with staged_import(ImportRequest(domain="source", folder=str(root))) as path:
            dataset_import(project=project, path=path, domain="source")
    assert sorted(p.name for p in (root / "images").iterdir()) == ["frame_000.jpg", "frame_001.jpg"]


# --- masks: one decoder for the import check and training ---------------------------------------------------


def test_a_1_bit_mask_imports_and_training_reads_the_same_0_1_values(make_dataset):
    root = make_dataset(2)
    values = np.zeros((30, 40), dtype=bool)
    values[10:20, 5:25] = True
    PILImage.fromarray(values).save(root / "masks" / "frame_000.png")
    project = Project.objects.create(name="p")
    assert dataset_import(project=project, path=root, domain="source").summary() == "imported 2, skipped 0, rejected 0"
    image = project.images.get(original_name="frame_000.jpg")
    assert np.array_equal(load_mask(image.gt_mask.path), values.astype(np.uint8))


@pytest.mark.parametrize("top, expected", [(2, None), (255, None), (300, "values from 0 to 300, outside 0–255")])
def test_16_bit_masks_import_when_their_values_fit_in_8_bits(make_dataset, top, expected):
    root = make_dataset(1)
    values = np.zeros((30, 40), dtype=np.uint16)
    values[0, 0] = top
    PILImage.fromarray(values).save(root / "masks" / "frame_000.png")
    project = Project.objects.create(name="p")
    report = dataset_import(project=project, path=root, domain="source")
    if expected is None:
        assert report.summary() == "imported 1, skipped 0, rejected 0"
        assert np.array_equal(load_mask(project.images.get().gt_mask.path), values.astype(np.uint8))
    else:
        assert expected in report.rejected[0][1]


# --- images: stored upright, 8-bit, in a format the browser shows -------------------------------------------


def single_image_folder(tmp_path, name: str, data: bytes, mask: np.ndarray | None = None) -> Path:
    root = tmp_path / "folder"
    (root / "images").mkdir(parents=True)
    (root / "images" / name).write_bytes(data)
    if mask is not None:
        (root / "masks").mkdir()
        (root / "masks" / f"{Path(name).stem}.png").write_bytes(png_bytes(mask))
    (root / "classes.json").write_text(json.dumps({"classes": [{"id": 0, "name": "a"}, {"id": 1, "name": "b"}]}))
    return root


def test_an_exif_rotated_photo_is_stored_upright_with_its_upright_size(tmp_path):
    raw = np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8)  # 40 wide, 30 high as stored
    exif = PILImage.Exif()
    exif[0x0112] = 6  # display rotated 90° clockwise: 30 wide, 40 high
    photo = encoded(PILImage.fromarray(raw), "JPEG", quality=95, exif=exif.tobytes())
    root = single_image_folder(tmp_path, "phone.jpg", photo, mask=np.ones((40, 30), np.uint8))
    project = Project.objects.create(name="p")
    report = dataset_import(project=project, path=root, domain="source")
    assert report.summary() == "imported 1, skipped 0, rejected 0", report.rejected
    image = project.images.get()
    assert (image.width, image.height) == (30, 40)
    stored = PILImage.open(image.file.path)
    upright = np.asarray(ImageOps.exif_transpose(PILImage.open(io.BytesIO(photo))))
    assert stored.size == (30, 40) and stored.getexif().get(0x0112, 1) == 1
    assert np.array_equal(np.asarray(stored), upright) and np.array_equal(load_image(image.file.path), upright)


@pytest.mark.parametrize("fmt, name", [("TIFF", "scan.tif"), ("BMP", "scan.bmp")])
def test_formats_a_browser_cannot_show_are_stored_as_png_under_their_name(tmp_path, fmt, name):
    pixels = np.random.default_rng(1).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    root = single_image_folder(tmp_path, name, encoded(PILImage.fromarray(pixels), fmt),
                               mask=np.ones((30, 40), np.uint8))
    project = Project.objects.create(name="p")
    dataset_import(project=project, path=root, domain="source")
    image = project.images.get()
    stored = PILImage.open(image.file.path)
    assert (image.original_name, stored.format, Path(image.file.name).suffix) == (name, "PNG", ".png")
    assert np.array_equal(np.asarray(stored), pixels)  # lossless
    export_masks(project=project, dest=tmp_path / "export.zip")
    with zipfile.ZipFile(tmp_path / "export.zip") as bundle:
        assert {"source/images/scan.png", "source/masks/scan.png"} <= set(bundle.namelist())


def test_a_16_bit_png_is_stored_as_8_bit_and_the_model_sees_the_same_pixels(tmp_path):
    ramp = (np.arange(30 * 40, dtype=np.uint32).reshape(30, 40) * 65535 // (30 * 40 - 1)).astype(np.uint16)
    root = single_image_folder(tmp_path, "depth.png", encoded(PILImage.fromarray(ramp), "PNG"))
    project = Project.objects.create(name="p")
    dataset_import(project=project, path=root, domain="target")
    image = project.images.get()
    stored = PILImage.open(image.file.path)
    assert stored.mode == "L" and np.abs(np.asarray(stored).astype(int) - ramp / 257).max() <= 1
    assert np.array_equal(load_image(image.file.path)[..., 0], np.asarray(stored))


def test_browser_ready_images_are_stored_byte_for_byte(make_dataset):
    root = make_dataset(1)
    project = Project.objects.create(name="p")
    dataset_import(project=project, path=root, domain="source")
    image = project.images.get()
    assert Path(image.file.path).read_bytes() == (root / "images" / "frame_000.jpg").read_bytes()


# --- names and classes.json ---------------------------------------------------------------------------------


def test_hostile_file_names_are_stored_as_their_safe_base_name(tmp_path):
    root = single_image_folder(tmp_path, "..\\..\\x.jpg", jpeg_bytes(np.zeros((30, 40, 3), np.uint8)))
    project = Project.objects.create(name="p")
    assert dataset_import(project=project, path=root, domain="target").summary() == "imported 1, skipped 0, rejected 0"
    assert project.images.get().original_name == "x.jpg"


def test_exports_write_safe_names_even_for_rows_imported_before(project, tmp_path):
    make_image(project, name="..\\..\\evil.jpg", gt=np.zeros((48, 64), np.uint8))
    export_masks(project=project, dest=tmp_path / "export.zip")
    with zipfile.ZipFile(tmp_path / "export.zip") as bundle:
        names = bundle.namelist()
    assert "target/images/evil.jpg" in names and "target/masks/evil.png" in names
    assert not [n for n in names if ".." in n or "\\" in n]


def test_an_image_only_zip_never_adopts_a_classes_json_outside_it(make_dataset, temp_dir):
    (temp_dir / "classes.json").write_text(json.dumps({"classes": [{"id": 0, "name": "planted"}]}))
    images = make_dataset(1, masks=False) / "images"
    archive = write_zip(temp_dir.parent / "images.zip", {p.name: p.read_bytes() for p in images.iterdir()})
    name = default_storage.save("uploads/images.zip", ContentFile(archive.read_bytes()))
    project = Project.objects.create(name="p")
    with pytest.raises(ServiceError, match="no classes and the folder has no classes.json"):
        with staged_import(ImportRequest(domain="target", archive=name)) as path:
            dataset_import(project=project, path=path, domain="target")
    assert not project.classes.exists()
