"""Strong augmentation and CutMix for weak-to-strong consistency (FixMatch / UniMatch recipe).

The student must reproduce the teacher's prediction on a *weakly* augmented
image from a *strongly* perturbed version of the same pixels, so every
perturbation here is photometric or a pixel-aligned mix: the geometry stays
put and the teacher's label map still fits. The recipe is UniMatch's
(Yang et al., CVPR 2023): colour jitter 0.5/0.5/0.5/0.25 with p = 0.8,
grayscale with p = 0.2, Gaussian blur sigma 0.1-2 with p = 0.5, and CutMix
with p = 0.5 between two images of the batch.

Everything works on batches that are already normalised with
:data:`learning.data.NORMALIZATION` (what the training loop holds), and all
randomness comes from a :class:`numpy.random.Generator`, so a step is
reproducible from its seed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from learning.data import NORMALIZATION

_GRAY = (0.299, 0.587, 0.114)
# RGB <-> YIQ: a hue shift is a rotation of the (I, Q) chroma plane.
_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)


def _stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(NORMALIZATION["mean"], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(NORMALIZATION["std"], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return mean, std


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """Normalised (N, 3, H, W) -> [0, 1] RGB."""
    mean, std = _stats(images)
    return (images * std + mean).clamp(0.0, 1.0)


def renormalize(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] RGB (N, 3, H, W) -> normalised."""
    mean, std = _stats(images)
    return (images - mean) / std


@dataclass(frozen=True)
class StrongAugment:
    """Photometric perturbations strong enough that the student cannot just copy the teacher."""

    jitter_p: float = 0.8
    brightness: float = 0.5
    contrast: float = 0.5
    saturation: float = 0.5
    hue: float = 0.25  # fraction of the colour circle, as torchvision's ColorJitter
    grayscale_p: float = 0.2
    blur_p: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 2.0)

    def __call__(self, images: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """Normalised (N, 3, H, W) in, normalised out; each image gets its own random draw."""
        rgb = denormalize(images.float())
        out = []
        for image in rgb:
            if rng.random() < self.jitter_p:
                image = self._jitter(image, rng)
            if rng.random() < self.grayscale_p:
                image = _grayscale(image).expand(3, -1, -1)
            if rng.random() < self.blur_p:
                image = gaussian_blur(image, float(rng.uniform(*self.blur_sigma)))
            out.append(image.clamp(0.0, 1.0))
        return renormalize(torch.stack(out)).to(images.dtype)

    def _jitter(self, image: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        for op in rng.permutation(4):
            if op == 0 and self.brightness:
                image = image * rng.uniform(1 - self.brightness, 1 + self.brightness)
            elif op == 1 and self.contrast:
                mean = _grayscale(image).mean()
                image = (image - mean) * rng.uniform(1 - self.contrast, 1 + self.contrast) + mean
            elif op == 2 and self.saturation:
                gray = _grayscale(image)
                image = (image - gray) * rng.uniform(1 - self.saturation, 1 + self.saturation) + gray
            elif op == 3 and self.hue:
                image = rotate_hue(image, float(rng.uniform(-self.hue, self.hue)))
            image = image.clamp(0.0, 1.0)
        return image


def _grayscale(image: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor(_GRAY, dtype=image.dtype, device=image.device).view(3, 1, 1)
    return (image * weights).sum(0, keepdim=True)


def rotate_hue(image: torch.Tensor, shift: float) -> torch.Tensor:
    """Rotate the hue of a [0, 1] RGB image (3, H, W) by ``shift`` turns (YIQ approximation of HSV hue)."""
    angle = 2 * math.pi * shift
    cos, sin = math.cos(angle), math.sin(angle)
    rotation = torch.tensor([[1.0, 0.0, 0.0], [0.0, cos, -sin], [0.0, sin, cos]])
    matrix = (_YIQ_TO_RGB @ rotation @ _RGB_TO_YIQ).to(image.dtype).to(image.device)
    return torch.einsum("ij,jhw->ihw", matrix, image)


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (C, H, W) with reflect padding; kernel radius 3 sigma."""
    radius = max(1, math.ceil(3 * sigma))
    radius = min(radius, (min(image.shape[-2:]) - 1))
    if radius < 1:
        return image
    x = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = image.shape[0]
    padded = F.pad(image[None], (radius, radius, radius, radius), mode="reflect")
    horizontal = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    vertical = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    out = F.conv2d(F.conv2d(padded, horizontal, groups=channels), vertical, groups=channels)
    return out[0]


# --- CutMix ----------------------------------------------------------------------------------------------


@dataclass
class CutMix:
    """Where each image takes its partner's pixels: ``box`` (N, H, W) bool, ``partner`` (N,) indices.

    The same :class:`CutMix` is applied to images, teacher probabilities and
    label maps, so a mixed image and its mixed target always agree.
    """

    box: torch.Tensor
    partner: torch.Tensor

    def apply(self, tensor: torch.Tensor) -> torch.Tensor:
        """Mix a (N, ...) tensor whose last two dims are (H, W): inside the box, the partner's values."""
        box = self.box.to(tensor.device)
        while box.dim() < tensor.dim():
            box = box.unsqueeze(1)
        return torch.where(box, tensor[self.partner.to(tensor.device)], tensor)


def cutmix_boxes(n: int, height: int, width: int, rng: np.random.Generator, *, p: float = 0.5,
                 area: tuple[float, float] = (0.02, 0.4), ratio: tuple[float, float] = (0.3, 1 / 0.3)) -> CutMix:
    """For each image, with probability ``p``, one box of ``area`` (fraction) and aspect ``ratio`` from a partner.

    The partner is the next image in the batch (a cyclic shift), so every
    image is someone's partner; with one image there is nobody to mix with.
    """
    box = torch.zeros(n, height, width, dtype=torch.bool)
    partner = torch.roll(torch.arange(n), -1)
    if n < 2:
        return CutMix(box, torch.arange(n))
    for i in range(n):
        if rng.random() >= p:
            continue
        size = rng.uniform(*area) * height * width
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        box_h = min(height, max(1, int(round(math.sqrt(size / aspect)))))
        box_w = min(width, max(1, int(round(math.sqrt(size * aspect)))))
        top = int(rng.integers(0, height - box_h + 1))
        left = int(rng.integers(0, width - box_w + 1))
        box[i, top:top + box_h, left:left + box_w] = True
    return CutMix(box, partner)
