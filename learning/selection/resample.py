"""Moving per-pixel maps between the model's output size and an image's own size.

The model scores images at a working size (e.g. 240x320) while region maps,
label masks and pixel budgets live at the image's full resolution (what the
annotator paints). Labels move with nearest-neighbour sampling (a class id or
region id must never be averaged); scores move bilinearly.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def resize_nearest(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a 2-D label map; returns ``array`` itself when the shape matches."""
    h, w = array.shape[-2:]
    out_h, out_w = int(shape[0]), int(shape[1])
    if (h, w) == (out_h, out_w):
        return array
    # Pixel-centre sampling, the same grid F.interpolate(mode="nearest-exact") uses.
    rows = np.minimum(((np.arange(out_h) + 0.5) * h / out_h).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(out_w) + 0.5) * w / out_w).astype(np.int64), w - 1)
    return array[..., rows[:, None], cols[None, :]]


def resize_bilinear(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a 2-D float map (or a ``(C, H, W)`` stack) to float32."""
    h, w = array.shape[-2:]
    if (h, w) == (int(shape[0]), int(shape[1])):
        return np.asarray(array, dtype=np.float32)
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    batched = tensor.reshape(1, -1, h, w)
    out = F.interpolate(batched, size=(int(shape[0]), int(shape[1])), mode="bilinear", align_corners=False)
    return out.reshape(*array.shape[:-2], int(shape[0]), int(shape[1])).numpy()
