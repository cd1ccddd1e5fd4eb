"""Per-pixel uncertainty maps: certain pixels score 0, a uniform prediction scores 1, for every measure."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from learning.selection import Budget, PoolScore, select_queries
from learning.selection.uncertainty import (
    UNCERTAINTY_MEASURES,
    uncertainty_map,
)


def _probs(confident: bool, num_classes: int = 4, size=(6, 8)) -> np.ndarray:
    if confident:
        probs = np.zeros((num_classes, *size), dtype=np.float32)
        probs[1] = 1.0
        return probs
    return np.full((num_classes, *size), 1.0 / num_classes, dtype=np.float32)


@pytest.mark.parametrize("measure", sorted(UNCERTAINTY_MEASURES))
def test_certain_pixels_score_zero_and_uniform_pixels_score_one(measure):
    assert np.allclose(uncertainty_map(_probs(True), measure), 0.0)
    assert np.allclose(uncertainty_map(_probs(False), measure), 1.0, atol=1e-6)


@pytest.mark.parametrize("measure", sorted(UNCERTAINTY_MEASURES))
def test_maps_accept_torch_batches_and_stay_in_unit_range(measure):
    probs = torch.rand(3, 5, 7, 9).softmax(dim=1)
    out = uncertainty_map(probs, measure)
    assert isinstance(out, torch.Tensor) and out.shape == (3, 7, 9)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_unknown_measure_is_refused():
    with pytest.raises(ValueError, match="unknown uncertainty measure"):
        uncertainty_map(_probs(True), "bald")


def test_pixel_certain_image_scores_lower_than_uncertain_one_and_is_not_picked():
    feature = np.ones(4, dtype=np.float32)
    certain = PoolScore.from_probs("certain", _probs(True), feature)
    unsure = PoolScore.from_probs("unsure", _probs(False), feature)
    assert certain.score < 0.01
    assert unsure.score > 0.99
    picked = select_queries([certain, unsure], Budget(1, "images"), "entropy")
    assert [q.key for q in picked] == ["unsure"]
