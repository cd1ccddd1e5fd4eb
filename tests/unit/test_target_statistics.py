"""BatchNorm statistics of the target pool after training (TrainConfig.target_statistics)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from learning.adaptation.batchnorm import (
    MAX_STATISTICS_IMAGES, choose_statistics, needs_target_variant, statistics_images, with_target_statistics,
)
from learning.data import Sample
from learning.device import numerics_for
from learning.models import build_model
from learning.train import TrainConfig, train

SIZE = (32, 48)


def _config(mode: str, **overrides) -> TrainConfig:
    return TrainConfig(arch="lraspp_mobilenet_v3_large", num_classes=2, size=SIZE, batch_size=2, steps=2,
                       augment=False, target_statistics=mode, log_every=1, **overrides)


def _brighter(samples: list[Sample], by: int = 90) -> list[Sample]:
    """The same scenes in another 'domain': brighter, so their BatchNorm statistics differ."""
    return [Sample(image=np.clip(np.asarray(s.image, np.int16) + by, 0, 255).astype(np.uint8), mask=s.mask,
                   key=f"{s.key}-bright") for s in samples]


def _running_means(state: dict) -> dict:
    return {k: v for k, v in state.items() if k.endswith("running_mean")}


@pytest.mark.parametrize("mode, images, val_miou, chosen", [
    ("off", 10, {"training": 0.3, "target": 0.9}, "training"),
    ("on", 10, None, "target"),
    ("on", 1, None, "training"),  # one image cannot be batch-normalised
    ("auto", 10, None, "training"),  # no target validation labels: nothing says the pool's statistics help
    ("auto", 10, {"training": 0.30, "target": 0.37}, "target"),
    ("auto", 10, {"training": 0.63, "target": 0.54}, "training"),
    ("auto", 10, {"training": 0.50, "target": 0.50}, "training"),  # a tie keeps the model as trained
    ("auto", 10, {"training": None, "target": 0.2}, "target"),
    ("auto", 0, {"training": 0.3}, "training"),
])
def test_the_statistics_rule(mode, images, val_miou, chosen):
    choice = choose_statistics(mode, images=images, val_miou=val_miou)
    assert choice.chosen == chosen and choice.mode == mode and choice.images == images
    assert choice.reason and choice.to_dict()["chosen"] == chosen


def test_unknown_modes_are_refused_where_a_config_is_made():
    with pytest.raises(ValueError, match="target_statistics"):
        _config("always")
    with pytest.raises(ValueError, match="target_statistics"):
        choose_statistics("sometimes", images=4, val_miou=None)


def test_the_target_variant_is_only_estimated_where_it_could_be_chosen():
    assert needs_target_variant("on", images=5, has_validation=False)
    assert needs_target_variant("auto", images=5, has_validation=True)
    assert not needs_target_variant("auto", images=5, has_validation=False)
    assert not needs_target_variant("off", images=5, has_validation=True)
    assert not needs_target_variant("on", images=1, has_validation=True)


def test_statistics_images_sample_a_large_pool_the_same_way_each_time_and_drop_masks(tiny_samples):
    pool = tiny_samples(6, seed=1)
    assert [s.key for s in statistics_images(pool)] == [s.key for s in pool]
    assert all(s.mask is None and s.target for s in statistics_images(pool))
    many = [Sample(image=np.zeros((4, 4, 3), np.uint8), key=str(i)) for i in range(MAX_STATISTICS_IMAGES + 50)]
    first, again = statistics_images(many, seed=3), statistics_images(many, seed=3)
    assert len(first) == MAX_STATISTICS_IMAGES and [s.key for s in first] == [s.key for s in again]
    assert [int(s.key) for s in first] == sorted(int(s.key) for s in first)  # pool order kept
    assert [s.key for s in statistics_images(many, seed=4)] != [s.key for s in first]


def test_on_gives_the_trained_weights_with_the_pools_statistics(tiny_samples):
    labeled, pool = tiny_samples(4, seed=0), _brighter(tiny_samples(4, labeled=False, seed=5))
    plain = train(_config("off"), labeled=labeled, unlabeled=pool)
    adapted = train(_config("on"), labeled=labeled, unlabeled=pool)
    assert plain.batchnorm.chosen == "training" and adapted.batchnorm.chosen == "target"
    assert adapted.batchnorm.images == 4
    weights = [k for k in plain.state_dict if "running" not in k and "num_batches" not in k]
    assert all(torch.equal(plain.state_dict[k], adapted.state_dict[k]) for k in weights)  # training is the same
    model = build_model("lraspp_mobilenet_v3_large", 2)
    model.load_state_dict(plain.state_dict)
    expected = with_target_statistics(model.eval(), statistics_images(pool), size=SIZE,  # as train() does
                                      numerics=numerics_for(torch.device("cpu")), batch_size=2).state_dict()
    for key, value in _running_means(adapted.state_dict).items():
        torch.testing.assert_close(value, expected[key])
    moved = _running_means(adapted.state_dict).items()
    assert any(not torch.equal(value, plain.state_dict[key]) for key, value in moved)


def test_auto_scores_both_on_validation_and_keeps_the_better_with_its_metrics(tiny_samples):
    labeled, pool = tiny_samples(4, seed=0), _brighter(tiny_samples(4, labeled=False, seed=5))
    val = _brighter(tiny_samples(3, seed=7))
    result = train(_config("auto"), labeled=labeled, unlabeled=pool, val=val)
    scored = result.batchnorm.val_miou
    assert set(scored) == {"training", "target"}
    better = "target" if scored["target"] > scored["training"] else "training"
    assert result.batchnorm.chosen == better
    assert result.metrics.miou == scored[better]  # the reported metrics are the kept model's


def test_auto_without_validation_keeps_the_model_as_trained(tiny_samples):
    labeled, pool = tiny_samples(4, seed=0), _brighter(tiny_samples(4, labeled=False, seed=5))
    plain = train(_config("off"), labeled=labeled, unlabeled=pool)
    auto = train(_config("auto"), labeled=labeled, unlabeled=pool)
    assert auto.batchnorm.chosen == "training" and auto.metrics is None
    assert all(torch.equal(v, plain.state_dict[k]) for k, v in auto.state_dict.items())
