"""Small JPEG thumbnails for the image browser, made once per image and kept next to the media.

A thumbnail is named by the image's checksum (``projects/<id>/thumbnails/<sha256>.jpg``):
the bytes of an image never change, so neither does its thumbnail, and a
browser may cache it for good. It is written to a temporary file and moved
into place, so two first requests at once both end with one whole file.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from PIL import Image as PILImage

from ..imaging import InvalidImage, read_rgb
from ..models import Image
from .errors import ServiceError

THUMBNAIL_SIDE = 224  # the longest side, in pixels: sharp on the grid's 112 px cells at 2× pixel density
THUMBNAIL_QUALITY = 80


def thumbnail_name(image: Image) -> str:
    return f"projects/{image.project_id}/thumbnails/{image.checksum}.jpg"


def image_thumbnail(*, image: Image) -> str:
    """The storage name of ``image``'s thumbnail, made on first use."""
    name = thumbnail_name(image)
    storage = image.file.storage
    if storage.exists(name):
        return name
    try:
        with image.file.open("rb") as handle:
            picture = PILImage.fromarray(read_rgb(handle.read()))
    except (OSError, InvalidImage) as exc:
        raise ServiceError(f"{image.original_name} cannot be read from storage ({exc})") from exc
    picture.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), PILImage.Resampling.LANCZOS)
    target = Path(storage.path(name))
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            picture.save(out, format="JPEG", quality=THUMBNAIL_QUALITY, optimize=True)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return name
