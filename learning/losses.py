"""Supervised losses and class weights for imbalanced and binary tasks.

Cross-entropy alone on a rare foreground (a polyp on 2–15 % of the pixels)
learns to say "background"; ENet's inverse-log weights (1 / ln(1.02 + p))
swing the other way and, at a few hundred steps from scratch, flood the
image with the rare class (measured on the polyp set: docs/BENCHMARKS.md).
The default recipe (``learning.recipe``) uses a soft Dice term, which
scores each class by its overlap and so cannot be won by predicting the
majority everywhere, next to unweighted cross-entropy; square-root weights
capped at :data:`WEIGHT_CAP` are the milder alternative.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from learning.labels import IGNORE_INDEX

WEIGHTINGS = ("none", "enet", "sqrt")
WEIGHT_CAP = 5.0  # no class weighs more than this many times the most frequent one


def class_weights_from_counts(counts: np.ndarray, scheme: str) -> torch.Tensor | None:
    """Per-class loss weights from labeled pixel counts; None for ``"none"``."""
    if scheme not in WEIGHTINGS:
        raise ValueError(f"unknown class_weighting {scheme!r}; choose one of {WEIGHTINGS}")
    if scheme == "none":
        return None
    frequency = counts / max(int(counts.sum()), 1)
    if scheme == "enet":
        return torch.tensor(1.0 / np.log(1.02 + frequency), dtype=torch.float32)
    # sqrt(f_max / f_c): the most frequent class weighs 1; absent classes (no pixels to weigh) 1 too.
    present = frequency > 0
    weights = np.ones_like(frequency, dtype=np.float64)
    weights[present] = np.sqrt(frequency[present].max() / frequency[present])
    return torch.tensor(np.minimum(weights, WEIGHT_CAP), dtype=torch.float32)


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, *, ignore_index: int = IGNORE_INDEX,
                   smooth: float = 1.0) -> torch.Tensor:
    """1 − mean soft Dice over the classes present in the batch's labels (labeled pixels only).

    Classes absent from the labels are left out: with region labels most
    batches see only a few classes, and scoring the absent ones would push
    every prediction of them towards zero. Exactly 0 when nothing is labeled.
    """
    labeled = target != ignore_index
    if not bool(labeled.any()):
        return logits.sum() * 0.0
    probs = logits.float().softmax(1)
    num_classes = probs.shape[1]
    mask = labeled.unsqueeze(1).float()
    one_hot = F.one_hot(target.clamp(max=num_classes - 1) * labeled, num_classes).permute(0, 3, 1, 2).float()
    one_hot = one_hot * mask
    probs = probs * mask
    dims = (0, 2, 3)
    intersection = (probs * one_hot).sum(dims)
    cardinality = probs.sum(dims) + one_hot.sum(dims)
    present = one_hot.sum(dims) > 0
    dice = (2 * intersection + smooth) / (cardinality + smooth)
    return 1.0 - dice[present].mean()
