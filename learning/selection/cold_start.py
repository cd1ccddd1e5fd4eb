"""Picking the first images to label when there is no model yet: diversity alone.

Without a model nothing can be uncertain, so round 0 of a project that
starts from plain images covers the pool's appearance as evenly as it can:
greedy k-center over cheap image descriptors (colour layout, colour
histogram and edge orientations at thumbnail size), the same core-set rule
later rounds use on the network's features. Pure numpy; an image costs
milliseconds, so a 10,000-image pool is described in minutes on one core.

When the project has a pretrained encoder (ImageNet weights, a local file,
or self-supervised pretraining on its own images) its pooled features are
the better descriptors: :func:`encoder_descriptors`.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np

from learning.selection.diversity import iter_kcenter
from learning.selection.resample import resize_bilinear

THUMBNAIL = (48, 64)
GRID = 4
HISTOGRAM_BINS = 8
ORIENTATION_BINS = 8


def image_descriptor(image: np.ndarray) -> np.ndarray:
    """A fixed-length appearance vector of an (H, W, 3) uint8 image; comparable across image sizes.

    Parts, each scaled to unit length so none dominates: the mean and spread
    of each colour channel in a 4 × 4 grid (layout), a joint histogram of
    coarse colours (palette), and a histogram of gradient orientations
    weighted by magnitude (texture and structure).
    """
    rgb = np.stack([resize_bilinear(image[..., c].astype(np.float32), THUMBNAIL) for c in range(3)], -1) / 255.0
    h, w = THUMBNAIL
    cells = rgb[: h - h % GRID, : w - w % GRID].reshape(GRID, h // GRID, GRID, w // GRID, 3)
    layout = np.concatenate([cells.mean((1, 3)).ravel(), cells.std((1, 3)).ravel()])
    coarse = np.minimum((rgb * HISTOGRAM_BINS).astype(np.int64), HISTOGRAM_BINS - 1)
    index = (coarse[..., 0] * HISTOGRAM_BINS + coarse[..., 1]) * HISTOGRAM_BINS + coarse[..., 2]
    palette = np.bincount(index.ravel(), minlength=HISTOGRAM_BINS ** 3).astype(np.float64)
    gray = rgb.mean(-1)
    gy, gx = np.gradient(gray)
    angle = (np.arctan2(gy, gx) % np.pi) / np.pi
    bins = np.minimum((angle * ORIENTATION_BINS).astype(np.int64), ORIENTATION_BINS - 1)
    edges = np.bincount(bins.ravel(), weights=np.hypot(gx, gy).ravel(), minlength=ORIENTATION_BINS)
    parts = [layout, np.sqrt(palette), edges]
    return np.concatenate([part / (np.linalg.norm(part) or 1.0) for part in parts])


def cold_start_order(descriptors: np.ndarray) -> Iterator[int]:
    """Pool indices most spread out first: k-center from the most typical image (nearest the mean)."""
    x = np.asarray(descriptors, dtype=np.float64)
    if not len(x):
        return iter(())
    first = int(np.argmin(((x - x.mean(0)) ** 2).sum(1)))
    return _with_first(first, iter_kcenter(x, initial_centers=x[first:first + 1]))


def _with_first(first: int, rest: Iterator[int]) -> Iterator[int]:
    yield first
    for index in rest:
        if index != first:
            yield index


def encoder_descriptors(arch: str, backbone_checkpoint: str, images: Iterable[np.ndarray], size: tuple[int, int],
                        progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Unit-length, globally average-pooled features of a pretrained encoder, one row per (H, W, 3) image.

    ``backbone_checkpoint`` is a backbone file as training takes it
    (``TrainConfig.backbone_checkpoint``); images are resized to ``size``.
    """
    import torch

    from learning.data import normalize, resize_image, to_tensor
    from learning.models import build_model

    backbone = build_model(arch, 1, backbone_checkpoint=backbone_checkpoint).backbone.eval()
    rows = []
    with torch.inference_mode():
        for number, image in enumerate(images, start=1):
            out = backbone(normalize(to_tensor(resize_image(image, size)))[None])
            pooled = (out["out"] if "out" in out else out["high"]).mean((2, 3))[0].double().numpy()
            rows.append(pooled / (np.linalg.norm(pooled) or 1.0))
            if progress is not None:
                progress(number)
    return np.stack(rows) if rows else np.zeros((0, 0))
