"""The campaign's data: labeled day frames, the dusk pool with its ground truth and superpixels, dusk val.

CamVid day→dusk (same splits as benchmarks/domain_adaptation.py): the 62
dusk frames by frame order, the first 46 the pool, the last 16 the
validation split. ``--quick`` uses toy synthetic scenes instead.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain

import numpy as np

from benchmarks.campaign.config import DATASET, CampaignConfig


@dataclass
class CampaignData:
    """Everything the simulator touches, with the pool already at the working size."""

    source: list  # Samples (day frames, labeled)
    pool_keys: list[str]
    pool_images: dict[str, np.ndarray]  # (H, W, 3) uint8 at config.size
    pool_gt: dict[str, np.ndarray]  # (H, W) uint8 at config.size, 255 = void
    pool_regions: dict[str, np.ndarray]  # (H, W) int32 superpixels at config.size
    val: list  # Samples with masks (any resolution)
    class_names: list[str]
    description: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def training_masks(self, labels: dict[str, np.ndarray]) -> Iterator:
        """The masks a round trains on, day masks first, then the dusk labels so far (the app's order)."""
        return chain((sample.mask for sample in self.source), labels.values())


def _regions(images: dict[str, np.ndarray], segments: int | None) -> dict[str, np.ndarray]:
    from learning.selection import slic_regions

    return {key: slic_regions(image, n_segments=segments) for key, image in images.items()}


def camvid_data(config: CampaignConfig) -> CampaignData:
    from learning.data import CACHE, folder_samples, resize_mask

    classes = json.loads((DATASET / "classes.json").read_text())["classes"]
    names = [c["name"] for c in classes]
    day = folder_samples(DATASET / "source")
    # Same day split as benchmarks/domain_adaptation.py: the last 10 % of each day sequence is held out there.
    day_train = []
    for sequence in sorted({s.key.split("_")[0] for s in day}):
        frames = sorted((s for s in day if s.key.startswith(sequence + "_")), key=lambda s: s.key)
        day_train += frames[: len(frames) - max(1, round(0.1 * len(frames)))]
    dusk = sorted(folder_samples(DATASET / "target"), key=lambda s: s.key)
    pool, val = dusk[:46], dusk[46:]
    images = {s.key: CACHE.get_or_load("image", s.image, config.size) for s in pool}
    gt = {s.key: resize_mask(CACHE.get_or_load("mask", s.mask, None), config.size) for s in pool}
    return CampaignData(
        source=day_train, pool_keys=[s.key for s in pool], pool_images=images, pool_gt=gt,
        pool_regions=_regions(images, config.segments), val=val, class_names=names,
        description=f"CamVid day→dusk: {len(day_train)} day frames, dusk pool {len(pool)} "
                    f"(frames {pool[0].key}…{pool[-1].key}), dusk val {len(val)} ({val[0].key}…{val[-1].key})",
    )


SYNTHETIC_CLASSES = ["sky", "road", "car", "pole"]


def synthetic_scene(rng: np.random.Generator, size: tuple[int, int], *, dusk: bool) -> tuple[np.ndarray, np.ndarray]:
    """A toy road scene: sky over road, a few cars and a pole; dusk frames are darker and tinted."""
    h, w = size
    mask = np.zeros(size, dtype=np.uint8)
    horizon = int(h * rng.uniform(0.4, 0.6))
    mask[horizon:] = 1
    for _ in range(int(rng.integers(1, 4))):
        ch, cw = int(rng.integers(h // 8, h // 4)), int(rng.integers(w // 8, w // 3))
        top = min(h - ch, horizon - ch // 2 + int(rng.integers(0, h // 6)))
        left = int(rng.integers(0, w - cw))
        mask[top:top + ch, left:left + cw] = 2
    pole = int(rng.integers(0, w - 3))
    mask[: horizon + h // 8, pole:pole + int(rng.integers(2, 4))] = 3
    palette = np.array([[140, 170, 230], [95, 95, 100], [200, 50, 40], [225, 215, 70]], dtype=np.float32)
    if dusk:
        palette = palette * np.array([0.45, 0.45, 0.6]) + np.array([5, 0, 25])
        palette[2] = [120, 40, 90]
    image = palette[mask] + rng.normal(0, 14, (*size, 3)) + np.linspace(-15, 15, w)[None, :, None]
    return np.clip(image, 0, 255).astype(np.uint8), mask


def synthetic_data(config: CampaignConfig, *, seed: int = 0, source: int = 24, pool: int = 12, val: int = 6
                   ) -> CampaignData:
    from learning.data import Sample

    rng = np.random.default_rng(seed)
    day = [synthetic_scene(rng, config.size, dusk=False) for _ in range(source)]
    dusk = [synthetic_scene(rng, config.size, dusk=True) for _ in range(pool + val)]
    keys = [f"dusk{i:03d}" for i in range(pool)]
    images = {k: dusk[i][0] for i, k in enumerate(keys)}
    return CampaignData(
        source=[Sample(image=im, mask=m, key=f"day{i:03d}") for i, (im, m) in enumerate(day)],
        pool_keys=keys, pool_images=images, pool_gt={k: dusk[i][1] for i, k in enumerate(keys)},
        pool_regions=_regions(images, config.segments),
        val=[Sample(image=im, mask=m, key=f"val{i:03d}") for i, (im, m) in enumerate(dusk[pool:])],
        class_names=SYNTHETIC_CLASSES,
        description=f"synthetic toy scenes {config.size[0]}×{config.size[1]}: {source} day, {pool} dusk pool, {val} dusk val",
    )
