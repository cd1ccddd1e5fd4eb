"""SLIC superpixels of an image, computed once at full resolution and cached on the Image row.

The selector's region queries and the annotator's superpixel click-fill must
be the same regions, or a click would paint pixels outside the queried region.
Both call :func:`image_superpixels`, which returns the cached label map when
there is one. The map is stored as a 16-bit PNG of region ids, which bounds an
image to 65,536 regions: :data:`MAX_SEGMENTS` keeps SLIC below that on the
largest images we accept.

An image above ``MASKLOOP_TILE_PIXELS`` is cut into SLIC segments tile by tile
(:func:`learning.selection.tiles.tiled_regions`), so no superpixel, and no
region query made of them, crosses a tile border; it also bounds SLIC's memory
to one tile.
"""
from __future__ import annotations

import io

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from PIL import Image as PILImage

from learning.selection.regions import SEGMENTS_PER_PIXEL, slic_regions
from learning.selection.tiles import Tile, is_tiled, tile_grid, tiled_regions

from ..imaging import read_rgb
from ..models import Image

MAX_SEGMENTS = 60_000  # below the 65,536 ids a 16-bit PNG holds (SLIC may return a few more than asked)


def superpixel_count(*, width: int, height: int) -> int:
    """How many SLIC segments an image of this size is cut into (the selector's density, capped)."""
    return int(min(MAX_SEGMENTS, max(1, round(width * height * SEGMENTS_PER_PIXEL))))


def image_tiles(*, width: int, height: int) -> list[Tile]:
    """The image's tile grid under ``MASKLOOP_TILE_PIXELS`` (one tile, the whole image, when it is small)."""
    return tile_grid(width, height, settings.MASKLOOP_TILE_PIXELS)


def image_is_tiled(*, width: int, height: int) -> bool:
    return is_tiled(width, height, settings.MASKLOOP_TILE_PIXELS)


def compute_superpixels(rgb: np.ndarray) -> np.ndarray:
    """SLIC of an RGB image at the selector's density: per tile for a large image, else in one piece."""
    height, width = rgb.shape[:2]
    count = superpixel_count(width=width, height=height)
    if not image_is_tiled(width=width, height=height):
        return slic_regions(rgb, n_segments=count)
    return tiled_regions(rgb, image_tiles(width=width, height=height),
                         lambda pixels, n: slic_regions(pixels, n_segments=n), count)


def encode_superpixels(labels: np.ndarray) -> bytes:
    if labels.ndim != 2 or labels.min(initial=0) < 0 or labels.max(initial=0) > np.iinfo(np.uint16).max:
        raise ValueError(f"superpixel ids must be a 2-D map of 0..65535, got {labels.shape} up to {labels.max()}")
    buffer = io.BytesIO()
    PILImage.fromarray(labels.astype(np.uint16)).save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()


def decode_superpixels(data: bytes) -> np.ndarray:
    with PILImage.open(io.BytesIO(data)) as png:
        return np.asarray(png).astype(np.int32)


def _tiling_tag(image: Image) -> str:
    """In the file name of a tiled map: a map cut under another tile size (or uncut) is computed again."""
    tiled = image_is_tiled(width=image.width, height=image.height)
    return f"_t{settings.MASKLOOP_TILE_PIXELS}" if tiled else ""


def _cached_name_fits(image: Image, name: str) -> bool:
    tag = _tiling_tag(image)
    return tag in name if tag else True


def image_superpixels(*, image: Image) -> np.ndarray:
    """The image's superpixel label map ``(H, W)`` int32, computing and caching it on first use.

    SLIC runs outside any transaction (seconds on a 12 MP image; a transaction
    would hold SQLite's write lock that long). Two concurrent first calls both
    compute the same deterministic map; the first to store it wins and the
    other returns the stored one, so no orphan file is left behind.
    """
    if image.superpixels:
        try:
            with image.superpixels.open("rb") as handle:
                cached = decode_superpixels(handle.read())
            if cached.shape == (image.height, image.width) and _cached_name_fits(image, image.superpixels.name):
                return cached
        except (OSError, ValueError, PILImage.UnidentifiedImageError):
            pass  # missing or unreadable file: compute it again
    with image.file.open("rb") as handle:
        rgb = read_rgb(handle.read())
    labels = compute_superpixels(rgb)
    data = encode_superpixels(labels)
    with transaction.atomic():
        row = Image.objects.select_for_update().get(pk=image.pk)
        if row.superpixels and row.superpixels.name != image.superpixels.name:
            try:  # someone stored it while we computed
                with row.superpixels.open("rb") as handle:
                    stored = decode_superpixels(handle.read())
                if stored.shape == labels.shape and _cached_name_fits(image, row.superpixels.name):
                    image.superpixels = row.superpixels
                    return stored
            except (OSError, ValueError, PILImage.UnidentifiedImageError):
                pass
        row.superpixels.save(f"superpixels_{image.checksum[:16]}{_tiling_tag(image)}.png", ContentFile(data),
                             save=False)
        row.save(update_fields=["superpixels"])
    image.superpixels = row.superpixels
    return labels.astype(np.int32)
