"""score_pool: one batched forward pass gives every map a strategy needs, cached per model version."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from learning.models import build_model, model_forward
from learning.selection import PoolScore, ScoreCache, score_pool

SIZE = (32, 48)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("lraspp_mobilenet_v3_large", 3).eval()


def test_records_hold_maps_at_the_scoring_size_and_features(model, tiny_samples):
    samples = tiny_samples(3, size=(40, 60), labeled=False)
    scores = score_pool(model, samples, size=SIZE, batch_size=2, device="cpu", precision="fp32")
    assert [s.key for s in scores] == [s.key for s in samples]
    for record in scores:
        assert record.image_size == (40, 60) and record.size == SIZE
        assert record.pred.dtype == np.uint8 and record.pred.max() < 3
        assert record.uncertainty.shape == record.confidence.shape == SIZE
        assert 0 <= record.uncertainty.min() and record.uncertainty.max() <= 1
        assert record.feature_map.shape[0] == 128 and record.features.shape == (128,)
        assert record.score == pytest.approx(float(record.uncertainty.mean()), abs=1e-6)


def test_maps_match_the_softmax_of_a_bare_forward_pass(model, tiny_samples):
    from learning.data import normalize, to_tensor

    sample = tiny_samples(1, size=SIZE)[0]
    (record,) = score_pool(model, [sample], size=SIZE, device="cpu", precision="fp32", measure="least_confidence")
    with torch.no_grad():
        probs = model_forward(model, normalize(to_tensor(sample.image))[None]).logits.softmax(1)[0].numpy()
    assert np.array_equal(record.pred, probs.argmax(0))
    assert np.allclose(record.confidence, probs.max(0), atol=1e-5)
    assert np.allclose(record.uncertainty, (1 - probs.max(0)) * 3 / 2, atol=1e-5)


def test_cache_returns_the_same_records_without_a_forward_pass(model, tiny_samples, tmp_path, monkeypatch):
    samples = tiny_samples(3, size=SIZE)
    cache = ScoreCache(tmp_path, "v1")
    first = score_pool(model, samples, size=SIZE, device="cpu", precision="fp32", cache=cache)

    def exploding_forward(*args, **kwargs):
        raise AssertionError("cache miss")

    monkeypatch.setattr("learning.models.model_forward", exploding_forward)
    again = score_pool(model, samples, size=SIZE, device="cpu", cache=cache)
    for a, b in zip(first, again):
        assert a.key == b.key and np.array_equal(a.pred, b.pred)
        assert np.allclose(a.uncertainty, b.uncertainty, atol=1e-3)
        assert np.allclose(a.features, b.features, atol=1e-2)
    # Another model version or other settings miss the cache.
    other = ScoreCache(tmp_path, "v2")
    with pytest.raises(AssertionError, match="cache miss"):
        score_pool(model, samples[:1], size=SIZE, device="cpu", cache=other)
    with pytest.raises(AssertionError, match="cache miss"):
        score_pool(model, samples[:1], size=SIZE, device="cpu", cache=cache, tta=True)
    monkeypatch.undo()
    score_pool(model, samples[:1], size=SIZE, device="cpu", cache=other)
    other.prune()
    assert not cache.directory.exists() and other.directory.exists()


def test_flip_tta_and_mc_dropout_average_several_passes(tiny_samples):
    torch.manual_seed(1)
    from learning.data import normalize, to_tensor

    deeplab = build_model("deeplabv3_mobilenet_v3_large", 3)
    samples = tiny_samples(4, size=(64, 96))
    # Fresh BatchNorm statistics silence a random network; estimate them on the images once.
    for module in deeplab.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None
    with torch.no_grad():
        deeplab.train()(normalize(torch.stack([to_tensor(s.image) for s in samples])))
        deeplab.classifier[-1].weight.mul_(20)  # spread the random head's logits
    deeplab.eval()
    plain = score_pool(deeplab, samples, size=(64, 96), device="cpu", precision="fp32")
    tta = score_pool(deeplab, samples, size=(64, 96), device="cpu", precision="fp32", tta=True)
    mc = score_pool(deeplab, samples, size=(64, 96), device="cpu", precision="fp32", mc_samples=3)
    assert not np.allclose(plain[0].uncertainty, tta[0].uncertainty)
    assert not np.allclose(plain[0].uncertainty, mc[0].uncertainty)
    assert not deeplab.training  # the train/eval state is restored


def test_mc_dropout_needs_dropout_layers(model, tiny_samples):
    with pytest.raises(ValueError, match="dropout"):
        score_pool(model, tiny_samples(1, size=SIZE), size=SIZE, device="cpu", mc_samples=2)


def test_from_probs_builds_the_same_record_shape():
    probs = np.random.default_rng(0).dirichlet(np.ones(4), size=(5, 6)).transpose(2, 0, 1)
    record = PoolScore.from_probs("k", probs, np.ones(8), measure="margin", image_size=(50, 60))
    assert record.image_size == (50, 60) and record.size == (5, 6)
    assert record.feature_map.shape == (8, 1, 1) and record.measure == "margin"
