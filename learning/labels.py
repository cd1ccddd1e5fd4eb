"""The conventions every index mask in maskloop follows, decided here once.

A mask is a ``uint8`` array of class ids ``0..C-1``; :data:`IGNORE_INDEX`
marks void or not-yet-labeled pixels. It is 255 because masks are stored as
8-bit PNGs (so at most 255 classes) and 255 is what CamVid, Cityscapes and
most exported datasets already use for "void": imported masks need no remap.
It is never a class, never in a loss and never in a metric.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

IGNORE_INDEX = 255
MAX_CLASSES = IGNORE_INDEX  # class ids must stay below IGNORE_INDEX


def class_pixel_counts(masks: Iterable[np.ndarray], num_classes: int) -> np.ndarray:
    """Labeled pixels per class over ``masks`` (void and out-of-range ids are not counted)."""
    counts = np.zeros(num_classes, dtype=np.int64)
    for mask in masks:
        values = np.asarray(mask).ravel()
        counts += np.bincount(values[values < num_classes], minlength=num_classes)[:num_classes]
    return counts
