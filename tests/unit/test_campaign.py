"""The campaign simulator runs a whole labeling campaign end to end on tiny synthetic data."""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks.campaign.config import PNG, CampaignConfig, default_arms, quick_config, with_regime_outputs
from benchmarks.campaign.data import synthetic_data
from benchmarks.campaign.records import RoundRecord
from benchmarks.campaign.runner import run_campaign
from benchmarks.campaign.simulation import evaluate_val, oracle_labels, propose, training_samples
from benchmarks.campaign.verdicts import headroom_verdicts, miou_at
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

    arms = {"random_region", "adaptive", "entropy_diversity_image", "full", "frames_only"}
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
    assert all(r.labeled_pixels == 0 for r in records if r.arm == "frames_only")
    assert (tmp_path / "campaign.png").stat().st_size > 1000
    assert "| dusk frames, no dusk labels (reference) |" in markdown
    assert "| ours: region, adaptive w (default) |" in markdown and "Scoring throughput" in markdown
    assert miou_at(records, "adaptive", 0.0) == pytest.approx(next(r.miou for r in records if r.arm == "adaptive"))

    # A rerun with the same settings resumes from the saved records instead of training again.
    again, _ = run_campaign(tiny_config, log=messages.append)
    assert [(r.arm, r.round, r.miou) for r in again] == [(r.arm, r.round, r.miou) for r in records]


def test_a_round_is_the_apps_round_step_and_never_asks_for_a_pixel_twice():
    from learning.models import build_model

    config = quick_config(size=(48, 64), segments=20)
    data = synthetic_data(config, pool=3, val=1, source=4)
    model = build_model(config.arch, data.num_classes).eval()
    evaluation = evaluate_val(config, data, model)
    arm = default_arms(config.region_percent, 1)["adaptive"]
    queried = {k: np.zeros(data.pool_gt[k].shape, dtype=bool) for k in data.pool_keys}

    first = propose(config, data, arm, model, evaluation, labels={}, queried=queried, round_index=0, seed=0)
    assert first.background_classes == [0, 1]  # sky and road: more than their share of the day masks' pixels
    assert 0 < first.query_pixels <= int(0.03 * 3 * 48 * 64)
    assert all(q.spec.region_ids for q in first.queries)
    for query in first.queries:
        queried[query.key] |= query.spec.mask
    second = propose(config, data, arm, model, evaluation, labels={}, queried=queried, round_index=1, seed=0)
    assert second.queries and not any((q.spec.mask & queried[q.key]).any() for q in second.queries)


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


def _records(arm: str, mious: list[float], percent_per_round: float) -> list[RoundRecord]:
    return [RoundRecord(arm, 0, n, 0, n * percent_per_round, miou) for n, miou in enumerate(mious)]


def test_headroom_says_when_plus_three_over_random_would_mean_beating_full_supervision():
    arms = default_arms(1.0, 1)
    records = (_records("full", [0.30, 0.42, 0.44], 100.0) + _records("random_region", [0.30, 0.40, 0.42], 1.0)
               + _records("adaptive", [0.30, 0.41, 0.43], 1.0) + _records("region_diversity", [0.30, 0.402, 0.424], 1.0))
    headroom, closed = headroom_verdicts(records, {n: arms[n] for n in ("random_region", "adaptive", "region_diversity")})
    assert "+2.0, +2.0" in headroom and "only possible by beating full supervision" in headroom
    # adaptive gains +1.0 of a 2.0 headroom (50 %), diversity-heavy +0.3 (15 %): best first.
    assert closed.index("adaptive w (default) 50 % (+1.0 mIoU)") < closed.index("diversity-heavy (w=0) 15 % (+0.3 mIoU)")


def test_headroom_at_a_low_budget_leaves_room_for_plus_three():
    arms = default_arms(0.2, 1)
    records = _records("full", [0.30, 0.42], 100.0) + _records("random_region", [0.30, 0.35], 0.2)
    (headroom,) = headroom_verdicts(records, {"random_region": arms["random_region"]})
    assert "+7.0" in headroom and "within that headroom" in headroom
    assert headroom_verdicts(_records("random_region", [0.3, 0.35], 0.2), arms) == []  # no reference: no verdict


def test_another_budget_regime_writes_its_own_docs_section_and_plot():
    default = with_regime_outputs(CampaignConfig())
    assert (default.section, default.png) == ("campaign", str(PNG))
    low = with_regime_outputs(CampaignConfig(region_percent=0.2))
    assert low.section == "campaign-0_2pct" and low.png == str(PNG.with_name("campaign-0_2pct.png"))
    clicks = with_regime_outputs(CampaignConfig(oracle="dominant", steps_per_round=80))
    assert clicks.section == "campaign-dominant-80steps"


def test_the_frames_only_reference_trains_on_whole_day_masks_and_unlabeled_dusk_frames():
    config = quick_config(size=(48, 64), segments=20)
    data = synthetic_data(config, pool=3, val=1, source=4)
    void = {k: np.full_like(data.pool_gt[k], 255) for k in data.pool_keys}
    samples = training_samples(config, data, void, np.random.default_rng(0), unlabeled_frames=True)
    dusk = [s for s in samples if s.key in data.pool_keys]
    day = [s for s in samples if s.key not in data.pool_keys]
    assert {s.key for s in dusk} == set(data.pool_keys) and all((s.mask == 255).all() for s in dusk)
    assert all(np.array_equal(s.mask, src.mask) for s, src in zip(day, data.source))  # not thinned to nothing
    assert abs(len(dusk) - len(day)) <= len(data.pool_keys)  # dusk frames repeated to about half the frames
    # Without the flag, frames with no label stay out, as in every selection arm.
    assert training_samples(config, data, void, np.random.default_rng(0)) == list(data.source)


def test_headroom_splits_the_rise_into_what_frames_alone_give_and_what_labels_add():
    arms = default_arms(0.2, 1)
    records = (_records("full", [0.30, 0.40], 100.0) + _records("random_region", [0.30, 0.38], 0.2)
               + _records("frames_only", [0.30, 0.36], 0.0))
    _, frames = headroom_verdicts(records, {"random_region": arms["random_region"]})
    assert "reach 36.0 from round 0's 30.0: 60 % of the rise" in frames and "add +2.0 over the frames" in frames
