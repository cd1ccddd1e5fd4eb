"""The units a strategy can query (whole images or regions), with their size, scores and features.

A pool item is one target image's :class:`~learning.selection.scoring.PoolScore`
plus, optionally, its region map and what is already labeled in it. Both
live at the image's own resolution (the *canvas*): that is where the app
caches superpixels, where annotators paint, and where pixel budgets are
counted. Scores computed at the model's size are resized to the canvas.

Already-labeled pixels are never queried again: they do not count toward a
unit's pixels or its mean uncertainty, a fully labeled unit is no candidate,
and labeled units serve as diversity centres instead.

Candidates are built from a pool's :class:`~learning.selection.summaries.SummaryTable`
(what selection keeps of each scored image); :func:`image_candidates` and
:func:`region_candidates` summarise pool items held in memory first.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from learning.labels import IGNORE_INDEX
from learning.selection.diversity import l2_normalise, l2_normalise_rows
from learning.selection.regions import DEFAULT_GRID_CELL, class_rarity_weights, grid_regions
from learning.selection.resample import resize_nearest
from learning.selection.scoring import PoolScore
from learning.selection.summaries import (
    LABELED_CENTRE_FRACTION,
    SummaryTable,
    summarise,
    table_from_summaries,
)

__all__ = ["LABELED_CENTRE_FRACTION", "Candidates", "PoolItem", "candidates_from_table", "image_candidates",
           "region_candidates"]


@dataclass(eq=False)
class PoolItem:
    """One pool image for selection.

    ``regions``: int region map (superpixels) at the canvas resolution, or
    None (region strategies then fall back to a grid of superpixel-sized
    cells). ``labels``: uint8 mask, 255 = not labeled yet. ``queried``: bool
    mask of pixels already sent to annotators, labeled or deliberately left
    void; they are not asked for again either. Both are resized
    nearest-neighbour to the canvas if they differ: ``regions``' shape, else
    ``labels``', else ``score.image_size``.
    """

    score: PoolScore
    regions: np.ndarray | None = None
    labels: np.ndarray | None = None
    queried: np.ndarray | None = None

    @property
    def key(self) -> str:
        return self.score.key

    @property
    def canvas(self) -> tuple[int, int]:
        if self.regions is not None:
            return (int(self.regions.shape[0]), int(self.regions.shape[1]))
        if self.labels is not None:
            return (int(self.labels.shape[0]), int(self.labels.shape[1]))
        return (int(self.score.image_size[0]), int(self.score.image_size[1]))

    def labeled_mask(self) -> np.ndarray | None:
        """Bool (canvas) mask of labeled or already-queried pixels, or None when there are none."""
        done = None
        if self.labels is not None:
            done = resize_nearest(self.labels, self.canvas) != IGNORE_INDEX
        if self.queried is not None:
            queried = resize_nearest(np.asarray(self.queried, dtype=bool), self.canvas)
            done = queried if done is None else done | queried
        return done if done is not None and done.any() else None

    def region_map(self) -> np.ndarray:
        if self.regions is not None:
            return self.regions
        h, w = self.canvas
        return grid_regions(h, w, DEFAULT_GRID_CELL)


def as_pool_item(entry: PoolItem | PoolScore) -> PoolItem:
    return entry if isinstance(entry, PoolItem) else PoolItem(score=entry)


@dataclass(eq=False)
class Candidates:
    """Every queryable unit of the pool as parallel arrays (one row per unit).

    ``region`` is -1 for whole-image units. ``uncertainty`` is the mean
    uncertainty of the unit's unlabeled pixels; ``informativeness`` the
    strategy-ready score (RIPU uncertainty × impurity [× rarity] for regions,
    the mean uncertainty for images). ``features(rows)`` gives L2-normalised
    descriptors for the rows asked for (computed lazily: only the shortlist
    of a diversity strategy needs them) and ``centres`` those of labeled units.
    ``keys[i]`` names pool image ``i``; ``pool_item(i)`` gives it back as a
    :class:`PoolItem` (its region map and labels), for the images queried.
    """

    unit: str
    keys: list[str]
    item: np.ndarray
    region: np.ndarray
    pixels: np.ndarray
    uncertainty: np.ndarray
    informativeness: np.ndarray
    _features: Callable[[np.ndarray], np.ndarray] = field(repr=False)
    _centres: Callable[[], np.ndarray] = field(repr=False)
    pool_item: Callable[[int], PoolItem] = field(repr=False)
    total_pixels: int = 0

    def __len__(self) -> int:
        return len(self.item)

    def features(self, rows: np.ndarray) -> np.ndarray:
        return self._features(np.asarray(rows, dtype=np.int64))

    def centres(self) -> np.ndarray:
        return self._centres()


def _summaries_table(entries: list[PoolItem | PoolScore], unit: str, **options) -> SummaryTable:
    items = [as_pool_item(e) for e in entries]
    return table_from_summaries([summarise(item, unit=unit, **options) for item in items], unit,
                                pool_item=items.__getitem__)


def image_candidates(entries: list[PoolItem | PoolScore]) -> Candidates:
    """Whole images with unlabeled pixels left; labeled-majority images become centres."""
    return candidates_from_table(_summaries_table(entries, "image"))


def region_candidates(
    entries: list[PoolItem | PoolScore],
    *,
    num_classes: int | None = None,
    context: int = 1,
    rarity_power: float = 0.0,
    max_centres: int = 5000,
    rng: np.random.Generator | None = None,
) -> Candidates:
    """Every region with unlabeled pixels, scored RIPU-style on the canvas (see :func:`candidates_from_table`).

    ``num_classes`` defaults to the largest predicted class + 1.
    """
    items = [as_pool_item(e) for e in entries]
    if num_classes is None:
        num_classes = max(int(item.score.pred.max()) for item in items) + 1 if items else 1
    table = _summaries_table(items, "region", num_classes=num_classes, context=context, rarity=rarity_power > 0)
    return candidates_from_table(table, rarity_power=rarity_power, max_centres=max_centres, rng=rng)


def candidates_from_table(
    table: SummaryTable,
    *,
    rarity_power: float = 0.0,
    max_centres: int = 5000,
    rng: np.random.Generator | None = None,
) -> Candidates:
    """The query units of a summarised pool, whole images or regions as the table was summarised.

    Images: every image with unlabeled pixels left; labeled-majority images
    become centres. Regions: every region with unlabeled pixels;
    ``rarity_power`` > 0 multiplies region scores by a class-rarity weight
    (Cai et al. ClassBal) computed from the pool's predicted class
    frequencies. Regions that are mostly labeled become diversity centres
    (at most ``max_centres``, subsampled with ``rng``).
    """
    total = int((table.canvas[:, 0] * table.canvas[:, 1]).sum()) if len(table) else 0
    if table.unit == "image":
        return _image_units(table, total)
    return _region_units(table, total, rarity_power=rarity_power, max_centres=max_centres, rng=rng)


def _image_units(table: SummaryTable, total: int) -> Candidates:
    rows_arr = np.flatnonzero(table.candidate).astype(np.int64)
    centre_rows = np.flatnonzero(table.centre)
    unc_arr = table.uncertainty[rows_arr].astype(np.float64)

    def features(selected: np.ndarray) -> np.ndarray:
        return l2_normalise(table.features[rows_arr[selected]])

    def centres() -> np.ndarray:
        if not len(centre_rows):
            return np.zeros((0, 0))
        return l2_normalise(table.features[centre_rows])

    return Candidates(
        unit="image", keys=table.keys, item=rows_arr, region=np.full(len(rows_arr), -1, dtype=np.int64),
        pixels=table.pixels[rows_arr].astype(np.int64), uncertainty=unc_arr, informativeness=unc_arr.copy(),
        _features=features, _centres=centres, pool_item=table.pool_item, total_pixels=total,
    )


def _region_units(table: SummaryTable, total: int, *, rarity_power: float, max_centres: int,
                  rng: np.random.Generator | None) -> Candidates:
    item_arr, region_arr = table.region_item, table.region_id
    informativeness = table.region_scores
    if rarity_power > 0 and len(table):
        weights = class_rarity_weights(table.class_counts.sum(axis=0), power=rarity_power)
        informativeness = informativeness.copy()
        starts = np.r_[0, np.cumsum(np.bincount(item_arr, minlength=len(table)))]
        for i in np.unique(item_arr):
            factor = table.source.region_shares(int(i)) @ weights
            rows = slice(starts[i], starts[i + 1])
            informativeness[rows] = informativeness[rows] * factor[region_arr[rows]]

    def features(selected: np.ndarray) -> np.ndarray:
        if not len(selected):
            return np.zeros((0, table.features.shape[1] if len(table) else 0))
        found = table.source.region_feature_rows(item_arr[selected], region_arr[selected])
        # Normalised in place: a shortlist of 100,000 regions would otherwise copy ~100 MB a few times over.
        return l2_normalise_rows(found.astype(np.float64))

    def centres() -> np.ndarray:
        counts = table.centre_counts
        count = int(counts.sum())
        if count == 0:
            return np.zeros((0, 0))
        chosen = None
        if count > max_centres:
            chooser = rng if rng is not None else np.random.default_rng(0)
            chosen = chooser.choice(count, max_centres, replace=False)
        owners = np.repeat(np.arange(len(counts)), counts)
        starts = np.r_[0, np.cumsum(counts)]
        images = np.flatnonzero(counts) if chosen is None else np.unique(owners[chosen])
        found = table.source.centre_features([int(i) for i in images])
        if chosen is None:
            stacked = np.concatenate([found[int(i)] for i in images])
        else:
            stacked = np.stack([found[int(owners[g])][g - starts[owners[g]]] for g in chosen])
        return l2_normalise(stacked)

    return Candidates(
        unit="region", keys=table.keys, item=item_arr, region=region_arr, pixels=table.region_pixels,
        uncertainty=table.region_uncertainty, informativeness=informativeness,
        _features=features, _centres=centres, pool_item=table.pool_item, total_pixels=total,
    )
