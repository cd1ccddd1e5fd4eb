"""Reads for the labeling UI: a query with everything its page needs, and an annotator's queue."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Q, Sum
from django.utils import timezone
from PIL import Image as PILImage

from learning.selection.tiles import Tile, tile_containing

from .imaging import InvalidImage, read_mask
from .models import Annotation, Image, Project, Query, Round, Suggestion
from .selectors import membership_role


def query_get_for_member(*, pk: int, user: AbstractBaseUser) -> Query | None:
    """The query with its round, project and image, or None when it does not exist or ``user`` is no member."""
    query = Query.objects.select_related("round__project", "image", "assignee").filter(pk=pk).first()
    if query is None or membership_role(project=query.round.project, user=user) is None:
        return None
    return query


def query_suggestion(*, query: Query) -> Suggestion | None:
    """The suggestion pre-filled for ``query``: the one by the round's model, else the newest."""
    suggestions = query.suggestions.select_related("model_version").order_by("-created_at", "-pk")
    if query.round.model_version_id is not None:
        by_round_model = suggestions.filter(model_version_id=query.round.model_version_id).first()
        if by_round_model is not None:
            return by_round_model
    return suggestions.first()


def read_region(*, query: Query) -> np.ndarray | None:
    """The pixels a region query asks for, as a bool ``(H, W)`` array; None for a whole-image query."""
    if not query.region_mask:
        return None
    image = query.image
    try:
        with query.region_mask.open("rb") as handle:
            values = read_mask(handle.read(), size=(image.width, image.height), num_classes=1)
    except (OSError, InvalidImage, PILImage.DecompressionBombError):
        return None
    return values > 0  # stored as 0 outside, 255 inside


def query_tile(*, query: Query) -> Tile | None:
    """The tile a query of a large image is labeled on; None when the page shows the whole image.

    A query is labeled on a tile when its image is above ``MASKLOOP_TILE_PIXELS``
    and its region lies inside one tile (as every query stored by
    ``services.queries`` does); a whole-image query of a large image, e.g. a
    validation image, is labeled whole.
    """
    from .services.superpixels import image_is_tiled, image_tiles  # services import this module

    image = query.image
    if not query.region_bbox or not image_is_tiled(width=image.width, height=image.height):
        return None
    return tile_containing(image_tiles(width=image.width, height=image.height), query.region_bbox)


def image_latest_annotation(*, image: Image) -> Annotation | None:
    return image.annotations.select_related("author").order_by("-version").first()


@dataclass
class QueueSummary:
    """What an annotator sees on a project's queue page."""

    project: Project
    round: Round | None  # the labeling round, else the newest round
    pending: int = 0
    available: int = 0  # pending and not locked by somebody else
    in_progress: int = 0  # locked by other annotators right now
    submitted: int = 0
    skipped: int = 0
    held: list[Query] = field(default_factory=list)  # the user's own pending locks
    my_submitted: int = 0
    my_seconds: float = 0.0
    recent: list[Annotation] = field(default_factory=list)

    @property
    def is_labeling(self) -> bool:
        return self.round is not None and self.round.state == Round.State.LABELING

    @property
    def total(self) -> int:
        return self.pending + self.submitted + self.skipped


def labeling_queue(*, project: Project, user: AbstractBaseUser) -> QueueSummary:
    round_ = project.rounds.filter(state=Round.State.LABELING).order_by("-number").first()
    round_ = round_ or project.rounds.order_by("-number").first()
    summary = QueueSummary(project=project, round=round_)
    if round_ is None:
        return summary
    now = timezone.now()
    queries = round_.queries.all()
    locked_by_others = Q(locked_until__gt=now) & ~Q(assignee=user)
    counts = queries.aggregate(
        pending=Count("pk", filter=Q(status=Query.Status.PENDING)),
        in_progress=Count("pk", filter=Q(status=Query.Status.PENDING) & locked_by_others),
        submitted=Count("pk", filter=Q(status=Query.Status.SUBMITTED)),
        skipped=Count("pk", filter=Q(status=Query.Status.SKIPPED)),
        my_submitted=Count("pk", filter=Q(status=Query.Status.SUBMITTED, assignee=user)),
        my_seconds=Sum("time_spent_seconds", filter=Q(assignee=user)),
    )
    summary.pending, summary.in_progress = counts["pending"], counts["in_progress"]
    summary.available = summary.pending - summary.in_progress
    summary.submitted, summary.skipped = counts["submitted"], counts["skipped"]
    summary.my_submitted, summary.my_seconds = counts["my_submitted"], counts["my_seconds"] or 0.0
    if summary.is_labeling:
        summary.held = list(
            queries.filter(status=Query.Status.PENDING, assignee=user).select_related("image").order_by("priority")
        )
    summary.recent = list(
        Annotation.objects.filter(query__round=round_, author=user, is_submitted=True)
        .select_related("image", "query").order_by("-created_at")[:10]
    )
    return summary
