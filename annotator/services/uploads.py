"""Images (and optional masks) uploaded from the browser, a few files per request.

Each file is checked and stored by the import code (``image_import_bytes``):
the same decoding, size limits, safe names and de-duplication by checksum as
a zip or folder import, answered per file. A bad file is reported and never
stops the others; the page sends the next batch either way, so a batch of
hundreds of files never hits a request timeout.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from ..imaging import IMAGE_SUFFIXES, InvalidImage
from ..models import Image, Project
from .errors import ServiceError
from .imports import file_name_safe, file_size_check, image_import_bytes
from .projects import project_refuse_if_archived

# Files (images and masks together) one request may carry; the page sends 8 images (+ masks) at a time.
UPLOAD_MAX_FILES = 64

# What an upload may become. Target images go to the pool, or (before the start, with masks) to validation;
# source images are labeled training data, so they need masks.
UPLOAD_SPLITS = {
    Image.Domain.TARGET: (Image.Split.POOL, Image.Split.VAL),
    Image.Domain.SOURCE: (Image.Split.TRAIN,),
}


@dataclass(frozen=True)
class UploadResult:
    """What became of one uploaded file: ``imported``, ``skipped`` (already in the project) or ``rejected``."""

    name: str
    state: str
    detail: str = ""
    image_id: int | None = None
    mask: str = ""


def upload_split_check(*, project: Project, domain: str, split: str) -> None:
    """Refuse a whole upload whose destination the project's rules forbid (the same as the imports')."""
    project_refuse_if_archived(project)
    if domain not in UPLOAD_SPLITS:
        raise ServiceError(f"domain must be one of {list(UPLOAD_SPLITS)}, not {domain!r}")
    if split not in UPLOAD_SPLITS[domain]:
        raise ServiceError(f"{domain} images may be uploaded to {list(UPLOAD_SPLITS[domain])}, not {split!r}")
    if split == Image.Split.VAL and project.has_started:
        raise ServiceError("the validation split is frozen once the project has started; upload to the pool")


def _stem(name: str) -> str:
    return PurePosixPath(file_name_safe(name)).stem


def image_upload(*, project: Project, file: UploadedFile, domain: str, split: str,
                 mask: UploadedFile | None = None, num_classes: int | None = None) -> UploadResult:
    """Import one uploaded image (and its index mask) into ``split``; never raises for a bad file."""
    name = file_name_safe(file.name or "image")
    mask_name = file_name_safe(mask.name or "mask") if mask is not None else ""
    if num_classes is None:
        num_classes = project.classes.count()
    try:
        if PurePosixPath(name).suffix.lower() not in IMAGE_SUFFIXES:
            raise InvalidImage(f"not an image file (expected one of {', '.join(IMAGE_SUFFIXES)})")
        file_size_check(name, file.size)
        if mask is not None:
            file_size_check(mask_name, mask.size)
            if num_classes == 0:
                raise InvalidImage("the project has no classes yet: define them before uploading masks")
        outcome = image_import_bytes(
            project=project, name=name, data=file.read(), suffix=PurePosixPath(name).suffix,
            mask_data=mask.read() if mask is not None else None, mask_name=mask_name,
            domain=domain, split=split, num_classes=num_classes, max_pixels=settings.MASKLOOP_MAX_IMAGE_PIXELS,
        )
    except InvalidImage as exc:
        return UploadResult(name=name, state="rejected", detail=str(exc), mask=mask_name)
    if isinstance(outcome, str):
        return UploadResult(name=name, state="skipped", detail=outcome, mask=mask_name)
    return UploadResult(name=name, state="imported", image_id=outcome.pk, mask=mask_name)


def upload_batch(*, project: Project, files: Sequence[UploadedFile], masks: Sequence[UploadedFile] = (),
                 domain: str, split: str | None = None) -> list[UploadResult]:
    """Import a request's images, each with the mask of the same file stem when one was sent along.

    A mask whose stem matches no image of the request is reported as rejected.
    """
    split = split or (Image.Split.TRAIN if domain == Image.Domain.SOURCE else Image.Split.POOL)
    upload_split_check(project=project, domain=domain, split=split)
    if not files:
        raise ServiceError("send at least one image file")
    if len(files) + len(masks) > UPLOAD_MAX_FILES:
        raise ServiceError(f"send at most {UPLOAD_MAX_FILES} files per request (images and masks together)")
    by_stem = {_stem(mask.name or ""): mask for mask in masks}
    num_classes = project.classes.count()
    results = [image_upload(project=project, file=file, mask=by_stem.get(_stem(file.name or "")), domain=domain,
                            split=split, num_classes=num_classes) for file in files]
    stems = {_stem(file.name or "") for file in files}
    results += [UploadResult(name=file_name_safe(mask.name or "mask"), state="rejected",
                             detail="no image with this file name (without extension) was sent with this mask")
                for stem, mask in by_stem.items() if stem not in stems]
    return results
