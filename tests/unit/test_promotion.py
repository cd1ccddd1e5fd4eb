"""Keep-best: a new model replaces the current one unless it is worse beyond noise on the same images."""
from __future__ import annotations

import numpy as np

from learning.promotion import (
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


def test_a_difference_within_noise_keeps_the_new_model():
    truths = masks(20)
    a = image_confusions(noisy(truths, 0.10, 3), truths, 2)
    b = image_confusions(noisy(truths, 0.10, 4), truths, 2)
    decision = decide_on_validation(a, b)
    assert decision.promote and decision.low < 0 and abs(decision.difference) < 0.03


def test_without_validation_the_training_loss_decides():
    assert decide_on_training([{"loss": 1.2}, {"loss": 0.7}]).promote
    assert not decide_on_training([{"loss": 0.5}, {"loss": 0.9}]).promote
    assert not decide_on_training([{"loss": 0.5}, {"loss": float("nan")}]).promote
    assert decide_on_training([]).promote
