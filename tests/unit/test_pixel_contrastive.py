from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from learning.adaptation import pixel_contrastive as pc
from learning.adaptation.base import ObjectiveContext, StepState
from learning.labels import IGNORE_INDEX
from learning.device import numerics_for
from learning.models import ForwardOutput, build_model
from learning.train import TrainConfig, train

TINY = dict(arch="lraspp_mobilenet_v3_large", num_classes=2, size=(32, 48), batch_size=2, target_batch_size=2)


def test_supervised_contrastive_loss_known_value():
    z = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1, 1])
    # every anchor: one positive at similarity 1, two negatives at 0, temperature 1
    expected = -math.log(math.e / (math.e + 2))
    assert pc.supervised_contrastive_loss(z, labels, temperature=1.0).item() == pytest.approx(expected, rel=1e-5)
    # a lone class member has no positive: it is no anchor, but still a negative for the others
    lone = pc.supervised_contrastive_loss(z[:3], labels[:3], temperature=1.0)
    assert lone.item() == pytest.approx(-math.log(math.e / (math.e + 1)), rel=1e-5)


def test_no_positives_gives_zero_loss_and_zero_gradient():
    z = F.normalize(torch.randn(3, 4), dim=1).requires_grad_(True)
    loss = pc.supervised_contrastive_loss(z, torch.tensor([0, 1, 2]))
    loss.backward()
    assert loss.item() == 0.0 and z.grad.abs().sum() == 0


def test_gradient_pulls_same_class_embeddings_together():
    torch.manual_seed(0)
    z = torch.nn.Parameter(F.normalize(torch.randn(6, 8), dim=1))
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    optimizer = torch.optim.SGD([z], lr=0.05)

    def gap():
        e = F.normalize(z.detach(), dim=1)
        sim = e @ e.t()
        same = labels[:, None] == labels[None, :]
        off = ~torch.eye(6, dtype=torch.bool)
        return sim[same & off].mean() - sim[~same].mean()

    before = gap()
    for _ in range(20):
        loss = pc.supervised_contrastive_loss(F.normalize(z, dim=1), labels)
        optimizer.zero_grad()
        loss.backward()
        assert torch.isfinite(z.grad).all()
        optimizer.step()
    assert gap() > before + 0.5


def test_class_balanced_sampling_gives_rare_classes_their_share():
    labels = torch.zeros(1, 40, 50, dtype=torch.long)
    labels[0, :2, :] = 1  # 5 % of the pixels
    labels[0, -2:, :] = IGNORE_INDEX
    generator = torch.Generator().manual_seed(0)
    index = pc.sample_pixels(labels, 40, generator)
    picked = labels.reshape(-1)[index]
    assert index.numel() == 40 and (picked != IGNORE_INDEX).all()
    assert 12 <= int((picked == 1).sum()) <= 28  # about half, not 5 %
    assert index.unique().numel() == 40


def test_memory_is_bounded_by_pooling_and_sampling(monkeypatch):
    seen = []
    real = pc.supervised_contrastive_loss

    def spy(embeddings, labels, temperature=0.07):
        seen.append(embeddings.shape[0])
        return real(embeddings, labels, temperature)

    monkeypatch.setattr(pc, "supervised_contrastive_loss", spy)
    head = pc.ProjectionHead(8, 4)
    features = torch.randn(3, 8, 120, 160, requires_grad=True)  # 19 200 positions per image
    labels = torch.randint(0, 3, (3, 480, 640))
    loss, sampled = pc.pixel_contrastive_loss(head, features, labels, temperature=0.07, pixels_per_image=16,
                                              max_positions=300)
    assert pc.pooled_size(120, 160, 300)[0] * pc.pooled_size(120, 160, 300)[1] <= 300
    assert sampled == seen[0] == 3 * 16  # the similarity matrix is 48 x 48, not 57 600 x 57 600
    loss.backward()
    assert features.grad.abs().sum() > 0 and all(p.grad is not None for p in head.parameters())


def test_pooled_size_keeps_the_aspect_and_never_exceeds_the_budget():
    for h, w, budget in [(15, 20, 1024), (60, 80, 1024), (61, 83, 100), (1, 500, 64)]:
        ph, pw = pc.pooled_size(h, w, budget)
        assert ph * pw <= max(budget, 1) or (ph, pw) == (1, 1)
        assert ph <= h and pw <= w
    assert pc.pooled_size(15, 20, 1024) == (15, 20)


def test_unlabeled_target_pixels_join_only_where_the_student_is_confident():
    objective = pc.PixelContrastive(TrainConfig(**TINY), {"pseudo_threshold": 0.9})
    logits = torch.zeros(1, 2, 2, 2)
    logits[0, 1, 0, 0] = 10.0  # confident class 1
    logits[0, 0, 1, 1] = 10.0  # confident class 0, but a human said 1
    masks = torch.full((1, 2, 2), IGNORE_INDEX, dtype=torch.long)
    masks[0, 1, 1] = 1
    state = StepState(step=0, total_steps=1, model=None, numerics=None, source_images=None, source_masks=None,
                      source_out=None, target_masks=masks, target_out=ForwardOutput(logits, logits))
    assert objective._target_labels(state).tolist() == [[[1, IGNORE_INDEX], [IGNORE_INDEX, 1]]]


def test_pixel_contrastive_trains_in_the_loop(tiny_samples):
    labeled, pool = tiny_samples(2), tiny_samples(2, labeled=False, seed=1)
    config = TrainConfig(**TINY, steps=2, log_every=1, objectives=("pixel_contrastive",),
                         objective_options={"pixel_contrastive": {"pixels_per_image": 8}})
    result = train(config, labeled=labeled, unlabeled=pool)
    assert all(h["pixel_contrastive"] > 0 for h in result.history)
    assert all(h["contrastive_pixels"] <= 8 * 4 for h in result.history)


def test_the_projection_head_steps_its_own_optimizer():
    config = TrainConfig(**TINY)
    model = build_model(TINY["arch"], 2)
    objective = pc.PixelContrastive(config, {"pixels_per_image": 8})
    objective.setup(ObjectiveContext(config=config, model=model, numerics=numerics_for(torch.device("cpu"), "fp32"),
                                     target_dataset=None, warm_start=True))
    before = [p.detach().clone() for p in objective.head.parameters()]
    features = torch.randn(2, pc._feature_channels(model), 4, 6)
    masks = torch.arange(24).reshape(1, 4, 6).repeat(2, 1, 1) % 2
    state = StepState(step=0, total_steps=1, model=model, numerics=None, source_images=None, source_masks=masks,
                      source_out=ForwardOutput(torch.zeros(2, 2, 4, 6), features))
    objective.loss(state)["pixel_contrastive"].backward()
    objective.after_step(state)  # the loop's optimizer holds the segmentation net only
    assert any(not torch.equal(a, b) for a, b in zip(before, objective.head.parameters()))


def test_contrastive_pretraining_stage_then_cross_entropy_fine_tuning(tiny_samples):
    labeled = tiny_samples(2)
    config = TrainConfig(**TINY, steps=4, log_every=1)
    stage_one, stage_two = pc.contrastive_then_finetune(config, labeled=labeled, contrastive_fraction=0.5,
                                                        options={"pixels_per_image": 8})
    assert stage_one.steps == 2 and stage_two.steps == 2
    assert all("supervised" not in h and "pixel_contrastive" in h for h in stage_one.history)
    assert all("supervised" in h and "pixel_contrastive" not in h for h in stage_two.history)
    torch.manual_seed(config.seed)  # what train() builds its model from
    init = build_model("lraspp_mobilenet_v3_large", 2).state_dict()
    changed = {k for k, v in init.items() if v.is_floating_point() and not torch.equal(stage_one.state_dict[k], v)}
    assert any(k.startswith("backbone.") for k in changed)  # the contrastive stage trained the features ...
    assert not any(k.startswith(("classifier.low_classifier", "classifier.high_classifier")) for k in changed)
    # ... and left the per-class classifier to the cross-entropy stage
