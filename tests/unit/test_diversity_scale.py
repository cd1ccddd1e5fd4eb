"""Diversity at scale: groups of neighbours instead of the whole shortlist, checked against the exact reference."""
from __future__ import annotations

import time

import numpy as np
import pytest

from learning.selection import Budget, PoolScore, SelectionParams, select_queries, strategies
from learning.selection.diversity import min_distances, nearest_group, partition


def blobs(clusters: int, per_cluster: int, dim: int = 16, *, seed: int = 0, spread: float = 0.05):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)) * 3
    labels = np.repeat(np.arange(clusters), per_cluster)
    return centres[labels] + spread * rng.standard_normal((len(labels), dim)), labels


def pool_of(features: np.ndarray, *, seed: int = 0) -> list[PoolScore]:
    """One tiny image per feature vector, uncertainty drawn at random (the strategy's score)."""
    rng = np.random.default_rng(seed)
    pool = []
    for i, feature in enumerate(features):
        unc = np.full((4, 4), rng.uniform(0.2, 0.9), dtype=np.float32)
        fmap = np.broadcast_to(feature.astype(np.float16)[:, None, None], (len(feature), 2, 2)).copy()
        pool.append(PoolScore(key=f"u{i:05d}", image_size=(4, 4), pred=np.zeros((4, 4), np.uint8),
                              confidence=1 - unc, uncertainty=unc, feature_map=fmap))
    return pool


def test_partition_cuts_every_row_into_exactly_one_bounded_group():
    x, _ = blobs(7, 300, seed=1)
    groups = partition(x, 256)
    assert all(len(g) <= 256 for g in groups)
    assert np.array_equal(np.sort(np.concatenate(groups)), np.arange(len(x)))
    sizes = [len(g) for g in groups]
    assert max(sizes) <= 2 * min(sizes)  # median cuts keep them balanced


def test_partition_keeps_neighbours_together():
    x, labels = blobs(8, 200, seed=2)
    groups = partition(x, 200)
    mixed = sum(len(np.unique(labels[g])) > 1 for g in groups)
    assert mixed <= 2  # well separated clusters are hardly ever cut
    assert np.array_equal(nearest_group(x[groups[3][:5]], x, groups), np.full(5, 3))


def select(pool, k, diversity, *, exact: bool, weight=0.2, **kw):
    params = SelectionParams(diversity=diversity, uncertainty_weight=weight,
                             exact_diversity_cost=float("inf") if exact else 0, **kw)
    return [q.key for q in select_queries(pool, Budget(k, "images"), "entropy_diversity", params=params, seed=5)]


@pytest.mark.parametrize("diversity", ["kmeans", "kcenter"])
def test_one_group_is_exactly_the_reference(diversity, monkeypatch):
    x, _ = blobs(6, 40, seed=3)
    pool = pool_of(x)
    monkeypatch.setattr(strategies, "GROUP_PICKS", 10**9)  # one group: the whole shortlist
    assert select(pool, 12, diversity, exact=False) == select(pool, 12, diversity, exact=True)


@pytest.mark.parametrize("diversity", ["kmeans", "kcenter"])
def test_groups_cover_the_clusters_the_reference_covers(diversity):
    x, labels = blobs(60, 40, seed=4)
    pool = pool_of(x, seed=4)
    cluster = {p.key: labels[i] for i, p in enumerate(pool)}
    exact = select(pool, 240, diversity, exact=True)
    grouped = select(pool, 240, diversity, exact=False)  # 4 groups of 600 units, 60 picks each
    assert len(grouped) == len(exact) == 240 and set(grouped) != set(exact)
    assert len({cluster[k] for k in grouped}) >= 0.95 * len({cluster[k] for k in exact})
    # Coverage radius: the farthest pool point from its nearest pick, within twice the reference's.
    index = {p.key: i for i, p in enumerate(pool)}
    radius = {name: min_distances(x, x[[index[k] for k in keys]]).max()
              for name, keys in (("exact", exact), ("grouped", grouped))}
    assert radius["grouped"] <= 2 * radius["exact"]


def test_grouped_diversity_over_a_large_shortlist_is_fast():
    """50,000 units, 2,000 picks: the exact k-means would take minutes; in groups it takes seconds."""
    rng = np.random.default_rng(0)
    features = rng.standard_normal((50_000, 32)).astype(np.float32)
    scores = rng.random(50_000)
    c = strategies.Candidates(
        unit="image", keys=[str(i) for i in range(50_000)], item=np.arange(50_000), region=np.full(50_000, -1),
        pixels=np.full(50_000, 100), uncertainty=scores, informativeness=scores,
        _features=lambda rows: features[rows].astype(np.float64), _centres=lambda: np.zeros((0, 0)),
        pool_item=None, total_pixels=5_000_000)
    ctx = strategies.SelectionContext(c, 2_000, 0.2, SelectionParams(), np.random.default_rng(0), None)
    start = time.process_time()
    order = strategies.diversity_order(ctx, scores)
    picks = [next(order) for _ in range(2_000)]
    assert time.process_time() - start < 60
    assert len(set(picks)) == 2_000
