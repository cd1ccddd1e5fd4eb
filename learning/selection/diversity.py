"""Diversity among query candidates: core-set (k-center greedy) and k-means.

Uncertainty alone picks near-duplicates on a video pool (consecutive frames
are equally uncertain). The recommended recipe (research/al-da-anchors.md c.4)
takes the top candidates by uncertainty and then chooses among them for
coverage of feature space.
"""
from __future__ import annotations

import numpy as np


def _normalise(values: np.ndarray) -> np.ndarray:
    top = float(values.max()) if values.size else 0.0
    return values / top if top > 0 else np.zeros_like(values)


def kcenter_greedy(
    features: np.ndarray,
    k: int,
    *,
    initial_centers: np.ndarray | None = None,
    scores: np.ndarray | None = None,
    score_weight: float = 0.0,
) -> list[int]:
    """Greedy k-center (Sener & Savarese, core-set): indices of up to ``k`` picks, in pick order.

    Each step takes the candidate farthest (Euclidean) from every centre so
    far; ``initial_centers`` (e.g. features of already-labeled images) count
    as centres from the start, so the picks fill gaps the labeled set leaves.

    With ``scores`` and ``score_weight`` in ``[0, 1]`` each step maximises
    ``(1 - w) * distance / max distance + w * score / max score``: ``w = 0`` is
    plain k-center, ``w = 1`` is plain top-k by score. Without centres the
    first pick is the highest-scoring candidate (or the one farthest from the
    mean when there are no scores).
    """
    x = np.asarray(features, dtype=np.float64)
    n = len(x)
    k = min(int(k), n)
    if k <= 0:
        return []
    if not 0.0 <= score_weight <= 1.0:
        raise ValueError("score_weight must be in [0, 1]")
    score_term = _normalise(np.asarray(scores, dtype=np.float64)) if scores is not None else np.zeros(n)
    w = score_weight if scores is not None else 0.0

    min_dist = np.full(n, np.inf)
    if initial_centers is not None and len(initial_centers):
        centers = np.asarray(initial_centers, dtype=np.float64)
        for start in range(0, len(centers), 1024):
            block = centers[start : start + 1024]
            d = np.sqrt(((x[:, None, :] - block[None, :, :]) ** 2).sum(-1))
            min_dist = np.minimum(min_dist, d.min(axis=1))

    picked: list[int] = []
    available = np.ones(n, dtype=bool)
    for _ in range(k):
        if np.isinf(min_dist).all():
            if scores is not None:
                objective = score_term.copy()
            else:
                objective = np.linalg.norm(x - x.mean(axis=0), axis=1)
        else:
            objective = (1.0 - w) * _normalise(np.where(available, min_dist, 0.0)) + w * score_term
        objective = np.where(available, objective, -np.inf)
        i = int(np.argmax(objective))
        picked.append(i)
        available[i] = False
        min_dist = np.minimum(min_dist, np.linalg.norm(x - x[i], axis=1))
    return picked


def kmeans_pick(features: np.ndarray, scores: np.ndarray, k: int, *, seed: int = 0) -> list[int]:
    """Cluster into ``k`` groups (scikit-learn k-means) and take the top-scoring member of each.

    Returns indices sorted by score, highest first. Fewer than ``k`` come
    back only when there are fewer than ``k`` distinct feature vectors.
    """
    from sklearn.cluster import KMeans

    x = np.asarray(features, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    n_distinct = len(np.unique(x, axis=0))
    k = min(int(k), n_distinct)
    if k <= 0:
        return []
    labels = KMeans(n_clusters=k, n_init=3, random_state=seed).fit_predict(x)
    picks = []
    for cluster in range(k):
        members = np.flatnonzero(labels == cluster)
        if members.size:
            picks.append(int(members[np.argmax(s[members])]))
    return sorted(picks, key=lambda i: -s[i])
