"""Reading and checking images and index masks. Pillow + numpy only, no Django.

Every reader raises :class:`InvalidImage` with a sentence a user can act on;
callers turn it into a per-file error without losing anything else.
"""
from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image as PILImage

IGNORE_INDEX = 255
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

Source = str | Path | bytes | BinaryIO


class InvalidImage(ValueError):
    """An image or mask that cannot be used, with the reason in the message."""


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    format: str


def _open(source: Source) -> PILImage.Image:
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    try:
        return PILImage.open(source)
    except PILImage.DecompressionBombError as exc:
        raise InvalidImage(f"refused as a decompression bomb: {exc}") from exc
    except PILImage.UnidentifiedImageError as exc:
        raise InvalidImage(f"not a readable image: no known image format ({exc})") from exc
    except (OSError, SyntaxError, ValueError) as exc:  # a known format whose header is cut short or broken
        raise InvalidImage(f"truncated or corrupt image data ({exc})") from exc


def _decode(image: PILImage.Image) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            image.load()
    except (OSError, SyntaxError, ValueError, PILImage.DecompressionBombWarning) as exc:
        raise InvalidImage(f"truncated or corrupt image data ({exc})") from exc


def check_image(source: Source, *, max_pixels: int) -> ImageInfo:
    """Decode the whole image once (catching truncation) after checking its size from the header."""
    image = _open(source)
    width, height = image.size
    if width * height > max_pixels:
        raise InvalidImage(
            f"image is {width}×{height} = {width * height / 1e6:.1f} MP, above the limit of "
            f"{max_pixels / 1e6:.1f} MP (MASKLOOP_MAX_IMAGE_PIXELS)"
        )
    if width < 2 or height < 2:
        raise InvalidImage(f"image is {width}×{height}: too small to label")
    _decode(image)
    return ImageInfo(width=width, height=height, format=image.format or "")


def read_rgb(source: Source, *, max_pixels: int | None = None) -> np.ndarray:
    image = _open(source)
    if max_pixels is not None and image.size[0] * image.size[1] > max_pixels:
        raise InvalidImage(f"image is {image.size[0]}×{image.size[1]}, above the pixel limit")
    _decode(image)
    return np.asarray(image.convert("RGB"))


def read_mask(source: Source, *, size: tuple[int, int], num_classes: int) -> np.ndarray:
    """Read an index mask and check it against the image size (width, height) and the class count.

    Valid values are class ids ``0..num_classes-1`` and ``255`` (void / unlabeled).
    """
    image = _open(source)
    if image.size != tuple(size):
        raise InvalidImage(
            f"mask is {image.size[0]}×{image.size[1]} but the image is {size[0]}×{size[1]}"
        )
    if image.mode not in {"L", "P", "I", "I;16", "1"}:
        raise InvalidImage(
            f"mask has mode {image.mode}: it must be a single-channel index PNG (mode L or P), "
            "one class id per pixel, not a colour image"
        )
    _decode(image)
    values = np.asarray(image)
    if values.ndim != 2:
        raise InvalidImage("mask must be single-channel")
    bad = (values >= num_classes) & (values != IGNORE_INDEX)
    if bad.any():
        found = sorted(int(v) for v in np.unique(values[bad])[:8])
        raise InvalidImage(
            f"mask holds values {found} that are neither class ids 0–{num_classes - 1} nor {IGNORE_INDEX} (void)"
        )
    return values.astype(np.uint8)


def encode_png(array: np.ndarray) -> bytes:
    """Encode a uint8 (H, W) array as a lossless single-channel PNG."""
    if array.dtype != np.uint8 or array.ndim != 2:
        raise ValueError(f"expected a uint8 (H, W) array, got {array.dtype} {array.shape}")
    buffer = io.BytesIO()
    PILImage.fromarray(array, mode="L").save(buffer, format="PNG", optimize=False, compress_level=3)
    return buffer.getvalue()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
