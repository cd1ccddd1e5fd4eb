"""Segmentation metrics from one confusion matrix (the torchvision references way).

A class absent from both the ground truth and the prediction has an undefined
IoU (0/0). It is reported as ``None`` ("n/a") and left out of the mean instead
of counting as 0 (which punishes a model for an empty validation split) or 1
(which rewards it for nothing).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from learning.labels import IGNORE_INDEX


@dataclass
class SegmentationMetrics:
    """JSON-serialisable summary. IoU/accuracy values are fractions in [0, 1]; ``None`` = n/a."""

    miou: float | None
    per_class_iou: list[float | None]
    pixel_accuracy: float | None
    per_class_accuracy: list[float | None]  # recall per class; None where the class has no GT pixels
    mean_accuracy: float | None
    labeled_pixels: int
    num_classes: int

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "SegmentationMetrics":
        return cls(**data)


def _flat_int64(values: torch.Tensor | np.ndarray) -> torch.Tensor:
    """A flat int64 CPU tensor; NumPy input is converted (copied) there, so read-only cached masks are fine."""
    if isinstance(values, torch.Tensor):
        return values.reshape(-1).to("cpu", torch.int64)
    return torch.from_numpy(np.asarray(values).reshape(-1).astype(np.int64))


class ConfusionMatrix:
    """Accumulates ``matrix[target, prediction]`` pixel counts; 255 in the target is skipped."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros((num_classes, num_classes), dtype=torch.int64)

    def update(self, pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray) -> None:
        """Add a batch: ``pred`` and ``target`` are class-id arrays of the same shape."""
        pred, target = (_flat_int64(a) for a in (pred, target))
        if pred.shape != target.shape:
            raise ValueError(f"prediction has {pred.numel()} pixels, target {target.numel()}")
        labeled = target != self.ignore_index
        keep = labeled & (target >= 0) & (target < self.num_classes)
        if not torch.equal(keep, labeled):
            raise ValueError(f"target holds class ids outside 0..{self.num_classes - 1} (and not {self.ignore_index})")
        index = target[keep] * self.num_classes + pred[keep]
        self.matrix += torch.bincount(index, minlength=self.num_classes ** 2).reshape(self.num_classes, -1)

    def reset(self) -> None:
        self.matrix.zero_()

    def compute(self) -> SegmentationMetrics:
        m = self.matrix.double()
        true_positive = m.diag()
        gt_pixels = m.sum(1)
        pred_pixels = m.sum(0)
        union = gt_pixels + pred_pixels - true_positive
        per_class_iou = [None if u == 0 else float(tp / u) for tp, u in zip(true_positive.tolist(), union.tolist())]
        per_class_acc = [None if g == 0 else float(tp / g) for tp, g in zip(true_positive.tolist(), gt_pixels.tolist())]
        total = float(m.sum())
        defined_iou = [v for v in per_class_iou if v is not None]
        defined_acc = [v for v in per_class_acc if v is not None]
        return SegmentationMetrics(
            miou=float(np.mean(defined_iou)) if defined_iou else None,
            per_class_iou=per_class_iou,
            pixel_accuracy=float(true_positive.sum() / total) if total else None,
            per_class_accuracy=per_class_acc,
            mean_accuracy=float(np.mean(defined_acc)) if defined_acc else None,
            labeled_pixels=int(total),
            num_classes=self.num_classes,
        )
