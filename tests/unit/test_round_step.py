"""propose_round: the one round step (score → calibrate → select → suggest) the app and the simulators share."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from learning.models import build_model
from learning.round_step import (
    Calibration,
    PoolImage,
    SelectionSettings,
    propose_round,
    selection_seed,
    validation_predictions,
)
from learning.selection import Budget, slic_regions

SIZE = (32, 48)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("lraspp_mobilenet_v3_large", 2).eval()


def settings(unit="region", amount=20.0, strategy="adaptive"):
    return SelectionSettings(strategy=strategy, unit=unit, budget=Budget(amount, "percent"), num_classes=2,
                             size=SIZE, batch_size=2)


def pool_of(samples, **extra):
    return [PoolImage(key=s.key, image=s.image, **extra.get(s.key, {})) for s in samples]


def propose(model, samples, val, *, queried=None, unit="region", seed=0, round_index=0):
    regions = {s.key: slic_regions(s.image, n_segments=12) for s in samples}
    pool = [PoolImage(key=s.key, image=s.image, queried=(queried or {}).get(s.key)) for s in samples]
    return propose_round(model, pool, calibration=validation_predictions(model, val, size=SIZE),
                         settings=settings(unit), round_index=round_index, val_miou=0.3, seed=seed,
                         regions=regions.__getitem__)


def test_the_same_inputs_give_the_same_proposal(model, tiny_samples):
    samples, val = tiny_samples(4, labeled=False), tiny_samples(2, seed=1)
    first, second = propose(model, samples, val), propose(model, samples, val)
    assert first.queries and [q.key for q in first.queries] == [q.key for q in second.queries]
    for a, b in zip(first.queries, second.queries):
        assert np.array_equal(a.spec.mask, b.spec.mask) and np.array_equal(a.suggestion.mask, b.suggestion.mask)


def test_pixels_already_queried_are_never_proposed_again(model, tiny_samples):
    samples, val = tiny_samples(4, labeled=False), tiny_samples(2, seed=1)
    first = propose(model, samples, val)
    asked = {q.key: q.spec.mask.copy() for q in first.queries}
    again = propose(model, samples, val, queried=asked, round_index=1)
    assert again.queries
    for query in again.queries:
        if query.key in asked:
            assert not (query.spec.mask & asked[query.key]).any()


def test_a_fully_queried_image_gets_no_image_query(model, tiny_samples):
    samples, val = tiny_samples(3, labeled=False), tiny_samples(2, seed=1)
    done = {samples[0].key: np.ones(samples[0].image.shape[:2], dtype=bool)}
    pool = [PoolImage(key=s.key, image=s.image, queried=done.get(s.key)) for s in samples]
    proposal = propose_round(model, pool, calibration=validation_predictions(model, val, size=SIZE),
                             settings=settings("image", 100.0), round_index=0, val_miou=None)
    assert proposal.queries and samples[0].key not in {q.key for q in proposal.queries}


def test_suggestions_stay_inside_the_query_and_above_their_threshold(model, tiny_samples):
    samples, val = tiny_samples(4, labeled=False), tiny_samples(2, seed=1)
    proposal = propose(model, samples, val)
    for query in proposal.queries:
        suggested = query.suggestion.mask != 255
        assert not (suggested & ~query.spec.mask).any()
        assert query.confidence.shape == query.spec.mask.shape and query.confidence.dtype == np.uint8
        confidence = query.confidence.astype(np.float64) / 255
        thresholds = proposal.thresholds.values[query.suggestion.mask[suggested]]
        assert (confidence[suggested] >= thresholds - 1 / 255).all()
    assert proposal.query_pixels == sum(q.spec.pixels for q in proposal.queries)


def test_without_validation_images_every_class_gets_its_fallback(model, tiny_samples):
    samples = tiny_samples(3, labeled=False)
    pool = [PoolImage(key=s.key, image=s.image) for s in samples]
    proposal = propose_round(model, pool, calibration=Calibration([], []), settings=settings("image", 40.0),
                             round_index=0, val_miou=None, background_classes=[0])
    assert proposal.thresholds.source == ["fallback", "fallback"]
    assert proposal.thresholds.values[0] > proposal.thresholds.values[1]  # background is stricter
    assert proposal.val_quality is None and proposal.background_classes == [0]


def test_a_stop_request_cancels_between_phases(model, tiny_samples):
    from learning.progress import Cancelled

    samples = tiny_samples(2, labeled=False)
    with pytest.raises(Cancelled):
        propose_round(model, pool_of(samples), calibration=Calibration([], []), settings=settings("image"),
                      round_index=0, val_miou=None, should_stop=lambda: True)


def test_the_selection_seed_of_seed_zero_is_the_round_number():
    assert [selection_seed(0, r) for r in range(3)] == [0, 1, 2] and selection_seed(2, 1) == 2001


def test_validation_images_above_the_pixel_cap_are_compared_on_a_smaller_grid(model, monkeypatch):
    import learning.round_step as round_step
    from learning.data import Sample
    from learning.inference import capped_size

    monkeypatch.setattr(round_step, "MAX_VALIDATION_PIXELS", 30 * 40)
    rng = np.random.default_rng(0)
    big = Sample(image=rng.integers(0, 255, (120, 160, 3), dtype=np.uint8), key="big",
                 mask=np.repeat(np.arange(2, dtype=np.uint8), 80)[None].repeat(120, axis=0))
    small = Sample(image=rng.integers(0, 255, (30, 40, 3), dtype=np.uint8), key="small",
                   mask=np.zeros((30, 40), np.uint8))
    calibration = validation_predictions(model, [big, small], size=SIZE)
    (big_pred, big_conf), (small_pred, _) = calibration.predictions
    assert big_pred.shape == big_conf.shape == calibration.truths[0].shape == (30, 40)  # a quarter a side
    # Nearest-neighbour: the truth's left half stays class 0, its right half class 1.
    assert (calibration.truths[0][:, :20] == 0).all() and (calibration.truths[0][:, 20:] == 1).all()
    assert small_pred.shape == calibration.truths[1].shape == (30, 40)  # at the cap: its own resolution
    assert capped_size((4000, 3000), 1_000_000) == (1154, 866)
    assert capped_size((300, 400), None) == (300, 400)
