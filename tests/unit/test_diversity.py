"""Diversity: k-center spreads picks over feature clusters and avoids what is already labeled."""
from __future__ import annotations

from itertools import islice

import numpy as np

from learning.selection.diversity import iter_kcenter, min_distances


def _clusters(seed: int = 0):
    """Three tight clusters of 10; the most uncertain items all sit in cluster 0."""
    rng = np.random.default_rng(seed)
    centres = np.eye(3, 8) * 10
    features = np.concatenate([c + 0.1 * rng.standard_normal((10, 8)) for c in centres])
    cluster = np.repeat(np.arange(3), 10)
    scores = np.where(cluster == 0, 0.9, 0.5) + 0.01 * rng.random(30)
    return features, scores, cluster


def _first(features, k: int, **options) -> list[int]:
    return list(islice(iter_kcenter(features, **options), k))


def test_min_distances_matches_brute_force():
    rng = np.random.default_rng(1)
    x, c = rng.standard_normal((50, 6)), rng.standard_normal((7, 6))
    brute = np.sqrt(((x[:, None] - c[None]) ** 2).sum(-1)).min(1)
    assert np.allclose(min_distances(x, c, block=3), brute)


def test_top_k_by_score_picks_duplicates_but_kcenter_covers_every_cluster():
    features, scores, cluster = _clusters()
    top = np.argsort(-scores)[:3]
    assert set(cluster[top]) == {0}
    spread = _first(features, 3, scores=scores, score_weight=0.5)
    assert set(cluster[spread]) == {0, 1, 2}
    assert spread[0] == int(np.argmax(scores))  # no centres yet: start from the most informative


def test_score_weight_one_is_plain_top_k():
    features, scores, _ = _clusters()
    assert _first(features, 5, scores=scores, score_weight=1.0) == list(np.argsort(-scores)[:5])


def test_labeled_items_count_as_centres():
    features, scores, cluster = _clusters()
    labeled = features[cluster == 0][:2]
    picks = _first(features, 2, initial_centers=labeled, scores=scores, score_weight=0.3)
    assert 0 not in set(cluster[picks])


def test_iter_kcenter_yields_every_index_once():
    features, scores, _ = _clusters()
    order = list(iter_kcenter(features, scores=scores, score_weight=0.2))
    assert sorted(order) == list(range(len(features)))
