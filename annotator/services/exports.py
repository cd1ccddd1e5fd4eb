"""Exports: index-PNG masks in the import layout, COCO JSON with RLE, and model checkpoints.

Every label an export writes is the image's latest *submitted* annotation (a
human's) that the project lets train (``round_data.trainable_labels``: never a
rejected one, and only checked ones with "accepted only"), or the ground truth
that came with the import when no one labeled it. Drafts never leave the app. File names are the original ones, so an
exported mask maps back to its source image (what Label Studio users miss).

The masks zip re-imports with ``import_dataset``::

    classes.json                     {"classes": [{id, name, color, hotkey}], "ignore_index": 255}
    manifest.json                    per image: domain, split, where its mask came from
    source/images/<original name>    target/images/<original name>
    source/masks/<stem>.png          target/masks/<stem>.png   (mode L, 255 = void)

The colour zip ("voc") has the same layout, its masks Pascal VOC style palette
PNGs (mode P): every pixel's value is still its class id, 255 = void, and the
palette gives each id the project's class colour, void VOC's own #e0e0c0
(unused entries black). So the masks open in colour in any image viewer,
read as index masks with Pillow (``np.asarray(Image.open(f))``) or the VOC
tools, and re-import as they are.
"""
from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
from django.conf import settings
from django.db.models import OuterRef, Subquery
from django.utils import timezone
from django.utils.text import slugify
from PIL import Image as PILImage

from learning.labels import IGNORE_INDEX

from ..models import Annotation, Image, Job, Project
from .errors import ServiceError
from .imports import file_name_safe

Progress = Callable[[int, int], None]

# Pascal VOC's colour of its void / boundary label 255.
VOC_VOID_COLOR = (224, 224, 192)


@dataclass(frozen=True)
class LabeledImage:
    """One image with the mask an export writes for it."""

    image: Image
    mask_name: str  # storage name of the PNG
    origin: str  # "annotation" or "import"
    annotation_version: int | None = None
    author: str | None = None

    @property
    def folder(self) -> str:
        return self.image.domain

    @property
    def file_name(self) -> PurePosixPath:
        """The original name made safe (rows from before imports sanitised names may hold ``..\\x.png``),
        with ``.png`` when the import converted the file (a TIFF, a rotated photo) to PNG."""
        name = PurePosixPath(file_name_safe(self.image.original_name))
        converted = PurePosixPath(self.image.file.name).suffix.lower() == ".png" and name.suffix.lower() != ".png"
        return name.with_suffix(".png") if converted else name

    @property
    def image_path(self) -> str:
        return f"{self.folder}/images/{self.file_name}"

    @property
    def mask_path(self) -> str:
        return f"{self.folder}/masks/{self.file_name.stem}.png"


@dataclass
class ExportReport:
    path: Path
    images: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        skipped = f", skipped {len(self.skipped)}" if self.skipped else ""
        return f"exported {self.images} labeled images{skipped}"


def labeled_images(*, project: Project, include_imported: bool = True) -> Iterator[LabeledImage]:
    """Each image's final label: the latest submitted annotation that may train, else the imported ground truth."""
    from .round_data import trainable_labels

    latest = (Annotation.objects.filter(image=OuterRef("pk"), is_submitted=True).filter(trainable_labels(project))
              .order_by("-version"))
    images = (
        Image.objects.filter(project=project)
        .annotate(ann_id=Subquery(latest.values("pk")[:1]))
        .order_by("domain", "original_name")
    )
    annotations = Annotation.objects.select_related("author").in_bulk(
        [pk for pk in images.values_list("ann_id", flat=True) if pk is not None]
    )
    for image in images:
        annotation = annotations.get(image.ann_id)
        if annotation is not None:
            yield LabeledImage(image, annotation.mask.name, "annotation", annotation.version,
                               annotation.author.get_username() if annotation.author else None)
        elif include_imported and image.gt_mask:
            yield LabeledImage(image, image.gt_mask.name, "import")


def classes_document(project: Project) -> dict:
    return {
        "classes": [
            {"id": c.index, "name": c.name, "color": c.color, "hotkey": c.hotkey} for c in project.classes.all()
        ],
        "ignore_index": IGNORE_INDEX,
    }


def _read_storage(name: str) -> bytes:
    from django.core.files.storage import default_storage

    with default_storage.open(name, "rb") as handle:
        return handle.read()


def project_slug(project: Project) -> str:
    """A download's file name start: ``Demo: streets, day → dusk`` → ``demo-streets-day-dusk``."""
    return slugify(re.sub(r"[\W_]+", " ", project.name)) or f"project-{project.pk}"


def colour_palette(project: Project) -> list[int]:
    """A 256-entry PNG palette: class id → the class's colour, 255 → VOC's void colour, the rest black."""
    palette = [0] * (3 * 256)
    for index, color in project.classes.values_list("index", "color"):
        palette[3 * index:3 * index + 3] = [int(color[i:i + 2], 16) for i in (1, 3, 5)]
    palette[3 * IGNORE_INDEX:] = VOC_VOID_COLOR
    return palette


def colour_mask_png(mask: bytes, palette: list[int]) -> bytes:
    """An index mask PNG as a palette PNG with the same values (see the module docstring)."""
    image = PILImage.open(io.BytesIO(mask))
    indices = PILImage.fromarray(np.asarray(image if image.mode in ("L", "P") else image.convert("L")), mode="L")
    indices.putpalette(palette)  # L → P: the values stay, the palette colours them
    buffer = io.BytesIO()
    indices.save(buffer, format="PNG")
    return buffer.getvalue()


def export_voc(*, project: Project, dest: Path, include_images: bool = True, include_imported: bool = True,
               progress: Progress | None = None) -> ExportReport:
    """The masks zip with colour (palette) PNGs, Pascal VOC style (see the module docstring)."""
    return export_masks(project=project, dest=dest, include_images=include_images,
                        include_imported=include_imported, progress=progress, palette=colour_palette(project))


def export_masks(*, project: Project, dest: Path, include_images: bool = True, include_imported: bool = True,
                 progress: Progress | None = None, palette: list[int] | None = None) -> ExportReport:
    """Write the masks zip (see the module docstring) to ``dest``; with a ``palette``, the colour zip."""
    items = list(labeled_images(project=project, include_imported=include_imported))
    report = ExportReport(path=Path(dest))
    manifest, seen = [], set()
    tmp = Path(dest).with_name(f".{Path(dest).name}.part")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=3) as bundle:
        bundle.writestr("classes.json", json.dumps(classes_document(project), indent=2))
        for position, item in enumerate(items, start=1):
            if item.mask_path in seen:
                report.skipped.append((item.image.original_name, f"another image already wrote {item.mask_path}"))
                continue
            seen.add(item.mask_path)
            # PNG and JPEG are compressed already: store them, do not deflate again.
            mask = _read_storage(item.mask_name)
            bundle.writestr(item.mask_path, mask if palette is None else colour_mask_png(mask, palette),
                            compress_type=zipfile.ZIP_STORED)
            if include_images:
                bundle.writestr(item.image_path, _read_storage(item.image.file.name),
                                compress_type=zipfile.ZIP_STORED)
            manifest.append({
                "image": item.image_path, "mask": item.mask_path, "domain": item.image.domain,
                "split": item.image.split, "width": item.image.width, "height": item.image.height,
                "origin": item.origin, "annotation_version": item.annotation_version, "author": item.author,
            })
            report.images += 1
            if progress:
                progress(position, len(items))
        bundle.writestr("manifest.json", json.dumps({
            "project": project.name, "exported_at": timezone.now().isoformat(), "images": manifest,
            "skipped": [{"image": name, "reason": reason} for name, reason in report.skipped],
        }, indent=2))
    tmp.replace(dest)
    return report


def _rle_encode(binary: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils  # a runtime requirement of the COCO export

    rle = mask_utils.encode(np.asfortranarray(binary.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def coco_document(*, project: Project, include_imported: bool = True, progress: Progress | None = None) -> dict:
    """COCO with one RLE annotation per (image, class present); category id = class index + 1.

    Decoding every annotation of an image and painting its category's index
    over a 255 background gives back the exported index mask exactly (a pixel
    has one class, so the RLEs of an image never overlap).
    """
    from pycocotools import mask as mask_utils

    classes = list(project.classes.all())
    items = list(labeled_images(project=project, include_imported=include_imported))
    images, annotations = [], []
    for position, item in enumerate(items, start=1):
        image_id = item.image.pk
        images.append({
            "id": image_id, "file_name": item.image_path, "width": item.image.width, "height": item.image.height,
            "maskloop": {"domain": item.image.domain, "split": item.image.split, "origin": item.origin,
                         "annotation_version": item.annotation_version},
        })
        mask = np.asarray(PILImage.open(io.BytesIO(_read_storage(item.mask_name))))
        if mask.shape != (item.image.height, item.image.width):
            raise ServiceError(f"{item.image.original_name}: the mask is {mask.shape[::-1]}, the image is "
                               f"{(item.image.width, item.image.height)}")
        for index in np.unique(mask):
            if index == IGNORE_INDEX:
                continue
            rle = _rle_encode(mask == index)
            compressed = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": int(index) + 1,
                "segmentation": rle, "area": int(mask_utils.area(compressed)),
                "bbox": [float(v) for v in mask_utils.toBbox(compressed)], "iscrowd": 0,
            })
        if progress:
            progress(position, len(items))
    return {
        "info": {"description": f"maskloop export of {project.name}", "date_created": timezone.now().isoformat(),
                 "version": "1.0"},
        "licenses": [],
        "categories": [{"id": c.index + 1, "name": c.name, "supercategory": "", "color": c.color,
                        "maskloop_index": c.index} for c in classes],
        "images": images,
        "annotations": annotations,
    }


def export_coco(*, project: Project, dest: Path, include_imported: bool = True,
                progress: Progress | None = None) -> ExportReport:
    document = coco_document(project=project, include_imported=include_imported, progress=progress)
    tmp = Path(dest).with_name(f".{Path(dest).name}.part")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(json.dumps(document))
    tmp.replace(dest)
    return ExportReport(path=Path(dest), images=len(document["images"]))


@dataclass(frozen=True)
class ExportFormat:
    label: str  # what the export form offers
    suffix: str  # of the file
    write: Callable[..., ExportReport]  # (project=, dest=, include_imported=, progress=)


EXPORT_FORMATS = {
    "masks": ExportFormat("Masks (zip of index PNGs)", "zip", export_masks),
    "voc": ExportFormat("Colour masks (zip of Pascal VOC palette PNGs)", "zip", export_voc),
    "coco": ExportFormat("COCO JSON (RLE)", "json", export_coco),
}


def model_checkpoint_dir(model_version) -> Path:
    """The checkpoint folder of a model to download, after checking its files are whole (never serve a corrupt one)."""
    from learning.checkpoint import CheckpointError, verify_checkpoint
    from models_store.storage import StoreError, version_dir

    try:
        folder = version_dir(model_version, must_exist=True)
        verify_checkpoint(folder)
    except (StoreError, CheckpointError) as error:
        raise ServiceError(f"model v{model_version.version} cannot be downloaded: {error}") from error
    return folder


def model_metadata(model_version) -> dict:
    project = model_version.project
    return {
        "project": project.name,
        "version": model_version.version,
        "round": model_version.round.number if model_version.round else None,
        "architecture": model_version.architecture,
        "classes": model_version.classes,
        "class_colors": {c.name: c.color for c in project.classes.all()},
        "ignore_index": IGNORE_INDEX,
        "metrics": model_version.metrics,
        "train_config": model_version.train_config,
        "labeled_target_pixels": model_version.labeled_target_pixels,
        "state": model_version.state,
        "created_at": model_version.created_at.isoformat(),
        "parent_version": model_version.parent.version if model_version.parent else None,
    }


def export_model(*, model_version, dest) -> None:
    """Zip the checkpoint directory (weights + meta.json, as written) under model/, plus maskloop.json.

    ``dest`` is a path or a writable binary file. The weights are stored, not
    deflated: float tensors hardly compress and this keeps a download quick.
    """
    folder = model_checkpoint_dir(model_version)
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_STORED) as bundle:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            bundle.write(path, f"model/{path.relative_to(folder).as_posix()}")
        bundle.writestr("maskloop.json", json.dumps(model_metadata(model_version), indent=2))


def export_path(*, job: Job, fmt: str) -> Path:
    """Where an export job writes its file (under MEDIA_ROOT, served only through the permission-checked API)."""
    folder = Path(settings.MEDIA_ROOT) / "exports" / f"project-{job.project_id}"
    return folder / f"job-{job.pk}-{fmt}.{EXPORT_FORMATS[fmt].suffix}"


def export_file(*, job: Job) -> tuple[Path, str] | None:
    """The finished file of an export job and its format, or None."""
    if job.kind != Job.Kind.EXPORT or job.state != Job.State.SUCCEEDED:
        return None
    for fmt in EXPORT_FORMATS:
        path = export_path(job=job, fmt=fmt)
        if path.is_file():
            return path, fmt
    return None


def exports_prune(*, project: Project, keep: int | None = None) -> int:
    """Delete the files of all but the newest ``keep`` finished exports of ``project``; returns how many.

    Exports are snapshots a lead downloads once; without this they pile up
    under MEDIA_ROOT. A pruned job's download answers 404 like any missing file.
    """
    keep = settings.MASKLOOP_EXPORTS_KEEP if keep is None else keep
    finished = Job.objects.filter(project=project, kind=Job.Kind.EXPORT, state=Job.State.SUCCEEDED).order_by("-pk")
    removed = 0
    for job in finished[max(keep, 0):]:
        found = export_file(job=job)
        if found is not None:
            found[0].unlink(missing_ok=True)
            removed += 1
    return removed


def export_start(*, project: Project, fmt: str, include_imported: bool = True) -> Job:
    """Queue an export job; its file is fetched from the job's download endpoint when it succeeds."""
    from django.db import transaction

    from ..tasks import export_dataset
    from .jobs import job_create, job_enqueue

    if fmt not in EXPORT_FORMATS:
        raise ServiceError(f"format must be one of {sorted(EXPORT_FORMATS)}, not {fmt!r}")
    with transaction.atomic():
        job = job_create(kind=Job.Kind.EXPORT, project=project, message=f"export {fmt}: queued")
        job_enqueue(job=job, task=export_dataset, fmt=fmt, include_imported=include_imported)
    return job
