"""A lead sends chosen images to the current round's queue: "label this one".

Each chosen pool image becomes a whole-image label query of the round that is
open for labeling, at the front of the queue. It has no suggestion (the
round's suggestions were made when it opened; the next round's model makes
new ones).

Budget. A round asks for no more pixels than it planned when it opened
(``Round.budget_planned_pixels``, the label queries the selector chose). A
lead's images are paid for by withdrawing the selector's lowest-ranked label
queries that nobody has started (pending, not locked, no saved version): the
lead's choice replaces the model's last picks. When those cannot make room,
the request is refused and nothing changes. Validation queries are outside the
budget and are never withdrawn, and neither is an earlier request of a lead.
"""
from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from ..models import Image, Project, Query, Round
from .errors import ServiceError

# Round.stats key: ids of the queries leads asked for (a later request never withdraws them).
REQUESTED_KEY = "requested_queries"


def image_request_refusal(*, image: Image, round_: Round, queued: set[int] | None = None) -> str | None:
    """Why ``image`` cannot be sent to ``round_``'s queue, as a sentence; None when it can (budget aside).

    ``queued``: ids of the images the round already asked about (looked up when not given).
    """
    if queued is None:
        queued = {image.pk} if image.queries.filter(round=round_).exists() else set()
    if image.domain == Image.Domain.SOURCE:
        return f"{image.original_name} is a source image: rounds ask about target images only"
    if image.split == Image.Split.VAL:
        return f"{image.original_name} is a validation image: it measures the model and never trains it"
    if image.split != Image.Split.POOL:
        return f"{image.original_name} is a {image.get_split_display().lower()} image: only pool images are queried"
    if image.pk in queued:
        return f"{image.original_name} was already asked for in round {round_.number}"
    return None


def _withdrawable(round_: Round, requested: set[int]):
    """The round's label queries nobody has started, lowest-ranked first."""
    now = timezone.now()
    return (Query.objects.filter(round=round_, kind=Query.Kind.LABEL, status=Query.Status.PENDING,
                                 annotations__isnull=True)
            .filter(Q(locked_until__isnull=True) | Q(locked_until__lte=now))
            .exclude(pk__in=requested).order_by("-priority", "-pk"))


def _delete_files_on_commit(queries: list[Query]) -> None:
    files = [q.region_mask for q in queries if q.region_mask]
    for query in queries:
        for suggestion in query.suggestions.all():
            files += [suggestion.mask, suggestion.confidence]
    names = [(file.storage, file.name) for file in files if file.name]
    transaction.on_commit(lambda: [storage.delete(name) for storage, name in names])


@transaction.atomic
def image_request_label(*, project: Project, images: Iterable[Image] | Iterable[int],
                        user: AbstractBaseUser | None = None) -> list[Query]:
    """Queue ``images`` as whole-image label queries at the front of the labeling round; returns the new queries.

    Refused (ServiceError, nothing changed) when no round is labeling, when an
    image is not a target pool image or is already in this round's queue, or
    when the round's budget cannot make room (see the module's docstring).
    """
    round_ = Round.objects.select_for_update().filter(project=project).order_by("-number").first()
    if round_ is None or round_.state != Round.State.LABELING:
        where = "the project has not started" if round_ is None else (
            f"round {round_.number} is {round_.get_state_display().lower()}")
        raise ServiceError(f"images can be sent to the queue only while a round is labeling: {where}")
    ids = [image if isinstance(image, int) else image.pk for image in images]
    if not ids:
        raise ServiceError("choose at least one image")
    rows = list(Image.objects.filter(project=project, pk__in=ids).order_by("pk"))
    if len(rows) != len(set(ids)):
        raise ServiceError("some images are not in this project")
    queued = set(Query.objects.filter(round=round_, image__in=rows).values_list("image_id", flat=True))
    refusals = [reason for image in rows
                if (reason := image_request_refusal(image=image, round_=round_, queued=queued))]
    if refusals:
        raise ServiceError("; ".join(refusals))

    cost = sum(image.pixels for image in rows)
    asked = Query.objects.filter(round=round_, kind=Query.Kind.LABEL).aggregate(total=Sum("pixels"))["total"] or 0
    free = round_.budget_planned_pixels - asked
    requested = set(round_.stats.get(REQUESTED_KEY, []))
    withdrawn: list[Query] = []
    for query in _withdrawable(round_, requested) if cost > free else ():
        if free >= cost:
            break
        withdrawn.append(query)
        free += query.pixels
    if free < cost:
        raise ServiceError(
            f"{len(rows)} image(s) of {cost:,} pixels would exceed round {round_.number}'s budget of "
            f"{round_.budget_planned_pixels:,} pixels: the queries nobody has started free only {max(free, 0):,}. "
            "Choose fewer images, or wait for the next round")
    _delete_files_on_commit(withdrawn)
    Query.objects.filter(pk__in=[q.pk for q in withdrawn]).delete()
    Query.objects.filter(round=round_).update(priority=F("priority") + len(rows))
    created = [Query.objects.create(round=round_, image=image, kind=Query.Kind.LABEL, pixels=image.pixels,
                                    priority=index) for index, image in enumerate(rows)]
    round_.stats = {**round_.stats, REQUESTED_KEY: sorted(requested | {q.pk for q in created})}
    round_.save(update_fields=["stats"])
    return created
