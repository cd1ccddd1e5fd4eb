"""Mean-teacher weak-to-strong consistency on unlabeled target images (FixMatch / UniMatch style).

Each step, an exponential moving average of the student (the *teacher*,
Tarvainen & Valpola 2017) predicts on the weakly augmented target batch the
loop drew. Its confident pixels become pseudo-labels; the student then sees
a strongly perturbed, CutMix-ed version of the same batch
(:mod:`learning.adaptation.strong`) and is trained to reproduce them. This
is the objective that gave STAL +10.4 mIoU on GTA5->Cityscapes and UniMatch
+5 on Cityscapes at 1/8 of the labels (research/al-da-anchors.md, A1/A3).

Which teacher pixels count:

- *Per-class confidence percentiles* (CBST's idea, refreshed every step): for
  each predicted class, the confidence above which its most confident
  ``portion`` of pixels lie, smoothed over steps. Frequent, easy classes
  (road, sky) do not starve rare ones the way one global threshold does.
- A *cap* (0.97, DAFormer's 0.968): any pixel at least that confident is kept.
- *Low-confidence pixels only as negatives* (RIPU's negative learning):
  where the teacher is unsure which class it is, it is still sure about
  which classes it is *not* (probability < ``negative_threshold``), and the
  student is pushed away from those.
- *Human labels always override*: wherever the target batch carries a label
  (a human annotation, or a CBST pseudo-label when ``self_training`` is on as
  well) that label is the target, never the teacher's guess.

The loss is summed over the kept pixels and divided by *all* pixels of the
batch (UniMatch), so a teacher that is confident nowhere contributes nothing:
the weight ramps itself up as the teacher improves.
"""
from __future__ import annotations

import copy
import logging
from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from learning.adaptation.base import ObjectiveContext, StepState, TargetObjective, register_objective
from learning.adaptation.strong import StrongAugment, cutmix_boxes
from learning.labels import IGNORE_INDEX
from learning.models import model_forward

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "weight": 1.0,  # of the pseudo-label cross-entropy
    "negative_weight": 1.0,  # of the negative-learning term
    "ema_decay": 0.99,  # ~100-step memory: a round is a few hundred steps
    "portion": 0.5,  # each predicted class keeps its most confident half ...
    "cap": 0.97,  # ... and every pixel at least this confident
    "threshold_momentum": 0.9,  # smoothing of the per-class percentiles across steps
    "min_class_pixels": 64,  # a class needs this many predicted pixels in a batch to move its threshold
    "negative_threshold": 0.05,  # classes the teacher gives less than this are negatives
    "cutmix_p": 0.5,
    "start": 0.3,  # from scratch: no consistency before this fraction of the steps (a random teacher is noise)
}


def class_percentile_thresholds(confidence: torch.Tensor, prediction: torch.Tensor, num_classes: int, *,
                                portion: float, min_pixels: int = 1) -> torch.Tensor:
    """(C,) float: per predicted class, the confidence of its ``ceil(portion * n_c)``-th most confident pixel.

    NaN for a class with fewer than ``min_pixels`` predicted pixels (no estimate).
    """
    if not 0.0 < portion <= 1.0:
        raise ValueError(f"portion must be in (0, 1], got {portion}")
    confidence = confidence.reshape(-1).float()
    prediction = prediction.reshape(-1)
    thresholds = torch.full((num_classes,), float("nan"))
    counts = torch.bincount(prediction, minlength=num_classes)
    for c in torch.nonzero(counts >= max(min_pixels, 1)).flatten().tolist():
        values = confidence[prediction == c]
        k = int(np.ceil(portion * values.numel()))
        # the k-th largest is the (n - k + 1)-th smallest
        thresholds[c] = torch.kthvalue(values.cpu(), values.numel() - k + 1).values
    return thresholds


def negative_learning_loss(logits: torch.Tensor, teacher_probs: torch.Tensor, pixels: torch.Tensor, *,
                           threshold: float) -> torch.Tensor:
    """Sum over ``pixels`` (N, H, W) bool and classes the teacher rules out of -log(1 - p_student).

    Not normalised: the caller divides by the batch's pixel count, like the
    cross-entropy it is added to.
    """
    negatives = (teacher_probs < threshold) & pixels.unsqueeze(1)
    if not bool(negatives.any()):
        return logits.sum() * 0.0
    probs = logits.float().softmax(1)
    return -(torch.log1p(-probs.clamp(max=1 - 1e-6)) * negatives).sum()


@register_objective("consistency")
class MeanTeacherConsistency(TargetObjective):
    """Options (``TrainConfig.objective_options["consistency"]``): see :data:`DEFAULTS`."""

    def __init__(self, config, options=None):
        super().__init__(config, options)
        unknown = set(self.options) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"unknown consistency options {sorted(unknown)}; known: {sorted(DEFAULTS)}")
        self.options = {**DEFAULTS, **self.options}
        self.teacher: torch.nn.Module | None = None
        self.thresholds = torch.full((config.num_classes,), float("nan"))
        self.updates = 0
        self.start_step = 0
        self.strong = StrongAugment()
        self._numerics = None
        self._batch: dict[str, torch.Tensor] | None = None
        self._exclude_carried_labels = False
        self._totals = {"active_steps": 0, "pseudo_fraction": 0.0, "negative_fraction": 0.0, "human_fraction": 0.0}

    # --- set-up ------------------------------------------------------------------------------------------

    def setup(self, context: ObjectiveContext) -> None:
        self._numerics = context.numerics
        if context.target_dataset is None:
            return
        augment = context.target_dataset.augment
        if augment is not None and augment.scale[0] < 1.0:
            # A shrunk image is padded with grey that the mask marks unlabeled. For an unlabeled
            # image the mask is unlabeled everywhere, so nothing would tell the teacher's pseudo-label
            # for "grey border" from a real one: only zoom in on target images.
            context.target_dataset.augment = replace(augment, scale=(1.0, max(1.0, augment.scale[1])))
        self.teacher = copy.deepcopy(context.model)
        self.teacher.eval().requires_grad_(False)
        self.start_step = 0 if context.warm_start else int(self.options["start"] * self.config.steps)
        # Where self-training trains on the dataset's labels already, do not count them twice.
        self._exclude_carried_labels = "self_training" in self.config.objective_names

    # --- the step ----------------------------------------------------------------------------------------

    def current_thresholds(self) -> torch.Tensor:
        """(C,) the thresholds in force: smoothed percentiles, at most the cap; the cap where unknown."""
        cap = float(self.options["cap"])
        return torch.where(torch.isnan(self.thresholds), torch.full_like(self.thresholds, cap),
                           self.thresholds.clamp(max=cap))

    @torch.no_grad()
    def teacher_probs(self, images: torch.Tensor) -> torch.Tensor:
        """Softmax (N, C, H, W) float32 of the teacher on normalised ``images``."""
        numerics = self._numerics
        with numerics.autocast():
            out = model_forward(self.teacher, numerics.prepare_input(images))
        return out.logits.float().softmax(1)

    def _update_thresholds(self, confidence: torch.Tensor, prediction: torch.Tensor) -> None:
        observed = class_percentile_thresholds(confidence, prediction, self.config.num_classes,
                                               portion=self.options["portion"],
                                               min_pixels=self.options["min_class_pixels"])
        momentum = float(self.options["threshold_momentum"])
        fresh = torch.isnan(self.thresholds) & ~torch.isnan(observed)
        blend = ~torch.isnan(self.thresholds) & ~torch.isnan(observed)
        self.thresholds[fresh] = observed[fresh]
        self.thresholds[blend] = momentum * self.thresholds[blend] + (1 - momentum) * observed[blend]

    def prepare_target_batch(self, step: int, images: torch.Tensor, masks: torch.Tensor
                             ) -> tuple[torch.Tensor, torch.Tensor]:
        self._batch = None
        if self.teacher is None or step < self.start_step:
            return images, masks
        probs = self.teacher_probs(images).cpu()
        confidence, prediction = probs.max(1)
        self._update_thresholds(confidence, prediction)
        keep = confidence >= self.current_thresholds()[prediction]
        carried = masks != IGNORE_INDEX  # human labels (or CBST pseudo-labels): they win
        target = torch.where(carried, masks, torch.where(keep, prediction, torch.full_like(prediction, IGNORE_INDEX)))

        rng = np.random.default_rng([self.config.seed, 0x7E4C, step])
        strong = self.strong(images, rng)
        mix = cutmix_boxes(images.shape[0], images.shape[-2], images.shape[-1], rng, p=self.options["cutmix_p"])
        self._batch = {"target": mix.apply(target), "probs": mix.apply(probs), "carried": mix.apply(carried)}
        return mix.apply(strong), mix.apply(masks)

    def loss(self, state: StepState) -> dict[str, torch.Tensor]:
        if self._batch is None or state.target_out is None:
            return {}
        logits = state.target_out.logits
        device = logits.device
        target = self._batch["target"].to(device)
        carried = self._batch["carried"].to(device)
        if self._exclude_carried_labels:
            target = torch.where(carried, torch.full_like(target, IGNORE_INDEX), target)
        labeled = target != IGNORE_INDEX
        total = float(target.numel())
        per_pixel = F.cross_entropy(logits.float(), target, ignore_index=IGNORE_INDEX, reduction="none")
        cross_entropy = per_pixel.sum() / total
        unsure = (self._batch["target"].to(device) == IGNORE_INDEX)
        negative = negative_learning_loss(logits, self._batch["probs"].to(device), unsure,
                                          threshold=self.options["negative_threshold"]) / total

        self._totals["active_steps"] += 1
        self._totals["pseudo_fraction"] += float((labeled & ~carried).float().mean())
        self._totals["human_fraction"] += float(carried.float().mean())
        self._totals["negative_fraction"] += float(unsure.float().mean())
        state.logs["pseudo_fraction"] = float((labeled & ~carried).float().mean())
        terms = {"consistency": self.options["weight"] * cross_entropy}
        if self.options["negative_weight"]:
            terms["consistency_negative"] = self.options["negative_weight"] * negative
        return terms

    @torch.no_grad()
    def after_step(self, state: StepState) -> None:
        if self.teacher is None:
            return
        # Mean Teacher's ramp: early on the average follows the student closely.
        decay = min(float(self.options["ema_decay"]), 1.0 - 1.0 / (self.updates + 2))
        ema_update(self.teacher, state.model, decay)
        self.updates += 1

    # --- reporting and hand-over -------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        active = self._totals["active_steps"]
        facts: dict[str, Any] = {
            "active_steps": active,
            "start_step": self.start_step,
            "thresholds": [round(float(t), 4) for t in self.current_thresholds()],
        }
        if active:
            facts.update({name: round(self._totals[name] / active, 4)
                          for name in ("pseudo_fraction", "negative_fraction", "human_fraction")})
        return facts

    def state_dict(self) -> dict[str, Any]:
        if self.teacher is None:
            return {}
        return {"teacher": {k: v.detach().cpu().contiguous() for k, v in self.teacher.state_dict().items()},
                "thresholds": self.thresholds.clone(), "updates": self.updates}


@torch.no_grad()
def ema_update(teacher: torch.nn.Module, student: torch.nn.Module, decay: float) -> None:
    """teacher <- decay * teacher + (1 - decay) * student, parameters and float buffers (BatchNorm statistics)."""
    for t, s in zip(teacher.parameters(), student.parameters()):
        t.lerp_(s.detach(), 1.0 - decay)
    for t, s in zip(teacher.buffers(), student.buffers()):
        if t.dtype.is_floating_point:
            t.lerp_(s, 1.0 - decay)
        else:
            t.copy_(s)
