"""Rows → the plain records one round of the ML core works on (Samples, PoolImages, label masks).

Nothing here writes: the round worker services read a project through these
functions, hand plain records to ``learning`` and store what comes back.
Validation images never enter training or selection.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
from django.db.models import Exists, OuterRef, Q, Subquery

from learning.data import Sample, load_mask
from learning.round_step import PoolImage
from learning.selection.masks import LazyMask

from ..models import Agreement, Annotation, Image, Project, Query, Review


def class_names(project: Project) -> list[str]:
    return list(project.classes.order_by("index").values_list("name", flat=True))


def image_sample(image: Image, mask_path: str | None = None) -> Sample:
    return Sample(image=image.file.path, mask=mask_path, key=f"image-{image.pk}",
                  target=image.domain == Image.Domain.TARGET)


def trainable_labels(project: Project) -> Q:
    """Which submitted versions may train the model (and count as validation labels): the one rule.

    Never: a version a reviewer rejected, or what one annotator of an agreement
    pair submitted (the pair's merge stands for both). Then, by
    ``Project.training_source``: "submitted and not rejected" takes the rest;
    "accepted only" takes a version a reviewer accepted, a reviewer's fix, and
    the merge of a pair that agreed, so nothing unchecked trains.
    """
    from ..selectors_review import paired_raw_versions

    reviews = Review.objects.filter(annotation=OuterRef("pk"))
    allowed = ~Exists(reviews.filter(state=Review.State.REJECTED)) & ~paired_raw_versions()
    if project.training_source == Project.TrainingSource.ACCEPTED:
        agreed = Q(origin=Annotation.Origin.MERGE) & Exists(Agreement.objects.filter(merged=OuterRef("pk"),
                                                                                       passed=True))
        allowed &= (Exists(reviews.filter(state=Review.State.ACCEPTED)) | Q(origin=Annotation.Origin.REVIEW)
                    | agreed)
    return allowed


def latest_labels(project: Project) -> dict[int, Annotation]:
    """The newest submitted annotation of every target image that has one allowed to train (trainable_labels).

    The database picks the newest trainable version of each image (one row
    per labeled image comes back, however many versions a project keeps).
    """
    trainable = Annotation.objects.filter(is_submitted=True).filter(trainable_labels(project))
    newest = trainable.filter(image_id=OuterRef("image_id")).order_by("-version").values("version")[:1]
    rows = trainable.filter(image__project=project, version=Subquery(newest)).order_by("image_id")
    return {annotation.image_id: annotation for annotation in rows}


def pool_images_of(project: Project) -> list[Image]:
    return list(project.images.filter(domain=Image.Domain.TARGET, split=Image.Split.POOL).order_by("pk"))


@dataclass
class RoundData:
    labeled: list[Sample]  # labeled source + human-labeled target (255 outside the labeled pixels)
    unlabeled: list[Sample]  # the target pool (masks = human labels where present, for the DA objectives)
    val: list[Sample]  # frozen validation images with ground truth
    labeled_target_pixels: int
    pool_pixels: int


# Validation labels made in the app count once this many images are labeled: the mIoU of fewer images
# swings by tens of points with one image (a bootstrap over 5 images still spans about ±10).
MIN_VALIDATION_LABELS = 5


def validation_truths(project: Project, labels: dict[int, Annotation] | None = None) -> list[tuple[Image, str]]:
    """Validation images with their ground truth: imported masks, else the app's validation labels.

    App-made labels count only from :data:`MIN_VALIDATION_LABELS` on; below that
    the project has no validation yet (the dashboard says what it waits for).
    """
    images = list(project.images.filter(split=Image.Split.VAL).order_by("pk"))
    imported = [(image, image.gt_mask.path) for image in images if image.gt_mask]
    if imported:
        return imported
    labels = latest_labels(project) if labels is None else labels
    made = [(image, labels[image.pk].mask.path) for image in images if image.pk in labels]
    return made if len(made) >= MIN_VALIDATION_LABELS else []


def has_labels(project: Project) -> bool:
    """Labeled training data exists (source masks, or masks imported with pool images): round 0 can train."""
    return (project.images.filter(domain=Image.Domain.SOURCE).exclude(gt_mask="").exists()
            or project.images.filter(split=Image.Split.POOL).exclude(gt_mask="").exists())


def round_data(project: Project, labels: dict[int, Annotation] | None = None) -> RoundData:
    """What a round trains on and is evaluated on (``labels``: latest_labels, if read already).

    Labeled: source masks, then per pool image its newest submitted label,
    else the mask imported with it. Validation images are never in either list.
    """
    labels = latest_labels(project) if labels is None else labels
    source = project.images.filter(domain=Image.Domain.SOURCE, split=Image.Split.TRAIN).exclude(gt_mask="")
    pool = pool_images_of(project)

    def label_of(image: Image) -> str | None:
        if image.pk in labels:
            return labels[image.pk].mask.path
        return image.gt_mask.path if image.gt_mask else None

    labeled = [image_sample(image, image.gt_mask.path) for image in source.order_by("pk")]
    labeled += [image_sample(image, label_of(image)) for image in pool if label_of(image)]
    unlabeled = [image_sample(image, labels[image.pk].mask.path if image.pk in labels else None) for image in pool]
    return RoundData(
        labeled=labeled, unlabeled=unlabeled,
        val=[image_sample(image, path) for image, path in validation_truths(project, labels)],
        labeled_target_pixels=sum(labels[image.pk].labeled_pixels for image in pool if image.pk in labels),
        pool_pixels=sum(image.pixels for image in pool),
    )


# A query counts once it was answered or skipped: its pixels are labeled, or deliberately left void, and
# asking again would spend budget on a known answer. Pending queries of a closed round were never answered
# and may be proposed again.
ANSWERED = (Query.Status.SUBMITTED, Query.Status.SKIPPED)

# One answered query as the queried mask needs it: (id, region key, region mask file name).
AskedRow = tuple[int, str, str]


def answered_queries(project: Project) -> dict[int, tuple[tuple[int, int], list[AskedRow]]]:
    """Per image, its (height, width) and answered queries in id order: one database query for the project."""
    rows = (Query.objects.filter(round__project=project, status__in=ANSWERED).order_by("pk")
            .values_list("pk", "image_id", "image__height", "image__width", "region_key", "region_mask"))
    asked: dict[int, tuple[tuple[int, int], list[AskedRow]]] = {}
    for pk, image_id, height, width, region_key, region_mask in rows:
        asked.setdefault(image_id, ((height, width), []))[1].append((pk, region_key, region_mask))
    return asked


def queried_mask(shape: tuple[int, int], rows: list[AskedRow]) -> np.ndarray:
    """Bool mask (``shape``: the image's) of every pixel the answered queries ``rows`` asked for."""
    storage = Query._meta.get_field("region_mask").storage
    mask = np.zeros(shape, dtype=bool)
    for _, region_key, name in rows:
        if not region_key:
            mask[:] = True  # a whole-image query
            continue
        with storage.open(name, "rb") as handle:
            region = load_mask(handle) > 0
        if region.shape == mask.shape:
            mask |= region
    return mask


def queried_masks(project: Project) -> dict[int, np.ndarray]:
    """Per image, every pixel an annotator was already asked for (bool, at the image's resolution), all read now."""
    return {pk: queried_mask(shape, rows) for pk, (shape, rows) in answered_queries(project).items()}


def lazy_labels(annotation: Annotation) -> LazyMask:
    """The annotation's label mask, read when selection needs it; annotation rows are never updated."""
    return LazyMask(identity=f"annotation-{annotation.pk}", load=partial(load_mask, annotation.mask.path))


def lazy_queried(shape: tuple[int, int], rows: list[AskedRow]) -> LazyMask:
    """The queried mask of an image, read when selection needs it, named by the answered queries it is made of."""
    return LazyMask(identity="queries-" + ",".join(str(pk) for pk, _, _ in rows),
                    load=partial(queried_mask, shape, rows))


def round_pool(project: Project, labels: dict[int, Annotation] | None = None
               ) -> tuple[list[Image], list[PoolImage]]:
    """The pool's images and their plain records: labels so far (``labels``: latest_labels, if read
    already) and pixels already asked for.

    Masks are lazy (:class:`~learning.selection.masks.LazyMask`): the ML core reads one image's while it
    scores or queries that image, so a pool of 100,000 images with thousands labeled never holds them all.
    Reading the pool costs a few database queries whatever its size (labels, answered queries, images).
    """
    labels = latest_labels(project) if labels is None else labels
    asked = answered_queries(project)
    images = pool_images_of(project)
    entries = [PoolImage(key=f"image-{image.pk}", image=image.file.path,
                         labels=lazy_labels(labels[image.pk]) if image.pk in labels else None,
                         queried=lazy_queried(*asked[image.pk]) if image.pk in asked else None)
               for image in images]
    return images, entries
