"""A synthetic street-scene dataset with a visible day → dusk domain shift, for the demo project.

The first run has no network, so the demo cannot download data: it draws its own.
Each scene has sky, buildings with windows, a road with lane marks, a sidewalk,
trees and cars, in random layouts. "Day" images are bright and saturated and
come with masks (the labeled source); "dusk" images are dark, blue-shifted,
low-contrast and noisy, with headlights (the target to adapt to). Pure numpy +
Pillow so it is fast and deterministic for a seed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from learning.labels import IGNORE_INDEX

CLASSES = (
    ("sky", "#87ceeb"),
    ("building", "#8b4513"),
    ("road", "#804080"),
    ("sidewalk", "#f4a460"),
    ("tree", "#228b22"),
    ("car", "#dc143c"),
)
SKY, BUILDING, ROAD, SIDEWALK, TREE, CAR = range(len(CLASSES))

DAY_COLORS = {
    SKY: (135, 190, 235), BUILDING: (150, 110, 90), ROAD: (95, 95, 100),
    SIDEWALK: (185, 170, 150), TREE: (60, 130, 50), CAR: (190, 40, 40),
}


@dataclass(frozen=True)
class Scene:
    image: np.ndarray  # uint8 (H, W, 3)
    mask: np.ndarray  # uint8 (H, W), class ids


def draw_scene(rng: np.random.Generator, *, size: tuple[int, int] = (160, 120), dusk: bool = False) -> Scene:
    width, height = size
    mask_img = Image.new("L", size, SKY)
    draw = ImageDraw.Draw(mask_img)
    horizon = int(height * rng.uniform(0.38, 0.55))
    # Buildings along the horizon, then the road and the sidewalks in perspective.
    x = -int(rng.integers(0, 20))
    while x < width:
        w = int(rng.integers(width // 8, width // 3))
        top = int(horizon - rng.uniform(0.15, 0.4) * height)
        draw.rectangle([x, top, x + w, horizon + 2], fill=BUILDING)
        x += w + int(rng.integers(0, 8))
    vanish = width * rng.uniform(0.35, 0.65)
    road_half_bottom = width * rng.uniform(0.45, 0.8)
    draw.polygon([(vanish - 3, horizon), (vanish + 3, horizon), (vanish + road_half_bottom, height),
                  (vanish - road_half_bottom, height)], fill=ROAD)
    draw.polygon([(0, horizon + 2), (vanish - 3, horizon), (vanish - road_half_bottom, height), (0, height)],
                 fill=SIDEWALK)
    draw.polygon([(width, horizon + 2), (vanish + 3, horizon), (vanish + road_half_bottom, height),
                  (width, height)], fill=SIDEWALK)
    for _ in range(int(rng.integers(1, 4))):  # trees: trunk-less crowns at the roadside
        cx = float(rng.choice([rng.uniform(0, vanish - 20), rng.uniform(vanish + 20, width)]))
        r = rng.uniform(0.06, 0.14) * height
        cy = horizon - rng.uniform(0.0, 0.2) * height
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=TREE)
    for _ in range(int(rng.integers(1, 4))):  # cars on the road, bigger when nearer
        depth = rng.uniform(0.15, 0.9)
        cy = horizon + depth * (height - horizon)
        cw = 10 + depth * width * 0.25
        ch = cw * 0.55
        cx = vanish + rng.uniform(-0.7, 0.7) * depth * road_half_bottom
        draw.rounded_rectangle([cx - cw / 2, cy - ch, cx + cw / 2, cy], radius=max(1, int(ch / 4)), fill=CAR)
    mask = np.asarray(mask_img).copy()
    return Scene(image=_paint(rng, mask, horizon, dusk), mask=mask)


def _paint(rng: np.random.Generator, mask: np.ndarray, horizon: int, dusk: bool) -> np.ndarray:
    height, width = mask.shape
    image = np.zeros((height, width, 3), np.float32)
    for cls, color in DAY_COLORS.items():
        jitter = rng.normal(0, 12, 3)
        image[mask == cls] = np.clip(np.array(color) + jitter, 0, 255)
    rows = np.linspace(0, 1, height)[:, None]
    image[mask == SKY] *= (0.85 + 0.25 * rows.repeat(width, 1)[mask == SKY])[:, None]  # sky gradient
    texture = rng.normal(0, 6, (height, width, 1))
    image += texture * (mask != SKY)[..., None]
    # Windows on buildings and lane marks on the road: texture the model must learn to ignore.
    windows = (np.indices((height, width)).sum(0) % 7 == 0) & (np.arange(width)[None, :] % 9 < 4)
    image[(mask == BUILDING) & windows] *= 0.6
    lane = (np.abs(np.arange(width)[None, :] - width / 2) < 1.5) & (np.arange(height)[:, None] % 12 < 6)
    image[(mask == ROAD) & lane] = 230
    if dusk:
        image = image * np.array([0.42, 0.42, 0.6]) + np.array([12, 8, 30])  # dark, blue cast
        image = (image - image.mean()) * 0.75 + image.mean()  # lower contrast
        cars = np.argwhere(mask == CAR)
        if len(cars):  # headlights glare
            for cy, cx in cars[rng.choice(len(cars), size=min(3, len(cars)), replace=False)]:
                yy, xx = np.ogrid[:height, :width]
                image += 140 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 30.0)[..., None] * np.array([1, 0.9, 0.6])
        image += rng.normal(0, 10, image.shape)  # sensor noise
    out = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
    return np.asarray(out.filter(ImageFilter.GaussianBlur(0.6)))


def write_demo_dataset(root: Path, *, seed: int = 0, source: int = 48, target: int = 24,
                       size: tuple[int, int] = (160, 120)) -> Path:
    """Write root/{source,target}/{images,masks} + root/classes.json; return root.

    Target masks are written too: the last frames serve as frozen validation
    images (they need ground truth) and the campaign simulator can play oracle.
    """
    rng = np.random.default_rng(seed)
    for domain, count in (("source", source), ("target", target)):
        (root / domain / "images").mkdir(parents=True, exist_ok=True)
        (root / domain / "masks").mkdir(parents=True, exist_ok=True)
        for i in range(count):
            scene = draw_scene(rng, size=size, dusk=domain == "target")
            stem = f"{domain}_{i:04d}"
            Image.fromarray(scene.image).save(root / domain / "images" / f"{stem}.jpg", quality=92)
            Image.fromarray(scene.mask, mode="L").save(root / domain / "masks" / f"{stem}.png")
    classes = [{"id": i, "name": name, "color": color} for i, (name, color) in enumerate(CLASSES)]
    document = {"name": "demo streets", "ignore_index": IGNORE_INDEX, "classes": classes}
    (root / "classes.json").write_text(json.dumps(document, indent=2))
    return root
