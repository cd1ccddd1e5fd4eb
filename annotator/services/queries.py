"""Storing a round's queries and their suggestions: the rows a RoundProposal becomes."""
from __future__ import annotations

import hashlib

import numpy as np
from django.core.files.base import ContentFile
from django.db import transaction

from learning.round_step import RoundProposal
from learning.selection import QuerySpec

from ..imaging import encode_png
from ..models import Image, Query, Round, Suggestion


def region_key(spec: QuerySpec) -> str:
    """A stable key of a region query's superpixels ("" for a whole image): unique per round and image."""
    if spec.region_ids is None:
        return ""
    digest = hashlib.sha1(",".join(map(str, sorted(spec.region_ids))).encode()).hexdigest()[:16]
    return f"sp-{len(spec.region_ids)}-{digest}"


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
                query = Query(round=round_, image=image, region_key=region_key(spec), pixels=int(spec.pixels),
                              score=float(spec.score), priority=int(spec.rank))
                if spec.region_ids is not None:
                    ys, xs = np.nonzero(spec.mask)
                    query.region_bbox = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
                    query.region_mask.save(f"r{round_.pk}-i{image.pk}.png",
                                           ContentFile(encode_png(spec.mask.astype(np.uint8) * 255)), save=False)
                    written.append(query.region_mask)
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

    False when an earlier delivery stored them.
    """
    with transaction.atomic():
        if Query.objects.filter(round=round_, kind=Query.Kind.LABEL).exists():
            return False
        Query.objects.bulk_create([Query(round=round_, image=image, pixels=image.pixels, priority=rank)
                                   for rank, image in enumerate(images)])
    return True
