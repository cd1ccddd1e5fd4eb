"""select_queries: strategies, budgets in images/regions/pixels, labeled pixels, diversity, the schedule."""
from __future__ import annotations

import numpy as np
import pytest

from learning.selection import (
    STRATEGIES,
    AdaptiveSchedule,
    Budget,
    PoolItem,
    PoolScore,
    SelectionParams,
    merge_labels,
    query_labels,
    select_queries,
    strategy_weight,
)
from learning.selection.regions import grid_regions

NUM_CLASSES = 3


def _score(key: str, uncertainty: float, feature: np.ndarray, *, size=(12, 16), seed: int = 0) -> PoolScore:
    """A pool record with roughly ``uncertainty`` everywhere, a striped prediction and a constant feature."""
    rng = np.random.default_rng(seed)
    unc = np.clip(uncertainty + 0.05 * rng.standard_normal(size), 0, 1).astype(np.float32)
    pred = ((np.arange(size[1])[None, :] // 3 + rng.integers(0, 2, size)) % NUM_CLASSES).astype(np.uint8)
    fmap = np.broadcast_to(np.asarray(feature, dtype=np.float16)[:, None, None], (len(feature), 3, 4)).copy()
    return PoolScore(key=key, image_size=size, pred=pred, confidence=1 - unc, uncertainty=unc, feature_map=fmap)


def _clustered_pool() -> tuple[list[PoolScore], dict[str, int]]:
    """Three feature clusters of four images; cluster 0 holds the four most uncertain images."""
    pool, cluster = [], {}
    for c, unc in enumerate([0.9, 0.6, 0.5]):
        for j in range(4):
            feature = np.eye(3, 6)[c] + 0.01 * j
            key = f"c{c}-{j}"
            pool.append(_score(key, unc - 0.01 * j, feature, seed=10 * c + j))
            cluster[key] = c
    return pool, cluster


@pytest.mark.parametrize("diversity", ["kmeans", "kcenter"])
def test_diversity_picks_from_different_clusters_where_uncertainty_picks_duplicates(diversity):
    pool, cluster = _clustered_pool()
    uncertain = select_queries(pool, Budget(3, "images"), "entropy")
    diverse = select_queries(pool, Budget(3, "images"), "entropy_diversity",
                             params=SelectionParams(diversity=diversity))
    assert {cluster[q.key] for q in uncertain} == {0}
    assert {cluster[q.key] for q in diverse} == {0, 1, 2}
    assert cluster[diverse[0].key] == 0  # the most uncertain cluster still comes first


@pytest.mark.parametrize("diversity", ["kmeans", "kcenter"])
def test_labeled_images_are_diversity_centres(diversity):
    pool, cluster = _clustered_pool()
    items = [PoolItem(score=s) for s in pool]
    items[4] = PoolItem(score=pool[4], labels=np.zeros(pool[4].image_size, dtype=np.uint8))  # c1-0 fully labeled
    picks = select_queries(items, Budget(2, "images"), "entropy_diversity", params=SelectionParams(diversity=diversity))
    assert "c1-0" not in {q.key for q in picks}
    assert {cluster[q.key] for q in picks} == {0, 2}  # cluster 1 is covered already


@pytest.mark.parametrize("diversity", ["kmeans", "kcenter"])
def test_external_labeled_features_are_centres_too(diversity):
    pool, cluster = _clustered_pool()
    picks = select_queries(pool, Budget(2, "images"), "entropy_diversity", labeled_features=np.eye(3, 6)[[2]],
                           params=SelectionParams(diversity=diversity))
    assert {cluster[q.key] for q in picks} == {0, 1}


def test_external_features_of_the_wrong_width_are_refused():
    pool, _ = _clustered_pool()
    with pytest.raises(ValueError, match="dimensions"):
        select_queries(pool, Budget(2, "images"), "entropy_diversity", labeled_features=np.ones((1, 5)))


def _region_pool(count: int = 6, *, canvas=(30, 40), seed: int = 0) -> list[PoolItem]:
    """Pool items whose region maps live at a larger canvas than the 12x16 scores, some half labeled."""
    rng = np.random.default_rng(seed)
    items = []
    for i in range(count):
        score = _score(f"img{i}", rng.uniform(0.2, 0.9), rng.standard_normal(6), seed=i)
        score.image_size = canvas
        regions = grid_regions(*canvas, cell=int(rng.integers(4, 9)))
        labels = None
        if i % 3 == 0:
            labels = np.full(canvas, 255, dtype=np.uint8)
            labels[: canvas[0] // 2] = 1
        items.append(PoolItem(score=score, regions=regions, labels=labels))
    return items


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
@pytest.mark.parametrize("budget", [Budget(1, "pixels"), Budget(137, "pixels"), Budget(2.5, "percent"),
                                    Budget(11, "percent"), Budget(3000, "pixels")])
def test_region_budgets_are_respected_to_the_pixel(strategy, budget):
    items = _region_pool()
    total = sum(i.canvas[0] * i.canvas[1] for i in items)
    limit = budget.pixel_limit(total)
    queries = select_queries(items, budget, strategy, unit="region", seed=3)
    used = sum(q.pixels for q in queries)
    assert used <= limit
    largest = max(int(np.bincount(i.regions.ravel()).max()) for i in items)
    assert limit - used < largest  # nothing that still fits is left behind
    for q, item in ((q, next(i for i in items if i.key == q.key)) for q in queries):
        assert q.mask.shape == item.canvas and q.pixels == int(q.mask.sum()) > 0
        assert np.array_equal(q.mask & np.isin(item.regions, q.region_ids), q.mask)
        if item.labels is not None:
            assert not (q.mask & (item.labels != 255)).any()  # labeled pixels are never queried again


def test_count_budgets_and_query_order():
    items = _region_pool()
    regions = select_queries(items, Budget(7, "regions"), "region")
    assert sum(len(q.region_ids) for q in regions) == 7
    assert [q.rank for q in regions] == list(range(len(regions)))
    images = select_queries(items, Budget(2, "images"), "entropy")
    assert len(images) == 2 and all(q.region_ids is None for q in images)
    half_labeled = next(q for q in select_queries(items, Budget(6, "images"), "random") if q.key == "img0")
    assert half_labeled.pixels == 30 * 40 // 2


def test_pixel_budget_with_image_queries_never_splits_an_image():
    items = _region_pool()
    assert select_queries(items, Budget(500, "pixels"), "entropy") == []
    picked = select_queries(items, Budget(1300, "pixels"), "entropy")
    assert len(picked) == 1 and picked[0].pixels <= 1300


def test_fully_labeled_pool_yields_nothing():
    items = [PoolItem(score=i.score, regions=i.regions, labels=np.zeros(i.canvas, dtype=np.uint8))
             for i in _region_pool(3)]
    for strategy in STRATEGIES:
        assert select_queries(items, Budget(50, "percent"), strategy, unit="region") == []


def test_budget_units_must_match_query_units():
    items = _region_pool(2)
    with pytest.raises(ValueError, match="images"):
        select_queries(items, Budget(1, "images"), "region")
    with pytest.raises(ValueError, match="regions"):
        select_queries(items, Budget(1, "regions"), "entropy")
    with pytest.raises(ValueError, match="unknown strategy"):
        select_queries(items, Budget(1, "percent"), "bald")


def test_a_weak_model_picks_typical_units_and_a_strong_one_uncertain_units():
    # One big cluster of ordinary images and a small one of odd, very uncertain ones.
    pool = [_score(f"typical{j}", 0.3, np.eye(2, 6)[0] + 0.02 * j, seed=j) for j in range(8)]
    pool += [_score(f"odd{j}", 0.9, np.eye(2, 6)[1] + 0.02 * j, seed=20 + j) for j in range(2)]
    cold = SelectionParams(uncertainty_weight=0.0)
    warm = SelectionParams(uncertainty_weight=1.0)
    assert select_queries(pool, Budget(1, "images"), "entropy_diversity", params=cold)[0].key.startswith("typical")
    assert select_queries(pool, Budget(1, "images"), "entropy_diversity", params=warm)[0].key.startswith("odd")


def test_unknown_diversity_method_is_refused():
    pool, _ = _clustered_pool()
    with pytest.raises(ValueError, match="diversity"):
        select_queries(pool, Budget(2, "images"), "entropy_diversity", params=SelectionParams(diversity="badge"))


def test_random_is_reproducible_per_seed():
    items = _region_pool()
    first = select_queries(items, Budget(5, "percent"), "random", unit="region", seed=7)
    again = select_queries(items, Budget(5, "percent"), "random", unit="region", seed=7)
    other = select_queries(items, Budget(5, "percent"), "random", unit="region", seed=8)
    assert [(q.key, q.region_ids) for q in first] == [(q.key, q.region_ids) for q in again]
    assert [(q.key, q.region_ids) for q in first] != [(q.key, q.region_ids) for q in other]


def test_regions_fall_back_to_a_grid_without_region_maps():
    pool, _ = _clustered_pool()
    queries = select_queries(pool, Budget(10, "percent"), "adaptive")
    assert queries and all(q.region_ids for q in queries)
    assert sum(q.pixels for q in queries) <= 0.10 * len(pool) * 12 * 16


def test_adaptive_schedule_moves_from_diversity_to_uncertainty():
    schedule = AdaptiveSchedule(start=0.2, end=0.9, ramp_rounds=4, miou_low=0.2, miou_high=0.6)
    assert schedule.weight(0) == pytest.approx(0.2)
    assert schedule.weight(4) == pytest.approx(0.9)
    by_round = [schedule.weight(r) for r in range(6)]
    assert by_round == sorted(by_round)
    assert schedule.weight(2, 0.1) < schedule.weight(2) < schedule.weight(2, 0.7)
    params = SelectionParams(schedule=schedule, uncertainty_weight=0.4)
    assert strategy_weight("adaptive", round_index=0, params=params) == pytest.approx(0.2)
    assert strategy_weight("region", round_index=3, params=params) == pytest.approx(0.4)
    assert strategy_weight("entropy", round_index=3) is None


def test_oracle_labels_fill_only_the_query_and_merge_over_earlier_labels():
    items = _region_pool(3)
    gt = np.full(items[0].canvas, 2, dtype=np.uint8)
    query = select_queries(items, Budget(40, "regions"), "region")[0]
    labels = query_labels(query, gt)
    assert ((labels != 255) == query.mask).all() and set(np.unique(labels)) <= {2, 255}
    earlier = np.full(items[0].canvas, 255, dtype=np.uint8)
    earlier[0, 0] = 1
    merged = merge_labels(earlier, labels)
    assert merged[0, 0] == (2 if query.mask[0, 0] else 1)
    assert (merged != 255).sum() == (labels != 255).sum() + (0 if query.mask[0, 0] else 1)


def test_queried_but_unpainted_pixels_are_not_asked_for_again():
    items = _region_pool(2)
    first = select_queries(items, Budget(5, "percent"), "region", seed=0)
    queried = {q.key: q.mask for q in first}
    again_items = [PoolItem(score=i.score, regions=i.regions, labels=i.labels, queried=queried.get(i.key))
                   for i in items]
    again = select_queries(again_items, Budget(5, "percent"), "region", seed=0)
    for q in again:
        if q.key in queried:
            assert not (q.mask & queried[q.key]).any()


def test_exploration_takes_its_share_of_the_picks_from_the_random_order():
    from learning.selection.strategies import with_exploration

    order = list(with_exploration(range(100, 112), np.arange(12), 0.25))
    assert len(order) == 24  # both streams run out: nothing is lost
    assert order[:8] == [100, 101, 102, 0, 103, 104, 105, 1]  # every fourth pick explores
    assert list(with_exploration([5, 6], np.arange(3), 0.0)) == [5, 6]
    assert list(with_exploration([5, 6], np.arange(3), 1.0)) == [0, 1, 2, 5, 6]  # then the rest of its own
    with pytest.raises(ValueError, match="explore_share"):
        list(with_exploration([1], np.arange(1), 1.5))


@pytest.mark.parametrize("share", [-0.25, 1.5, float("nan")])
def test_an_exploration_share_outside_0_to_1_is_refused_when_the_params_are_made(share):
    from learning.selection import SelectionParams

    with pytest.raises(ValueError, match="explore_share"):
        SelectionParams(explore_share=share)


def test_an_exploration_share_changes_which_regions_a_strategy_picks_but_not_the_budget():
    from learning.selection import SelectionParams

    items = _region_pool(seed=3)
    total = sum(i.canvas[0] * i.canvas[1] for i in items)
    budget = Budget(11, "percent")
    plain = select_queries(items, budget, "adaptive", unit="region", seed=0)
    mixed = select_queries(items, budget, "adaptive", unit="region", seed=0,
                           params=SelectionParams(explore_share=0.5))
    assert sum(q.pixels for q in mixed) <= budget.pixel_limit(total)
    assert {(q.key, q.region_ids) for q in plain} != {(q.key, q.region_ids) for q in mixed}


def test_the_schedules_random_first_rounds_draw_every_pick_at_random_then_the_strategy_takes_over():
    from dataclasses import replace

    from learning.selection import SelectionParams
    from learning.selection.strategies import AdaptiveSchedule

    schedule = AdaptiveSchedule(random_rounds=1)
    assert [schedule.explore_share(r) for r in (0, 1, 2)] == [1.0, 0.0, 0.0]
    assert AdaptiveSchedule().explore_share(0) == 0.0
    items = _region_pool(seed=3)
    budget = Budget(11, "percent")
    first = SelectionParams(schedule=schedule)

    def picks(strategy, params, round_index):
        return {(q.key, q.region_ids) for q in select_queries(items, budget, strategy, unit="region", seed=0,
                                                              params=params, round_index=round_index)}

    # Round 0: exactly an all-random exploration share; round 1: the schedule's own picks again.
    assert picks("adaptive", first, 0) == picks("adaptive", SelectionParams(explore_share=1.0), 0)
    assert picks("adaptive", first, 0) != picks("adaptive", SelectionParams(), 0)
    assert picks("adaptive", first, 1) == picks("adaptive", SelectionParams(), 1)
    # A fixed trade-off strategy has no schedule: its first round is its own.
    assert picks("region", first, 0) == picks("region", replace(first, schedule=AdaptiveSchedule()), 0)
