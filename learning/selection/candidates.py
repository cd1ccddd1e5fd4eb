"""The units a strategy can query (whole images or regions), with their size, scores and features.

A pool item is one target image's :class:`~learning.selection.scoring.PoolScore`
plus, optionally, its region map and what is already labeled in it. Both
live at the image's own resolution (the *canvas*): that is where the app
caches superpixels, where annotators paint, and where pixel budgets are
counted. Scores computed at the model's size are resized to the canvas.

Already-labeled pixels are never queried again: they do not count toward a
unit's pixels or its mean uncertainty, a fully labeled unit is no candidate,
and labeled units serve as diversity centres instead.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from learning.labels import IGNORE_INDEX
from learning.selection.diversity import l2_normalise
from learning.selection.regions import (
    DEFAULT_GRID_CELL,
    class_rarity_weights,
    grid_regions,
    region_features,
    region_scores,
)
from learning.selection.resample import resize_bilinear, resize_nearest
from learning.selection.scoring import PoolScore

# A unit at least this much labeled counts as "labeled" (a diversity centre).
LABELED_CENTRE_FRACTION = 0.5


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
    """

    unit: str
    items: list[PoolItem]
    item: np.ndarray
    region: np.ndarray
    pixels: np.ndarray
    uncertainty: np.ndarray
    informativeness: np.ndarray
    _features: Callable[[np.ndarray], np.ndarray] = field(repr=False)
    _centres: Callable[[], np.ndarray] = field(repr=False)
    total_pixels: int = 0

    def __len__(self) -> int:
        return len(self.item)

    def features(self, rows: np.ndarray) -> np.ndarray:
        return self._features(np.asarray(rows, dtype=np.int64))

    def centres(self) -> np.ndarray:
        return self._centres()


def image_candidates(entries: list[PoolItem | PoolScore]) -> Candidates:
    """Whole images with unlabeled pixels left; labeled-majority images become centres."""
    items = [as_pool_item(e) for e in entries]
    rows, pixels, unc, centre_rows = [], [], [], []
    total = 0
    for i, item in enumerate(items):
        h, w = item.canvas
        total += h * w
        labeled = item.labeled_mask()
        if labeled is None:
            rows.append(i)
            pixels.append(h * w)
            unc.append(item.score.score)
            continue
        free = int((~labeled).sum())
        if labeled.mean() >= LABELED_CENTRE_FRACTION:
            centre_rows.append(i)
        if free == 0:
            continue
        unlabeled_small = ~resize_nearest(labeled, item.score.size)
        u = item.score.uncertainty
        rows.append(i)
        pixels.append(free)
        unc.append(float(u[unlabeled_small].mean()) if unlabeled_small.any() else float(u.mean()))

    def features(selected: np.ndarray) -> np.ndarray:
        return l2_normalise(np.stack([items[int(rows_arr[r])].score.features for r in selected]))

    def centres() -> np.ndarray:
        if not centre_rows:
            return np.zeros((0, 0))
        return l2_normalise(np.stack([items[i].score.features for i in centre_rows]))

    rows_arr = np.asarray(rows, dtype=np.int64)
    unc_arr = np.asarray(unc, dtype=np.float64)
    return Candidates(
        unit="image",
        items=items,
        item=rows_arr,
        region=np.full(len(rows_arr), -1, dtype=np.int64),
        pixels=np.asarray(pixels, dtype=np.int64),
        uncertainty=unc_arr,
        informativeness=unc_arr.copy(),
        _features=features,
        _centres=centres,
        total_pixels=total,
    )


def region_candidates(
    entries: list[PoolItem | PoolScore],
    *,
    num_classes: int | None = None,
    context: int = 1,
    rarity_power: float = 0.0,
    max_centres: int = 5000,
    rng: np.random.Generator | None = None,
) -> Candidates:
    """Every region with unlabeled pixels, scored RIPU-style on the canvas.

    ``rarity_power`` > 0 multiplies region scores by a class-rarity weight
    (Cai et al. ClassBal) computed from the pool's predicted class
    frequencies. Regions that are mostly labeled become diversity centres (at
    most ``max_centres``, subsampled with ``rng``).
    """
    items = [as_pool_item(e) for e in entries]
    if num_classes is None:
        num_classes = max(int(item.score.pred.max()) for item in items) + 1 if items else 1
    weights = None
    if rarity_power > 0 and items:
        counts = sum(np.bincount(item.score.pred.ravel(), minlength=num_classes)[:num_classes] for item in items)
        weights = class_rarity_weights(counts, power=rarity_power)

    item_col, region_col, pixel_col, unc_col, info_col = [], [], [], [], []
    centre_refs: list[tuple[int, np.ndarray]] = []
    region_maps: dict[int, np.ndarray] = {}
    total = 0
    for i, item in enumerate(items):
        regions = item.region_map()
        canvas = regions.shape
        total += canvas[0] * canvas[1]
        labeled = item.labeled_mask()
        uncertainty = resize_bilinear(item.score.uncertainty, canvas)
        pred = resize_nearest(item.score.pred, canvas)
        scored = region_scores(
            uncertainty,
            pred,
            regions,
            num_classes=num_classes,
            context=context,
            class_weights=weights,
            labeled_mask=labeled,
        )
        region_maps[i] = regions
        ids = np.flatnonzero(scored.pixels > 0)
        item_col.append(np.full(len(ids), i, dtype=np.int64))
        region_col.append(ids)
        pixel_col.append(scored.pixels[ids])
        unc_col.append(scored.mean_uncertainty[ids])
        info_col.append(scored.scores[ids])
        if labeled is not None:
            area = np.bincount(regions.ravel(), minlength=len(scored.pixels))
            done = np.flatnonzero((scored.labeled_fraction >= LABELED_CENTRE_FRACTION) & (area > 0))
            if len(done):
                centre_refs.append((i, done))

    def concat(parts: list[np.ndarray], dtype) -> np.ndarray:
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

    item_arr = concat(item_col, np.int64)
    region_arr = concat(region_col, np.int64)

    def features(selected: np.ndarray) -> np.ndarray:
        dim = items[0].score.feature_map.shape[0] if items else 0
        out = np.zeros((len(selected), dim), dtype=np.float32)
        owners = item_arr[selected]
        for i in np.unique(owners):
            pos = np.flatnonzero(owners == i)
            out[pos] = region_features(region_maps[int(i)], items[int(i)].score.feature_map, region_arr[selected[pos]])
        return l2_normalise(out)

    def centres() -> np.ndarray:
        parts = [region_features(region_maps[i], items[i].score.feature_map, ids) for i, ids in centre_refs]
        if not parts:
            return np.zeros((0, 0))
        stacked = np.concatenate(parts)
        if len(stacked) > max_centres:
            chooser = rng if rng is not None else np.random.default_rng(0)
            stacked = stacked[chooser.choice(len(stacked), max_centres, replace=False)]
        return l2_normalise(stacked)

    return Candidates(
        unit="region",
        items=items,
        item=item_arr,
        region=region_arr,
        pixels=concat(pixel_col, np.int64),
        uncertainty=concat(unc_col, np.float64),
        informativeness=concat(info_col, np.float64),
        _features=features,
        _centres=centres,
        total_pixels=total,
    )

