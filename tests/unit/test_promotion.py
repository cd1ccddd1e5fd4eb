"""Keep-best: a new model replaces the current one unless it is worse on the same images: beyond noise, or by
more than the drop a promoted model may ever show (learning.promotion.MAX_DROP)."""
from __future__ import annotations

import numpy as np

from learning.promotion import (
    MAX_DROP,
    TOLERANCE,
    decide_on_training,
    decide_on_validation,
    image_confusions,
    miou_of,
)


def masks(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    truths = []
    for _ in range(n):
        truth = np.zeros((20, 20), np.uint8)
        top, left = rng.integers(0, 10, 2)
        truth[top:top + 8, left:left + 8] = 1
        truths.append(truth)
    return truths


def noisy(truths, flip: float, seed: int):
    rng = np.random.default_rng(seed)
    return [np.where(rng.random(t.shape) < flip, 1 - t, t).astype(np.uint8) for t in truths]


def test_image_confusions_sum_to_the_pooled_confusion_and_skip_void():
    truths = masks(3)
    truths[0][0, :5] = 255
    confusion = image_confusions(truths, truths, 2)
    assert confusion.shape == (3, 2, 2) and confusion[0].sum() == 400 - 5
    assert miou_of(confusion.sum(0)) == 1.0


def test_a_clearly_worse_model_is_rejected_and_a_clearly_better_one_promoted():
    truths = masks(20)
    good = image_confusions(noisy(truths, 0.02, 1), truths, 2)
    bad = image_confusions(noisy(truths, 0.30, 2), truths, 2)
    rejected = decide_on_validation(bad, good)
    assert not rejected.promote and rejected.high < 0 and "worse beyond noise" in rejected.reason
    promoted = decide_on_validation(good, bad)
    assert promoted.promote and promoted.difference > 0 and promoted.images == 20


def test_a_difference_within_noise_and_the_allowed_drop_keeps_the_new_model():
    truths = masks(20)
    a = image_confusions(noisy(truths, 0.10, 5), truths, 2)
    b = image_confusions(noisy(truths, 0.10, 15), truths, 2)
    decision = decide_on_validation(a, b)
    assert -MAX_DROP < decision.difference < 0 and decision.low < 0 < decision.high
    assert decision.promote
    assert ("within the 1.0 point" if decision.difference < 0 else "not worse") in decision.reason


def test_a_drop_beyond_the_allowed_one_is_rejected_even_within_noise():
    """Few validation images: the interval spans zero, yet a 2-point drop never replaces the current model."""
    truths = masks(6)
    current = image_confusions(noisy(truths, 0.10, 5), truths, 2)
    candidate = image_confusions(noisy(truths, 0.13, 6), truths, 2)
    decision = decide_on_validation(candidate, current)
    assert -0.2 < decision.difference < -MAX_DROP and decision.high > -TOLERANCE  # noise alone would promote it
    assert not decision.promote and "lower by more than the 1.0 point" in decision.reason
    assert decide_on_validation(candidate, current, max_drop=1.0).promote  # the cap is what rejected it


def test_without_validation_the_training_loss_decides():
    assert decide_on_training([{"loss": 1.2}, {"loss": 0.7}]).promote
    assert not decide_on_training([{"loss": 0.5}, {"loss": 0.9}]).promote
    assert not decide_on_training([{"loss": 0.5}, {"loss": float("nan")}]).promote
    assert decide_on_training([]).promote
