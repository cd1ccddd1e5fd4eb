"""Self-training on confident pseudo-labels with class-wise thresholds (CBST).

Zou et al., "Unsupervised Domain Adaptation for Semantic Segmentation via
Class-Balanced Self-Training" (ECCV 2018). One global confidence threshold
hands almost every pseudo-label to the easy, frequent classes (road, sky) and
starves the rare ones. CBST instead keeps, *for each predicted class*, its
most confident ``portion`` of pixels, so every class gets pseudo-labels at its
own confidence scale. ``cap`` stops a class whose pixels are all confident
from needing an impossible threshold (any pixel at least that confident is
kept), and ``floor`` rejects near-uniform guesses outright.

Pseudo-labels are computed from the *current* model at the start of every
``train()`` call, i.e. refreshed each active-learning round. Human labels
always win: wherever a target image carries a human label, that label is the
training target and the pseudo-label there is discarded.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from learning.adaptation.base import (
    ObjectiveContext, StepState, TargetObjective, masked_cross_entropy, register_objective, samples_with_masks,
)
from learning.data import CACHE, Sample, Size, resize_mask
from learning.labels import IGNORE_INDEX

log = logging.getLogger(__name__)


def class_thresholds(confidences: Sequence[np.ndarray], labels: Sequence[np.ndarray], num_classes: int, *,
                     portion: float, cap: float = 1.0, floor: float = 0.0) -> np.ndarray:
    """Per-class confidence thresholds (C,) float32.

    For class c, over all pixels predicted as c: the confidence of the
    ``ceil(portion * n_c)``-th most confident one, then ``min(cap, .)`` and
    ``max(floor, .)``. A class nobody predicted gets ``cap`` (it will select
    nothing anyway).
    """
    if not 0.0 < portion <= 1.0:
        raise ValueError(f"portion must be in (0, 1], got {portion}")
    conf = np.concatenate([np.asarray(c, dtype=np.float32).ravel() for c in confidences]) if confidences else \
        np.zeros(0, np.float32)
    lab = np.concatenate([np.asarray(l).ravel() for l in labels]) if labels else np.zeros(0, np.int64)
    thresholds = np.full(num_classes, cap, dtype=np.float32)
    order = np.argsort(lab, kind="stable")
    sorted_labels = lab[order]
    bounds = np.searchsorted(sorted_labels, np.arange(num_classes + 1))
    for c in range(num_classes):
        values = conf[order[bounds[c]:bounds[c + 1]]]
        if values.size == 0:
            continue
        k = max(1, math.ceil(portion * values.size))
        # k-th largest without sorting everything
        kth = np.partition(values, values.size - k)[values.size - k]
        thresholds[c] = min(cap, float(kth))
    return np.maximum(thresholds, np.float32(floor))


def pseudo_label(confidence: np.ndarray, label: np.ndarray, thresholds: np.ndarray,
                 human: np.ndarray | None = None) -> np.ndarray:
    """uint8 (H, W) mask: predicted class where ``confidence >= thresholds[class]``, else 255.

    ``human`` (uint8, 255 = unlabeled) overrides wherever it is labeled.
    """
    label = np.asarray(label)
    keep = np.asarray(confidence, dtype=np.float32) >= thresholds[label]
    mask = np.where(keep, label, IGNORE_INDEX).astype(np.uint8)
    if human is not None:
        mask = np.where(human != IGNORE_INDEX, human, mask).astype(np.uint8)
    return mask


@dataclass
class PseudoLabelSet:
    masks: list[np.ndarray]
    thresholds: np.ndarray
    labeled_fraction: float  # of all pixels, pseudo + human
    human_fraction: float


def compute_pseudo_labels(model: torch.nn.Module, samples: Sequence[Sample], *, num_classes: int, size: Size,
                          portion: float, cap: float, floor: float, batch_size: int = 4,
                          device: torch.device | None = None, precision: str = "auto",
                          target_statistics: bool = False,
                          context: ObjectiveContext | None = None) -> PseudoLabelSet:
    """Run ``model`` over ``samples`` at ``size`` and turn its confident predictions into masks.

    ``target_statistics``: predict with a copy whose BatchNorm statistics were
    re-estimated on ``samples`` (see :func:`learning.adaptation.batchnorm.with_target_statistics`).
    """
    from learning.adaptation.batchnorm import with_target_statistics
    from learning.device import numerics_for, pick_device
    from learning.inference import predict

    if target_statistics:
        device = pick_device(device) if device is not None else next(model.parameters()).device
        model = with_target_statistics(model, samples, size=size, numerics=numerics_for(device, precision),
                                       batch_size=batch_size)
    confidences, labels = [], []
    for i, prediction in enumerate(predict(model, samples, batch_size=batch_size, device=device, size=size,
                                           precision=precision)):
        confidences.append(prediction.probs.max(0))
        labels.append(prediction.probs.argmax(0).astype(np.uint8))
        if context is not None:
            context.check_stop()
            if context.progress is not None:
                context.progress("pseudo_labels", i + 1, len(samples), None)
    thresholds = class_thresholds(confidences, labels, num_classes, portion=portion, cap=cap, floor=floor)
    masks, labeled, human_pixels, total = [], 0, 0, 0
    for sample, conf, lab in zip(samples, confidences, labels):
        human = None
        if sample.mask is not None:
            human = resize_mask(CACHE.get_or_load("mask", sample.mask, None), lab.shape)
            human_pixels += int((human != IGNORE_INDEX).sum())
        mask = pseudo_label(conf, lab, thresholds, human)
        masks.append(mask)
        labeled += int((mask != IGNORE_INDEX).sum())
        total += mask.size
    return PseudoLabelSet(masks, thresholds, labeled / max(total, 1), human_pixels / max(total, 1))


@register_objective("self_training")
class SelfTraining(TargetObjective):
    """Cross-entropy on the target batch against CBST pseudo-labels (human labels where present).

    Options (``TrainConfig`` fields): ``pseudo_label_portion``, ``pseudo_label_cap``,
    ``pseudo_label_floor``, ``pseudo_label_target_bn`` (predict with BatchNorm statistics
    re-estimated on the target images), ``self_training_weight``, ``self_training_start``
    (fraction of the steps to wait before the first pseudo-labels when the
    model starts from scratch: a random network's guesses are noise).
    """

    def __init__(self, config, options=None):
        super().__init__(config, options)
        self.start_step = 0
        self.result: PseudoLabelSet | None = None
        self._context: ObjectiveContext | None = None
        self._original: list[Sample] = []

    def setup(self, context: ObjectiveContext) -> None:
        self._context = context
        if context.target_dataset is None:
            return
        self._original = list(context.target_dataset.samples)
        if context.warm_start:
            self._refresh()
        else:
            self.start_step = int(self.config.self_training_start * self.config.steps)

    def _refresh(self) -> None:
        context = self._context
        config = self.config
        model = context.model
        was_training = model.training
        self.result = compute_pseudo_labels(
            model, self._original, num_classes=config.num_classes, size=tuple(config.size),
            portion=config.pseudo_label_portion, cap=config.pseudo_label_cap, floor=config.pseudo_label_floor,
            batch_size=max(config.batch_size, 1), device=context.numerics.device, precision=config.precision,
            target_statistics=config.pseudo_label_target_bn, context=context,
        )
        model.train(was_training)
        context.target_dataset.samples = samples_with_masks(self._original, self.result.masks)
        log.info("pseudo-labels: %.1f%% of target pixels (%.1f%% human), thresholds %s",
                 100 * self.result.labeled_fraction, 100 * self.result.human_fraction,
                 np.round(self.result.thresholds, 3).tolist())

    def loss(self, state: StepState) -> dict[str, torch.Tensor]:
        if state.target_out is None or self.result is None:
            return {}
        loss = masked_cross_entropy(state.target_out.logits, state.target_masks)
        return {"self_training": self.config.self_training_weight * loss}

    def after_step(self, state: StepState) -> None:
        if self.result is None and self._original and state.step + 1 == self.start_step:
            self._refresh()

    def summary(self) -> dict[str, Any]:
        if self.result is None:
            return {"pseudo_labels": None}
        return {
            "pseudo_label_thresholds": [round(float(t), 4) for t in self.result.thresholds],
            "pseudo_labeled_fraction": round(self.result.labeled_fraction, 4),
            "human_labeled_fraction": round(self.result.human_fraction, 4),
        }
