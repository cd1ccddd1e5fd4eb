"""Celery tasks of the annotator app: imports and exports, reporting live progress on their Job row.

Tasks take ids, reload rows, return quietly when the row vanished or the job
already ended (a duplicate delivery), and hand the work to plain service
functions.
"""
from __future__ import annotations

from celery import shared_task

from .services.errors import ServiceError
from .services.jobs import job_fail, job_log, job_mark_cancelled, job_progress, job_start, job_succeed


class _Cancelled(Exception):
    """Raised from a progress callback to stop between two files (each file is imported atomically)."""


def _progress(job_id: int, phase: str, verb: str):
    def report(done: int, total: int) -> None:
        if job_progress(job_id=job_id, phase=phase, progress=100 * done / max(total, 1),
                        message=f"{verb} {done} / {total}"):
            raise _Cancelled

    return report


@shared_task(name="annotator.import_dataset")
def import_dataset(*, job_id: int, domain: str, val_count: int = 0, archive: str = "", folder: str = "") -> str:
    from .services.images import ImportRequest, staged_import
    from .services.imports import dataset_import

    job = job_start(job_id=job_id)
    if job is None:
        return "gone"
    request = ImportRequest(domain=domain, val_count=val_count, archive=archive, folder=folder)
    try:
        job_progress(job_id=job_id, phase="unpack" if archive else "scan", progress=0,
                     message=f"reading {request.describe()}")
        with staged_import(request) as path:
            report = dataset_import(project=job.project, path=path, domain=domain, val_count=val_count,
                                    progress=_progress(job_id, "import", "imported"))
    except _Cancelled:
        job_log(job_id=job_id, line="cancelled on request; the files imported so far stay")
        job_mark_cancelled(job_id=job_id)
        return "cancelled"
    except ServiceError as exc:
        job_fail(job_id=job_id, error=str(exc))
        return "failed"
    except Exception as exc:  # noqa: BLE001 - any crash must end the job, with its traceback in the log
        job_fail(job_id=job_id, error=exc)
        raise
    lines = [f"skipped  {name}: {reason}" for name, reason in report.skipped]
    lines += [f"rejected {name}: {reason}" for name, reason in report.rejected]
    job_log(job_id=job_id, line="\n".join([report.summary(), *lines]))
    job_succeed(job_id=job_id, message=report.summary())
    return report.summary()


@shared_task(name="annotator.export_dataset")
def export_dataset(*, job_id: int, fmt: str, include_imported: bool = True) -> str:
    from .services.exports import export_coco, export_masks, export_path, exports_prune

    job = job_start(job_id=job_id)
    if job is None:
        return "gone"
    writer = {"masks": export_masks, "coco": export_coco}[fmt]
    try:
        report = writer(project=job.project, dest=export_path(job=job, fmt=fmt), include_imported=include_imported,
                        progress=_progress(job_id, "export", "wrote"))
    except _Cancelled:
        job_mark_cancelled(job_id=job_id)
        return "cancelled"
    except ServiceError as exc:
        job_fail(job_id=job_id, error=str(exc))
        return "failed"
    except Exception as exc:  # noqa: BLE001
        job_fail(job_id=job_id, error=exc)
        raise
    for name, reason in report.skipped:
        job_log(job_id=job_id, line=f"skipped {name}: {reason}")
    job_succeed(job_id=job_id, message=f"{fmt}: {report.summary()}")
    removed = exports_prune(project=job.project)
    if removed:
        job_log(job_id=job_id, line=f"removed the files of {removed} older export(s) (MASKLOOP_EXPORTS_KEEP)")
    return report.summary()

