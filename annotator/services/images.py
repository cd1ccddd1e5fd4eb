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
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

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

MAX_ARCHIVE_MEMBERS = 200_000


def _max_archive_bytes() -> int:
    return int(getattr(settings, "MASKLOOP_MAX_IMPORT_BYTES", 20 * 1024**3))


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
    if project.state != Project.State.DRAFT or project.rounds.exists():
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

    if domain not in Image.Domain.values:
        raise ServiceError(f"domain must be one of {Image.Domain.values}, not {domain!r}")
    if (upload is None) == (not folder):
        raise ServiceError("give either a zip file or a server folder")
    if val_count < 0:
        raise ServiceError("the number of validation images cannot be negative")
    if val_count and domain != Image.Domain.TARGET:
        raise ServiceError("validation images come from the target domain")
    if val_count and (project.state != Project.State.DRAFT or project.rounds.exists()):
        raise ServiceError("the validation split is frozen once the project has started")
    if upload is not None:
        if not zipfile.is_zipfile(upload):
            raise ServiceError(f"{upload.name} is not a zip archive")
        upload.seek(0)
        archive = default_storage.save(f"uploads/project-{project.pk}/{PurePosixPath(upload.name).name}", upload)
        request = ImportRequest(domain=domain, val_count=val_count, archive=archive)
    else:
        request = ImportRequest(domain=domain, val_count=val_count,
                                folder=str(import_folder_check(path=folder, user=user)))
    job = job_create(kind=Job.Kind.IMPORT, project=project, message=f"import {domain} images from {request.describe()}")
    job_enqueue(job=job, task=import_dataset, domain=request.domain, val_count=request.val_count,
                archive=request.archive, folder=request.folder)
    return job


def archive_extract(archive: Path, dest: Path) -> Path:
    """Unpack a zip safely (no paths outside ``dest``, bounded size) and return the dataset folder in it.

    The dataset folder is the first folder, top down, that holds ``images/`` or
    image files, so both ``images/…`` and ``mydata/images/…`` zips work.
    """
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(archive) as bundle:
            members = [m for m in bundle.infolist() if not m.is_dir()]
            if len(members) > MAX_ARCHIVE_MEMBERS:
                raise ServiceError(f"the archive holds {len(members)} files, more than {MAX_ARCHIVE_MEMBERS}")
            if sum(m.file_size for m in members) > _max_archive_bytes():
                raise ServiceError(f"the archive unpacks to more than {_max_archive_bytes() / 1e9:.0f} GB")
            root = dest.resolve()
            for member in members:
                name = PurePosixPath(member.filename)
                if name.is_absolute() or ".." in name.parts or "__MACOSX" in name.parts:
                    continue
                target = (root / name).resolve()
                if not target.is_relative_to(root):
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with bundle.open(member) as source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out)
    except zipfile.BadZipFile as exc:
        raise ServiceError(f"{archive.name} is not a readable zip archive ({exc})") from exc
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
    """Context manager: the folder to import for a request, cleaned up afterwards (uploads included)."""

    def __init__(self, request: ImportRequest):
        self.request = request
        self._tmp: Path | None = None

    def __enter__(self) -> Path:
        if not self.request.archive:
            return Path(self.request.folder)
        self._tmp = Path(tempfile.mkdtemp(prefix="maskloop-import-"))
        return archive_extract(Path(default_storage.path(self.request.archive)), self._tmp)

    def __exit__(self, *exc_info) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
        if self.request.archive:
            default_storage.delete(self.request.archive)
