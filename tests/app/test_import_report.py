"""The import report names every file it did not import, with the reason, and nothing imported is no success."""
import io
import zipfile

import pytest
from django.urls import reverse

from annotator.models import Job
from annotator.services.imports import dataset_import
from tests.app.test_api_imports import zip_folder

pytestmark = pytest.mark.django_db


def test_stray_files_are_reported_as_skipped_with_a_reason(project, make_dataset):
    root = make_dataset(2, name="dusk")
    (root / "classes.json").unlink()
    (root / "notes.txt").write_text("shot at dusk")
    (root / "images" / "notes.txt").write_text("frames")
    (root / "images" / "old").mkdir()
    (root / "masks" / "frame_009.png").write_bytes((root / "masks" / "frame_000.png").read_bytes())
    (root / "masks" / "legend.md").write_text("colours")
    report = dataset_import(project=project, path=root, domain="target")
    assert report.summary() == "imported 2, skipped 5, rejected 0" and report.outcome == "succeeded"
    reasons = dict(report.skipped)
    assert reasons["notes.txt"].startswith("not part of the import layout")
    assert reasons["images/notes.txt"].startswith("not an image file")
    assert reasons["images/old/"] == "a folder: images are not read from subfolders"
    assert reasons["masks/frame_009.png"].startswith("no image in images/ has this name")
    assert reasons["masks/legend.md"] == "masks are single-channel .png files"


def test_a_flat_folder_reports_its_stray_files_too(project, make_dataset):
    root = make_dataset(2, name="flat", masks=False)
    for image in (root / "images").iterdir():
        image.rename(root / image.name)
    (root / "images").rmdir()
    (root / "classes.json").unlink()
    (root / "notes.txt").write_text("x")
    report = dataset_import(project=project, path=root, domain="target")
    assert report.summary() == "imported 2, skipped 1, rejected 0"
    assert dict(report.skipped)["notes.txt"].startswith("not an image file")


def import_zip(lead, project, upload, django_capture_on_commit_callbacks) -> Job:
    with django_capture_on_commit_callbacks(execute=True):
        response = lead.post(f"/api/projects/{project.pk}/imports/", {"domain": "target", "archive": upload},
                             format="multipart")
    assert response.status_code == 202, response.content
    return Job.objects.get(pk=response.json()["id"])


def test_nothing_imported_and_files_rejected_is_a_failed_job_with_plain_reasons(
        project, lead, make_dataset, eager_tasks, django_capture_on_commit_callbacks):
    root = make_dataset(2, name="dusk")
    (root / "classes.json").unlink()
    (root / "images" / "frame_000.jpg").write_bytes(b"not a jpeg")
    (root / "masks" / "frame_001.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (root / "notes.txt").write_text("x")
    job = import_zip(lead, project, zip_folder(root), django_capture_on_commit_callbacks)
    assert job.state == Job.State.FAILED
    assert job.message.startswith("imported 0, skipped 1, rejected 2: every image was rejected")
    assert "rejected frame_000.jpg: not a readable image" in job.log
    assert "rejected frame_001.jpg: mask frame_001.png: not a readable image" in job.log
    assert "skipped  notes.txt: not part of the import layout" in job.log
    assert "object at 0x" not in job.log + job.message + job.error  # no Python object in a reason
    body = lead.get(f"/api/jobs/{job.pk}/").json()
    assert (body["state_label"], body["badge_state"]) == ("Failed", "failed")
    page = lead.get(reverse("project-images", args=[project.pk])).content.decode()
    assert 'job-state-failed">Failed</span>' in page and "Import report" in page


def test_some_files_rejected_is_a_success_with_warnings(project, lead, make_dataset, eager_tasks,
                                                        django_capture_on_commit_callbacks):
    root = make_dataset(3, name="dusk")
    (root / "classes.json").unlink()
    (root / "images" / "frame_000.jpg").write_bytes(b"not a jpeg")
    job = import_zip(lead, project, zip_folder(root), django_capture_on_commit_callbacks)
    assert (job.state, job.phase) == (Job.State.SUCCEEDED, "warnings")
    body = lead.get(f"/api/jobs/{job.pk}/").json()
    assert (body["state_label"], body["badge_state"]) == ("Succeeded with warnings", "warning")
    page = lead.get(reverse("project-images", args=[project.pk])).content.decode()
    assert 'job-state-warning">Succeeded with warnings</span>' in page
    assert 'job-state-succeeded">' not in page


def test_an_archive_of_only_stray_files_fails(project, lead, make_dataset, eager_tasks,
                                              django_capture_on_commit_callbacks):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("images/notes.txt", "no images here")
    buffer.seek(0)
    buffer.name = "empty.zip"
    job = import_zip(lead, project, buffer, django_capture_on_commit_callbacks)
    assert job.state == Job.State.FAILED
