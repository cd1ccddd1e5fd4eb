"""Files derived from an image's bytes, made once and kept next to the media: thumbnails, tile crops, context.

A derived file is named by the image's checksum and what it is
(``projects/<id>/<kind>/<sha256>….<ext>``): the bytes of an image never
change, so neither does anything made from them, and a browser may cache it
for good. Decoding a 12-megapixel photo takes a good part of a second, so a
tile's crop and the downscaled whole image its labeling page shows around it
are made on the first request and read from disk after that.

Each file is written to a temporary file and moved into place, so two first
requests at once both end with one whole file.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from PIL import Image as PILImage

from ..imaging import InvalidImage, read_rgb
from ..models import Image
from .errors import ServiceError

THUMBNAIL_SIDE = 224  # the longest side, in pixels: sharp on the grid's 112 px cells at 2× pixel density
THUMBNAIL_QUALITY = 80
CONTEXT_QUALITY = 85


def made_once(image: Image, name: str, render: Callable[[BinaryIO], None]) -> str:
    """``name`` in ``image``'s storage, written by ``render(out)`` unless it exists already."""
    storage = image.file.storage
    if storage.exists(name):
        return name
    target = Path(storage.path(name))
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            render(out)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return name


def _unreadable(image: Image, error: Exception) -> ServiceError:
    return ServiceError(f"{image.original_name} cannot be read from storage ({error})")


def thumbnail_name(image: Image) -> str:
    return f"projects/{image.project_id}/thumbnails/{image.checksum}.jpg"


def image_thumbnail(*, image: Image) -> str:
    """The storage name of ``image``'s thumbnail (longest side :data:`THUMBNAIL_SIDE`), made on first use."""
    def render(out: BinaryIO) -> None:
        try:
            with image.file.open("rb") as handle:
                picture = PILImage.fromarray(read_rgb(handle.read()))
        except (OSError, InvalidImage) as exc:
            raise _unreadable(image, exc) from exc
        picture.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), PILImage.Resampling.LANCZOS)
        picture.save(out, format="JPEG", quality=THUMBNAIL_QUALITY, optimize=True)

    return made_once(image, thumbnail_name(image), render)


def image_tile_crop(*, image: Image, box: tuple[int, int, int, int]) -> str:
    """The storage name of the ``box`` ([x0, y0, x1, y1]) of ``image`` as a lossless PNG, made on first use."""
    x0, y0, x1, y1 = box

    def render(out: BinaryIO) -> None:
        try:
            with image.file.open("rb") as handle, PILImage.open(handle) as picture:
                picture.crop(box).save(out, format="PNG", compress_level=1)
        except OSError as exc:
            raise _unreadable(image, exc) from exc

    return made_once(image, f"projects/{image.project_id}/tiles/{image.checksum}-{x0}-{y0}-{x1}-{y1}.png", render)


def image_context(*, image: Image, side: int) -> str:
    """The storage name of the whole ``image`` downscaled to ``side`` pixels at most (JPEG), made on first use."""
    def render(out: BinaryIO) -> None:
        try:
            with image.file.open("rb") as handle, PILImage.open(handle) as picture:
                picture.draft("RGB", (side, side))  # a JPEG decodes straight at a reduced scale
                small = picture.convert("RGB")
                small.thumbnail((side, side), PILImage.Resampling.BILINEAR)
                small.save(out, format="JPEG", quality=CONTEXT_QUALITY)
        except OSError as exc:
            raise _unreadable(image, exc) from exc

    return made_once(image, f"projects/{image.project_id}/context/{image.checksum}-{side}.jpg", render)
