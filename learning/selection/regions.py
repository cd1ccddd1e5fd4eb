"""Query units smaller than an image, and how uncertain each one is.

Annotators label a superpixel with one click (accept or correct the suggested
class), so the unit of annotation is a SLIC superpixel; a regular grid is the
fallback when no image is at hand (tests, RIPU's square windows).

A region's score follows RIPU (Xie et al., CVPR 2022): mean normalised
uncertainty × *impurity*, the entropy of the predicted-class histogram in the
region's neighbourhood. Uncertainty alone favours blurry, homogeneous areas
(a dark sky); impurity favours regions where several classes meet, which is
where a model trained on another domain is wrong. An optional class-rarity
weight (Cai et al., CVPR 2021 "ClassBal") lifts regions predicted as rare
classes, which dominate the error in mIoU.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

# 150 superpixels on a 240x320 frame (research/al-da-anchors.md, section c.2),
# i.e. ~512 pixels per superpixel; other sizes keep that density.
SEGMENTS_PER_PIXEL = 150 / (240 * 320)


def slic_regions(
    image: np.ndarray,
    *,
    n_segments: int | None = None,
    compactness: float = 10.0,
    sigma: float = 1.0,
) -> np.ndarray:
    """SLIC superpixels of an RGB uint8 ``(H, W, 3)`` image as an int32 label map.

    ``n_segments`` defaults to 150 per 240x320 pixels, scaled by area. Labels
    are contiguous ``0..R-1``.
    """
    from skimage.segmentation import slic

    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB image (H, W, 3), got {image.shape}")
    h, w = image.shape[:2]
    if n_segments is None:
        n_segments = max(1, round(h * w * SEGMENTS_PER_PIXEL))
    labels = slic(
        image,
        n_segments=n_segments,
        compactness=compactness,
        sigma=sigma,
        start_label=0,
        channel_axis=-1,
    )
    return _relabel(labels)


# Grid cells with the same area as a default superpixel (~23 px squares).
DEFAULT_GRID_CELL = round(math.sqrt(1 / SEGMENTS_PER_PIXEL))


def grid_regions(h: int, w: int, cell: int = DEFAULT_GRID_CELL) -> np.ndarray:
    """Square ``cell``-pixel tiles (the last row/column may be smaller), row-major ids."""
    if cell < 1:
        raise ValueError("cell must be >= 1")
    cols = math.ceil(w / cell)
    rows = np.arange(h) // cell
    columns = np.arange(w) // cell
    return (rows[:, None] * cols + columns[None, :]).astype(np.int32)


def _relabel(labels: np.ndarray) -> np.ndarray:
    _, inverse = np.unique(labels, return_inverse=True)
    return inverse.reshape(labels.shape).astype(np.int32)


def region_class_histograms(
    pred: np.ndarray, regions: np.ndarray, num_classes: int, *, context: int = 1
) -> np.ndarray:
    """Predicted-class histogram of each region's neighbourhood, ``(R, C)``.

    Each pixel contributes the class counts of its ``(2*context+1)^2`` window,
    so the histogram covers the region grown by ``context`` pixels, the
    RIPU window, without dilating every region separately.
    """
    num_regions = int(regions.max()) + 1 if regions.size else 0
    size = 2 * context + 1
    # Every class at once (one filter over the (C, H, W) stack, one bincount keyed by region and class):
    # the same sums in the same order as class by class, without a dozen small calls per class.
    onehot = (pred[None] == np.arange(num_classes).reshape(-1, 1, 1)).astype(np.float32)
    if context > 0:
        onehot = ndimage.uniform_filter(onehot, size=(1, size, size), mode="nearest")
    keys = regions.ravel()[None, :].astype(np.int64) * num_classes + np.arange(num_classes)[:, None]
    return np.bincount(keys.ravel(), weights=onehot.ravel(), minlength=num_regions * num_classes
                       ).reshape(num_regions, num_classes).astype(np.float64)


def histogram_entropy(hist: np.ndarray) -> np.ndarray:
    """Row-wise entropy of (unnormalised) histograms, normalised by ``log C`` to [0, 1]."""
    num_classes = hist.shape[-1]
    total = hist.sum(axis=-1, keepdims=True)
    p = np.divide(hist, total, out=np.zeros_like(hist, dtype=np.float64), where=total > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log(p), 0.0)
    return (-plogp.sum(axis=-1) / math.log(num_classes)) if num_classes > 1 else np.zeros(hist.shape[:-1])


def class_rarity_weights(class_pixels: np.ndarray, *, power: float = 0.5) -> np.ndarray:
    """Per-class weights in (0, 1]: ``(frequency / max frequency) ** -power``, rescaled to max 1.

    ``power=0`` gives all ones. Classes never seen get the rarest weight seen.
    """
    counts = np.asarray(class_pixels, dtype=np.float64)
    if power == 0 or counts.sum() <= 0:
        return np.ones_like(counts)
    freq = counts / counts.sum()
    floor = freq[freq > 0].min()
    weights = np.maximum(freq, floor) ** -power
    return weights / weights.max()


@dataclass(frozen=True)
class RegionScores:
    """Scores of every region of one image; index = region id."""

    scores: np.ndarray  # (R,) float64, 0 for regions with nothing left to label
    pixels: np.ndarray  # (R,) int64, unlabeled pixels per region
    mean_uncertainty: np.ndarray  # (R,)
    impurity: np.ndarray  # (R,)
    class_hist: np.ndarray  # (R, C) neighbourhood histogram of predicted classes
    labeled_fraction: np.ndarray  # (R,) share of the region's pixels already labeled


def region_scores(
    uncertainty: np.ndarray,
    pred: np.ndarray,
    regions: np.ndarray,
    *,
    num_classes: int,
    context: int = 1,
    class_weights: np.ndarray | None = None,
    labeled_mask: np.ndarray | None = None,
) -> RegionScores:
    """RIPU region score: mean uncertainty of unlabeled pixels × impurity (× rarity).

    Already-labeled pixels neither count toward a region's uncertainty nor its
    pixel count: a half-labeled region is scored (and would be queried) on its
    unlabeled half only.
    """
    if uncertainty.shape != pred.shape or pred.shape != regions.shape:
        raise ValueError("uncertainty, pred and regions must have the same (H, W) shape")
    num_regions = int(regions.max()) + 1
    flat = regions.ravel()
    unc = uncertainty.astype(np.float64).ravel()
    area = np.bincount(flat, minlength=num_regions)
    if labeled_mask is None:
        unlabeled = np.ones_like(flat, dtype=bool)
    else:
        unlabeled = ~labeled_mask.ravel()
    pixels = np.bincount(flat, weights=unlabeled, minlength=num_regions).astype(np.int64)
    unc_sum = np.bincount(flat, weights=unc * unlabeled, minlength=num_regions)
    mean_unc = np.divide(unc_sum, pixels, out=np.zeros(num_regions), where=pixels > 0)

    hist = region_class_histograms(pred, regions, num_classes, context=context)
    impurity = histogram_entropy(hist)
    scores = mean_unc * impurity
    if class_weights is not None:
        total = hist.sum(axis=1, keepdims=True)
        share = np.divide(hist, total, out=np.zeros_like(hist), where=total > 0)
        scores = scores * (share @ np.asarray(class_weights, dtype=np.float64))
    scores = np.where(pixels > 0, scores, 0.0)
    labeled_fraction = np.divide(area - pixels, area, out=np.zeros(num_regions), where=area > 0)
    return RegionScores(
        scores=scores,
        pixels=pixels,
        mean_uncertainty=mean_unc,
        impurity=impurity,
        class_hist=hist,
        labeled_fraction=labeled_fraction,
    )


def region_features(regions: np.ndarray, feature_map: np.ndarray, region_ids: np.ndarray | None = None) -> np.ndarray:
    """Mean decoder feature of each region, ``(len(region_ids), D)`` float32 (D2ADA's region descriptor).

    ``feature_map`` is ``(D, h, w)`` at the network's output stride, usually
    much coarser than ``regions``. Each region's feature is the average of
    the feature cells under its pixels, weighted by how many of its pixels
    fall in each cell: the exact mean of a nearest-upsampled feature map,
    computed as one small ``(R, cells) @ (cells, D)`` product instead of
    upsampling ``D`` channels to full resolution.
    """
    dim, fh, fw = feature_map.shape
    h, w = regions.shape
    cell_rows = np.minimum(np.arange(h) * fh // h, fh - 1)
    cell_cols = np.minimum(np.arange(w) * fw // w, fw - 1)
    cells = (cell_rows[:, None] * fw + cell_cols[None, :]).ravel()
    num_regions = int(regions.max()) + 1
    num_cells = fh * fw
    overlap = np.bincount(regions.ravel().astype(np.int64) * num_cells + cells, minlength=num_regions * num_cells)
    overlap = overlap.reshape(num_regions, num_cells).astype(np.float32)
    area = overlap.sum(axis=1, keepdims=True)
    # Always the product over every region, then the rows asked for: BLAS rounds a row differently
    # depending on how many rows it multiplies, and a region's descriptor must not depend on which
    # other regions were asked for with it (the selection store keeps some, recomputes others).
    pooled = overlap @ feature_map.reshape(dim, num_cells).T.astype(np.float32)
    features = np.divide(pooled, area, out=np.zeros_like(pooled), where=area > 0)
    if region_ids is not None:
        features = features[np.asarray(region_ids, dtype=np.int64)]
    return features
