"""Losses and class weights for imbalanced tasks (learning/losses.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from learning.losses import class_weights_from_counts, soft_dice_loss
from learning.train import TrainConfig, train


def test_sqrt_weights_favour_the_rare_class_gently_and_are_capped():
    weights = class_weights_from_counts(np.array([9_000, 1_000]), "sqrt")
    assert weights[1] / weights[0] == pytest.approx(3.0)  # sqrt(9000 / 1000)
    enet = class_weights_from_counts(np.array([9_000, 1_000]), "enet")
    assert enet[1] / enet[0] > weights[1] / weights[0]  # ENet pushes harder
    capped = class_weights_from_counts(np.array([1_000_000, 1, 0]), "sqrt")
    assert float(capped.max()) == 5.0 and float(capped[2]) == 1.0  # absent class: neutral
    assert class_weights_from_counts(np.array([1, 1]), "none") is None
    with pytest.raises(ValueError):
        class_weights_from_counts(np.array([1, 1]), "inverse")


def test_dice_is_zero_for_a_perfect_prediction_and_ignores_void_and_absent_classes():
    target = torch.tensor([[[0, 0, 1, 255]]])
    perfect = torch.full((1, 3, 1, 4), -20.0)
    perfect[0, 0, 0, :2] = 20.0
    perfect[0, 1, 0, 2:] = 20.0  # the void pixel's prediction does not count
    assert float(soft_dice_loss(perfect, target)) == pytest.approx(0.0, abs=1e-3)
    wrong = torch.full((1, 3, 1, 4), -20.0)
    wrong[0, 0] = 20.0  # background everywhere: the polyp class gets no overlap
    assert float(soft_dice_loss(wrong, target)) > 0.3
    nothing = torch.zeros((1, 3, 1, 4), requires_grad=True)
    loss = soft_dice_loss(nothing, torch.full((1, 1, 4), 255))
    loss.backward()
    assert float(loss.detach()) == 0.0 and float(nothing.grad.abs().sum()) == 0.0


def test_training_with_dice_and_sqrt_weights_runs_and_logs_the_dice_term(tiny_samples):
    config = TrainConfig(arch="lraspp_mobilenet_v3_large", num_classes=2, size=(32, 48), batch_size=2, steps=3,
                         class_weighting="sqrt", dice_weight=1.0, log_every=1)
    result = train(config, labeled=tiny_samples(4))
    assert result.steps == 3 and all(np.isfinite(row["loss"]) for row in result.history)
    assert any("dice" in row for row in result.history)
    with pytest.raises(ValueError):
        TrainConfig(dice_weight=-1.0)
