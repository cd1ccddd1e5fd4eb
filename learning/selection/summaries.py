"""What selection keeps of a scored pool image once its full maps are gone.

Scoring produces a :class:`~learning.selection.scoring.PoolScore` per image:
prediction, confidence and uncertainty maps plus the decoder feature map,
about a megabyte at 240x320. Selection needs far less: per image its canvas,
whether it is a candidate and its unlabeled pixels and mean uncertainty (image
queries), the image descriptor, and per region with unlabeled pixels its
pixels, mean uncertainty and RIPU score (region queries), plus the
descriptors of labeled regions (diversity centres) and of the regions most
likely to be shortlisted. :func:`summarise` reduces a pool item to that
:class:`ImageSummary`; a :class:`SummaryTable` holds a whole pool's
summaries as columns, and :mod:`learning.selection.candidates` builds the
query units from it. Every number is computed by the same code, on the same
inputs, as when the full maps were kept, so selection results are the same.

Descriptors of regions a summary did not keep (a small pool shortlists many
regions per image) come from a :class:`FeatureSource`, which may recompute
the image's feature map.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from learning.selection.regions import region_features, region_scores
from learning.selection.resample import resize_bilinear, resize_nearest

# A unit at least this much labeled counts as "labeled" (a diversity centre).
LABELED_CENTRE_FRACTION = 0.5

Size = tuple[int, int]


@dataclass(eq=False)
class RegionSummary:
    """One image's regions, as far as selection needs them (ids index the image's region map)."""

    ids: np.ndarray  # (r,) int64 regions with unlabeled pixels, ascending
    pixels: np.ndarray  # (r,) int64 unlabeled pixels
    uncertainty: np.ndarray  # (r,) float64 mean uncertainty of the unlabeled pixels
    scores: np.ndarray  # (r,) float64 RIPU score without the class-rarity factor
    feature_ids: np.ndarray  # (m,) int64 regions whose descriptor is kept (a subset of ids), ascending
    features: np.ndarray  # (m, D) float32
    centre_ids: np.ndarray  # (q,) int64 mostly-labeled regions (diversity centres), ascending
    centre_features: np.ndarray  # (q, D) float32
    shares: np.ndarray | None = None  # (R, C) float64 predicted-class share of every region (rarity only)


@dataclass(eq=False)
class ImageSummary:
    """The compact per-image record selection works from; ``key`` and ``image_size`` as in PoolScore."""

    key: str
    image_size: Size
    canvas: Size  # where pixels are counted: the region map's size, else the labels', else the image's
    score: float  # mean uncertainty of the whole image (PoolScore.score)
    features: np.ndarray  # (D,) float32 image descriptor
    candidate: bool  # has unlabeled pixels left (an image query is possible)
    pixels: int  # unlabeled pixels
    uncertainty: float  # mean uncertainty of the unlabeled pixels
    centre: bool  # mostly labeled: a diversity centre for image queries
    class_counts: np.ndarray | None = None  # (C,) int64 predicted pixels per class at the scoring size
    regions: RegionSummary | None = None


def _top_rows(scores: np.ndarray, count: int | None) -> np.ndarray:
    """Positions of the ``count`` best scores (ties: lower position first), ascending."""
    if count is None or count >= len(scores):
        return np.arange(len(scores))
    return np.sort(np.argsort(-scores, kind="stable")[:count])


def summarise(item, *, unit: str, num_classes: int | None = None, context: int = 1, rarity: bool = False,
              keep_features: int | None = None) -> ImageSummary:
    """Reduce a :class:`~learning.selection.candidates.PoolItem` to what selection needs.

    ``unit="region"`` adds the region columns (``num_classes`` then
    required). ``keep_features``: how many of the best-scoring regions keep
    their descriptor (None: all). ``rarity``: keep the regions' class shares
    for a class-rarity weight computed over the whole pool later.
    """
    score = item.score
    labeled = item.labeled_mask()
    h, w = item.canvas
    if labeled is None:
        candidate, pixels, uncertainty, centre = True, h * w, float(score.score), False
    else:
        free = int((~labeled).sum())
        centre = bool(labeled.mean() >= LABELED_CENTRE_FRACTION)
        candidate, pixels, uncertainty = free > 0, free, float("nan")
        if candidate:
            unlabeled_small = ~resize_nearest(labeled, score.size)
            u = score.uncertainty
            uncertainty = float(u[unlabeled_small].mean()) if unlabeled_small.any() else float(u.mean())
    counts = None
    if num_classes is not None:
        counts = np.bincount(score.pred.ravel(), minlength=num_classes)[:num_classes].astype(np.int64)
    summary = ImageSummary(key=item.key, image_size=(int(score.image_size[0]), int(score.image_size[1])),
                           canvas=(int(h), int(w)), score=float(score.score), features=score.features,
                           candidate=candidate, pixels=int(pixels), uncertainty=uncertainty, centre=centre,
                           class_counts=counts)
    if unit == "region":
        if num_classes is None:
            raise ValueError("region summaries need num_classes")
        summary.regions = _summarise_regions(item, labeled, num_classes=num_classes, context=context,
                                             rarity=rarity, keep_features=keep_features)
    return summary


def _summarise_regions(item, labeled: np.ndarray | None, *, num_classes: int, context: int, rarity: bool,
                       keep_features: int | None) -> RegionSummary:
    score = item.score
    regions = item.region_map()
    canvas = regions.shape
    scored = region_scores(resize_bilinear(score.uncertainty, canvas), resize_nearest(score.pred, canvas), regions,
                           num_classes=num_classes, context=context, labeled_mask=labeled)
    ids = np.flatnonzero(scored.pixels > 0)
    centre_ids = np.zeros(0, dtype=np.int64)
    if labeled is not None:
        area = np.bincount(regions.ravel(), minlength=len(scored.pixels))
        centre_ids = np.flatnonzero((scored.labeled_fraction >= LABELED_CENTRE_FRACTION) & (area > 0))
    feature_ids = ids[_top_rows(scored.scores[ids], keep_features)]
    everything = region_features(regions, score.feature_map) if len(feature_ids) or len(centre_ids) else None
    dim = score.feature_map.shape[0]
    shares = None
    if rarity:
        hist = scored.class_hist
        total = hist.sum(axis=1, keepdims=True)
        shares = np.divide(hist, total, out=np.zeros_like(hist), where=total > 0)
    return RegionSummary(
        ids=ids.astype(np.int64), pixels=scored.pixels[ids].astype(np.int64),
        uncertainty=scored.mean_uncertainty[ids].astype(np.float64), scores=scored.scores[ids].astype(np.float64),
        feature_ids=feature_ids.astype(np.int64),
        features=everything[feature_ids] if everything is not None else np.zeros((0, dim), np.float32),
        centre_ids=centre_ids.astype(np.int64),
        centre_features=everything[centre_ids] if everything is not None else np.zeros((0, dim), np.float32),
        shares=shares,
    )


class FeatureSource(Protocol):
    """Region descriptors a summary table did not keep in memory."""

    def region_features(self, wanted: Mapping[int, np.ndarray]) -> dict[int, np.ndarray]:
        """Per image index, the ``(len(ids), D)`` float32 descriptors of the region ids asked for, in that order."""

    def region_feature_rows(self, images: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """``(len(ids), D)`` float32: row ``j`` the descriptor of region ``ids[j]`` of image ``images[j]``."""

    def centre_features(self, images: Sequence[int]) -> dict[int, np.ndarray]:
        """Per image index, the descriptors of its centre regions (``centre_ids`` order)."""

    def region_shares(self, image: int) -> np.ndarray:
        """The image's ``(R, C)`` class shares (tables summarised with ``rarity``)."""


def fill_from(region_features: Callable[[Mapping], dict], images: np.ndarray, ids: np.ndarray, rows: np.ndarray,
              out: np.ndarray) -> None:
    """``out[rows]`` from a per-image ``region_features({image: ids})`` (the rows' pairs grouped by image)."""
    rows = rows[np.argsort(images[rows], kind="stable")]
    owners, starts = np.unique(images[rows], return_index=True)
    groups = np.split(rows, starts[1:])
    found = region_features({int(i): ids[g] for i, g in zip(owners, groups)})
    out[rows] = np.concatenate([found[int(i)] for i in owners], dtype=np.float32)


def _lookup(kept_ids: np.ndarray, kept: np.ndarray, wanted: np.ndarray) -> np.ndarray | None:
    """Rows of ``kept`` for ``wanted`` ids, or None if any is missing."""
    pos = np.searchsorted(kept_ids, wanted)
    pos = np.minimum(pos, max(0, len(kept_ids) - 1))
    if not len(kept_ids) or not np.array_equal(kept_ids[pos], wanted):
        return None
    return kept[pos]


class SummariesInMemory:
    """A :class:`FeatureSource` over summaries held in memory (they keep every descriptor selection can ask for)."""

    def __init__(self, summaries: Sequence[ImageSummary], recompute: Callable[[Sequence[int]], dict] | None = None):
        self.summaries = summaries
        self.recompute = recompute

    def region_features(self, wanted: Mapping[int, np.ndarray]) -> dict[int, np.ndarray]:
        out, missing = {}, {}
        for i, ids in wanted.items():
            r = self.summaries[i].regions
            found = _lookup(r.feature_ids, r.features, np.asarray(ids, dtype=np.int64))
            if found is None:
                missing[i] = ids
            else:
                out[i] = found
        if missing:
            if self.recompute is None:
                raise KeyError(f"region descriptors of images {sorted(missing)} were not kept")
            out.update(self.recompute(missing))
        return out

    def region_feature_rows(self, images: np.ndarray, ids: np.ndarray) -> np.ndarray:
        images, ids = np.asarray(images, dtype=np.int64), np.asarray(ids, dtype=np.int64)
        dim = len(self.summaries[0].features) if len(self.summaries) else 0
        out = np.zeros((len(images), dim), dtype=np.float32)
        if len(images):
            fill_from(self.region_features, images, ids, np.arange(len(images)), out)
        return out

    def centre_features(self, images: Sequence[int]) -> dict[int, np.ndarray]:
        return {i: self.summaries[i].regions.centre_features for i in images}

    def region_shares(self, image: int) -> np.ndarray:
        return self.summaries[image].regions.shares


@dataclass(eq=False)
class SummaryTable:
    """A pool's summaries as columns: one row per image, and the region columns concatenated in image order.

    ``pool_item(i)`` gives back image ``i`` as a PoolItem (region map, labels,
    already-queried pixels): only the queried images need one.
    """

    unit: str
    keys: list[str]
    canvas: np.ndarray  # (n, 2) int64
    features: np.ndarray  # (n, D) float32
    candidate: np.ndarray  # (n,) bool
    pixels: np.ndarray  # (n,) int64
    uncertainty: np.ndarray  # (n,) float64
    centre: np.ndarray  # (n,) bool
    class_counts: np.ndarray | None  # (n, C) int64
    region_item: np.ndarray  # (rows,) int64 image index of each region row
    region_id: np.ndarray  # (rows,) int64
    region_pixels: np.ndarray  # (rows,) int64
    region_uncertainty: np.ndarray  # (rows,) float64
    region_scores: np.ndarray  # (rows,) float64
    centre_counts: np.ndarray  # (n,) int64 centre regions per image
    source: FeatureSource = field(repr=False)
    pool_item: Callable[[int], object] = field(repr=False)

    def __len__(self) -> int:
        return len(self.keys)


def _concat(parts: list[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype=dtype)


def table_columns(summaries: Sequence[ImageSummary], unit: str) -> dict[str, np.ndarray]:
    """The column arrays of :class:`SummaryTable` for ``summaries`` (image indices local to them)."""
    n = len(summaries)
    dim = len(summaries[0].features) if n else 0
    counts = [s.class_counts for s in summaries]
    columns = {
        "canvas": np.asarray([s.canvas for s in summaries], dtype=np.int64).reshape(n, 2),
        "features": np.stack([s.features for s in summaries]).astype(np.float32) if n else np.zeros((0, dim)),
        "candidate": np.asarray([s.candidate for s in summaries], dtype=bool),
        "pixels": np.asarray([s.pixels for s in summaries], dtype=np.int64),
        "uncertainty": np.asarray([s.uncertainty for s in summaries], dtype=np.float64),
        "centre": np.asarray([s.centre for s in summaries], dtype=bool),
        "class_counts": np.stack(counts) if n and all(c is not None for c in counts) else None,
    }
    regions = [s.regions for s in summaries] if unit == "region" else []
    columns.update(
        region_item=_concat([np.full(len(r.ids), i, np.int64) for i, r in enumerate(regions)], np.int64),
        region_id=_concat([r.ids for r in regions], np.int64),
        region_pixels=_concat([r.pixels for r in regions], np.int64),
        region_uncertainty=_concat([r.uncertainty for r in regions], np.float64),
        region_scores=_concat([r.scores for r in regions], np.float64),
        centre_counts=np.asarray([len(r.centre_ids) for r in regions] if regions else np.zeros(n), dtype=np.int64),
    )
    return columns


def table_from_summaries(summaries: Sequence[ImageSummary], unit: str, *, pool_item: Callable[[int], object],
                         source: FeatureSource | None = None) -> SummaryTable:
    """A table over summaries held in memory."""
    return SummaryTable(unit=unit, keys=[s.key for s in summaries], **table_columns(summaries, unit),
                        source=source or SummariesInMemory(summaries), pool_item=pool_item)
