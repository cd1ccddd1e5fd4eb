from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from learning.adaptation.base import ObjectiveContext, StepState
from learning.adaptation.consistency import (
    MeanTeacherConsistency, class_percentile_thresholds, ema_update, negative_learning_loss,
)
from learning.adaptation.strong import CutMix, StrongAugment, cutmix_boxes, denormalize, renormalize, rotate_hue
from learning.data import Augment, SegmentationDataset
from learning.labels import IGNORE_INDEX
from learning.device import numerics_for
from learning.models import ForwardOutput, build_model
from learning.train import TrainConfig, train

TINY = dict(arch="lraspp_mobilenet_v3_large", num_classes=2, size=(32, 48), batch_size=2, target_batch_size=2)


# --- strong augmentation and CutMix ----------------------------------------------------------------------


def test_strong_augment_is_photometric_seeded_and_keeps_the_normalisation():
    images = renormalize(torch.rand(3, 3, 20, 24))
    strong = StrongAugment(jitter_p=1.0, grayscale_p=0.0, blur_p=1.0)
    a = strong(images, np.random.default_rng(1))
    b = strong(images, np.random.default_rng(1))
    assert a.shape == images.shape and torch.equal(a, b)
    assert not torch.allclose(a, images, atol=1e-3)
    rgb = denormalize(a)
    assert rgb.min() >= 0.0 and rgb.max() <= 1.0
    gray = StrongAugment(jitter_p=0.0, grayscale_p=1.0, blur_p=0.0)(images, np.random.default_rng(0))
    assert torch.allclose(denormalize(gray)[:, 0], denormalize(gray)[:, 1], atol=1e-5)


def test_hue_rotation_by_a_full_turn_is_the_identity_and_keeps_gray_gray():
    image = torch.rand(3, 5, 7)
    assert torch.allclose(rotate_hue(image, 1.0), image, atol=1e-5)
    gray = torch.full((3, 4, 4), 0.4)
    assert torch.allclose(rotate_hue(gray, 0.2), gray, atol=1e-5)


def test_cutmix_takes_the_partners_values_inside_the_box_for_images_and_labels_alike():
    box = torch.zeros(2, 4, 4, dtype=torch.bool)
    box[0, :2, :2] = True
    mix = CutMix(box, torch.tensor([1, 0]))
    images = torch.stack([torch.zeros(3, 4, 4), torch.ones(3, 4, 4)])
    labels = torch.stack([torch.zeros(4, 4, dtype=torch.long), torch.ones(4, 4, dtype=torch.long)])
    mixed_images, mixed_labels = mix.apply(images), mix.apply(labels)
    assert mixed_images[0, :, :2, :2].eq(1).all() and mixed_images[0, :, 2:, :].eq(0).all()
    assert torch.equal(mixed_labels[0], box[0].long())
    assert torch.equal(mixed_images[1], images[1])


def test_cutmix_boxes_respect_probability_and_area():
    rng = np.random.default_rng(0)
    never = cutmix_boxes(4, 30, 40, rng, p=0.0)
    assert not never.box.any()
    always = cutmix_boxes(64, 30, 40, rng, p=1.0, area=(0.1, 0.2))
    fractions = always.box.float().mean((1, 2))
    assert fractions.min() > 0.05 and fractions.max() < 0.3
    assert torch.equal(always.partner, torch.roll(torch.arange(64), -1))


# --- the pieces of the objective -------------------------------------------------------------------------


def test_class_percentile_thresholds_known_values():
    confidence = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.99, 0.98, 0.3])
    prediction = torch.tensor([0, 0, 0, 0, 1, 1, 2])
    thresholds = class_percentile_thresholds(confidence, prediction, 4, portion=0.5)
    # class 0 keeps its top 2 of 4 -> 0.8; class 1 top 1 of 2 -> 0.99; class 2 top 1 of 1; class 3 unseen
    assert thresholds[:3].tolist() == pytest.approx([0.8, 0.99, 0.3])
    assert math.isnan(thresholds[3])
    few = class_percentile_thresholds(confidence, prediction, 4, portion=0.5, min_pixels=3)
    assert few[0] == pytest.approx(0.8) and torch.isnan(few[1:]).all()


def test_ema_update_is_the_weighted_average_of_parameters_and_batchnorm_statistics():
    torch.manual_seed(0)
    student = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 1), torch.nn.BatchNorm2d(3))
    teacher = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 1), torch.nn.BatchNorm2d(3))
    student(torch.randn(4, 2, 5, 5))  # moves the student's running statistics
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    ema_update(teacher, student, 0.9)
    for key, value in teacher.state_dict().items():
        if value.dtype.is_floating_point:
            assert torch.allclose(value, 0.9 * before[key] + 0.1 * student.state_dict()[key], atol=1e-6), key
        else:
            assert torch.equal(value, student.state_dict()[key]), key


def test_negative_learning_pushes_down_only_the_classes_the_teacher_rules_out():
    logits = torch.zeros(1, 3, 2, 2, requires_grad=True)  # student: 1/3 each
    teacher = torch.tensor([0.50, 0.48, 0.02]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    pixels = torch.tensor([[[True, False], [False, False]]])
    loss = negative_learning_loss(logits, teacher, pixels, threshold=0.05)
    assert loss.item() == pytest.approx(-math.log(1 - 1 / 3))  # one pixel, one ruled-out class
    loss.backward()
    assert logits.grad[0, 2, 0, 0] > 0  # gradient descent lowers the ruled-out class
    assert logits.grad[0, :, 1:, :].abs().sum() == 0 and logits.grad[0, :, 0, 1].abs().sum() == 0


def _objective(model, *, options=None, warm_start=True, steps=4, target=None):
    config = TrainConfig(**TINY, steps=steps, objectives=("consistency",),
                         objective_options={"consistency": {"cutmix_p": 0.0, **(options or {})}})
    objective = MeanTeacherConsistency(config, config.objective_options["consistency"])
    objective.setup(ObjectiveContext(config=config, model=model, numerics=numerics_for(torch.device("cpu"), "fp32"),
                                     target_dataset=target, warm_start=warm_start))
    return objective


def test_human_labels_override_the_teachers_pseudo_labels(tiny_samples):
    model = build_model("lraspp_mobilenet_v3_large", 2).train()
    objective = _objective(model, options={"portion": 0.5},
                           target=SegmentationDataset(tiny_samples(2, labeled=False), (32, 48), augment=Augment()))
    images = renormalize(torch.rand(2, 3, 32, 48))
    masks = torch.full((2, 32, 48), IGNORE_INDEX, dtype=torch.long)
    masks[0, :8, :8] = 1
    masks[1, -4:, :] = 0
    _, returned_masks = objective.prepare_target_batch(0, images, masks)
    target = objective._batch["target"]
    assert torch.equal(returned_masks, masks)  # no CutMix: the carried labels come back unchanged
    assert (target[0, :8, :8] == 1).all() and (target[1, -4:, :] == 0).all()
    probs = objective.teacher_probs(images)
    confidence, prediction = probs.max(1)
    free = masks == IGNORE_INDEX
    kept = free & (target != IGNORE_INDEX)
    assert torch.equal(target[kept], prediction[kept])
    thresholds = objective.current_thresholds()
    assert (confidence[kept] >= thresholds[prediction[kept]] - 1e-6).all()
    assert (confidence[free & ~kept] < thresholds[prediction[free & ~kept]]).all()
    assert 0 < kept.sum() < free.sum()  # a percentile keeps some, not all
    assert (thresholds <= 0.97 + 1e-6).all()


def test_the_loss_trains_the_student_on_kept_pixels_and_is_zero_for_a_fully_unsure_teacher():
    model = torch.nn.Identity()
    objective = _objective(model)
    objective.teacher = None  # drive the step by hand
    target = torch.full((1, 2, 2), IGNORE_INDEX, dtype=torch.long)
    target[0, 0, 0] = 1
    probs = torch.full((1, 2, 2, 2), 0.5)
    objective._batch = {"target": target, "probs": probs, "carried": torch.zeros(1, 2, 2, dtype=torch.bool)}
    logits = torch.zeros(1, 2, 2, 2, requires_grad=True)
    state = StepState(step=0, total_steps=1, model=model, numerics=objective._numerics, source_images=None,
                      source_masks=None, source_out=None, target_out=ForwardOutput(logits, logits))
    terms = objective.loss(state)
    # one kept pixel out of four, CE of a uniform 2-class prediction = log 2
    assert terms["consistency"].item() == pytest.approx(math.log(2) / 4)
    assert terms["consistency_negative"].item() == 0.0  # the teacher rules out no class anywhere
    sum(terms.values()).backward()
    assert logits.grad[0, :, 0, 0].abs().sum() > 0 and logits.grad[0, :, 1, :].abs().sum() == 0


# --- in the training loop --------------------------------------------------------------------------------


def test_consistency_runs_in_the_loop_and_hands_over_its_teacher(tiny_samples):
    labeled, pool = tiny_samples(2), tiny_samples(2, labeled=False, seed=1)
    init = build_model("lraspp_mobilenet_v3_large", 2).state_dict()
    config = TrainConfig(**TINY, steps=3, log_every=1, objectives=("consistency",))
    result = train(config, labeled=labeled, unlabeled=pool, init_state=init)
    assert all("consistency" in h and "consistency_negative" in h for h in result.history)
    summary = result.objective_summaries["consistency"]
    assert summary["active_steps"] == 3 and 0.0 < summary["pseudo_fraction"] <= 1.0
    teacher = result.objective_states["consistency"]["teacher"]
    moved = [k for k, v in teacher.items() if v.dtype.is_floating_point and not torch.equal(v, init[k])]
    assert moved  # the teacher followed the student
    differs = [k for k in moved if not torch.equal(teacher[k], result.state_dict[k])]
    assert differs  # ... as a moving average, not a copy

    # from scratch, the teacher waits for the student to learn something first
    config = TrainConfig(**TINY, steps=4, log_every=1, objectives=("consistency",),
                         objective_options={"consistency": {"start": 0.5}})
    result = train(config, labeled=labeled, unlabeled=pool)
    assert result.objective_summaries["consistency"]["active_steps"] == 2
    assert [("consistency" in h) for h in result.history] == [False, False, True, True]


def test_unknown_options_are_refused():
    with pytest.raises(ValueError, match="unknown consistency options"):
        MeanTeacherConsistency(TrainConfig(**TINY), {"treshold": 0.9})
