"""Images after import: the frozen validation split, and imports started from the web (zip or server folder).

Validation images are what makes round-to-round mIoU comparable: once the
project has started they are frozen. They never enter training or selection
(the round loop reads only ``train``/``pool`` images for those), and no image
moves into or out of ``val`` any more, so every model is measured on the same
pixels and no label ever leaks from the evaluation set into training.
"""
from __future__ import annotations

import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.storage import default_storage
from django.db import transaction

from ..imaging import IMAGE_SUFFIXES
from ..models import Image, Job, Project
from .errors import ServiceError
from .jobs import job_create, job_enqueue

# Splits a lead may move an image between before the start; "train" is what
# labeled source images are, "test" is never touched by the loop.
MOVABLE_SPLITS = (Image.Split.POOL, Image.Split.VAL, Image.Split.TEST, Image.Split.TRAIN)

COPY_CHUNK = 1024**2
# The compression-ratio guard waits until a member has unpacked this much: small
# files (classes.json, a flat mask) may compress very well, a bomb is large.
RATIO_CHECKED_AFTER = 8 * 1024**2


@dataclass(frozen=True)
class ArchiveLimits:
    """How much an import archive may unpack to (config/settings.py, MASKLOOP_IMPORT_*)."""

    file_bytes: int
    total_bytes: int
    ratio: int
    files: int

    @classmethod
    def from_settings(cls) -> ArchiveLimits:
        return cls(file_bytes=settings.MASKLOOP_IMPORT_MAX_FILE_BYTES, total_bytes=settings.MASKLOOP_MAX_IMPORT_BYTES,
                   ratio=settings.MASKLOOP_IMPORT_MAX_RATIO, files=settings.MASKLOOP_IMPORT_MAX_FILES)

    def refuse_file(self, name: str, size: int) -> None:
        if size > self.file_bytes:
            raise ServiceError(f"{name} unpacks to more than {size_text(self.file_bytes)} "
                               "(MASKLOOP_IMPORT_MAX_FILE_BYTES): the archive is refused")

    def refuse_total(self, name: str, size: int) -> None:
        if size > self.total_bytes:
            raise ServiceError(f"the archive unpacks to more than {size_text(self.total_bytes)} by {name} "
                               "(MASKLOOP_MAX_IMPORT_BYTES): the archive is refused")


def size_text(size: int) -> str:
    """A byte count as people read limits: "256 MiB", or bytes below one MiB."""
    return f"{size / 2**20:,.0f} MiB" if size >= 2**20 else f"{size:,} bytes"


@transaction.atomic
def image_set_split(*, project: Project, images: Iterable[Image] | Iterable[int], split: str) -> int:
    """Move images between splits before the project starts; returns how many changed.

    Validation images need ground truth, and an image a round has already asked
    about (or someone labeled) can never become a validation image: its label
    would be in training.
    """
    if split not in MOVABLE_SPLITS:
        raise ServiceError(f"split must be one of {list(MOVABLE_SPLITS)}, not {split!r}")
    project = Project.objects.select_for_update().get(pk=project.pk)
    if project.has_started:
        raise ServiceError("the splits are frozen once the project has started: validation must stay comparable")
    ids = [image if isinstance(image, int) else image.pk for image in images]
    rows = list(Image.objects.filter(project=project, pk__in=ids))
    if len(rows) != len(set(ids)):
        raise ServiceError("some images are not in this project")
    for image in rows:
        if split == Image.Split.VAL and not image.gt_mask:
            raise ServiceError(f"{image.original_name} has no ground-truth mask: it cannot be a validation image")
        if split == Image.Split.VAL and (image.annotations.exists() or image.queries.exists()):
            raise ServiceError(f"{image.original_name} has labels from annotators: it cannot be a validation image")
        if split == Image.Split.TRAIN and not image.gt_mask:
            raise ServiceError(f"{image.original_name} has no mask: only labeled images can be training images")
        if split == Image.Split.POOL and image.domain != Image.Domain.TARGET:
            raise ServiceError(f"{image.original_name} is a source image: the pool holds target images only")
    changed = [image.pk for image in rows if image.split != split]
    Image.objects.filter(pk__in=changed).update(split=split)
    return len(changed)


def import_roots() -> list[Path]:
    """Server folders a (non-staff) lead may import from; staff may import from anywhere."""
    default = [str(Path(settings.VAR_DIR) / "imports")]
    return [Path(p).resolve() for p in getattr(settings, "MASKLOOP_IMPORT_ROOTS", default)]


def import_folder_check(*, path: str, user: AbstractBaseUser) -> Path:
    folder = Path(path).expanduser()
    if not folder.is_absolute():
        raise ServiceError("give the folder as an absolute path on the server")
    folder = folder.resolve()
    if not user.is_staff and not any(folder.is_relative_to(root) for root in import_roots()):
        roots = ", ".join(str(root) for root in import_roots())
        raise ServiceError(f"leads may import from folders under {roots} (MASKLOOP_IMPORT_ROOTS); ask an admin")
    if not folder.is_dir():
        raise ServiceError(f"{folder} is not a folder on the server")
    return folder


@dataclass(frozen=True)
class ImportRequest:
    """What an import job works on: an uploaded archive (storage name) or a server folder."""

    domain: str
    val_count: int = 0
    archive: str = ""
    folder: str = ""

    def describe(self) -> str:
        return PurePosixPath(self.archive).name if self.archive else self.folder


@transaction.atomic
def image_import_start(
    *, project: Project, user: AbstractBaseUser, domain: str, val_count: int = 0, upload=None, folder: str = ""
) -> Job:
    """Start an import job from an uploaded zip (``upload``: a Django File) or a server folder."""
    from ..tasks import import_dataset

    from .projects import project_refuse_if_archived

    project_refuse_if_archived(project)
    if domain not in Image.Domain.values:
        raise ServiceError(f"domain must be one of {Image.Domain.values}, not {domain!r}")
    if (upload is None) == (not folder):
        raise ServiceError("give either a zip file or a server folder")
    if val_count < 0:
        raise ServiceError("the number of validation images cannot be negative")
    if val_count and domain != Image.Domain.TARGET:
        raise ServiceError("validation images come from the target domain")
    if val_count and project.has_started:
        raise ServiceError("the validation split is frozen once the project has started")
    if upload is not None:
        if not zipfile.is_zipfile(upload):
            raise ServiceError(f"{upload.name} is not a zip archive")
        upload.seek(0)
        try:  # refuse what the archive's directory already gives away, before storing it
            with zipfile.ZipFile(upload) as bundle:
                _archive_members(bundle, ArchiveLimits.from_settings())
        except zipfile.BadZipFile as exc:
            raise ServiceError(f"{upload.name} is not a readable zip archive ({exc})") from exc
        upload.seek(0)
        archive = default_storage.save(f"uploads/project-{project.pk}/{PurePosixPath(upload.name).name}", upload)
        request = ImportRequest(domain=domain, val_count=val_count, archive=archive)
    else:
        request = ImportRequest(domain=domain, val_count=val_count,
                                folder=str(import_folder_check(path=folder, user=user)))
    try:
        job = job_create(kind=Job.Kind.IMPORT, project=project,
                         message=f"import {domain} images from {request.describe()}")
        job_enqueue(job=job, task=import_dataset, domain=request.domain, val_count=request.val_count,
                    archive=request.archive, folder=request.folder,
                    on_unsent=(lambda: default_storage.delete(request.archive)) if request.archive else None)
    except BaseException:
        if request.archive:
            default_storage.delete(request.archive)  # no job will ever unpack it
        raise
    return job


def _member_path(member: zipfile.ZipInfo) -> PurePosixPath | None:
    """Where a member unpacks, relative to the archive folder; None for macOS metadata.

    Backslashes count as separators (Windows tools write them), and a member
    that would land outside the folder refuses the whole archive (zip slip).
    """
    name = PurePosixPath(member.filename.replace("\\", "/"))
    if name.is_absolute() or ".." in name.parts or (name.parts and name.parts[0].endswith(":")):
        raise ServiceError(f"the archive member {member.filename!r} points outside the archive (an absolute path "
                           "or '..'): the archive is refused")
    return None if "__MACOSX" in name.parts or not name.parts else name


def _archive_members(bundle: zipfile.ZipFile, limits: ArchiveLimits) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """The files to unpack, checked against the sizes the archive declares (cheap; unpacking counts again)."""
    members = [m for m in bundle.infolist() if not m.is_dir()]
    if len(members) > limits.files:
        raise ServiceError(f"the archive holds {len(members)} files, more than {limits.files} "
                           "(MASKLOOP_IMPORT_MAX_FILES)")
    declared = 0
    for member in members:
        limits.refuse_file(member.filename, member.file_size)
        declared += member.file_size
        limits.refuse_total(member.filename, declared)
    return [(member, path) for member in members if (path := _member_path(member)) is not None]


def _copy_counted(source: BinaryIO, out: BinaryIO, member: zipfile.ZipInfo, limits: ArchiveLimits,
                  unpacked: int) -> int:
    """Copy one member in chunks, counting bytes (the declared size may lie); returns the bytes copied."""
    copied = 0
    while chunk := source.read(COPY_CHUNK):
        copied += len(chunk)
        limits.refuse_file(member.filename, copied)
        limits.refuse_total(member.filename, unpacked + copied)
        if copied > RATIO_CHECKED_AFTER and copied > limits.ratio * max(member.compress_size, 1):
            raise ServiceError(f"{member.filename} expands more than {limits.ratio} times its compressed size "
                               "(MASKLOOP_IMPORT_MAX_RATIO): the archive is refused as a zip bomb")
        out.write(chunk)
    return copied


def archive_extract(archive: Path, dest: Path) -> Path:
    """Unpack a zip safely and return the dataset folder in it.

    Members are streamed to disk in chunks and counted while they unpack, so
    an archive that lies about its sizes still stops at the limits
    (:class:`ArchiveLimits`); a member outside ``dest`` refuses the archive.
    The dataset folder is the first folder, top down, that holds ``images/``
    or image files, so both ``images/…`` and ``mydata/images/…`` zips work.
    """
    limits = ArchiveLimits.from_settings()
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    unpacked = 0
    try:
        with zipfile.ZipFile(archive) as bundle:
            for member, name in _archive_members(bundle, limits):
                target = root / name
                if not target.resolve().is_relative_to(root):
                    raise ServiceError(f"the archive member {member.filename!r} points outside the archive")
                target.parent.mkdir(parents=True, exist_ok=True)
                with bundle.open(member) as source, open(target, "wb") as out:
                    unpacked += _copy_counted(source, out, member, limits, unpacked)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError) as exc:
        # corrupt data (CRC, deflate, cut short), an unsupported method, encryption, a full disk
        raise ServiceError(f"{archive.name} could not be unpacked: {exc}") from exc
    return _dataset_folder(dest)


def _dataset_folder(root: Path) -> Path:
    queue = [root]
    while queue:
        folder = queue.pop(0)
        if (folder / "images").is_dir() or any(
            p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir() if p.is_file()
        ):
            return folder
        queue.extend(sorted(p for p in folder.iterdir() if p.is_dir()))
    raise ServiceError("the archive holds no images (expected images/ and masks/, or image files)")


class staged_import:
    """Context manager: the folder to import for a request.

    An uploaded archive is unpacked into a temp folder; the folder and the
    upload are deleted when the import ends, however it ends (a failed unpack
    included). A server folder the lead pointed to is never touched.
    """

    def __init__(self, request: ImportRequest):
        self.request = request
        self._tmp: Path | None = None

    def __enter__(self) -> Path:
        if not self.request.archive:
            return Path(self.request.folder)
        try:
            self._tmp = Path(tempfile.mkdtemp(prefix="maskloop-import-"))
            # One level down: the dataset folder's parent (where an image-only dataset may keep its
            # classes.json) is then inside the temp folder, never the system's temp directory.
            return archive_extract(Path(default_storage.path(self.request.archive)), self._tmp / "archive")
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def __exit__(self, *exc_info) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
        if self.request.archive:
            default_storage.delete(self.request.archive)
