"""How far two annotators' masks of the same pixels agree, and the mask both stand behind.

Two people label one query independently; these functions say how alike
their masks are and merge them. All take two index masks of the same shape
(``uint8``, class ids, 255 = void) and are pure numpy, so the numbers can be
checked by hand (tests/unit/test_agreement.py).

- IoU per class treats a void pixel as "not this class": a class one
  annotator painted where the other left void counts against agreement, so
  covering less is never rewarded.
- The boundary F-score asks whether the two outlines run within ``tolerance``
  pixels of each other: IoU barely moves when a thin object's outline
  shifts by a pixel or two, the boundary score does.
- The merge keeps the pixels both gave the same class and voids the rest
  (255 is never trained on, see learning/labels.py), so a disputed pixel
  teaches the model nothing rather than one annotator's guess.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .labels import IGNORE_INDEX


@dataclass(frozen=True)
class AgreementScore:
    per_class_iou: dict[int, float | None]  # None: neither mask uses the class
    miou: float | None  # mean over the classes either mask uses; None when both are void
    boundary_f: float | None  # None when neither mask has a boundary
    agreed_pixels: int  # labeled in both with the same class
    disputed_pixels: int  # labeled in at least one, not with the same class


def _check(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"masks must be 2-D and of one shape, not {a.shape} and {b.shape}")
    return a, b


def per_class_iou(a: np.ndarray, b: np.ndarray, num_classes: int) -> dict[int, float | None]:
    """``|a = c ∧ b = c| / |a = c ∨ b = c|`` for each class ``c``; None for a class neither mask uses."""
    a, b = _check(a, b)
    result: dict[int, float | None] = {}
    for c in range(num_classes):
        in_a, in_b = a == c, b == c
        union = int((in_a | in_b).sum())
        result[c] = int((in_a & in_b).sum()) / union if union else None
    return result


def mean_iou(per_class: dict[int, float | None]) -> float | None:
    values = [v for v in per_class.values() if v is not None]
    return float(np.mean(values)) if values else None


def boundaries(mask: np.ndarray) -> np.ndarray:
    """Labeled pixels with a 4-neighbour of another value (another class, or void): the outline of each region."""
    mask = np.asarray(mask)
    edge = np.zeros(mask.shape, dtype=bool)
    edge[:-1, :] |= mask[:-1, :] != mask[1:, :]
    edge[1:, :] |= mask[1:, :] != mask[:-1, :]
    edge[:, :-1] |= mask[:, :-1] != mask[:, 1:]
    edge[:, 1:] |= mask[:, 1:] != mask[:, :-1]
    return edge & (mask != IGNORE_INDEX)


def boundary_f_score(a: np.ndarray, b: np.ndarray, tolerance: float = 2.0) -> float | None:
    """F-score of the two outlines: a boundary pixel counts as matched when the other outline is within
    ``tolerance`` pixels (Euclidean). None when neither mask has a boundary; 0 when only one has."""
    a, b = _check(a, b)
    edge_a, edge_b = boundaries(a), boundaries(b)
    count_a, count_b = int(edge_a.sum()), int(edge_b.sum())
    if count_a == 0 and count_b == 0:
        return None
    if count_a == 0 or count_b == 0:
        return 0.0
    # Distance from every pixel to the nearest boundary pixel of the other mask.
    to_b = ndimage.distance_transform_edt(~edge_b)
    to_a = ndimage.distance_transform_edt(~edge_a)
    precision = float((to_b[edge_a] <= tolerance).mean())
    recall = float((to_a[edge_b] <= tolerance).mean())
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def merge_masks(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pixels both annotators gave the same class keep it; every other pixel is void (255)."""
    a, b = _check(a, b)
    return np.where(a == b, a, IGNORE_INDEX).astype(np.uint8)


def agreement_score(a: np.ndarray, b: np.ndarray, num_classes: int, *, tolerance: float = 2.0) -> AgreementScore:
    a, b = _check(a, b)
    ious = per_class_iou(a, b, num_classes)
    labeled = (a != IGNORE_INDEX) | (b != IGNORE_INDEX)
    agreed = int(((a == b) & (a != IGNORE_INDEX)).sum())
    return AgreementScore(
        per_class_iou=ious, miou=mean_iou(ious), boundary_f=boundary_f_score(a, b, tolerance),
        agreed_pixels=agreed, disputed_pixels=int(labeled.sum()) - agreed,
    )
