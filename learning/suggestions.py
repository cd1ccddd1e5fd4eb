"""Pre-filled suggestions (pseudo-labels) for queried images and regions.

The annotator starts from the model's prediction, but only where the model
is confident enough to be right: a pixel is suggested when its confidence
reaches its predicted class's threshold, and every other pixel stays empty
(255) for the annotator to paint. A wrong suggestion that is accepted
silently is worse than an empty pixel, so thresholds are calibrated per
class on labeled validation pixels to reach a target *precision* (95 % by
default): the lowest threshold at which the suggested pixels of that class
are still that precise, which maximises coverage under the precision goal.

Classes with too few validation pixels to calibrate get fixed fallbacks:
0.97 for background/"stuff" classes (large, easy to over-fill) and 0.8 for
the rest (Zhao et al.'s pair, research/al-da-anchors.md c.1).

The measured precision and coverage of each round's suggestions
(:func:`suggestion_quality`) say how much painting they saved.

Queries chosen for the model's uncertainty land where it is most often
wrong, so thresholds calibrated on every validation pixel over-promise
there (measured on the demo: 53–70 % precise suggestions inside uncertain
regions against 95–98 % inside random ones). :func:`calibrate_for_queries`
therefore also calibrates on the most uncertain blocks of the validation
images and keeps the stricter threshold of the two.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from learning.labels import IGNORE_INDEX
from learning.selection.resample import resize_bilinear, resize_nearest

FOREGROUND_FALLBACK = 0.8
BACKGROUND_FALLBACK = 0.97
NEVER = 1.01  # a threshold no probability reaches


@dataclass
class Thresholds:
    """Per-class confidence thresholds and how each was obtained.

    ``source[c]`` is ``"calibrated"``, ``"fallback"`` (too few validation
    pixels) or ``"unreachable"`` (enough pixels, but even the most confident
    ones miss the target precision: the class is never suggested).
    ``precision[c]``/``coverage[c]`` are the calibration-set values at the
    chosen threshold (coverage = share of the class's predicted pixels kept).
    """

    values: np.ndarray  # (C,) float64
    source: list[str]
    target_precision: float
    precision: list[float | None] = field(default_factory=list)
    coverage: list[float | None] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "values": [float(v) for v in self.values],
            "source": list(self.source),
            "target_precision": self.target_precision,
            "precision": list(self.precision),
            "coverage": list(self.coverage),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Thresholds:
        return cls(
            values=np.asarray(data["values"], dtype=np.float64),
            source=list(data["source"]),
            target_precision=float(data["target_precision"]),
            precision=list(data.get("precision", [])),
            coverage=list(data.get("coverage", [])),
        )


def background_classes(class_pixels: Sequence[int] | np.ndarray) -> list[int]:
    """'Stuff' classes (sky, road, tissue, …): those covering more than their fair share of the labeled pixels.

    ``class_pixels``: labeled pixels per class (:func:`learning.labels.class_pixel_counts`
    over whatever labels the caller has: source masks, target labels). They get the
    stricter fallback threshold where validation pixels are too few to calibrate.
    The one rule for every caller: the app and the benchmarks decide it the same way.
    """
    counts = np.asarray(class_pixels, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        return []
    return [int(c) for c in np.flatnonzero(counts > total / max(1, len(counts)))]


# Masks read to decide the background classes: enough to know which classes dominate, cheap on big projects.
BACKGROUND_SAMPLE_MASKS = 200


def background_classes_of(masks: Iterable, num_classes: int) -> list[int]:
    """:func:`background_classes` of the first :data:`BACKGROUND_SAMPLE_MASKS` of ``masks`` (paths or arrays).

    Callers pass the masks a round trains on, labeled source first, then the
    target labels so far, so the app and the simulators decide alike.
    """
    from itertools import islice

    from learning.data import load_mask
    from learning.labels import class_pixel_counts

    loaded = (load_mask(mask) for mask in islice(masks, BACKGROUND_SAMPLE_MASKS))
    return background_classes(class_pixel_counts(loaded, num_classes))


def fallback_thresholds(num_classes: int, background_classes: Iterable[int] = ()) -> Thresholds:
    """Uncalibrated thresholds: 0.97 for background/stuff classes, 0.8 for the rest."""
    background = set(background_classes)
    values = np.array([BACKGROUND_FALLBACK if c in background else FOREGROUND_FALLBACK for c in range(num_classes)])
    return Thresholds(values, ["fallback"] * num_classes, float("nan"), [None] * num_classes, [None] * num_classes)


def _class_threshold(confidence: np.ndarray, correct: np.ndarray, target: float) -> tuple[float, float, float] | None:
    """Lowest threshold whose kept pixels (confidence >= t) reach ``target`` precision.

    Returns (threshold, precision, coverage) or None if no threshold does.
    Pixels tied at one confidence value are kept or dropped together, as
    :func:`make_suggestion` will do.
    """
    order = np.argsort(-confidence, kind="stable")
    conf = confidence[order]
    hits = np.cumsum(correct[order])
    kept = np.arange(1, len(conf) + 1)
    # Only cut where the next pixel has a strictly lower confidence.
    cut = np.r_[conf[1:] < conf[:-1], True]
    precision = hits / kept
    ok = np.flatnonzero(cut & (precision >= target))
    if not len(ok):
        return None
    last = ok[-1]
    return float(conf[last]), float(precision[last]), float(kept[last] / len(conf))


# Share of the validation images' blocks, the most uncertain ones, that stand in for uncertainty-picked regions.
UNCERTAIN_SHARE = 0.1
BLOCK = 16  # pixels of the prediction grid per block side: about a superpixel at the scoring size


def uncertain_blocks_only(predictions: Sequence[tuple[np.ndarray, np.ndarray]], truths: Sequence[np.ndarray],
                          share: float = UNCERTAIN_SHARE, block: int = BLOCK) -> list[np.ndarray]:
    """The truths kept (255 elsewhere) in the ``share`` of all validation blocks whose mean confidence is lowest."""
    means, shapes = [], []
    for pred, conf in predictions:
        h, w = pred.shape
        rows, cols = -(-h // block), -(-w // block)
        padded = np.full((rows * block, cols * block), np.nan)
        padded[:h, :w] = conf
        means.append(np.nanmean(padded.reshape(rows, block, cols, block), axis=(1, 3)))
        shapes.append((h, w))
    if not means:
        return []
    cut = np.quantile(np.concatenate([m.ravel() for m in means]), share)
    kept = []
    for mean, (h, w), truth in zip(means, shapes, truths, strict=True):
        chosen = np.repeat(np.repeat(mean <= cut, block, axis=0), block, axis=1)[:h, :w]
        kept.append(np.where(chosen, resize_nearest(np.asarray(truth), (h, w)), IGNORE_INDEX).astype(np.uint8))
    return kept


def calibrate_for_queries(
    predictions: Sequence[tuple[np.ndarray, np.ndarray]],
    ground_truth: Sequence[np.ndarray],
    num_classes: int,
    *,
    uncertain: bool,
    target_precision: float = 0.95,
    background_classes: Iterable[int] = (),
) -> Thresholds:
    """The thresholds of a round's suggestions: :func:`calibrate_thresholds` on every validation pixel, and when
    the queries are picked for the model's ``uncertain``-ty, the stricter of that and the calibration on the most
    uncertain validation blocks (:func:`uncertain_blocks_only`) for each class calibrated there."""
    overall = calibrate_thresholds(predictions, ground_truth, num_classes, target_precision=target_precision,
                                   background_classes=background_classes)
    if not uncertain or not predictions:
        return overall
    focused = calibrate_thresholds(predictions, uncertain_blocks_only(predictions, ground_truth), num_classes,
                                   target_precision=target_precision, background_classes=background_classes)
    values, source = overall.values.copy(), list(overall.source)
    precision, coverage = list(overall.precision), list(overall.coverage)
    for cls in range(num_classes):
        # A class no threshold makes precise in the uncertain blocks keeps its overall one: never suggesting it
        # anywhere would take its suggestions from the diversity-picked queries too.
        if focused.source[cls] == "calibrated" and focused.values[cls] > values[cls]:
            values[cls], source[cls] = focused.values[cls], "calibrated on uncertain blocks"
            precision[cls], coverage[cls] = focused.precision[cls], focused.coverage[cls]
    return Thresholds(values, source, overall.target_precision, precision, coverage)


def calibrate_thresholds(
    predictions: Sequence[tuple[np.ndarray, np.ndarray]],
    ground_truth: Sequence[np.ndarray],
    num_classes: int,
    *,
    target_precision: float = 0.95,
    min_pixels: int = 200,
    background_classes: Iterable[int] = (),
    max_pixels_per_class: int = 2_000_000,
    seed: int = 0,
) -> Thresholds:
    """Per-class thresholds from labeled validation images.

    ``predictions``: ``(pred, confidence)`` per image (class ids and max
    probability, same shape); ``ground_truth``: index masks (255 = ignore),
    resized nearest to the prediction if they differ. A class is calibrated
    on the pixels *predicted* as that class that have a label; with fewer
    than ``min_pixels`` of them it gets the fallback. Classes with more than
    ``max_pixels_per_class`` such pixels are subsampled (with ``seed``).
    """
    if not 0.0 < target_precision <= 1.0:
        raise ValueError("target_precision must be in (0, 1]")
    conf_parts: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
    hit_parts: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
    for (pred, conf), gt in zip(predictions, ground_truth, strict=True):
        gt = resize_nearest(np.asarray(gt), pred.shape)
        valid = gt != IGNORE_INDEX
        p = pred[valid].astype(np.int64)
        c = np.asarray(conf, dtype=np.float64)[valid]
        g = gt[valid].astype(np.int64)
        for cls in np.unique(p):
            if cls >= num_classes:
                continue
            sel = p == cls
            conf_parts[cls].append(c[sel])
            hit_parts[cls].append(g[sel] == cls)
    fallback = fallback_thresholds(num_classes, background_classes)
    values = fallback.values.copy()
    source = list(fallback.source)
    precision: list[float | None] = [None] * num_classes
    coverage: list[float | None] = [None] * num_classes
    rng = np.random.default_rng(seed)
    for cls in range(num_classes):
        if not conf_parts[cls]:
            continue
        conf = np.concatenate(conf_parts[cls])
        hits = np.concatenate(hit_parts[cls])
        if len(conf) < min_pixels:
            continue
        if len(conf) > max_pixels_per_class:
            keep = rng.choice(len(conf), max_pixels_per_class, replace=False)
            conf, hits = conf[keep], hits[keep]
        found = _class_threshold(conf, hits, target_precision)
        if found is None:
            values[cls], source[cls] = NEVER, "unreachable"
        else:
            values[cls], precision[cls], coverage[cls] = found
            source[cls] = "calibrated"
    return Thresholds(values, source, target_precision, precision, coverage)


@dataclass
class Suggestion:
    """``mask``: uint8 class ids, 255 = not suggested. ``confidence``: uint8, 0-255 = 0-1 (0 where not suggested)."""

    mask: np.ndarray
    confidence: np.ndarray

    @property
    def suggested_pixels(self) -> int:
        return int((self.mask != IGNORE_INDEX).sum())


def make_suggestion(
    *,
    probs: np.ndarray | None = None,
    pred: np.ndarray | None = None,
    confidence: np.ndarray | None = None,
    thresholds: Thresholds | np.ndarray,
    region_mask: np.ndarray | None = None,
    size: tuple[int, int] | None = None,
) -> Suggestion:
    """The suggestion for one image: predicted class where confidence >= its class threshold.

    Give ``probs`` ``(C, h, w)`` or ``pred`` + ``confidence`` ``(h, w)``. The
    output is at ``region_mask``'s shape if given (only pixels inside it are
    suggested), else ``size``, else the prediction's size; the prediction is
    resized to it (class nearest, confidence bilinear) before thresholding.
    No pixel below its threshold is ever filled.
    """
    if probs is not None:
        probs = np.asarray(probs, dtype=np.float32)
        pred, confidence = probs.argmax(0).astype(np.uint8), probs.max(0)
    if pred is None or confidence is None:
        raise ValueError("give probs, or pred and confidence")
    values = thresholds.values if isinstance(thresholds, Thresholds) else np.asarray(thresholds, dtype=np.float64)
    shape = region_mask.shape if region_mask is not None else (size or pred.shape)
    pred = resize_nearest(np.asarray(pred), shape).astype(np.int64)
    confidence = resize_bilinear(np.asarray(confidence, dtype=np.float32), shape)
    if pred.max(initial=0) >= len(values):
        raise ValueError(f"prediction holds class {pred.max()} but only {len(values)} thresholds were given")
    keep = confidence >= values[pred]
    if region_mask is not None:
        keep &= np.asarray(region_mask, dtype=bool)
    mask = np.where(keep, pred, IGNORE_INDEX).astype(np.uint8)
    conf8 = np.where(keep, np.clip(np.rint(confidence * 255.0), 0, 255), 0).astype(np.uint8)
    return Suggestion(mask=mask, confidence=conf8)


@dataclass
class SuggestionQuality:
    """How good suggestions were against the final labels; counts add up across images and rounds.

    ``precision``: correct / suggested (among labeled pixels). ``coverage``:
    suggested / labeled, i.e. the share of painting the suggestions saved.
    """

    suggested: int = 0  # suggested pixels that have a label
    correct: int = 0
    labeled: int = 0  # labeled pixels in scope (the query region)

    @property
    def precision(self) -> float | None:
        return self.correct / self.suggested if self.suggested else None

    @property
    def coverage(self) -> float | None:
        return self.suggested / self.labeled if self.labeled else None

    def __add__(self, other: SuggestionQuality) -> SuggestionQuality:
        return SuggestionQuality(
            self.suggested + other.suggested, self.correct + other.correct, self.labeled + other.labeled
        )

    def to_dict(self) -> dict:
        return {
            "suggested": self.suggested,
            "correct": self.correct,
            "labeled": self.labeled,
            "precision": self.precision,
            "coverage": self.coverage,
        }


def suggestion_quality(mask: np.ndarray, gt: np.ndarray, *, region_mask: np.ndarray | None = None) -> SuggestionQuality:
    """Compare a suggestion ``mask`` with the labels ``gt`` (both uint8, 255 = none), within ``region_mask``."""
    gt = resize_nearest(np.asarray(gt), mask.shape)
    labeled = gt != IGNORE_INDEX
    if region_mask is not None:
        labeled &= resize_nearest(np.asarray(region_mask, dtype=bool), mask.shape)
    suggested = labeled & (mask != IGNORE_INDEX)
    return SuggestionQuality(
        suggested=int(suggested.sum()),
        correct=int((suggested & (mask == gt)).sum()),
        labeled=int(labeled.sum()),
    )
