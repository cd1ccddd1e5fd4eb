"""SLIC superpixels of an image, computed once at full resolution and cached on the Image row.

The selector's region queries and the annotator's superpixel click-fill must
be the same regions, or a click would paint pixels outside the queried region.
Both call :func:`image_superpixels`, which returns the cached label map when
there is one. The map is stored as a 16-bit PNG of region ids, which bounds an
image to 65,536 regions: :data:`MAX_SEGMENTS` keeps SLIC below that on the
largest images we accept.
"""
from __future__ import annotations

import io

import numpy as np
from django.core.files.base import ContentFile
from django.db import transaction
from PIL import Image as PILImage

from learning.selection.regions import SEGMENTS_PER_PIXEL, slic_regions

from ..imaging import read_rgb
from ..models import Image

MAX_SEGMENTS = 60_000  # below the 65,536 ids a 16-bit PNG holds (SLIC may return a few more than asked)


def superpixel_count(*, width: int, height: int) -> int:
    """How many SLIC segments an image of this size is cut into (the selector's density, capped)."""
    return int(min(MAX_SEGMENTS, max(1, round(width * height * SEGMENTS_PER_PIXEL))))


def encode_superpixels(labels: np.ndarray) -> bytes:
    if labels.ndim != 2 or labels.min(initial=0) < 0 or labels.max(initial=0) > np.iinfo(np.uint16).max:
        raise ValueError(f"superpixel ids must be a 2-D map of 0..65535, got {labels.shape} up to {labels.max()}")
    buffer = io.BytesIO()
    PILImage.fromarray(labels.astype(np.uint16)).save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()


def decode_superpixels(data: bytes) -> np.ndarray:
    with PILImage.open(io.BytesIO(data)) as png:
        return np.asarray(png).astype(np.int32)


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
            if cached.shape == (image.height, image.width):
                return cached
        except (OSError, ValueError, PILImage.UnidentifiedImageError):
            pass  # missing or unreadable file: compute it again
    with image.file.open("rb") as handle:
        rgb = read_rgb(handle.read())
    labels = slic_regions(rgb, n_segments=superpixel_count(width=image.width, height=image.height))
    data = encode_superpixels(labels)
    with transaction.atomic():
        row = Image.objects.select_for_update().get(pk=image.pk)
        if row.superpixels and row.superpixels.name != image.superpixels.name:
            try:  # someone stored it while we computed
                with row.superpixels.open("rb") as handle:
                    stored = decode_superpixels(handle.read())
                if stored.shape == labels.shape:
                    image.superpixels = row.superpixels
                    return stored
            except (OSError, ValueError, PILImage.UnidentifiedImageError):
                pass
        row.superpixels.save(f"superpixels_{image.checksum[:16]}.png", ContentFile(data), save=False)
        row.save(update_fields=["superpixels"])
    image.superpixels = row.superpixels
    return labels.astype(np.int32)
