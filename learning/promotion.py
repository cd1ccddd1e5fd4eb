"""Keep-best: does a newly trained model replace the one serving suggestions and selection?

A round's model is promoted unless it is worse than the current one on the
frozen validation images. Both models are scored on the same images; the
candidate is rejected when either

- its mIoU is more than :data:`MAX_DROP` (1 mIoU point) below the current
  model's: the most a promoted model may ever lose, whatever the noise. A
  bootstrap interval alone let models through that were 2 points worse on
  16 validation frames (CamVid) and, with 115 frames, 1.3 points worse with
  the whole interval below zero (polyp, docs/BENCHMARKS.md "Dataset suite"),
  both more than the spread between seeds; or
- it is worse beyond noise: a paired bootstrap over validation images
  (resampled with replacement, the mIoU difference recomputed from the
  summed confusion matrices of each resample) puts the whole 95 % interval
  of the difference below ``-tolerance``.

A rejected model changes nothing the next round needs: it fine-tunes the
serving model on every label so far.

Without validation labels there is nothing to compare on; the rule is then
a training sanity check: the candidate is promoted when its training loss is
finite and its last logged loss is not above its first (it learned
something and did not diverge). The reason is stored with the decision.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from learning.labels import IGNORE_INDEX
from learning.selection.resample import resize_nearest

RESAMPLES = 1000
TOLERANCE = 0.005  # mIoU (as a fraction) a model may lose before noise is even considered
MAX_DROP = 0.01  # mIoU (as a fraction) a promoted model may lose against the current one: 1 point
RULE = f"max drop {100 * MAX_DROP:g} point + bootstrap"  # names the rule in benchmark records that compare rules


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str
    rule: str  # "first" | "validation" | "training_loss"
    difference: float | None = None  # candidate − current mIoU on the validation images
    low: float | None = None  # 95 % bootstrap interval of the difference
    high: float | None = None
    images: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def image_confusions(predictions: Sequence[np.ndarray], truths: Sequence[np.ndarray], num_classes: int) -> np.ndarray:
    """(N, C, C) confusion matrix of each image (rows = truth, columns = prediction); void pixels skipped."""
    out = np.zeros((len(truths), num_classes, num_classes), dtype=np.int64)
    for i, (pred, truth) in enumerate(zip(predictions, truths, strict=True)):
        truth = resize_nearest(np.asarray(truth), np.asarray(pred).shape)
        valid = (truth != IGNORE_INDEX) & (truth < num_classes)
        index = truth[valid].astype(np.int64) * num_classes + np.asarray(pred)[valid].astype(np.int64)
        out[i] = np.bincount(index, minlength=num_classes ** 2).reshape(num_classes, num_classes)
    return out


def class_iou(confusion: np.ndarray) -> list[float | None]:
    """Each class's IoU from a (C, C) confusion matrix; None for a class absent from truth and prediction."""
    tp = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - tp
    return [float(t / u) if u > 0 else None for t, u in zip(tp, union)]


def class_precision(confusion: np.ndarray) -> list[float | None]:
    """Each class's precision (right / predicted pixels) from a (C, C) confusion matrix; None where never predicted."""
    tp = np.diag(confusion).astype(np.float64)
    predicted = confusion.sum(0)
    return [float(t / p) if p > 0 else None for t, p in zip(tp, predicted)]


def miou_of(confusion: np.ndarray) -> float:
    """Mean IoU over the classes present in the truth or the prediction of ``confusion`` (C, C)."""
    present = [value for value in class_iou(confusion) if value is not None]
    return float(np.mean(present)) if present else 0.0


def paired_bootstrap(candidate: np.ndarray, current: np.ndarray, *, resamples: int = RESAMPLES,
                     seed: int = 0) -> tuple[float, float, float]:
    """mIoU difference (candidate − current) and its 95 % bootstrap interval over images."""
    difference = miou_of(candidate.sum(0)) - miou_of(current.sum(0))
    rng = np.random.default_rng(seed)
    n = len(candidate)
    draws = rng.integers(0, n, size=(resamples, n))
    diffs = np.array([miou_of(candidate[d].sum(0)) - miou_of(current[d].sum(0)) for d in draws])
    low, high = np.percentile(diffs, [2.5, 97.5])
    return difference, float(low), float(high)


def decide_on_validation(candidate: np.ndarray, current: np.ndarray, *, tolerance: float = TOLERANCE,
                         max_drop: float = MAX_DROP, seed: int = 0) -> PromotionDecision:
    """Compare per-image confusion matrices of two models on the same validation images."""
    difference, low, high = paired_bootstrap(candidate, current, seed=seed)
    n = len(candidate)
    summary = (f"{100 * difference:+.1f} mIoU points against the current model on {n} validation images "
               f"(95 % interval {100 * low:+.1f} to {100 * high:+.1f})")
    if high < -tolerance:
        return PromotionDecision(False, f"worse beyond noise: {summary}", "validation", difference, low, high, n)
    if difference < -max_drop:
        return PromotionDecision(False, f"lower by more than the {100 * max_drop:.1f} point a model may lose: "
                                        f"{summary}", "validation", difference, low, high, n)
    verdict = f"within the {100 * max_drop:.1f} point a model may lose" if difference < 0 else "not worse"
    return PromotionDecision(True, f"{verdict}: {summary}", "validation", difference, low, high, n)


def decide_on_training(history: Sequence[dict]) -> PromotionDecision:
    """The rule without validation labels: a finite training loss that did not rise."""
    losses = [float(row["loss"]) for row in history if "loss" in row]
    if not losses:
        return PromotionDecision(True, "no validation images and no training loss logged: kept by default",
                                 "training_loss")
    if not all(np.isfinite(losses)):
        return PromotionDecision(False, "no validation images; the training loss diverged (not finite)",
                                 "training_loss")
    if losses[-1] > losses[0]:
        return PromotionDecision(False, f"no validation images; the training loss rose from {losses[0]:.3f} to "
                                        f"{losses[-1]:.3f}", "training_loss")
    return PromotionDecision(True, f"no validation images; the training loss fell from {losses[0]:.3f} to "
                                   f"{losses[-1]:.3f}", "training_loss")


def first_model() -> PromotionDecision:
    return PromotionDecision(True, "the project's first model", "first")
