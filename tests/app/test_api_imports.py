"""Imports started from the web: a zip upload or a server folder, validated like the command, run as a job."""
import io
import re
import zipfile
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from annotator.models import Job
from annotator.services.errors import ServiceError
from annotator.services.images import archive_extract

pytestmark = pytest.mark.django_db


def zip_folder(root: Path, *, prefix: str = "", extra: dict[str, bytes] | None = None) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                bundle.write(path, prefix + path.relative_to(root).as_posix())
        for name, data in (extra or {}).items():
            bundle.writestr(name, data)
    buffer.seek(0)
    buffer.name = "dusk.zip"
    return buffer


def test_zip_upload_imports_with_per_file_validation(project, lead, make_dataset, eager_tasks,
                                                     django_capture_on_commit_callbacks):
    root = make_dataset(4, name="dusk")
    (root / "images" / "frame_001.jpg").write_bytes(b"not a jpeg")
    (root / "classes.json").unlink()  # the project has its classes already
    upload = zip_folder(root, prefix="dusk/")  # a top-level folder inside the zip is fine
    with django_capture_on_commit_callbacks(execute=True):
        response = lead.post(f"/api/projects/{project.pk}/imports/",
                             {"domain": "target", "val_count": 1, "archive": upload}, format="multipart")
    assert response.status_code == 202, response.content
    job = Job.objects.get(pk=response.json()["id"])
    assert (job.state, job.progress, job.kind, job.phase) == ("succeeded", 100, "import", "warnings")
    assert job.message == "imported 3, skipped 0, rejected 1 (see the report for the rejected files)"
    assert "rejected frame_001.jpg: not a readable image" in job.log
    splits = dict(project.images.values_list("original_name", "split"))
    assert splits == {"frame_000.jpg": "pool", "frame_002.jpg": "pool", "frame_003.jpg": "val"}
    assert not list((Path(project.images.first().file.path).parents[3] / "uploads").rglob("*.zip"))


def test_annotators_cannot_import(project, users, make_dataset):
    client = APIClient()
    client.force_login(users["annotator"])
    upload = zip_folder(make_dataset(1))
    response = client.post(f"/api/projects/{project.pk}/imports/", {"domain": "target", "archive": upload},
                           format="multipart")
    assert response.status_code == 403


def test_a_non_zip_upload_is_refused(project, lead):
    upload = io.BytesIO(b"plain text")
    upload.name = "notes.zip"
    response = lead.post(f"/api/projects/{project.pk}/imports/", {"domain": "target", "archive": upload},
                         format="multipart")
    assert response.status_code == 400 and "not a zip archive" in response.json()["detail"]


def test_server_folders_outside_the_import_roots_are_for_staff(project, users, lead, make_dataset, settings,
                                                               eager_tasks, django_capture_on_commit_callbacks):
    root = make_dataset(2, name="server")
    settings.MASKLOOP_IMPORT_ROOTS = [str(root.parent / "elsewhere")]
    refused = lead.post(f"/api/projects/{project.pk}/imports/", {"domain": "source", "folder": str(root)})
    assert refused.status_code == 400 and "MASKLOOP_IMPORT_ROOTS" in refused.json()["detail"]
    settings.MASKLOOP_IMPORT_ROOTS = [str(root.parent)]
    with django_capture_on_commit_callbacks(execute=True):
        accepted = lead.post(f"/api/projects/{project.pk}/imports/", {"domain": "source", "folder": str(root)})
    assert accepted.status_code == 202
    classes_clash = Job.objects.get(pk=accepted.json()["id"])
    # make_dataset's classes.json names class0..2, the project has road/car/sky: the job says so and fails.
    assert classes_clash.state == "failed" and "classes.json lists" in classes_clash.message


@pytest.mark.parametrize("member", ["../escape.txt", "/abs.txt", "images/..\\..\\escape.png", "C:/escape.png"])
def test_archive_with_a_member_outside_the_folder_is_refused(tmp_path, make_dataset, member):
    upload = zip_folder(make_dataset(1), extra={member: b"x"})
    (tmp_path / "a.zip").write_bytes(upload.getvalue())
    with pytest.raises(ServiceError, match=f"member {re.escape(repr(member))} points outside the archive"):
        archive_extract(tmp_path / "a.zip", tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists() and not Path("/abs.txt").exists()
    assert not [p for p in tmp_path.rglob("*escape*")]


def test_archive_extraction_unpacks_backslash_paths_and_finds_the_dataset(tmp_path, make_dataset):
    upload = zip_folder(make_dataset(1), extra={"images\\frame_009.jpg": b"written by a Windows tool",
                                                 "__MACOSX/images/._frame_000.jpg": b""})
    (tmp_path / "a.zip").write_bytes(upload.getvalue())
    folder = archive_extract(tmp_path / "a.zip", tmp_path / "out")
    assert folder == tmp_path / "out" and (folder / "images" / "frame_000.jpg").is_file()
    assert (folder / "images" / "frame_009.jpg").is_file() and not (folder / "__MACOSX").exists()


def test_archive_without_images_is_refused(tmp_path):
    (tmp_path / "empty.zip").write_bytes(zip_folder(tmp_path / "nothing-here").getvalue())
    with pytest.raises(ServiceError, match="holds no images"):
        archive_extract(tmp_path / "empty.zip", tmp_path / "out2")
