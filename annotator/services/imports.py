"""Import a folder of images (and optional index masks) into a project, one file at a time.

A bad file is reported and skipped; it never aborts the import and never leaves
a half-created record or an orphaned file.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction

from ..imaging import IMAGE_SUFFIXES, InvalidImage, encode_png, image_for_storage, read_mask, sha256_bytes
from ..models import Image, Project
from .errors import ServiceError
from .images import size_text
from .projects import class_specs_from_json, project_set_classes


@dataclass
class ImportReport:
    imported: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # already there, or not an image (notes.txt)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # an image or mask that cannot be used
    images_found: int = 0

    def summary(self) -> str:
        return f"imported {len(self.imported)}, skipped {len(self.skipped)}, rejected {len(self.rejected)}"

    @property
    def outcome(self) -> str:
        """"failed" when nothing was imported because files were rejected (or there were no images at all),
        "warnings" when some files were rejected beside the imported ones, else "succeeded"."""
        if not self.imported and (self.rejected or not self.images_found):
            return "failed"
        return "warnings" if self.rejected else "succeeded"

    def lines(self) -> list[str]:
        """The report as the job log and the import command print it: the summary, then a line per file."""
        return [self.summary(), *(f"skipped  {name}: {reason}" for name, reason in self.skipped),
                *(f"rejected {name}: {reason}" for name, reason in self.rejected)]


# Letters and digits of any script, and a few harmless marks; anything else becomes "_".
_UNSAFE_NAME_CHARACTERS = re.compile(r"[^\w.\- ()+,@]+")


def file_name_safe(name: str) -> str:
    """The last part of ``name`` (``/`` and ``\\`` both separate), reduced to safe characters.

    What imports store as ``original_name`` and exports write: a name like
    ``..\\..\\x.png`` becomes ``x.png``, never a path, a hidden file or empty.
    """
    base = _UNSAFE_NAME_CHARACTERS.sub("_", re.split(r"[\\/]", name)[-1]).strip(" .")
    if len(base) > 200:
        suffix = PurePosixPath(base).suffix[:20]
        base = base[:200 - len(suffix)] + suffix
    return base or "image"


def _max_file_bytes() -> int:
    return int(settings.MASKLOOP_IMPORT_MAX_FILE_BYTES)


def file_size_check(name: str, size: int) -> None:
    """Refuse a file (before reading it) above MASKLOOP_IMPORT_MAX_FILE_BYTES."""
    if size > _max_file_bytes():
        raise InvalidImage(f"{name} is {size_text(size)}, above the limit of {size_text(_max_file_bytes())} "
                           "per file (MASKLOOP_IMPORT_MAX_FILE_BYTES)")


def _read_capped(path: Path) -> bytes:
    """A file's bytes, refused (before reading) above MASKLOOP_IMPORT_MAX_FILE_BYTES."""
    file_size_check(path.name, path.stat().st_size)
    return path.read_bytes()


@dataclass(frozen=True)
class ImportItem:
    name: str
    image_path: Path
    mask_path: Path | None


@dataclass(frozen=True)
class DatasetLayout:
    items: list[ImportItem]
    classes: Path | None
    stray: list[tuple[str, str]]  # (file, why it is not imported): a notes.txt, a mask without its image, …


NOT_AN_IMAGE = f"not an image file (images are {', '.join(IMAGE_SUFFIXES)}), so it was not imported"


def dataset_layout(path: Path) -> DatasetLayout:
    """Find images (images/ or the folder itself), masks (masks/STEM.png) and classes.json (here or one up).

    Every other file in those folders is listed as stray, with the reason it is not imported, so a
    report never passes over a file without a word.
    """
    path = Path(path)
    if not path.is_dir():
        raise ServiceError(f"{path} is not a folder")
    image_dir = path / "images" if (path / "images").is_dir() else path
    mask_dir = path / "masks" if (path / "masks").is_dir() else None
    classes = next((p for p in (path / "classes.json", path.parent / "classes.json") if p.is_file()), None)
    items, stray = [], []
    for image_path in sorted(image_dir.iterdir()):
        if image_path.is_dir():
            if image_path != mask_dir:
                stray.append((f"{image_path.relative_to(path)}/", "a folder: images are not read from subfolders"))
            continue
        if image_path.suffix.lower() not in IMAGE_SUFFIXES:
            if image_path != classes:
                stray.append((str(image_path.relative_to(path)), NOT_AN_IMAGE))
            continue
        mask_path = mask_dir / f"{image_path.stem}.png" if mask_dir else None
        items.append(ImportItem(file_name_safe(image_path.name), image_path,
                                mask_path if mask_path and mask_path.is_file() else None))
    if image_dir != path:  # the dataset folder itself: images/, masks/, classes.json and nothing else is read
        stray += [(str(p.relative_to(path)) + ("/" if p.is_dir() else ""), "not part of the import layout "
                   "(images/, masks/, classes.json), so it was not imported")
                  for p in sorted(path.iterdir()) if p not in (image_dir, mask_dir, classes)]
    if mask_dir is not None:
        stems = {item.image_path.stem for item in items}
        for mask_path in sorted(mask_dir.iterdir()):
            if mask_path.suffix.lower() != ".png" or mask_path.is_dir():
                stray.append((str(mask_path.relative_to(path)), "masks are single-channel .png files"))
            elif mask_path.stem not in stems:
                stray.append((str(mask_path.relative_to(path)), "no image in images/ has this name, so this "
                                                                 "mask was not imported"))
    return DatasetLayout(items=items, classes=classes, stray=stray)


def _ensure_classes(project: Project, classes_json: Path | None) -> int:
    specs = class_specs_from_json(classes_json) if classes_json else None
    existing = list(project.classes.order_by("index").values_list("name", flat=True))
    if specs is None:
        if not existing:
            raise ServiceError("the project has no classes and the folder has no classes.json")
        return len(existing)
    names = [s.name for s in specs]
    if not existing:
        project_set_classes(project=project, classes=specs)
    elif existing != names:
        raise ServiceError(f"classes.json lists {names}, but the project's classes are {existing}")
    return len(names)


def dataset_import(
    *,
    project: Project,
    path: Path,
    domain: str,
    split: str | None = None,
    val_count: int = 0,
    max_pixels: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Import every image under ``path``.

    Splits: source images with masks go to ``train``; target images to the
    ``pool``, except the last ``val_count`` in name order (frame order for video)
    which become frozen validation images and must carry masks. ``split``
    forces one split for all.
    """
    if domain not in Image.Domain.values:
        raise ServiceError(f"domain must be one of {Image.Domain.values}, not {domain!r}")
    if split is not None and split not in Image.Split.values:
        raise ServiceError(f"split must be one of {Image.Split.values}, not {split!r}")
    max_pixels = max_pixels or settings.MASKLOOP_MAX_IMAGE_PIXELS
    layout = dataset_layout(Path(path))
    items = layout.items
    num_classes = _ensure_classes(project, layout.classes)
    report = ImportReport(skipped=list(layout.stray), images_found=len(items))
    val_names = {item.name for item in items[len(items) - val_count:]} if val_count else set()
    for position, item in enumerate(items):
        item_split = split or (
            Image.Split.VAL if item.name in val_names
            else Image.Split.TRAIN if domain == Image.Domain.SOURCE else Image.Split.POOL
        )
        try:
            outcome = _import_one(project, item, domain, item_split, num_classes, max_pixels)
        except InvalidImage as exc:
            report.rejected.append((item.name, str(exc)))
        else:
            if isinstance(outcome, str):
                report.skipped.append((item.name, outcome))
            else:
                report.imported.append(item.name)
        if progress:
            progress(position + 1, len(items))
    return report


def _import_one(
    project: Project, item: ImportItem, domain: str, split: str, num_classes: int, max_pixels: int
) -> Image | str:
    """Import one file of a folder; see :func:`image_import_bytes`."""
    return image_import_bytes(
        project=project, name=item.name, data=_read_capped(item.image_path), suffix=item.image_path.suffix,
        mask_data=_read_capped(item.mask_path) if item.mask_path is not None else None,
        mask_name=item.mask_path.name if item.mask_path is not None else "",
        domain=domain, split=split, num_classes=num_classes, max_pixels=max_pixels,
    )


def image_import_bytes(
    *, project: Project, name: str, data: bytes, suffix: str, domain: str, split: str, num_classes: int,
    max_pixels: int, mask_data: bytes | None = None, mask_name: str = "",
) -> Image | str:
    """Import one image (and its index mask) from bytes: every import path ends here (folder, zip, browser upload).

    Returns the new Image, or why it was skipped (the same content or name is
    already in the project). Raises InvalidImage for a file that cannot be used.
    """
    image = image_for_storage(data, suffix=suffix, max_pixels=max_pixels)
    mask_bytes = None
    if mask_data is not None:
        try:
            mask = read_mask(mask_data, size=(image.width, image.height), num_classes=num_classes)
        except InvalidImage as exc:
            raise InvalidImage(f"mask {mask_name}: {exc}") from exc
        # Stored as the canonical 8-bit PNG: 1-bit, palette and 16-bit masks read the same everywhere after.
        mask_bytes = encode_png(mask)
    if split == Image.Split.VAL and mask_bytes is None:
        raise InvalidImage("validation images need a ground-truth mask (masks/STEM.png)")
    if split == Image.Split.TRAIN and domain == Image.Domain.SOURCE and mask_bytes is None:
        raise InvalidImage("labeled source images need a mask (masks/STEM.png)")
    checksum = sha256_bytes(image.data)
    if Image.objects.filter(project=project, checksum=checksum).exists():
        return "already imported (same content)"
    if Image.objects.filter(project=project, original_name=name, domain=domain).exists():
        return "a different image with this name is already in the project"
    record = Image(
        project=project, original_name=name, checksum=checksum, domain=domain, split=split,
        width=image.width, height=image.height,
    )
    stored: list = []
    try:
        with transaction.atomic():
            record.file.save(f"{checksum[:16]}{image.suffix}", ContentFile(image.data), save=False)
            stored.append(record.file)
            if mask_bytes is not None:
                record.gt_mask.save(f"{checksum[:16]}.png", ContentFile(mask_bytes), save=False)
                stored.append(record.gt_mask)
            record.save()
    except IntegrityError:
        for file in stored:
            file.storage.delete(file.name)
        if Image.objects.filter(project=project, checksum=checksum).exists():
            return "already imported (by a concurrent import)"
        raise
    except BaseException:
        for file in stored:
            file.storage.delete(file.name)
        raise
    return record
