"""Budgets, the queries a round produces, and how a priority order is turned into them.

Every strategy only orders candidate units; :func:`fill_budget` spends the
budget the same way for all of them, so "region budgets are respected to the
pixel" holds by construction rather than per strategy.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from learning.labels import IGNORE_INDEX
from learning.selection.candidates import Candidates
from learning.selection.resample import resize_nearest

BudgetUnit = Literal["images", "regions", "pixels", "percent"]
QueryUnit = Literal["image", "region"]

# Consecutive units that do not fit the pixels left before the filler stops
# walking a (possibly expensive, k-center) order and tops up by score instead.
MAX_MISFITS = 64


@dataclass(frozen=True)
class Budget:
    """How much to query this round: ``amount`` of ``unit``.

    ``percent`` is a share of all pool pixels (the pool passed to
    ``select_queries``, labeled images included), rounded down to whole
    pixels. ``images`` needs image queries, ``regions`` region queries;
    ``pixels`` and ``percent`` work with both and are never exceeded.
    """

    amount: float
    unit: BudgetUnit = "percent"

    def __post_init__(self) -> None:
        if self.unit not in ("images", "regions", "pixels", "percent"):
            raise ValueError(f"unknown budget unit {self.unit!r}")
        if self.amount < 0:
            raise ValueError("budget amount must be >= 0")

    def pixel_limit(self, total_pixels: int) -> int | None:
        """The pixel cap this budget implies, or None for count budgets."""
        if self.unit == "pixels":
            return int(self.amount)
        if self.unit == "percent":
            return math.floor(self.amount / 100.0 * total_pixels + 1e-9)
        return None

    def count_limit(self) -> int | None:
        return int(self.amount) if self.unit in ("images", "regions") else None


@dataclass(eq=False)
class QuerySpec:
    """One image to send to an annotator, with the pixels to label in it.

    ``region_ids`` is None for a whole-image query. ``mask`` is a bool array
    at the canvas resolution (the region map's, else the image's) of the
    pixels to label: the picked regions (or the whole image) minus what is
    already labeled, so ``pixels == mask.sum()``. ``score`` is the strategy's
    best score among the picked units; ``rank`` orders queries by first pick
    (0 = most wanted).
    """

    key: str
    region_ids: tuple[int, ...] | None
    pixels: int
    score: float
    rank: int
    mask: np.ndarray = field(repr=False)

    @property
    def unit(self) -> QueryUnit:
        return "image" if self.region_ids is None else "region"


def fill_budget(
    candidates: Candidates,
    order: Iterable[int],
    budget: Budget,
    *,
    scores: np.ndarray,
    per_image_limit: int | None = None,
) -> list[int]:
    """Walk ``order`` taking each unit that still fits; rows in pick order.

    ``per_image_limit`` caps picks per image while following ``order``. If
    budget is left when the order runs dry (or stops finding units that
    fit), the rest is topped up by ``scores`` without the cap: a cap exists
    to spread picks, never to leave budget unspent.
    """
    c = candidates
    pixel_limit = budget.pixel_limit(c.total_pixels)
    count_limit = budget.count_limit()
    if not len(c) or pixel_limit == 0 or count_limit == 0:
        return []
    smallest = int(c.pixels.min())
    chosen = np.zeros(len(c), dtype=bool)
    taken: list[int] = []
    used = 0
    per_image: dict[int, int] = {}

    def room_left() -> bool:
        if count_limit is not None:
            return len(taken) < count_limit
        return pixel_limit - used >= smallest

    def take(row: int) -> None:
        nonlocal used
        chosen[row] = True
        taken.append(row)
        used += int(c.pixels[row])
        owner = int(c.item[row])
        per_image[owner] = per_image.get(owner, 0) + 1

    misfits = 0
    for row in order:
        row = int(row)
        if chosen[row]:
            continue
        if per_image_limit is not None and per_image.get(int(c.item[row]), 0) >= per_image_limit:
            continue
        if pixel_limit is not None and used + int(c.pixels[row]) > pixel_limit:
            misfits += 1
            if misfits > MAX_MISFITS or not room_left():
                break
            continue
        misfits = 0
        take(row)
        if not room_left():
            return taken
    for row in np.argsort(-scores, kind="stable"):
        if not room_left():
            break
        row = int(row)
        if chosen[row] or (pixel_limit is not None and used + int(c.pixels[row]) > pixel_limit):
            continue
        take(row)
    return taken


def group_queries(candidates: Candidates, rows: list[int], scores: np.ndarray) -> list[QuerySpec]:
    """One :class:`QuerySpec` per image, in the order of each image's first pick."""
    c = candidates
    by_item: dict[int, list[int]] = {}
    for row in rows:
        by_item.setdefault(int(c.item[row]), []).append(row)
    queries = []
    for rank, (i, item_rows) in enumerate(by_item.items()):
        item = c.pool_item(i)
        if c.unit == "image":
            mask = np.ones(item.canvas, dtype=bool)
            region_ids = None
        else:
            ids = sorted(int(c.region[r]) for r in item_rows)
            mask = np.isin(item.region_map(), ids)
            region_ids = tuple(ids)
        labeled = item.labeled_mask()
        if labeled is not None:
            mask &= ~labeled
        queries.append(
            QuerySpec(
                key=item.key,
                region_ids=region_ids,
                pixels=int(mask.sum()),
                score=float(max(scores[r] for r in item_rows)),
                rank=rank,
                mask=mask,
            )
        )
    return queries


def query_labels(query: QuerySpec, ground_truth: np.ndarray) -> np.ndarray:
    """What an oracle annotator returns: ``ground_truth`` inside the query mask, 255 elsewhere.

    ``ground_truth`` is resized (nearest) to the query's canvas if needed.
    The campaign simulator uses it; in the app annotators produce the same.
    """
    gt = resize_nearest(ground_truth, query.mask.shape)
    return np.where(query.mask, gt, IGNORE_INDEX).astype(np.uint8)


def merge_labels(existing: np.ndarray | None, new: np.ndarray) -> np.ndarray:
    """Labels after a round: ``new`` where it labels a pixel, ``existing`` elsewhere."""
    if existing is None:
        return new.copy()
    existing = resize_nearest(existing, new.shape)
    return np.where(new != IGNORE_INDEX, new, existing).astype(np.uint8)
