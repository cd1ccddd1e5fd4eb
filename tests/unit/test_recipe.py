"""learning.recipe: the one place a round's TrainConfig is decided, for the app and the benchmarks."""
from __future__ import annotations

from dataclasses import replace

import pytest

from learning.recipe import (
    CPU_MAX_TRAIN_PIXELS,
    RecipeSettings,
    auto_train_size,
    default_max_train_pixels,
    round_train_config,
)
from learning.round_step import train_round_model

TINY = RecipeSettings(arch="lraspp_mobilenet_v3_large", num_classes=2, size=(32, 48), steps_initial=2,
                      steps_per_round=1)


def test_the_training_size_comes_from_the_images_never_upscaled_and_aligned_to_the_output_stride():
    assert auto_train_size([(224, 224)] * 3, 240 * 320) == (224, 224)
    assert auto_train_size([(96, 128)] * 3) == (96, 128)
    height, width = auto_train_size([(3000, 4000), (3000, 4000), (2000, 2000)], 240 * 320)
    assert height % 16 == 0 and width % 16 == 0 and height * width <= 240 * 320
    assert abs(width / height - 4 / 3) < 0.1


def test_the_size_cap_depends_on_the_device_that_trains(monkeypatch):
    """A CPU trains fewer pixels, so more steps fit a round's minutes; CUDA keeps the larger size."""
    assert default_max_train_pixels("cpu") == CPU_MAX_TRAIN_PIXELS < default_max_train_pixels("cuda")
    monkeypatch.setenv("MASKLOOP_DEVICE", "cpu")
    assert auto_train_size([(288, 384)] * 3) == (144, 192)  # a 384 × 288 video frame, on a CPU worker
    assert round_train_config(replace(TINY, size=None), round_index=0, warm_start=False,
                              image_sizes=[(288, 384)]).size == (144, 192)
    monkeypatch.setenv("MASKLOOP_DEVICE", "cuda")  # what a GPU worker decides (nothing runs on it here)
    assert auto_train_size([(288, 384)] * 3) == (240, 320)
    assert auto_train_size([(288, 384)] * 3, 512 * 512) == (288, 384)  # MASKLOOP_TRAIN_MAX_PIXELS raised


def test_consistency_is_off_by_default_and_when_asked_for_joins_only_when_fine_tuning():
    assert "consistency" not in round_train_config(TINY, round_index=1, warm_start=True).objectives
    asked = replace(TINY, consistency=True)
    assert "consistency" not in round_train_config(asked, round_index=0, warm_start=False).objectives
    assert "consistency" in round_train_config(asked, round_index=1, warm_start=True).objectives


def test_adversarial_adaptation_needs_a_labeled_source_domain():
    with_source = round_train_config(TINY, round_index=0, warm_start=False, labeled_source=True)
    own_images_only = round_train_config(TINY, round_index=0, warm_start=False, labeled_source=False)
    assert with_source.adversarial and "adversarial" in with_source.objective_names
    assert not own_images_only.adversarial and "adversarial" not in own_images_only.objective_names
    off = replace(TINY, adversarial=False)
    assert not round_train_config(off, round_index=0, warm_start=False, labeled_source=True).adversarial


def test_a_round_on_target_labels_alone_trains_without_adversarial_adaptation(tiny_samples):
    targets = [replace(sample, target=True) for sample in tiny_samples(3)]
    pool = tiny_samples(3, labeled=False, seed=1)
    own = train_round_model(TINY, round_index=0, labeled=targets, unlabeled=pool)
    assert not own.config.adversarial and "adversarial" not in own.result.history[-1]
    mixed = train_round_model(TINY, round_index=0, labeled=targets + tiny_samples(2, seed=2), unlabeled=pool)
    assert mixed.config.adversarial and "adversarial" in mixed.result.history[-1]


def test_head_only_fine_tuning_freezes_the_backbone_of_fine_tuning_rounds_only():
    asked = replace(TINY, finetune_head_only=True)
    assert not round_train_config(asked, round_index=0, warm_start=False).freeze_backbone
    assert round_train_config(asked, round_index=1, warm_start=True).freeze_backbone
    assert not round_train_config(TINY, round_index=1, warm_start=True).freeze_backbone


def test_a_fine_tuning_warm_up_is_a_share_of_the_rounds_steps_and_leaves_round_0_alone():
    asked = replace(TINY, steps_initial=600, steps_per_round=200, finetune_warmup=0.1)
    assert round_train_config(asked, round_index=1, warm_start=True).warmup_steps == 20
    assert round_train_config(asked, round_index=0, warm_start=False).warmup_steps == 0
    assert round_train_config(TINY, round_index=1, warm_start=True).warmup_steps == 0  # off by default
    for bad in (-0.1, 1.0, float("nan")):
        with pytest.raises(ValueError, match="finetune_warmup"):
            replace(TINY, finetune_warmup=bad)
