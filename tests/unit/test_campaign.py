"""The campaign simulator runs a whole labeling campaign end to end on tiny synthetic data."""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks.campaign import (
    miou_at,
    oracle_labels,
    quick_config,
    run_campaign,
    synthetic_data,
)
from learning.selection import Budget, PoolItem, PoolScore, select_queries


@pytest.fixture
def tiny_config(tmp_path):
    return quick_config(
        rounds=2, size=(48, 64), segments=20, base_steps=12, steps_per_round=3,
        arms=("random_region", "adaptive", "entropy_diversity_image"),
        work=str(tmp_path / "work"), png=str(tmp_path / "campaign.png"), write_docs=False,
    )


def test_two_round_campaign_runs_end_to_end(tiny_config, tmp_path):
    messages = []
    records, markdown = run_campaign(tiny_config, log=messages.append)

    arms = {"random_region", "adaptive", "entropy_diversity_image", "full"}
    assert {r.arm for r in records} == arms
    for arm in arms:
        rounds = sorted(r.round for r in records if r.arm == arm)
        assert rounds == [0, 1, 2]
        percents = [r.labeled_percent for r in sorted((r for r in records if r.arm == arm), key=lambda r: r.round)]
        assert percents == sorted(percents)  # labels only accumulate
        assert all(0.0 <= r.miou <= 1.0 for r in records if r.arm == arm)
    total = 12 * 48 * 64
    for r in records:
        if r.arm in ("random_region", "adaptive") and r.round:
            assert r.labeled_pixels <= r.round * int(0.03 * total)  # 3 % per round, never more
            assert r.regions > 0
            assert r.suggestion_coverage is not None
    assert (tmp_path / "campaign.png").stat().st_size > 1000
    assert "| ours: region, adaptive w (default) |" in markdown and "Scoring throughput" in markdown
    assert miou_at(records, "adaptive", 0.0) == pytest.approx(next(r.miou for r in records if r.arm == "adaptive"))

    # A rerun with the same settings resumes from the saved records instead of training again.
    again, _ = run_campaign(tiny_config, log=messages.append)
    assert [(r.arm, r.round, r.miou) for r in again] == [(r.arm, r.round, r.miou) for r in records]


def test_dominant_oracle_gives_each_queried_superpixel_its_majority_class():
    config = quick_config(size=(48, 64), segments=20)
    data = synthetic_data(config, pool=2, val=1, source=1)
    key = data.pool_keys[0]
    gt, regions = data.pool_gt[key], data.pool_regions[key]
    probs = np.full((4, 48, 64), 0.25, dtype=np.float32)
    score = PoolScore.from_probs(key, probs, np.ones(4))
    (query,) = select_queries([PoolItem(score=score, regions=regions)], Budget(3, "regions"), "random", unit="region")
    answer = oracle_labels(query, gt, regions, "dominant")
    exact = oracle_labels(query, gt, regions, "exact")
    assert np.array_equal(answer != 255, query.mask) and np.array_equal(exact != 255, query.mask)
    for rid in query.region_ids:
        inside = regions == rid
        assert len(np.unique(answer[inside])) == 1
        assert answer[inside][0] == np.bincount(gt[inside]).argmax()
