"""Factories that build real rows with real files, for tests that need a project mid-campaign.

The round loop makes these objects in production; tests of the pages, the API
and the labeling UI build them directly so they can run without training a model.
"""
from __future__ import annotations

import io
from typing import Any

import numpy as np
from django.core.files.base import ContentFile
from PIL import Image as PILImage

from annotator.imaging import encode_png, sha256_bytes
from annotator.models import Annotation, Image, Job, Project, Query, Round, Suggestion
from models_store.models import ModelVersion


def jpeg(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    PILImage.fromarray(array).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def make_image(
    project: Project,
    *,
    name: str | None = None,
    size: tuple[int, int] = (64, 48),
    domain: str = Image.Domain.TARGET,
    split: str = Image.Split.POOL,
    pixels: np.ndarray | None = None,
    gt: np.ndarray | None = None,
    seed: int | None = None,
) -> Image:
    """An image row with a JPEG on disk; ``size`` is (width, height); ``gt`` an optional index mask."""
    width, height = size
    count = project.images.count()
    rng = np.random.default_rng(count if seed is None else seed)
    if pixels is None:
        pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    data = jpeg(pixels)
    image = Image(
        project=project, original_name=name or f"img_{count:04d}.jpg", width=width, height=height,
        checksum=sha256_bytes(data + str(count).encode()), domain=domain, split=split,
    )
    image.file.save(f"{image.checksum[:16]}.jpg", ContentFile(data), save=False)
    if gt is not None:
        image.gt_mask.save(f"{image.checksum[:16]}.png", ContentFile(encode_png(gt.astype(np.uint8))), save=False)
    image.save()
    return image


def make_model_version(project: Project, *, round_: Round | None = None, version: int | None = None,
                       metrics: dict[str, Any] | None = None, **fields) -> ModelVersion:
    version = version or (project.model_versions.count() + 1)
    return ModelVersion.objects.create(
        project=project, round=round_, version=version, path=f"project-{project.pk}/v{version:04d}",
        architecture=project.architecture, classes=list(project.classes.values_list("name", flat=True)),
        metrics=metrics or {}, state=fields.pop("state", ModelVersion.State.PROMOTED), **fields,
    )


def make_round(project: Project, *, number: int | None = None, state: str = Round.State.LABELING,
               model_version: ModelVersion | None = None, **fields) -> Round:
    number = project.rounds.count() if number is None else number
    return Round.objects.create(project=project, number=number, state=state, model_version=model_version, **fields)


def make_query(round_: Round, image: Image, *, region: np.ndarray | None = None, score: float = 0.5,
               priority: int | None = None, **fields) -> Query:
    """A whole-image query, or a region query when ``region`` (bool H×W) is given."""
    query = Query(
        round=round_, image=image, score=score,
        priority=round_.queries.count() if priority is None else priority,
        pixels=int(region.sum()) if region is not None else image.pixels, **fields,
    )
    if region is not None:
        ys, xs = np.nonzero(region)
        query.region_key = f"r{round_.queries.filter(image=image).count()}"
        query.region_bbox = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
        query.region_mask.save(f"q{round_.pk}_{image.pk}_{query.region_key}.png",
                               ContentFile(encode_png(region.astype(np.uint8) * 255)), save=False)
    query.save()
    return query


def make_suggestion(query: Query, mask: np.ndarray, confidence: np.ndarray, *,
                    model_version: ModelVersion | None = None, precision: float | None = None) -> Suggestion:
    """``mask``: uint8 class ids with 255 = not suggested; ``confidence``: float in [0, 1]."""
    model_version = model_version or query.round.model_version or make_model_version(query.round.project)
    suggestion = Suggestion(
        query=query, model_version=model_version, precision=precision,
        coverage=float((mask != 255).mean()),
    )
    stem = f"s{query.pk}_m{model_version.pk}"
    suggestion.mask.save(f"{stem}_mask.png", ContentFile(encode_png(mask.astype(np.uint8))), save=False)
    suggestion.confidence.save(
        f"{stem}_conf.png", ContentFile(encode_png(np.clip(confidence * 255, 0, 255).astype(np.uint8))), save=False
    )
    suggestion.save()
    return suggestion


def make_annotation(query: Query, mask: np.ndarray, *, author=None, submitted: bool = True,
                    time_spent: float = 30.0) -> Annotation:
    image = query.image
    version = (image.annotations.order_by("-version").values_list("version", flat=True).first() or 0) + 1
    data = encode_png(mask.astype(np.uint8))
    annotation = Annotation(
        image=image, query=query, version=version, author=author, time_spent_seconds=time_spent,
        is_submitted=submitted, labeled_pixels=int((mask != 255).sum()), mask_checksum=sha256_bytes(data),
        parent=image.annotations.order_by("-version").first(),
    )
    annotation.mask.save(f"a{image.pk}_v{version}.png", ContentFile(data), save=False)
    annotation.save()
    return annotation


def make_job(project: Project, *, kind: str = Job.Kind.ROUND, state: str = Job.State.SUCCEEDED, **fields) -> Job:
    return Job.objects.create(project=project, kind=kind, state=state, **fields)


def add_rows(project: Project, users: dict, *, images: int, start: int = 0, rounds: int = 3,
             queries_per_round: int = 150) -> None:
    """Bulk rows for a project at scale (no files: for pages and lists that read none): ``images`` pool images
    (plus one validation image in 40), ``rounds`` rounds with queries, answers, suggestions and jobs.

    ``users``: "annotator" answers. The query-count tests and ``benchmarks/scale_db.py`` build their large
    projects with it."""
    rows = [Image(project=project, file=f"images/{start + i:06d}.jpg", original_name=f"frame_{start + i:06d}.jpg",
                  width=64, height=48, checksum=f"{start + i:064x}", domain=Image.Domain.TARGET,
                  split=Image.Split.POOL) for i in range(images)]
    rows += [Image(project=project, file=f"images/v{start + i:06d}.jpg", original_name=f"val_{start + i:06d}.jpg",
                   width=64, height=48, checksum=f"v{start + i:063x}", domain=Image.Domain.TARGET,
                   split=Image.Split.VAL, gt_mask=f"masks/v{start + i}.png") for i in range(images // 40)]
    Image.objects.bulk_create(rows)
    pool = list(project.images.filter(split=Image.Split.POOL).order_by("-pk")[:images])
    first = project.rounds.count()
    for r in range(rounds):
        number = first + r
        version = make_model_version(project, metrics={"miou": 0.3 + 0.01 * number})
        round_ = make_round(project, number=number, model_version=version,
                            state=Round.State.LABELING if r == rounds - 1 else Round.State.CLOSED)
        chosen = pool[r * queries_per_round:(r + 1) * queries_per_round]
        queries = Query.objects.bulk_create([
            Query(round=round_, image=image, score=0.5, priority=i, pixels=image.pixels,
                  status=Query.Status.SUBMITTED if i % 2 else Query.Status.PENDING,
                  assignee=users["annotator"] if i % 2 else None)
            for i, image in enumerate(chosen)])
        queries = list(round_.queries.order_by("pk"))
        Suggestion.objects.bulk_create([
            Suggestion(query=q, model_version=version, coverage=0.5, precision=0.9,
                       mask=f"suggestions/{q.pk}.png", confidence=f"suggestions/{q.pk}c.png") for q in queries])
        Annotation.objects.bulk_create([
            Annotation(image=q.image, query=q, version=1, author=users["annotator"], time_spent_seconds=20.0,
                       is_submitted=True, labeled_pixels=q.pixels, mask_checksum=f"{q.pk:064x}",
                       mask=f"annotations/{q.pk}.png")
            for q in queries if q.status == Query.Status.SUBMITTED])
        Job.objects.bulk_create([Job(project=project, round=round_, kind=Job.Kind.ROUND, state=Job.State.SUCCEEDED)
                                 for _ in range(3)])
