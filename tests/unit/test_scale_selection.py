"""Selection stays linear in the pool: the rules that keep its cost per unit the same at every pool size."""
from __future__ import annotations

import math

import numpy as np
import pytest

from learning.selection import SelectionParams, strategies
from learning.selection.diversity import distinct_rows, partition
from learning.selection.regions import region_class_histograms
from learning.selection.store import StoredFeatures, SummarySpec, SummaryStore
from learning.selection.summaries import ImageSummary, RegionSummary


@pytest.mark.parametrize(("n", "max_size"), [(2100, 256), (9970, 857), (99_500, 858), (7, 3), (5, 50)])
def test_partition_makes_as_few_groups_as_the_bound_allows_all_of_one_size(n, max_size):
    """ceil(n / max_size) groups of n / groups rows (±1): the per-unit cost of a group does not jump with n."""
    x = np.random.default_rng(n).standard_normal((n, 8))
    groups = partition(x, max_size)
    sizes = [len(g) for g in groups]
    assert len(groups) == math.ceil(n / max_size)
    assert max(sizes) <= max_size and max(sizes) - min(sizes) <= 1
    assert np.array_equal(np.sort(np.concatenate(groups)), np.arange(n))
    assert all(np.array_equal(g, np.sort(g)) for g in groups)


def test_partition_is_deterministic():
    x = np.random.default_rng(1).standard_normal((20_000, 16))  # above AXIS_SAMPLE: the axis from a sample
    first, second = partition(x, 700), partition(x.copy(), 700)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def test_distinct_rows_counts_like_a_lexicographic_unique():
    rng = np.random.default_rng(2)
    x = rng.integers(0, 3, (500, 4)).astype(np.float64)
    x[:5, 0] = -0.0
    exact = len(np.unique(x + 0.0, axis=0))
    assert distinct_rows(x) == exact
    assert distinct_rows(x, at_least=exact) == exact
    assert distinct_rows(x, at_least=10) >= 10


@pytest.mark.parametrize("count", [1, 7, 50, 199, 200])
def test_best_first_is_the_head_of_the_stable_order(count):
    rng = np.random.default_rng(count)
    scores = rng.integers(0, 6, 200).astype(np.float64)  # many ties
    assert np.array_equal(strategies._best_first(scores, count), np.argsort(-scores, kind="stable")[:count])


def test_the_shortlist_cap_per_image_is_decided_on_a_prefix_as_on_the_whole_order():
    rng = np.random.default_rng(3)
    item = np.repeat(np.arange(300), 9)
    scores = rng.random(len(item)) + (item < 20)  # 20 images hold the best units: the cap must bite
    c = strategies.Candidates(unit="region", keys=[str(i) for i in range(300)], item=item,
                              region=np.tile(np.arange(9), 300), pixels=np.full(len(item), 10), uncertainty=scores,
                              informativeness=scores, _features=None, _centres=None, pool_item=None,
                              total_pixels=27_000)
    ctx = strategies.SelectionContext(c, 40, 0.5, SelectionParams(), np.random.default_rng(0), None)
    size = math.ceil(40 * 50 ** 0.5)
    per_image = math.ceil(2 * size / 300)
    by_score = np.argsort(-scores, kind="stable")
    rank = np.zeros(len(item), dtype=np.int64)
    seen: dict[int, int] = {}
    for row in by_score:
        rank[row] = seen.get(item[row], 0)
        seen[item[row]] = rank[row] + 1
    expected = by_score[rank[by_score] < per_image][:size]
    assert np.array_equal(strategies._shortlist(ctx, scores), expected)


def test_region_histograms_of_all_classes_at_once_equal_class_by_class():
    from scipy import ndimage

    rng = np.random.default_rng(4)
    pred = rng.integers(0, 6, (37, 53)).astype(np.uint8)
    regions = rng.integers(0, 20, (37, 53)).astype(np.int32)
    expected = np.stack([np.bincount(regions.ravel(), minlength=20, weights=ndimage.uniform_filter(
        (pred == c).astype(np.float32), size=3, mode="nearest").ravel()) for c in range(6)], axis=1)
    assert np.array_equal(region_class_histograms(pred, regions, 6, context=1), expected)


def test_stored_descriptors_come_back_row_by_row_as_image_by_image(tmp_path):
    """The store's bulk lookup: kept rows read in one search per shard, the others recomputed."""
    rng = np.random.default_rng(5)
    spec = SummarySpec(measure="entropy", size=(4, 4), unit="region", num_classes=2, keep_features=2, shard_size=3)
    store = SummaryStore(tmp_path, spec)
    descriptors = rng.standard_normal((7, 5, 4)).astype(np.float32)  # image, region, dim
    summaries = []
    for i in range(7):
        kept = np.array([1, 3])
        summaries.append(ImageSummary(
            key=f"k{i}", image_size=(4, 4), canvas=(4, 4), score=0.5, features=descriptors[i].mean(0), candidate=True,
            pixels=16, uncertainty=0.5, centre=False, class_counts=np.array([8, 8]),
            regions=RegionSummary(ids=np.arange(5), pixels=np.full(5, 3), uncertainty=np.full(5, 0.5),
                                  scores=np.full(5, 0.1), feature_ids=kept, features=descriptors[i][kept],
                                  centre_ids=np.zeros(0, np.int64), centre_features=np.zeros((0, 4), np.float32))))
    for shard, start in enumerate(range(0, 7, 3)):
        store.write(shard, summaries[start:start + 3], "fp")
    recomputed = []

    def recompute(wanted):
        recomputed.append(sorted(wanted))
        return {i: descriptors[i][ids] for i, ids in wanted.items()}

    source = StoredFeatures(store, 3, recompute)
    images = np.array([6, 0, 4, 0, 2, 5])
    ids = np.array([3, 1, 0, 3, 1, 3])
    rows = source.region_feature_rows(images, ids)
    assert np.array_equal(rows, descriptors[images, ids])
    assert recomputed == [[4]]  # region 0 of image 4 was not kept
    by_image = source.region_features({0: np.array([3, 1]), 4: np.array([1])})
    assert np.array_equal(by_image[0], descriptors[0][[3, 1]]) and np.array_equal(by_image[4], descriptors[4][[1]])
