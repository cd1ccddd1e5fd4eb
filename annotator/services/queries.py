"""Storing a round's queries and their suggestions: the rows a RoundProposal becomes.

A query on an image above ``MASKLOOP_TILE_PIXELS`` is stored as one query per
tile it touches (:mod:`learning.selection.tiles`): each is a region query whose
region lies inside its tile (a whole-image query's region is the tile itself),
so the annotator labels it on the tile alone (``selectors_labeling.query_tile``).
"""
from __future__ import annotations

import hashlib

import numpy as np
from django.core.files.base import ContentFile
from django.db import transaction

from learning.labels import IGNORE_INDEX
from learning.round_step import RoundProposal
from learning.selection import QuerySpec
from learning.selection.resample import resize_nearest

from ..imaging import encode_png
from ..models import Image, Query, Round, Suggestion
from .superpixels import image_is_tiled, image_tiles


def region_key(spec: QuerySpec) -> str:
    """A stable key of a region query's superpixels ("" for a whole image): unique per round and image."""
    if spec.region_ids is None:
        return ""
    digest = hashlib.sha1(",".join(map(str, sorted(spec.region_ids))).encode()).hexdigest()[:16]
    return f"sp-{len(spec.region_ids)}-{digest}"


def _at_image_size(array: np.ndarray, image: Image) -> np.ndarray:
    return array if array.shape == (image.height, image.width) else resize_nearest(array, (image.height, image.width))


def _tile_parts(image: Image, mask: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(tile index, the part of ``mask`` inside that tile) for each tile of a large image the mask touches."""
    parts = []
    for tile in image_tiles(width=image.width, height=image.height):
        part = np.zeros_like(mask, dtype=bool)
        part[tile.slices] = mask[tile.slices]
        if part.any():
            parts.append((tile.index, part))
    return parts


def _save_region(query: Query, mask: np.ndarray, name: str, written: list) -> None:
    ys, xs = np.nonzero(mask)
    query.region_bbox = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
    query.region_mask.save(name, ContentFile(encode_png(mask.astype(np.uint8) * 255)), save=False)
    written.append(query.region_mask)


def _store_tile_queries(*, round_: Round, model_version, proposed, image: Image, written: list) -> None:
    """A query of a large image as one region query (and suggestion) per tile it touches."""
    spec = proposed.spec
    mask = _at_image_size(spec.mask.astype(bool), image)
    suggested = _at_image_size(proposed.suggestion.mask, image)
    confidence = _at_image_size(proposed.confidence, image)
    key = region_key(spec) or "image"
    for index, part in _tile_parts(image, mask):
        pixels = int(part.sum())
        query = Query(round=round_, image=image, region_key=f"{key}-t{index}"[:64], pixels=pixels,
                      score=float(spec.score), priority=int(spec.rank))
        _save_region(query, part, f"r{round_.pk}-i{image.pk}-t{index}.png", written)
        query.save()
        tile_suggestion = np.where(part, suggested, IGNORE_INDEX).astype(np.uint8)
        row = Suggestion(query=query, model_version=model_version,
                         coverage=int((tile_suggestion != IGNORE_INDEX).sum()) / max(1, pixels))
        stem = f"q{query.pk}-m{model_version.pk}"
        row.mask.save(f"{stem}.png", ContentFile(encode_png(tile_suggestion)), save=False)
        written.append(row.mask)
        row.confidence.save(f"{stem}-conf.png", ContentFile(encode_png(confidence)), save=False)
        written.append(row.confidence)
        row.save()


def queries_store(*, round_: Round, model_version, proposal: RoundProposal, images: dict[str, Image]) -> bool:
    """All queries and suggestions of the round, or none of them; False when an earlier delivery stored them.

    ``images`` maps the proposal's keys to their Image rows. Files written
    before a failure are deleted, so a retry starts from a clean slate.
    """
    written: list = []
    try:
        with transaction.atomic():
            if Query.objects.filter(round=round_, kind=Query.Kind.LABEL).exists():
                return False
            for proposed in proposal.queries:
                spec, image = proposed.spec, images[proposed.key]
                if image_is_tiled(width=image.width, height=image.height):
                    _store_tile_queries(round_=round_, model_version=model_version, proposed=proposed,
                                        image=image, written=written)
                    continue
                query = Query(round=round_, image=image, region_key=region_key(spec), pixels=int(spec.pixels),
                              score=float(spec.score), priority=int(spec.rank))
                if spec.region_ids is not None:
                    _save_region(query, spec.mask, f"r{round_.pk}-i{image.pk}.png", written)
                query.save()
                row = Suggestion(query=query, model_version=model_version,
                                 coverage=proposed.suggestion.suggested_pixels / max(1, int(spec.pixels)))
                stem = f"q{query.pk}-m{model_version.pk}"
                row.mask.save(f"{stem}.png", ContentFile(encode_png(proposed.suggestion.mask)), save=False)
                written.append(row.mask)
                row.confidence.save(f"{stem}-conf.png", ContentFile(encode_png(proposed.confidence)), save=False)
                written.append(row.confidence)
                row.save()
    except BaseException:
        for file in written:
            file.storage.delete(file.name)
        raise
    return True


def image_queries_store(*, round_: Round, images: list[Image]) -> bool:
    """Whole-image label queries without suggestions (a cold start: no model yet), in the given order.

    A large image gets one query per tile instead (its region: the whole tile).
    False when an earlier delivery stored them.
    """
    written: list = []
    try:
        with transaction.atomic():
            if Query.objects.filter(round=round_, kind=Query.Kind.LABEL).exists():
                return False
            whole = []
            for rank, image in enumerate(images):
                if not image_is_tiled(width=image.width, height=image.height):
                    whole.append(Query(round=round_, image=image, pixels=image.pixels, priority=rank))
                    continue
                for tile in image_tiles(width=image.width, height=image.height):
                    region = np.zeros((image.height, image.width), dtype=bool)
                    region[tile.slices] = True
                    query = Query(round=round_, image=image, region_key=f"image-t{tile.index}",
                                  pixels=tile.width * tile.height, priority=rank)
                    _save_region(query, region, f"r{round_.pk}-i{image.pk}-t{tile.index}.png", written)
                    query.save()
            Query.objects.bulk_create(whole)
    except BaseException:
        for file in written:
            file.storage.delete(file.name)
        raise
    return True
