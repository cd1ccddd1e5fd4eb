from __future__ import annotations

import numpy as np
import pytest
import torch

from learning.adaptation.adversarial import FCDiscriminator, OutputSpaceAdversarial
from learning.adaptation.base import ObjectiveContext, StepState
from learning.adaptation.pseudo_labels import class_thresholds, compute_pseudo_labels, pseudo_label
from learning.data import Sample
from learning.labels import IGNORE_INDEX
from learning.device import numerics_for
from learning.inference import predict
from learning.models import ForwardOutput, build_model
from learning.train import TrainConfig


def test_class_thresholds_keep_each_class_top_portion_and_respect_cap_and_floor():
    confidence = np.array([0.9, 0.8, 0.7, 0.6, 0.99, 0.98, 0.3, 0.2], dtype=np.float32)
    label = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    # class 0: top half of {.9 .8 .7 .6} -> .8; class 1: top half would be .99, capped to .95;
    # class 2: top half of {.3 .2} -> .3; class 3: never predicted -> the cap.
    thresholds = class_thresholds([confidence], [label], 4, portion=0.5, cap=0.95)
    assert thresholds == pytest.approx([0.8, 0.95, 0.3, 0.95])
    floored = class_thresholds([confidence], [label], 4, portion=0.5, cap=0.95, floor=0.5)
    assert floored == pytest.approx([0.8, 0.95, 0.5, 0.95])
    with pytest.raises(ValueError):
        class_thresholds([confidence], [label], 4, portion=0.0)


def test_pseudo_labels_respect_the_class_thresholds():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.3, 1.0, (20, 30)).astype(np.float32)
    label = rng.integers(0, 3, (20, 30)).astype(np.uint8)
    thresholds = class_thresholds([confidence], [label], 3, portion=0.4, cap=0.97)
    mask = pseudo_label(confidence, label, thresholds)
    kept = mask != IGNORE_INDEX
    assert np.array_equal(mask[kept], label[kept])
    assert np.all(confidence[kept] >= thresholds[label[kept]])
    assert np.all(confidence[~kept] < thresholds[label[~kept]])
    for c in range(3):  # class-balanced: every class keeps about its top 40 %
        assert (kept & (label == c)).sum() / (label == c).sum() == pytest.approx(0.4, abs=0.01)


def test_human_labels_override_pseudo_labels():
    confidence = np.full((2, 2), 0.99, dtype=np.float32)
    label = np.zeros((2, 2), dtype=np.uint8)
    human = np.array([[1, IGNORE_INDEX], [IGNORE_INDEX, 2]], dtype=np.uint8)
    mask = pseudo_label(confidence, label, np.array([0.5, 0.5, 0.5], np.float32), human)
    assert mask.tolist() == [[1, 0], [0, 2]]


def test_compute_pseudo_labels_from_a_model(tiny_samples):
    model = build_model("lraspp_mobilenet_v3_large", 2)
    unlabeled = tiny_samples(3, labeled=False)
    human = np.full((32, 48), IGNORE_INDEX, np.uint8)
    human[:4, :4] = 1
    unlabeled[0] = Sample(unlabeled[0].image, human, key="partly-labeled")
    result = compute_pseudo_labels(model, unlabeled, num_classes=2, size=(32, 48), portion=0.3, cap=0.99,
                                   floor=0.0)
    predictions = list(predict(model, unlabeled, size=(32, 48)))
    for prediction, mask, sample in zip(predictions, result.masks, unlabeled):
        pseudo = mask.copy()
        if sample.mask is not None:
            assert np.all(mask[:4, :4] == 1)
            pseudo[:4, :4] = IGNORE_INDEX
        kept = pseudo != IGNORE_INDEX
        assert np.array_equal(pseudo[kept], prediction.label[kept])
        assert np.all(prediction.confidence[kept] >= result.thresholds[prediction.label[kept]] - 1e-6)
    assert result.human_fraction == pytest.approx(16 / (3 * 32 * 48))


def test_discriminator_is_fully_convolutional():
    out = FCDiscriminator(5, width=8)(torch.rand(2, 5, 64, 96))
    assert out.shape == (2, 1, 2, 3)


def _adversarial_state(objective, source_logits, target_logits):
    model = torch.nn.Conv2d(1, 1, 1)
    return StepState(step=0, total_steps=1, model=model, numerics=objective._numerics,
                     source_images=None, source_masks=None,
                     source_out=ForwardOutput(source_logits, source_logits),
                     target_out=ForwardOutput(target_logits, target_logits))


def test_adversarial_loss_trains_the_segmenter_and_the_discriminator_learns_the_domains():
    config = TrainConfig(arch="lraspp_mobilenet_v3_large", num_classes=3, discriminator_width=8,
                         discriminator_lr=1e-3)
    objective = OutputSpaceAdversarial(config)
    objective.setup(ObjectiveContext(config=config, model=torch.nn.Identity(),
                                     numerics=numerics_for(torch.device("cpu"), "fp32"),
                                     target_dataset=None, warm_start=True))
    source = torch.zeros(2, 3, 32, 32)
    source[:, 0] = 4.0  # confident class 0 in the source domain
    target = torch.zeros(2, 3, 32, 32, requires_grad=True)  # uncertain in the target domain

    terms = objective.loss(_adversarial_state(objective, source, target))
    terms["adversarial"].backward()
    assert target.grad is not None and target.grad.abs().sum() > 0  # the segmenter is pushed
    assert all(p.grad is None for p in objective.discriminator.parameters())  # the discriminator is not

    losses = []
    for _ in range(30):
        state = _adversarial_state(objective, source, target.detach())
        objective.after_step(state)
        losses.append(state.logs["discriminator"])
    assert losses[-1] < 0.5 * losses[0]


def test_target_batchnorm_control_only_changes_normalisation_statistics(tiny_samples):
    from learning.train import train

    labeled, pool = tiny_samples(2), tiny_samples(2, labeled=False, seed=1)
    tiny = dict(arch="lraspp_mobilenet_v3_large", num_classes=2, size=(32, 48), batch_size=2, target_batch_size=2,
                steps=2, log_every=1)
    init = build_model("lraspp_mobilenet_v3_large", 2).state_dict()
    plain = train(TrainConfig(**tiny), labeled=labeled, unlabeled=pool, init_state=init)
    control = train(TrainConfig(**tiny, objectives=("target_batchnorm",)), labeled=labeled, unlabeled=pool,
                    init_state=init)
    assert set(control.history[-1]) == {"step", "lr", "loss", "supervised"}
    running = [k for k in init if k.endswith("running_mean")]
    assert any(not torch.equal(plain.state_dict[k], control.state_dict[k]) for k in running)


def test_target_statistics_copy_normalises_with_the_target_images_and_leaves_the_model_alone(tiny_samples):
    from learning.adaptation.batchnorm import with_target_statistics
    from learning.data import SegmentationDataset, collate

    model = build_model("lraspp_mobilenet_v3_large", 2).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pool = tiny_samples(4, labeled=False, seed=2)
    adapted = with_target_statistics(model, pool, size=(32, 48), numerics=numerics_for(torch.device("cpu"), "fp32"),
                                     batch_size=4)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    images, _ = collate(SegmentationDataset(pool, (32, 48))[i] for i in range(4))
    conv, norm = adapted.backbone["0"][0], adapted.backbone["0"][1]
    with torch.no_grad():
        expected = conv(images).mean(dim=(0, 2, 3))
    torch.testing.assert_close(norm.running_mean, expected, rtol=1e-4, atol=1e-5)
    assert norm.momentum == model.backbone["0"][1].momentum and not adapted.training


def test_pseudo_labels_with_target_statistics_still_respect_thresholds(tiny_samples):
    model = build_model("lraspp_mobilenet_v3_large", 2)
    pool = tiny_samples(3, labeled=False, seed=3)
    result = compute_pseudo_labels(model, pool, num_classes=2, size=(32, 48), portion=0.5, cap=0.99, floor=0.0,
                                   target_statistics=True)
    assert len(result.masks) == 3 and 0 < result.labeled_fraction <= 1
    assert np.all(result.thresholds <= 0.99)
