"""Images, index masks and the augmented training dataset.

A :class:`Sample` is an image plus an optional index mask, each either a file
path or an in-memory numpy array: the round loop and the campaign simulator
pass region labels as arrays that are 255 outside the labeled region, so
"only labeled pixels count" needs no extra argument anywhere.

Decoding a JPEG on every step would cost more than the forward pass on two
cores, so path-backed images and masks are decoded and resized once per
training size and kept in a bounded in-memory cache.
"""
from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from .decoding import InvalidImage, read_mask_values, read_rgb

from learning.labels import IGNORE_INDEX, class_pixel_counts

# ImageNet statistics: what torchvision's backbones expect, so a local ImageNet
# backbone checkpoint works without renormalising.
NORMALIZATION: dict[str, tuple[float, float, float]] = {
    "mean": (0.485, 0.456, 0.406),
    "std": (0.229, 0.224, 0.225),
}

ImageSource = Union[str, os.PathLike, np.ndarray]
Size = tuple[int, int]  # (H, W)


@dataclass(frozen=True, eq=False)
class Sample:
    """One image with an optional index mask (class ids, 255 = unlabeled).

    ``image``: path or uint8 array (H, W, 3). ``mask``: path, uint8 array (H, W)
    or None (unlabeled). ``key`` names the sample in logs, metrics and caches.
    ``target``: an image of the target domain, the one the project labels; a
    share of every labeled batch comes from these (``TrainConfig.target_label_share``).
    """

    image: ImageSource
    mask: ImageSource | None = None
    key: str | None = None
    target: bool = False

    @property
    def name(self) -> str:
        if self.key is not None:
            return self.key
        return str(self.image) if not isinstance(self.image, np.ndarray) else f"array@{id(self.image):x}"


# --- loading ---------------------------------------------------------------------------------------------


def load_image(source: ImageSource) -> np.ndarray:
    """RGB uint8 (H, W, 3) from a path or an array (grayscale/RGBA arrays are converted).

    Files decode through :mod:`learning.decoding`, like the import and the
    labeling page: EXIF-upright, 16-bit scaled to 8, palette/CMYK/alpha handled.
    """
    if isinstance(source, np.ndarray):
        array = source
        if array.ndim == 2:
            array = np.repeat(array[:, :, None], 3, axis=2)
        elif array.ndim == 3 and array.shape[2] == 4:
            array = array[:, :, :3]
        if array.ndim != 3 or array.shape[2] != 3:
            raise ValueError(f"image array must be (H, W, 3), got {array.shape}")
        return np.ascontiguousarray(array, dtype=np.uint8)
    return read_rgb(source)


def load_mask(source: ImageSource) -> np.ndarray:
    """Index mask uint8 (H, W), decoded exactly as the import checked it (:mod:`learning.decoding`).

    Palette ('P') PNGs keep their indices, 1-bit masks read 0/1, 16-bit masks
    must hold values ≤ 255; RGB masks are refused (``InvalidImage``, a ValueError).
    """
    if isinstance(source, np.ndarray):
        if source.ndim != 2:
            raise ValueError(f"mask array must be (H, W), got {source.shape}")
        return np.ascontiguousarray(source, dtype=np.uint8)
    try:
        return read_mask_values(source)
    except InvalidImage as exc:
        raise InvalidImage(f"{source}: {exc}") from exc


def resize_image(image: np.ndarray, size: Size) -> np.ndarray:
    """Bilinear (antialiased) resize of an RGB uint8 array to ``size`` = (H, W)."""
    if image.shape[:2] == tuple(size):
        return image
    return np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.BILINEAR))


def resize_mask(mask: np.ndarray, size: Size) -> np.ndarray:
    """Nearest-neighbour resize: class ids must never be blended."""
    if mask.shape[:2] == tuple(size):
        return mask
    return np.asarray(Image.fromarray(mask).resize((size[1], size[0]), Image.NEAREST))


class DecodedCache:
    """Thread-safe LRU of decoded, resized path-backed arrays, bounded in bytes.

    Keys include the file's mtime and size, so an edited mask file is re-read.
    Arrays passed in memory are not cached: they are decoded already and their
    identity is not stable.
    """

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get_or_load(self, kind: str, source: ImageSource, size: Size | None) -> np.ndarray:
        loader = load_image if kind == "image" else load_mask
        resizer = resize_image if kind == "image" else resize_mask
        if isinstance(source, np.ndarray):
            array = loader(source)
            return resizer(array, size) if size else array
        stat = os.stat(source)
        key = (kind, os.fspath(source), stat.st_mtime_ns, stat.st_size, size)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        array = loader(source)
        array = resizer(array, size) if size else array
        array.setflags(write=False)  # shared between datasets: nobody may edit it in place
        with self._lock:
            if key not in self._items and array.nbytes <= self.max_bytes:
                self._items[key] = array
                self._bytes += array.nbytes
                while self._bytes > self.max_bytes:
                    _, evicted = self._items.popitem(last=False)
                    self._bytes -= evicted.nbytes
        return array

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


CACHE = DecodedCache(int(float(os.environ.get("MASKLOOP_IMAGE_CACHE_MB", "1024")) * 2**20))


def load_sample(sample: Sample, size: Size | None = None, *, cache: DecodedCache = CACHE
                ) -> tuple[np.ndarray, np.ndarray | None]:
    """(image, mask) as arrays, both resized to ``size`` when given, else the mask follows the image."""
    image = cache.get_or_load("image", sample.image, size)
    if sample.mask is None:
        return image, None
    mask = cache.get_or_load("mask", sample.mask, size)
    return image, resize_mask(mask, image.shape[:2])


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 or [0, 1] float (..., 3, H, W) -> normalised float32."""
    if images.dtype == torch.uint8:
        images = images.float().div_(255.0)
    mean = torch.tensor(NORMALIZATION["mean"], dtype=images.dtype, device=images.device).view(3, 1, 1)
    std = torch.tensor(NORMALIZATION["std"], dtype=images.dtype, device=images.device).view(3, 1, 1)
    return (images - mean) / std


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> uint8 tensor (3, H, W). Copies: cached arrays are read-only."""
    return torch.from_numpy(np.array(image, dtype=np.uint8, copy=True)).permute(2, 0, 1)


# --- augmentation ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Augment:
    """Random scale, crop (back to the training size), horizontal flip and colour jitter."""

    scale: tuple[float, float] = (0.75, 1.5)
    hflip: float = 0.5
    brightness: float = 0.25
    contrast: float = 0.25
    saturation: float = 0.25

    def __call__(self, image: torch.Tensor, mask: torch.Tensor, rng: np.random.Generator
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """``image`` float (3, H, W) in [0, 1], ``mask`` uint8 (H, W); returns the same shapes."""
        height, width = image.shape[-2:]
        factor = rng.uniform(*self.scale)
        scaled = (max(1, round(height * factor)), max(1, round(width * factor)))
        if scaled != (height, width):
            image = F.interpolate(image[None], size=scaled, mode="bilinear", align_corners=False)[0]
            mask = F.interpolate(mask[None, None].float(), size=scaled, mode="nearest")[0, 0].to(torch.uint8)
        # Pad a shrunk image: the pad is "unlabeled" in the mask and mid-grey in the image.
        pad_h, pad_w = max(0, height - scaled[0]), max(0, width - scaled[1])
        if pad_h or pad_w:
            image = F.pad(image, (0, pad_w, 0, pad_h), value=0.5)
            mask = F.pad(mask, (0, pad_w, 0, pad_h), value=IGNORE_INDEX)
        top = int(rng.integers(0, image.shape[-2] - height + 1))
        left = int(rng.integers(0, image.shape[-1] - width + 1))
        image = image[:, top:top + height, left:left + width]
        mask = mask[top:top + height, left:left + width]
        if rng.random() < self.hflip:
            image, mask = image.flip(-1), mask.flip(-1)
        image = self._jitter(image, rng)
        return image.contiguous(), mask.contiguous()

    def _jitter(self, image: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        gray_weights = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
        ops = rng.permutation(3)
        for op in ops:
            if op == 0 and self.brightness:
                image = image * rng.uniform(1 - self.brightness, 1 + self.brightness)
            elif op == 1 and self.contrast:
                mean = (image * gray_weights).sum(0).mean()
                image = (image - mean) * rng.uniform(1 - self.contrast, 1 + self.contrast) + mean
            elif op == 2 and self.saturation:
                gray = (image * gray_weights).sum(0, keepdim=True)
                image = (image - gray) * rng.uniform(1 - self.saturation, 1 + self.saturation) + gray
        return image.clamp_(0.0, 1.0)


class SegmentationDataset(Dataset):
    """Samples resized to ``size`` (cached), optionally augmented; yields (image, mask) tensors.

    ``image`` is normalised float32 (3, H, W); ``mask`` is int64 (H, W), all 255
    for a sample without a mask. Augmentation is a pure function of
    (``seed``, ``epoch``, index), so a run is reproducible whatever order or
    process fetches the items.
    """

    def __init__(self, samples: Sequence[Sample], size: Size, *, augment: Augment | None = None,
                 seed: int = 0, cache: DecodedCache = CACHE):
        self.samples = list(samples)
        self.size = (int(size[0]), int(size[1]))
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self.cache = cache

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_array, mask_array = load_sample(self.samples[index], self.size, cache=self.cache)
        image = to_tensor(image_array).float().div_(255.0)
        if mask_array is None:
            mask = torch.full(self.size, IGNORE_INDEX, dtype=torch.uint8)
        else:
            mask = torch.from_numpy(np.array(mask_array, dtype=np.uint8, copy=True))
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            image, mask = self.augment(image, mask, rng)
        return normalize(image), mask.long()


def collate(items: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    images, masks = zip(*items)
    return torch.stack(images), torch.stack(masks)


def labeled_class_counts(samples: Sequence[Sample], size: Size, num_classes: int) -> np.ndarray:
    """(samples, classes): each sample's labeled pixels per class at the training ``size`` (zeros without a mask)."""
    counts = np.zeros((len(samples), num_classes), dtype=np.int64)
    for row, sample in enumerate(samples):
        _, mask = load_sample(sample, size)
        if mask is not None:
            counts[row] = class_pixel_counts([mask], num_classes)
    return counts


def rare_class_probabilities(counts: np.ndarray, temperature: float) -> np.ndarray:
    """Rare-class sampling (DAFormer's RCS, Hoyer et al., CVPR'22): how often to draw each labeled image.

    ``counts``: (images, classes) labeled pixels. A class is drawn with
    probability ``softmax((1 - f_c) / temperature)`` over the classes present
    (``f_c``: its share of the labeled pixels), then an image holding it
    uniformly: a class on 1 % of the pixels is drawn as often as one on 30 %
    when the temperature is small, so the images with a rare class are seen
    many times more. Images without a labeled pixel are never drawn (all of
    them, when none has one).
    """
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    counts = np.asarray(counts, dtype=np.float64)
    totals = counts.sum(axis=0)
    present = totals > 0
    if not present.any():
        return np.full(len(counts), 1.0 / len(counts))
    share = totals / totals.sum()
    logits = np.where(present, (1.0 - share) / temperature, -np.inf)
    class_p = np.exp(logits - logits[present].max())
    class_p /= class_p.sum()
    holds = counts > 0
    per_image = (holds * (class_p / np.maximum(holds.sum(axis=0), 1))).sum(axis=1)
    return per_image / per_image.sum()


class BatchStream:
    """Endless batches from a dataset: a fresh seeded permutation per epoch, no worker processes.

    On two shared cores, DataLoader workers only fight the training threads; the
    cached decode makes the in-process fetch cheap. With ``probabilities`` (one
    per item, e.g. :func:`rare_class_probabilities`) each epoch is as many
    draws with replacement from them instead.
    """

    target_size = 0  # rows of each batch that are labeled target images (MixedBatchStream: the last ones)

    def __init__(self, dataset: SegmentationDataset, batch_size: int, *, seed: int,
                 probabilities: np.ndarray | None = None):
        if len(dataset) == 0:
            raise ValueError("cannot draw batches from an empty dataset")
        if probabilities is not None and len(probabilities) != len(dataset):
            raise ValueError(f"{len(probabilities)} probabilities for {len(dataset)} items")
        self.dataset = dataset
        self.batch_size = batch_size
        self.seed = seed
        self.probabilities = probabilities
        self._order: list[int] = []
        self._epoch = -1

    @property
    def epoch(self) -> int:
        return max(self._epoch, 0)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        indices = []
        while len(indices) < self.batch_size:
            if not self._order:
                self._epoch += 1
                self.dataset.epoch = self._epoch
                rng = np.random.default_rng([self.seed, self._epoch])
                count = len(self.dataset)
                self._order = list(rng.permutation(count) if self.probabilities is None
                                   else rng.choice(count, size=count, p=self.probabilities))
            indices.append(int(self._order.pop()))
        return collate(self.dataset[i] for i in indices)


class MixedBatchStream:
    """Labeled batches with a fixed share from the labeled target images.

    Uniform draws over source + target labels would give the few target images
    a round collects about 1 % of the batches when a source of hundreds of
    images is present: fine-tuning would barely see what was just labeled.
    """

    def __init__(self, source: SegmentationDataset, target: SegmentationDataset, batch_size: int, *,
                 target_share: float, seed: int, source_probabilities: np.ndarray | None = None):
        self.target_size = min(batch_size - 1, max(1, round(batch_size * target_share)))
        self.source = BatchStream(source, batch_size - self.target_size, seed=seed,
                                  probabilities=source_probabilities)
        self.target = BatchStream(target, self.target_size, seed=seed + 7919)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = self.source.next()
        xt, yt = self.target.next()
        return torch.cat([xs, xt]), torch.cat([ys, yt])


def labeled_batches(samples: Sequence[Sample], size: Size, batch_size: int, *, target_share: float,
                    augment: "Augment | None", seed: int, rare_class_temperature: float = 0.0,
                    num_classes: int | None = None) -> "BatchStream | MixedBatchStream":
    """The labeled batch stream of a training run: mixed when there are source and target labels to mix.

    ``rare_class_temperature`` > 0: the source images (all labeled images when
    none is a target one's) are drawn by :func:`rare_class_probabilities`
    over ``num_classes``; the target share stays uniform over what
    annotators labeled.
    """
    target = [s for s in samples if s.target]
    source = [s for s in samples if not s.target]
    mixed = target_share > 0 and bool(target) and bool(source)
    drawn = source if mixed else list(samples)
    probabilities = None
    if rare_class_temperature > 0:
        if num_classes is None:
            raise ValueError("rare-class sampling needs num_classes")
        probabilities = rare_class_probabilities(labeled_class_counts(drawn, size, num_classes), rare_class_temperature)
    if mixed:
        return MixedBatchStream(SegmentationDataset(source, size, augment=augment, seed=seed),
                                SegmentationDataset(target, size, augment=augment, seed=seed + 1),
                                batch_size, target_share=target_share, seed=seed, source_probabilities=probabilities)
    return BatchStream(SegmentationDataset(samples, size, augment=augment, seed=seed), batch_size, seed=seed,
                       probabilities=probabilities)


# --- fingerprints ----------------------------------------------------------------------------------------


def _source_digest(source: ImageSource | None) -> bytes:
    if source is None:
        return b"none"
    if isinstance(source, np.ndarray):
        return hashlib.sha256(np.ascontiguousarray(source).tobytes() + str(source.shape).encode()).digest()
    return hashlib.sha256(Path(source).read_bytes()).digest()


def samples_fingerprint(samples: Sequence[Sample]) -> str:
    """sha256 over every image and mask's content, in order: "which data trained this model"."""
    digest = hashlib.sha256()
    for sample in samples:
        digest.update(_source_digest(sample.image))
        digest.update(_source_digest(sample.mask))
    return digest.hexdigest()


def folder_samples(root: str | os.PathLike, *, masks: bool = True) -> list[Sample]:
    """Samples from an import-layout folder (images/NAME.jpg|png + masks/NAME.png), sorted by name."""
    root = Path(root)
    samples = []
    for image in sorted(p for p in (root / "images").iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"}):
        mask = root / "masks" / f"{image.stem}.png"
        samples.append(Sample(image=image, mask=mask if masks and mask.exists() else None, key=image.stem))
    return samples
