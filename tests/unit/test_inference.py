from __future__ import annotations

import numpy as np
import pytest

from learning.data import Sample
from learning.inference import evaluate, predict
from learning.metrics import ConfusionMatrix
from learning.models import build_model


@pytest.fixture(scope="module")
def model():
    return build_model("lraspp_mobilenet_v3_large", 3).eval()


def test_predict_yields_probabilities_and_pooled_features_in_order(model, tiny_samples):
    samples = tiny_samples(3)
    predictions = list(predict(model, samples, batch_size=2, size=(32, 48)))
    assert [p.key for p in predictions] == [s.key for s in samples]
    for p in predictions:
        assert p.probs.shape == (3, 32, 48) and p.probs.dtype == np.float32
        np.testing.assert_allclose(p.probs.sum(0), 1.0, atol=1e-4)
        assert p.features.shape == (128,) and p.features.dtype == np.float32
        assert p.feature_map is None


def test_output_size_original_or_explicit(model):
    image = np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    [at_original] = predict(model, [image], size=(30, 40), output_size="original")
    [explicit] = predict(model, [Sample(image)], size=(30, 40), output_size=(15, 20), feature_maps=True)
    [native] = predict(model, [image])
    assert at_original.probs.shape == (3, 60, 80)
    assert explicit.probs.shape == (3, 15, 20) and explicit.feature_map.ndim == 3
    assert native.probs.shape == (3, 60, 80)


def test_images_of_different_sizes_are_batched_separately(model):
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 255, shape, dtype=np.uint8) for shape in [(32, 32, 3), (32, 32, 3), (48, 32, 3)]]
    shapes = [p.probs.shape for p in predict(model, images, batch_size=4)]
    assert shapes == [(3, 32, 32), (3, 32, 32), (3, 48, 32)]


def test_evaluate_scores_at_mask_resolution_like_a_manual_confusion_matrix(model, tiny_samples):
    samples = tiny_samples(3)
    metrics = evaluate(model, samples, 3, size=(16, 24), batch_size=2)
    manual = ConfusionMatrix(3)
    for sample, prediction in zip(samples, predict(model, samples, size=(16, 24), output_size="original")):
        manual.update(prediction.label, sample.mask)
    assert metrics == manual.compute()
    assert metrics.labeled_pixels == 3 * 32 * 48
    assert model.training is False
