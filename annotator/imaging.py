"""Reading and checking images and index masks at import and save. Pillow + numpy only, no Django.

Decoding itself is :mod:`learning.decoding`, shared with the model, so an
image or mask that passes here is one training reads the same way. Every
reader raises :class:`InvalidImage` with a sentence a user can act on;
callers turn it into a per-file error without losing anything else.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image as PILImage

from learning.decoding import InvalidImage, image_pixels, image_rgb, is_rotated, mask_values, open_image
from learning.labels import IGNORE_INDEX

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
# Formats every browser decodes (with their file suffixes); in the modes below, a browser and the model
# see the same pixels.
BROWSER_FORMATS = {"JPEG": (".jpg", ".jpeg"), "PNG": (".png",), "WEBP": (".webp",)}
BROWSER_MODES = frozenset({"RGB", "L"})

Source = str | Path | bytes | BinaryIO

__all__ = ["IGNORE_INDEX", "IMAGE_SUFFIXES", "InvalidImage", "StoredImage", "encode_png", "image_for_storage",
           "read_mask", "read_rgb", "sha256_bytes"]


@dataclass(frozen=True)
class StoredImage:
    """An image as the project keeps it: ``data`` in ``suffix``'s format, ``width``×``height`` upright."""

    data: bytes
    suffix: str
    width: int
    height: int


def _check_pixels(image: PILImage.Image, max_pixels: int) -> None:
    """From the header, before decoding (a rotation does not change the count)."""
    width, height = image.size
    if width * height > max_pixels:
        raise InvalidImage(
            f"image is {width}×{height} = {width * height / 1e6:.1f} MP, above the limit of "
            f"{max_pixels / 1e6:.1f} MP (MASKLOOP_MAX_IMAGE_PIXELS)"
        )
    if width < 2 or height < 2:
        raise InvalidImage(f"image is {width}×{height}: too small to label")


def image_for_storage(data: bytes, *, suffix: str, max_pixels: int) -> StoredImage:
    """Check an imported image (size from the header, then every pixel) and return what to store.

    The original bytes when a browser shows them as the model decodes them (a
    JPEG, PNG or WebP in RGB or grey, without an EXIF rotation); otherwise the
    decoded pixels as a lossless 8-bit PNG: TIFF and BMP (browsers cannot show
    them), 16-bit, palette, alpha, CMYK and EXIF-rotated photos. Everything
    downstream (the page, the model, masks, exports) then sees one upright
    8-bit image whose size is the stored width and height.
    """
    image = open_image(data)
    _check_pixels(image, max_pixels)
    pixels = image_pixels(image)  # decodes every pixel: catches truncation even when the bytes are kept
    height, width = pixels.shape[:2]
    if image.format in BROWSER_FORMATS and image.mode in BROWSER_MODES and not is_rotated(image):
        suffixes = BROWSER_FORMATS[image.format]
        suffix = suffix.lower() if suffix.lower() in suffixes else suffixes[0]  # named for what it holds
        return StoredImage(data=data, suffix=suffix, width=width, height=height)
    return StoredImage(data=encode_png(pixels), suffix=".png", width=width, height=height)


def read_rgb(source: Source, *, max_pixels: int | None = None) -> np.ndarray:
    image = open_image(source)
    if max_pixels is not None:
        _check_pixels(image, max_pixels)
    return image_rgb(image)


def read_mask(source: Source, *, size: tuple[int, int], num_classes: int) -> np.ndarray:
    """Read an index mask and check it against the image size (width, height) and the class count.

    Valid values are class ids ``0..num_classes-1`` and ``255`` (void / unlabeled).
    """
    image = open_image(source)
    if sorted(image.size) != sorted(size):  # from the header, before decoding: a rotation only swaps the sides
        raise InvalidImage(f"mask is {image.size[0]}×{image.size[1]} but the image is {size[0]}×{size[1]}")
    values = mask_values(image)
    if values.shape[::-1] != tuple(size):
        raise InvalidImage(f"mask is {values.shape[1]}×{values.shape[0]} (upright) but the image is "
                           f"{size[0]}×{size[1]}")
    bad = (values >= num_classes) & (values != IGNORE_INDEX)
    if bad.any():
        found = sorted(int(v) for v in np.unique(values[bad])[:8])
        raise InvalidImage(
            f"mask holds values {found} that are neither class ids 0–{num_classes - 1} nor {IGNORE_INDEX} (void)"
        )
    return values


def encode_png(array: np.ndarray) -> bytes:
    """Encode a uint8 (H, W) array as a lossless single-channel PNG, or (H, W, 3) as an RGB one."""
    if array.dtype != np.uint8 or not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        raise ValueError(f"expected a uint8 (H, W) or (H, W, 3) array, got {array.dtype} {array.shape}")
    buffer = io.BytesIO()
    PILImage.fromarray(array).save(buffer, format="PNG", optimize=False, compress_level=3)
    return buffer.getvalue()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
