"""Decoding image and index-mask files into arrays: the one path the import, the app and the model share.

Pillow + numpy only (no torch, no Django), so the web process can use it too.
Because every consumer decodes here, the pixels a browser shows, the pixels a
model trains on and the pixels a mask is drawn over are the same:

* EXIF orientation is applied: a phone photo is upright everywhere, and its
  size is the size after rotation.
* 16/32-bit grey (``I;16``, ``I``, ``F``) becomes 8-bit by dividing by the
  image's own maximum when that is above 255, so 12-bit data in a 16-bit file
  is not nearly black and full-range data is about ``>> 8``; values up to 255
  are kept as they are.
* Palette, CMYK, YCbCr, 1-bit and the rest become RGB or grey. Alpha is
  dropped, not composited: a transparent pixel keeps the colour stored under it.

Masks keep their values instead: ``L``, ``P`` (the indices, not the colours),
``1`` (0/1) and integer modes whose values all lie in 0–255.

Malformed input raises :class:`InvalidImage` with a sentence a user can act
on, and nothing else: Pillow's decoders raise a zoo of exception types on
hostile bytes, and callers must be able to reject one file and carry on.
"""
from __future__ import annotations

import io
import os
import struct
import warnings
from typing import BinaryIO, Union

import numpy as np
from PIL import ExifTags, ImageOps
from PIL import Image as PILImage

Source = Union[str, os.PathLike, bytes, BinaryIO]

GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
INTEGER_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})
MASK_MODES = frozenset({"L", "P", "1"}) | INTEGER_MODES

# What Pillow raises on malformed data besides OSError (its fuzzers accept the same set).
_DECODER_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, KeyError, TypeError,
                   ZeroDivisionError, OverflowError)


class InvalidImage(ValueError):
    """An image or mask that cannot be used, with the reason in the message."""


def open_image(source: Source) -> PILImage.Image:
    """Open ``source`` and read its header only (size, mode); the pixels are decoded later."""
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    try:
        return PILImage.open(source)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except PILImage.DecompressionBombError as exc:
        raise InvalidImage(f"refused as a decompression bomb: {exc}") from exc
    except PILImage.UnidentifiedImageError as exc:
        # Pillow's message names the in-memory buffer ("<_io.BytesIO object at 0x…>"): say it plainly instead.
        raise InvalidImage("not a readable image: no known image format (PNG, JPEG, TIFF, BMP, WebP, GIF)") from exc
    except _DECODER_ERRORS as exc:  # a known format whose header is cut short or broken
        raise InvalidImage(f"truncated or corrupt image data ({exc})") from exc


def is_rotated(image: PILImage.Image) -> bool:
    """True when decoding changes the stored pixels' orientation (EXIF orientation 2–8, as exif_transpose reads it).

    Ask only once the pixels are decoded: for a PNG, reading EXIF decodes the
    image, and a truncation found there must not be lost in this answer.
    """
    try:
        return image.getexif().get(ExifTags.Base.Orientation, 1) in range(2, 9)
    except _DECODER_ERRORS:
        return False  # an unreadable EXIF block is no orientation


def _decoded(image: PILImage.Image) -> PILImage.Image:
    """Decode every pixel (catching truncation and decompression bombs), then apply the EXIF orientation."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            image.load()
        return ImageOps.exif_transpose(image) if is_rotated(image) else image
    except PILImage.DecompressionBombWarning as exc:
        raise InvalidImage(f"refused as a decompression bomb: {exc}") from exc
    except _DECODER_ERRORS as exc:
        raise InvalidImage(f"truncated or corrupt image data ({exc})") from exc


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """High-bit-depth grey to 8 bits: divided by its own maximum when that exceeds 255, else kept."""
    values = np.nan_to_num(values.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    np.clip(values, 0, None, out=values)
    top = float(values.max(initial=0))
    if top > 255:
        values *= 255.0 / top
    return np.rint(values).astype(np.uint8)


def image_pixels(image: PILImage.Image) -> np.ndarray:
    """The 8-bit pixels a viewer sees: uint8 (H, W) for grey images, (H, W, 3) otherwise."""
    image = _decoded(image)
    try:
        if image.mode == "L":
            return np.asarray(image, dtype=np.uint8)
        if image.mode == "1":
            return np.asarray(image.convert("L"), dtype=np.uint8)
        if image.mode in ("LA", "La"):
            return np.ascontiguousarray(np.asarray(image)[:, :, 0], dtype=np.uint8)
        if image.mode in GREY_MODES:  # 16/32-bit integers, float
            return _to_uint8(np.asarray(image))
        return np.asarray(image if image.mode == "RGB" else image.convert("RGB"), dtype=np.uint8)
    except _DECODER_ERRORS as exc:
        raise InvalidImage(f"cannot convert an image of mode {image.mode} to RGB ({exc})") from exc


def image_rgb(image: PILImage.Image) -> np.ndarray:
    """:func:`image_pixels` with grey repeated into three channels: uint8 (H, W, 3), what the model reads."""
    pixels = image_pixels(image)
    return np.repeat(pixels[:, :, None], 3, axis=2) if pixels.ndim == 2 else pixels


def _check_mask_mode(image: PILImage.Image) -> None:
    """Refuse colour masks from the header alone, before any pixel is decoded."""
    if image.mode not in MASK_MODES:
        raise InvalidImage(
            f"mask has mode {image.mode}: it must be a single-channel index PNG (mode L or P), "
            "one class id per pixel, not a colour image"
        )


def mask_values(image: PILImage.Image) -> np.ndarray:
    """An index mask's values as uint8 (H, W): class ids and 255 (void), oriented like its image."""
    _check_mask_mode(image)
    image = _decoded(image)
    values = np.asarray(image)
    if image.mode in INTEGER_MODES:
        low, high = int(values.min(initial=0)), int(values.max(initial=0))
        if low < 0 or high > 255:
            raise InvalidImage(
                f"mask holds values from {low} to {high}, outside 0–255: an index mask holds class ids "
                "and 255 (void), so a 16-bit mask must keep every value at most 255"
            )
    return np.ascontiguousarray(values, dtype=np.uint8)  # mode "1" is bool: 0/1


def read_rgb(source: Source) -> np.ndarray:
    """Open and decode an image file: uint8 (H, W, 3)."""
    with open_image(source) as image:
        return image_rgb(image)


def read_mask_values(source: Source) -> np.ndarray:
    """Open and decode an index-mask file: uint8 (H, W)."""
    with open_image(source) as image:
        return mask_values(image)
