"""Batched inference: class probabilities and pooled features per image, and evaluation.

Selection, suggestions and evaluation all consume :func:`predict`: probs are
numpy float32 ``(C, H, W)`` (the layer convention), features a ``(D,)``
float32 vector (global average of the decoder features), so the caller never
touches torch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from learning.data import CACHE, ImageSource, Sample, Size, normalize, to_tensor
from learning.device import numerics_for, pick_device
from learning.metrics import ConfusionMatrix, SegmentationMetrics
from learning.models import model_forward

OutputSize = Union[Size, str, None]  # (H, W), "original", or None (= the inference size)


@dataclass
class Prediction:
    """Softmax probabilities (C, H, W) float32, pooled features (D,) float32, and the sample's key."""

    probs: np.ndarray
    features: np.ndarray
    key: str | None = None
    feature_map: np.ndarray | None = None  # (D, h, w) float32, only when asked for

    @property
    def label(self) -> np.ndarray:
        """Argmax class ids (H, W) uint8."""
        return self.probs.argmax(0).astype(np.uint8)

    @property
    def confidence(self) -> np.ndarray:
        """Max probability per pixel (H, W) float32."""
        return self.probs.max(0)


def _as_sample(item: Sample | ImageSource) -> Sample:
    return item if isinstance(item, Sample) else Sample(image=item)


def _model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@dataclass
class _Batch:
    samples: list[Sample]
    images: torch.Tensor  # normalised (N, 3, H, W)
    original_sizes: list[Size]


def _batches(items: Iterable[Sample | ImageSource], size: Size | None, batch_size: int) -> Iterator[_Batch]:
    """Group consecutive same-shaped images (all of them, when ``size`` fixes the shape)."""
    pending: list[tuple[Sample, torch.Tensor, Size]] = []
    for item in items:
        sample = _as_sample(item)
        original = CACHE.get_or_load("image", sample.image, None)
        image = CACHE.get_or_load("image", sample.image, tuple(size)) if size else original
        tensor = to_tensor(image)
        if pending and (len(pending) == batch_size or pending[-1][1].shape != tensor.shape):
            yield _Batch([s for s, _, _ in pending], normalize(torch.stack([t for _, t, _ in pending])),
                         [o for _, _, o in pending])
            pending = []
        pending.append((sample, tensor, original.shape[:2]))
    if pending:
        yield _Batch([s for s, _, _ in pending], normalize(torch.stack([t for _, t, _ in pending])),
                     [o for _, _, o in pending])


def _forward(model: nn.Module, items: Iterable[Sample | ImageSource], *, size: Size | None, batch_size: int,
             device: torch.device | str | None, precision: str
             ) -> Iterator[tuple[_Batch, torch.Tensor, torch.Tensor]]:
    """(batch, float32 logits at the inference size, float32 features) under no_grad and fast numerics."""
    device = pick_device(device) if device is not None else _model_device(model)
    numerics = numerics_for(device, precision)
    model = numerics.prepare_model(model)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for batch in _batches(items, size, batch_size):
                with numerics.autocast():
                    out = model_forward(model, numerics.prepare_input(batch.images))
                yield batch, out.logits.float(), out.features.float()
    finally:
        model.train(was_training)


def _target_size(request: OutputSize, inference: Size, original: Size, max_pixels: int | None = None) -> Size:
    if request is None:
        return inference
    if request == "original":
        return capped_size(original, max_pixels)
    return (int(request[0]), int(request[1]))


def capped_size(size: Size, max_pixels: int | None) -> Size:
    """``size`` (H, W), shrunk with its aspect ratio kept to at most ``max_pixels`` pixels (None: as it is)."""
    height, width = int(size[0]), int(size[1])
    if max_pixels is None or height * width <= max_pixels:
        return (height, width)
    scale = math.sqrt(max_pixels / (height * width))
    return (max(1, int(height * scale)), max(1, int(width * scale)))


def predict(model: nn.Module, images: Iterable[Sample | ImageSource], *, batch_size: int = 4,
            device: torch.device | str | None = None, size: Size | None = None, output_size: OutputSize = None,
            precision: str = "auto", feature_maps: bool = False, max_output_pixels: int | None = None
            ) -> Iterator[Prediction]:
    """Yield one :class:`Prediction` per image, in order.

    ``size``: the (H, W) the network sees (default: each image's own size).
    ``output_size``: where probs are returned: ``None`` = the inference size,
    ``"original"`` = each image's file size (shrunk to ``max_output_pixels``
    when given, aspect kept: see :func:`capped_size`), or an explicit (H, W).
    ``device`` defaults to the model's device.
    """
    for batch, logits, features in _forward(model, images, size=size, batch_size=batch_size,
                                            device=device, precision=precision):
        pooled = features.mean(dim=(2, 3)).cpu().numpy()
        inference_size = tuple(logits.shape[-2:])
        for i, sample in enumerate(batch.samples):
            target = _target_size(output_size, inference_size, batch.original_sizes[i], max_output_pixels)
            item_logits = logits[i:i + 1]
            if target != inference_size:
                item_logits = F.interpolate(item_logits, size=target, mode="bilinear", align_corners=False)
            probs = item_logits.softmax(1)[0].cpu().numpy().astype(np.float32, copy=False)
            yield Prediction(
                probs=probs, features=pooled[i].astype(np.float32, copy=False), key=sample.key,
                feature_map=features[i].cpu().numpy() if feature_maps else None,
            )


def evaluate(model: nn.Module, samples: Sequence[Sample], num_classes: int, *, size: Size | None = None,
             batch_size: int = 4, device: torch.device | str | None = None, precision: str = "auto"
             ) -> SegmentationMetrics:
    """mIoU & co. of ``model`` on labeled ``samples``, scored at each mask's own resolution.

    The network runs at ``size``; its logits are upsampled to the mask, so a
    model trained at a reduced size is judged against the full-size labels.
    """
    labeled = [s for s in samples if s.mask is not None]
    if not labeled:
        raise ValueError("evaluate() needs samples with masks")
    matrix = ConfusionMatrix(num_classes)
    for batch, logits, _ in _forward(model, labeled, size=size, batch_size=batch_size, device=device,
                                     precision=precision):
        for i, sample in enumerate(batch.samples):
            mask = CACHE.get_or_load("mask", sample.mask, None)
            item_logits = logits[i:i + 1]
            if tuple(item_logits.shape[-2:]) != mask.shape:
                item_logits = F.interpolate(item_logits, size=mask.shape, mode="bilinear", align_corners=False)
            matrix.update(item_logits.argmax(1)[0], torch.from_numpy(np.array(mask, copy=True)))
    return matrix.compute()
