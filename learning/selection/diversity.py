"""Diversity among query candidates: core-set (k-center greedy) order and feature distances.

Uncertainty alone picks near-duplicates on a video pool (consecutive frames
are equally uncertain). The recommended recipe (research/al-da-anchors.md c.4)
takes the top candidates by uncertainty and then chooses among them for
coverage of feature space.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def _normalise(values: np.ndarray) -> np.ndarray:
    top = float(values.max()) if values.size else 0.0
    return values / top if top > 0 else np.zeros_like(values)


def l2_normalise(features: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, so distances compare directions, not activation magnitudes."""
    x = np.asarray(features, dtype=np.float64)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def l2_normalise_rows(x: np.ndarray) -> np.ndarray:
    """:func:`l2_normalise` in place on a float64 array, a block of rows at a time (the same values, no copies)."""
    for start in range(0, len(x), ROW_BLOCK):
        block = x[start : start + ROW_BLOCK]
        norms = np.linalg.norm(block, axis=-1, keepdims=True)
        np.divide(block, norms, out=block, where=norms > 0)
    return x


def min_distances(x: np.ndarray, centers: np.ndarray, *, block: int = 2048) -> np.ndarray:
    """Euclidean distance from each row of ``x`` to its nearest row of ``centers``.

    Uses ``|a|^2 + |b|^2 - 2ab`` in blocks: memory stays O(n * block) instead
    of the O(n * m * D) of broadcasting differences.
    """
    x = np.asarray(x, dtype=np.float64)
    centers = np.asarray(centers, dtype=np.float64)
    best = np.full(len(x), np.inf)
    if not len(centers):
        return best
    x_sq = (x * x).sum(axis=1)
    for start in range(0, len(centers), block):
        c = centers[start : start + block]
        d2 = x_sq[:, None] + (c * c).sum(axis=1)[None, :] - 2.0 * (x @ c.T)
        best = np.minimum(best, d2.min(axis=1))
    return np.sqrt(np.maximum(best, 0.0))


def iter_kcenter(
    features: np.ndarray,
    *,
    initial_centers: np.ndarray | None = None,
    scores: np.ndarray | None = None,
    score_weight: float = 0.0,
) -> Iterator[int]:
    """Greedy k-center order (Sener & Savarese, core-set), one index at a time.

    A generator, so a budget filler can stop as soon as the budget is spent
    without knowing in advance how many picks fit. Each step takes the
    candidate farthest from every centre so far; ``initial_centers`` (e.g.
    features of already-labeled items) count as centres from the start, so
    the picks fill the gaps the labeled set leaves.

    With ``scores`` and ``score_weight`` in ``[0, 1]`` each step maximises
    ``(1 - w) * distance / max distance + w * score / max score``: ``w = 0`` is
    plain k-center, ``w = 1`` is plain top-k by score. Without centres the
    first pick is the highest-scoring candidate (or the one farthest from the
    mean when there are no scores).
    """
    if not 0.0 <= score_weight <= 1.0:
        raise ValueError("score_weight must be in [0, 1]")
    x = np.asarray(features, dtype=np.float64)
    n = len(x)
    if n == 0:
        return
    score_term = _normalise(np.asarray(scores, dtype=np.float64)) if scores is not None else np.zeros(n)
    w = score_weight if scores is not None else 0.0
    min_dist = (
        min_distances(x, initial_centers) if initial_centers is not None and len(initial_centers) else np.full(n, np.inf)
    )
    available = np.ones(n, dtype=bool)
    x_sq = (x * x).sum(axis=1)
    for _ in range(n):
        if np.isinf(min_dist).all():
            objective = score_term.copy() if scores is not None else np.linalg.norm(x - x.mean(axis=0), axis=1)
        else:
            finite = np.where(available & np.isfinite(min_dist), min_dist, 0.0)
            objective = (1.0 - w) * _normalise(finite) + w * score_term
        objective = np.where(available, objective, -np.inf)
        i = int(np.argmax(objective))
        available[i] = False
        yield i
        d2 = x_sq + x_sq[i] - 2.0 * (x @ x[i])
        min_dist = np.minimum(min_dist, np.sqrt(np.maximum(d2, 0.0)))


# Rows a cut estimates its principal direction from (evenly spaced); the cut itself ranks every row.
AXIS_SAMPLE = 4096
# Rows per block when a pass touches every row: temporaries stay a few megabytes, whatever the pool.
ROW_BLOCK = 8192


def partition(features: np.ndarray, max_size: int, *, iterations: int = 8) -> list[np.ndarray]:
    """Split the rows into ``ceil(n / max_size)`` groups of neighbours, of equal size (±1): recursive cuts.

    Each cut splits a group along its principal direction (a few power
    iterations from a fixed start on at most :data:`AXIS_SAMPLE` evenly
    spaced rows, so the result is deterministic) at the quantile that leaves
    a whole number of groups on each side. Groups as large as ``max_size``
    allows, whatever ``n``, keep the diversity step's cost per unit the same
    at every pool size (halving cuts would leave groups anywhere between
    half and all of ``max_size``). Cost O(n D log(n / max_size)): a
    projection and a linear-time selection per row and level, the way
    diversity stays linear in the pool (see ``strategies.diversity_order``).
    Groups come back in a fixed order; row indices in each are ascending.
    """
    x = np.asarray(features, dtype=np.float64)
    done: list[np.ndarray] = []
    todo = [(np.arange(len(x)), -(-len(x) // max(1, max_size)))]
    while todo:
        rows, parts = todo.pop()
        parts = min(parts, len(rows))
        if parts <= 1:
            done.append(rows)
            continue
        projection = _project(x, rows, _main_axis(x, rows, iterations))
        lower_parts = parts // 2
        # Rounded down: neither side gets more than its parts * max_size rows.
        cut = len(rows) * lower_parts // parts
        lower = np.zeros(len(rows), dtype=bool)
        lower[np.argpartition(projection, cut)[:cut]] = True
        todo.extend([(rows[~lower], parts - lower_parts), (rows[lower], lower_parts)])
    return done


def _main_axis(x: np.ndarray, rows: np.ndarray, iterations: int) -> np.ndarray:
    """The principal direction of ``x[rows]``, estimated on at most AXIS_SAMPLE of them."""
    if len(rows) > AXIS_SAMPLE:
        rows = rows[np.linspace(0, len(rows) - 1, AXIS_SAMPLE).astype(np.int64)]
    centred = x[rows] - x[rows].mean(axis=0)
    axis = centred[int(np.argmax((centred * centred).sum(axis=1)))].copy()
    for _ in range(iterations):
        axis = centred.T @ (centred @ axis)
        norm = np.linalg.norm(axis)
        if norm == 0:
            break
        axis /= norm
    return axis


def _project(x: np.ndarray, rows: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """``x[rows] @ axis`` a block of rows at a time."""
    out = np.empty(len(rows))
    for start in range(0, len(rows), ROW_BLOCK):
        out[start : start + ROW_BLOCK] = x[rows[start : start + ROW_BLOCK]] @ axis
    return out


def distinct_rows(x: np.ndarray, at_least: int | None = None) -> int:
    """How many distinct rows ``x`` has; with ``at_least``, any count >= it may come back as soon as known.

    Rows that differ in their sum against a fixed vector differ, so when
    those sums alone show ``at_least`` distinct rows (nearly always) the
    exact count (a lexicographic sort of the rows) is skipped.
    """
    x = np.ascontiguousarray(x, dtype=np.float64) + 0.0  # -0.0 and 0.0 are the same value
    if not len(x):
        return 0
    if at_least is not None:
        # A row-wise reduction (not BLAS): equal rows get bit-equal sums.
        sums = (x * np.random.default_rng(0).standard_normal(x.shape[1])).sum(axis=1)
        distinct = len(np.unique(sums))
        if distinct >= at_least:
            return distinct
    return len(np.unique(x.view(np.dtype((np.void, x.dtype.itemsize * x.shape[1]))).ravel()))


def nearest_group(points: np.ndarray, features: np.ndarray, groups: list[np.ndarray]) -> np.ndarray:
    """For each of ``points``, the index of the group whose mean feature is nearest."""
    if not len(points):
        return np.zeros(0, dtype=np.int64)
    means = np.stack([np.asarray(features[g], dtype=np.float64).mean(axis=0) for g in groups])
    x = np.asarray(points, dtype=np.float64)
    d2 = (x * x).sum(axis=1)[:, None] + (means * means).sum(axis=1)[None, :] - 2.0 * (x @ means.T)
    return np.argmin(d2, axis=1)
