"""Supervised pixel contrastive loss on decoder features (Wang et al., ICCV 2021; Khosla et al., 2020).

Cross-entropy only asks each pixel to land on the right side of a class
boundary; the contrastive term also pulls pixels of one class together and
pushes other classes away, *across images and domains*: a labeled day car
and a confidently predicted dusk car are positives. STAL credits it with
+0.9 mIoU on top of its mean teacher (research/al-da-anchors.md, A1).

- Embeddings: a projection head of two 1x1 convolutions (conv-BN-ReLU-conv)
  on the decoder features, L2-normalised; temperature 0.07.
- Labels: the labeled pixels of the source batch and of the target batch
  (human labels, pseudo-labels of other objectives), plus target pixels the
  student itself predicts with confidence >= ``pseudo_threshold``.
- Memory: the loss is quadratic in the number of pixels, so the feature map
  is average-pooled to at most ``max_positions`` positions per image (labels
  follow by nearest neighbour) and ``pixels_per_image`` positions are sampled
  per image, class-balanced. The similarity matrix is then at most
  ``(batch * pixels_per_image)^2`` whatever the input size.

Use it as an auxiliary loss (``TrainConfig.objectives=("pixel_contrastive",)``)
or as a pretraining stage followed by cross-entropy fine-tuning
(:func:`contrastive_then_finetune`).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from learning.adaptation.base import ObjectiveContext, StepState, TargetObjective, register_objective
from learning.data import Sample
from learning.labels import IGNORE_INDEX

DEFAULTS: dict[str, Any] = {
    "weight": 0.1,  # auxiliary weight next to cross-entropy (ContrastiveSeg's 0.1)
    "temperature": 0.07,
    "projection_dim": 128,
    "pixels_per_image": 64,
    "max_positions": 1024,
    "pseudo_threshold": 0.95,  # unlabeled target pixels join where the student is at least this sure (0 = never)
    "lr": None,  # of the projection head; None = TrainConfig.lr
}


class ProjectionHead(nn.Module):
    """1x1 conv, BatchNorm, ReLU, 1x1 conv, then L2 normalisation over channels."""

    def __init__(self, in_channels: int, dim: int = 128):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, in_channels, 1, bias=False), nn.BatchNorm2d(in_channels), nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, dim, 1),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(features), dim=1)


def pooled_size(height: int, width: int, max_positions: int) -> tuple[int, int]:
    """The largest (h, w) with the same aspect, an integer pooling factor and h * w <= ``max_positions``."""
    factor = max(1, math.ceil(math.sqrt(height * width / max(max_positions, 1))))
    while math.ceil(height / factor) * math.ceil(width / factor) > max_positions:
        factor += 1
    return math.ceil(height / factor), math.ceil(width / factor)


def labels_at(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize of int label maps (N, H, W): class ids are never blended."""
    if tuple(labels.shape[-2:]) == tuple(size):
        return labels
    return F.interpolate(labels[:, None].float(), size=size, mode="nearest")[:, 0].long()


def sample_pixels(labels: torch.Tensor, per_image: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Flat indices into ``labels`` (N, h, w) of at most ``per_image`` labeled positions per image.

    Sampling weight 1 / (pixels of that class in the image): each class present
    gets about the same share, so road and sky do not fill the budget.
    """
    n = labels.shape[0]
    flat = labels.reshape(n, -1)
    chosen = []
    for i in range(n):
        valid = torch.nonzero(flat[i] != IGNORE_INDEX).flatten()
        if valid.numel() == 0:
            continue
        classes = flat[i, valid]
        counts = torch.bincount(classes)
        weights = 1.0 / counts[classes].float()
        take = min(per_image, valid.numel())
        picked = valid[torch.multinomial(weights, take, replacement=False, generator=generator)]
        chosen.append(picked + i * flat.shape[1])
    return torch.cat(chosen) if chosen else torch.zeros(0, dtype=torch.long)


def supervised_contrastive_loss(embeddings: torch.Tensor, labels: torch.Tensor, temperature: float = 0.07
                                ) -> torch.Tensor:
    """SupCon (Khosla et al., 2020, L_out): mean over anchors that have a positive of

    ``-1/|P(i)| sum_{p in P(i)} log( exp(z_i.z_p / t) / sum_{a != i} exp(z_i.z_a / t) )``.

    ``embeddings`` (M, d) L2-normalised, ``labels`` (M,). Zero, with a zero
    gradient, when no anchor has a positive.
    """
    m = embeddings.shape[0]
    if m < 2:
        return embeddings.sum() * 0.0
    logits = embeddings.float() @ embeddings.float().t() / temperature
    self_mask = torch.eye(m, dtype=torch.bool, device=embeddings.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positives = (labels[:, None] == labels[None, :]) & ~self_mask
    counts = positives.sum(1)
    anchors = counts > 0
    if not bool(anchors.any()):
        return embeddings.sum() * 0.0
    # masked_fill, not multiplication: log_prob is -inf on the diagonal and -inf * 0 is NaN.
    per_anchor = -log_prob.masked_fill(~positives, 0.0).sum(1) / counts.clamp(min=1)
    return per_anchor[anchors].mean()


def pixel_contrastive_loss(head: nn.Module, features: torch.Tensor, labels: torch.Tensor, *, temperature: float,
                           pixels_per_image: int, max_positions: int,
                           generator: torch.Generator | None = None) -> tuple[torch.Tensor, int]:
    """(loss, sampled pixels) for decoder ``features`` (N, D, h, w) and label maps ``labels`` (N, H, W)."""
    size = pooled_size(*features.shape[-2:], max_positions)
    if tuple(features.shape[-2:]) != size:
        features = F.adaptive_avg_pool2d(features, size)
    embeddings = head(features.float())  # (N, d, h', w')
    small = labels_at(labels, size)
    index = sample_pixels(small, pixels_per_image, generator).to(embeddings.device)
    if index.numel() < 2:
        return embeddings.sum() * 0.0, int(index.numel())
    n, d = embeddings.shape[:2]
    flat = embeddings.permute(0, 2, 3, 1).reshape(-1, d)
    return supervised_contrastive_loss(flat[index], small.reshape(-1).to(embeddings.device)[index],
                                       temperature), int(index.numel())


@register_objective("pixel_contrastive")
class PixelContrastive(TargetObjective):
    """Options (``TrainConfig.objective_options["pixel_contrastive"]``): see :data:`DEFAULTS`.

    Works with or without target images: on source labels alone it is a plain
    supervised auxiliary loss.
    """

    needs_target_batch = True

    def __init__(self, config, options=None):
        super().__init__(config, options)
        unknown = set(self.options) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"unknown pixel_contrastive options {sorted(unknown)}; known: {sorted(DEFAULTS)}")
        self.options = {**DEFAULTS, **self.options}
        self.head: ProjectionHead | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self._generator = torch.Generator().manual_seed(config.seed)
        self._totals = {"steps": 0, "pixels": 0, "target_pixels": 0}

    def setup(self, context: ObjectiveContext) -> None:
        channels = _feature_channels(context.model)
        self.head = context.numerics.prepare_model(ProjectionHead(channels, self.options["projection_dim"])).train()
        self.optimizer = torch.optim.AdamW(self.head.parameters(), lr=self.options["lr"] or self.config.lr,
                                           weight_decay=self.config.weight_decay)

    def _target_labels(self, state: StepState) -> torch.Tensor:
        labels = state.target_masks.clone()
        threshold = self.options["pseudo_threshold"]
        if threshold and threshold < 1.0:
            confidence, prediction = state.target_out.logits.detach().float().softmax(1).max(1)
            own = (labels == IGNORE_INDEX) & (confidence >= threshold)
            labels[own] = prediction[own]
        return labels

    def loss(self, state: StepState) -> dict[str, torch.Tensor]:
        features, labels = [], []
        if state.source_masks is not None:
            features.append(state.source_out.features)
            labels.append(state.source_masks)
        if state.target_out is not None and state.target_masks is not None:
            features.append(state.target_out.features)
            labels.append(self._target_labels(state))
        if not features:
            return {}
        loss, sampled = pixel_contrastive_loss(
            self.head, torch.cat(features), torch.cat(labels), temperature=self.options["temperature"],
            pixels_per_image=self.options["pixels_per_image"], max_positions=self.options["max_positions"],
            generator=self._generator)
        self._totals["steps"] += 1
        self._totals["pixels"] += sampled
        state.logs["contrastive_pixels"] = float(sampled)
        return {"pixel_contrastive": self.options["weight"] * loss}

    def after_step(self, state: StepState) -> None:
        # The loop's optimizer holds the segmentation net only; the head has its own.
        if self.optimizer is not None and any(p.grad is not None for p in self.head.parameters()):
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)

    def summary(self) -> dict[str, Any]:
        steps = self._totals["steps"]
        return {"steps": steps, "pixels_per_step": round(self._totals["pixels"] / steps, 1) if steps else 0.0}


def _feature_channels(model: nn.Module) -> int:
    """D of :func:`learning.models.model_forward`'s features: the input of the final 1x1 classifier."""
    head = model.classifier
    if isinstance(head, nn.Sequential):  # DeepLabHead
        return head[-1].in_channels
    return head.high_classifier.in_channels  # LRASPPHead


def contrastive_then_finetune(config, *, labeled: Sequence[Sample], unlabeled: Sequence[Sample] = (),
                              val: Sequence[Sample] = (), init_state: dict[str, torch.Tensor] | None = None,
                              contrastive_fraction: float = 0.5, options: dict[str, Any] | None = None,
                              progress=None, should_stop=None):
    """Two stages inside ``config.steps``: pixel contrastive only (no cross-entropy), then cross-entropy.

    Returns ``(stage_one, stage_two)`` :class:`~learning.train.TrainResult` s;
    the model is ``stage_two.state_dict``. Other objectives of ``config`` run
    in the fine-tuning stage only.
    """
    from learning.train import train

    first = int(round(contrastive_fraction * config.steps))
    stage_options = {**config.objective_options, "pixel_contrastive": {**(options or {}), "weight": 1.0}}
    pretrain = dataclasses.replace(config, steps=first, supervised_weight=0.0, adversarial=False,
                                   self_training=False, objectives=("pixel_contrastive",),
                                   objective_options=stage_options)
    stage_one = train(pretrain, labeled=labeled, unlabeled=unlabeled, init_state=init_state, progress=progress,
                      should_stop=should_stop)
    finetune = dataclasses.replace(config, steps=config.steps - first,
                                   objectives=tuple(n for n in config.objectives if n != "pixel_contrastive"))
    stage_two = train(finetune, labeled=labeled, unlabeled=unlabeled, val=val, init_state=stage_one.state_dict,
                      progress=progress, should_stop=should_stop)
    return stage_one, stage_two
