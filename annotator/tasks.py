"""Celery tasks of the annotator app: imports and exports, reporting live progress on their Job row.

Tasks take ids, reload rows, return quietly when the row vanished or the job
already ended (a duplicate delivery), and hand the work to plain service
functions.
"""
from __future__ import annotations

from celery import shared_task
from django.core.files.storage import default_storage

from .models import Job
from .services.errors import ServiceError
from .services.job_progress import JobReporter, job_end_with_error
from .services.jobs import job_fail, job_log, job_progress, job_start, job_succeed


def _ended_early(job_id: int, error: Exception) -> str:
    """Record a cancel, a refused input or a crash on the job; a crash also reaches Celery's log."""
    outcome = job_end_with_error(job_id=job_id, error=error)
    if outcome == "failed" and not isinstance(error, ServiceError):
        raise error
    return outcome


@shared_task(name="annotator.import_dataset")
def import_dataset(*, job_id: int, domain: str, val_count: int = 0, archive: str = "", folder: str = "") -> str:
    from .services.images import ImportRequest, staged_import
    from .services.imports import dataset_import

    job = job_start(job_id=job_id)
    if job is None:
        if archive and not Job.objects.filter(pk=job_id, state__in=Job.ACTIVE_STATES).exists():
            default_storage.delete(archive)  # cancelled while queued (or deleted): the upload is not needed
        return "gone"
    request = ImportRequest(domain=domain, val_count=val_count, archive=archive, folder=folder)
    try:
        job_progress(job_id=job_id, phase="unpack" if archive else "scan", progress=0,
                     message=f"reading {request.describe()}")
        with staged_import(request) as path:
            # Each file is imported atomically: a cancel stops between two files.
            report = dataset_import(project=job.project, path=path, domain=domain, val_count=val_count,
                                    progress=JobReporter(job_id).counter("import"))
    except Exception as exc:  # noqa: BLE001 - any end must reach the job row
        return _ended_early(job_id, exc)
    job_log(job_id=job_id, line="\n".join(report.lines()))
    if report.outcome == "failed":  # nothing came in: never a green "succeeded"
        why = "no image files were found" if not report.images_found else "every image was rejected"
        job_fail(job_id=job_id, error=f"{report.summary()}: {why} (the reasons are in the report)")
    else:
        note = " (see the report for the rejected files)" if report.outcome == "warnings" else ""
        job_succeed(job_id=job_id, message=report.summary() + note, warnings=report.outcome == "warnings")
    return report.summary()


@shared_task(name="annotator.export_dataset")
def export_dataset(*, job_id: int, fmt: str, include_imported: bool = True) -> str:
    from .services.exports import EXPORT_FORMATS, export_path, exports_prune

    job = job_start(job_id=job_id)
    if job is None:
        return "gone"
    writer = EXPORT_FORMATS[fmt].write
    try:
        report = writer(project=job.project, dest=export_path(job=job, fmt=fmt), include_imported=include_imported,
                        progress=JobReporter(job_id).counter("export"))
    except Exception as exc:  # noqa: BLE001 - any end must reach the job row
        return _ended_early(job_id, exc)
    for name, reason in report.skipped:
        job_log(job_id=job_id, line=f"skipped {name}: {reason}")
    job_succeed(job_id=job_id, message=f"{fmt}: {report.summary()}")
    removed = exports_prune(project=job.project)
    if removed:
        job_log(job_id=job_id, line=f"removed the files of {removed} older export(s) (MASKLOOP_EXPORTS_KEEP)")
    return report.summary()

