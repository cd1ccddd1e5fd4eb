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


def partition(features: np.ndarray, max_size: int, *, iterations: int = 8) -> list[np.ndarray]:
    """Split the rows into groups of at most ``max_size`` neighbours: recursive median cuts along the main axis.

    Each cut halves a group along its principal direction (a few power
    iterations from a fixed start, so the result is deterministic), the
    median keeping the halves balanced. Cost O(n D log(n / max_size)): the
    way diversity stays linear in the pool (see ``strategies.diversity_order``).
    Groups come back in a fixed order; row indices in each are ascending.
    """
    x = np.asarray(features, dtype=np.float64)
    done: list[np.ndarray] = []
    todo = [np.arange(len(x))]
    while todo:
        rows = todo.pop()
        if len(rows) <= max(1, max_size):
            done.append(rows)
            continue
        centred = x[rows] - x[rows].mean(axis=0)
        axis = centred[int(np.argmax((centred * centred).sum(axis=1)))].copy()
        for _ in range(iterations):
            axis = centred.T @ (centred @ axis)
            norm = np.linalg.norm(axis)
            if norm == 0:
                break
            axis /= norm
        projection = centred @ axis
        order = np.argsort(projection, kind="stable")
        half = len(rows) // 2
        todo.extend([np.sort(rows[order[half:]]), np.sort(rows[order[:half]])])
    return done


def nearest_group(points: np.ndarray, features: np.ndarray, groups: list[np.ndarray]) -> np.ndarray:
    """For each of ``points``, the index of the group whose mean feature is nearest."""
    if not len(points):
        return np.zeros(0, dtype=np.int64)
    means = np.stack([np.asarray(features[g], dtype=np.float64).mean(axis=0) for g in groups])
    x = np.asarray(points, dtype=np.float64)
    d2 = (x * x).sum(axis=1)[:, None] + (means * means).sum(axis=1)[None, :] - 2.0 * (x @ means.T)
    return np.argmin(d2, axis=1)
