"""An annotator's work on queries: take the next one, save mask versions, submit, skip, release.

Locks. A query handed to an annotator is theirs until ``locked_until``
(``MASKLOOP_QUERY_LOCK_SECONDS``), and every save renews it. An expired lock
is free for anyone; saving on one's own expired lock renews it when nobody took
the query meanwhile, so an annotator back from a long break loses nothing.

Versions. Every save adds an ``Annotation`` row (the image's latest version
+ 1, parent = that version). A save names the version it started from and is
refused with :class:`StaleVersion` when somebody saved in between, so nobody
overwrites work they have not seen; the UI then merges or reloads.

Tiles. A query of a large image is labeled on its tile
(``selectors_labeling.query_tile``): the annotator sends the tile's mask and
the version stored is still the whole image's, the tile's pixels from the
upload and every other pixel from the base version (void where there is none).

Concurrency. Row locks make each check-and-write atomic: on PostgreSQL
``SELECT … FOR UPDATE`` (``SKIP LOCKED`` when handing out queries, so two
annotators asking at once get different ones); SQLite has no row locks but
runs every transaction ``IMMEDIATE`` (config/settings.py), which serialises
writers. Submits and skips also lock the round row so that, of two annotators
submitting the last two queries at once, the later one sees the other's
submit and closes the round.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import Case, Exists, IntegerField, Max, OuterRef, Q, Value, When
from django.utils import timezone

from learning.labels import IGNORE_INDEX

from ..imaging import InvalidImage, encode_png, read_mask, sha256_bytes
from ..models import Annotation, Image, Project, Query, Round
from ..selectors import membership_role
from ..selectors_labeling import query_suggestion, query_tile, read_region
from ..selectors_review import annotation_lane, query_pair
from .errors import Conflict, PermissionDenied, ServiceError
from .review import review_after_submit
from .rounds import round_close_if_complete

# One save never books more than this much active time: a client clock that
# jumped, or a tampered request, must not wreck the time-per-label statistics.
MAX_SECONDS_PER_SAVE = 4 * 3600.0


class InvalidMask(ServiceError):
    """The uploaded mask does not fit the image or the class list."""


class QueryLocked(Conflict):
    """Another annotator holds the query's lock."""


class RoundClosed(Conflict):
    """A submit after the lead closed the round: the mask was stored as a draft (``saved``), not submitted."""

    def __init__(self, message: str, *, saved: "SaveResult"):
        super().__init__(message)
        self.saved = saved


class StaleVersion(Conflict):
    """The save started from a version that is no longer the image's latest.

    ``same_user``: the latest version is the saver's own (another tab or
    window of theirs saved in between), so the page does not blame "someone else".
    """

    def __init__(self, message: str, *, latest: Annotation | None, same_user: bool = False):
        super().__init__(message)
        self.latest = latest
        self.same_user = same_user


def _saved_by(latest: Annotation | None, user: AbstractBaseUser) -> tuple[str, bool]:
    """(" by <whom>" for a sentence, whether it is ``user``) of a version; ("", False) when nobody is known."""
    if latest is None or latest.author_id is None:
        return "", False
    if latest.author_id == user.pk:
        return " by you in another tab or window", True
    return f" by {latest.author}", False


@dataclass(frozen=True)
class SaveResult:
    annotation: Annotation
    created: bool  # False when a draft was identical to the latest version and nothing was stored
    next_round: Round | None = None  # the round opened because this submit completed the last one


def _require_member(project: Project, user: AbstractBaseUser) -> None:
    if membership_role(project=project, user=user) is None:
        raise PermissionDenied("You are not a member of this project.")


def _lock_expiry(now: datetime) -> datetime:
    return now + timedelta(seconds=settings.MASKLOOP_QUERY_LOCK_SECONDS)


def _held_by_other(query: Query, user: AbstractBaseUser, now: datetime) -> bool:
    return (
        query.assignee_id is not None and query.assignee_id != user.pk
        and query.locked_until is not None and query.locked_until > now
    )


def _refuse_if_held(query: Query, user: AbstractBaseUser, now: datetime) -> None:
    if _held_by_other(query, user, now):
        raise QueryLocked(
            f"{query.assignee} is labeling this query (locked until {timezone.localtime(query.locked_until):%H:%M})."
        )


def _take_lock(query: Query, user: AbstractBaseUser, now: datetime) -> None:
    """Lock (or renew) ``query`` for ``user``; the caller holds the row lock."""
    _refuse_if_held(query, user, now)
    query.assignee = user
    query.locked_until = _lock_expiry(now)


def _clean_seconds(time_spent: float) -> float:
    try:
        seconds = float(time_spent)
    except (TypeError, ValueError):
        return 0.0
    if not math.isfinite(seconds) or seconds < 0:
        return 0.0
    return min(seconds, MAX_SECONDS_PER_SAVE)


def query_next(*, project: Project, user: AbstractBaseUser) -> Query | None:
    """Lock and return the next query for ``user``, or None when the project has nothing to label now.

    Order: a query the user already holds (a reload resumes it), then queries
    whose image nobody else is working on (two annotators on one image would
    keep hitting version conflicts), then priority. Locked rows are skipped
    rather than waited for, so a slow transaction elsewhere never blocks "Next".
    """
    _require_member(project, user)
    if Project.objects.filter(pk=project.pk, archived_at__isnull=False).exists():
        return None  # an archived project hands nothing out (services.projects.project_set_archived)
    now = timezone.now()
    others_on_image = Query.objects.filter(
        image=OuterRef("image"), status=Query.Status.PENDING, locked_until__gt=now
    ).exclude(assignee=user)
    # Agreement: the two copies of a query go to two different people.
    my_copy = Query.objects.filter(Q(pk=OuterRef("replica_of")) | Q(replica_of=OuterRef("pk"))).filter(
        Q(assignee=user) | Q(annotations__author=user))
    with transaction.atomic():
        query = (
            Query.objects.filter(
                round__project=project, round__state=Round.State.LABELING, status=Query.Status.PENDING,
            )
            .filter(Q(assignee=user) | Q(locked_until__isnull=True) | Q(locked_until__lte=now))
            .filter(Q(returned_to__isnull=True) | Q(returned_to=user))  # a rejected query waits for its annotator
            .exclude(Exists(my_copy))
            .annotate(
                own=Case(When(assignee=user, then=Value(0)), default=Value(1), output_field=IntegerField()),
                image_busy=Exists(others_on_image),
            )
            .order_by("own", "image_busy", "priority", "id")
            # ``of``: lock the query row only; a join-locked round row would make
            # SKIP LOCKED skip every query of a round whose last submit is running.
            .select_for_update(skip_locked=True, of=("self",))
            .first()
        )
        if query is None:
            return None
        _take_lock(query, user, now)
        query.save(update_fields=["assignee", "locked_until"])
    return query


def query_claim_check(*, query: Query, user: AbstractBaseUser) -> None:
    """Raise what :func:`query_claim` would refuse with now (Conflict, QueryLocked); changes nothing.

    The labeling page shows this on GET: a GET must not assign queries (a link on
    another site could), so the page's script claims with a POST.
    """
    _require_member(query.round.project, user)
    if query.status != Query.Status.PENDING:
        raise Conflict(f"This query was {query.get_status_display().lower()} already.")
    if query.round.state != Round.State.LABELING:
        raise Conflict(f"Round {query.round.number} is not open for labeling.")
    if query.returned_to_id is not None and query.returned_to_id != user.pk:
        raise QueryLocked(f"This query was sent back to {query.returned_to} to fix.")
    pair = query_pair(query)
    if pair is not None:
        other = pair[1] if pair[0].pk == query.pk else pair[0]
        if other.assignee_id == user.pk or other.annotations.filter(author=user).exists():
            raise PermissionDenied("You labeled the other copy of this query: its second label must come "
                                   "from someone else.")
    _refuse_if_held(query, user, timezone.now())


@transaction.atomic
def query_claim(*, query: Query, user: AbstractBaseUser) -> Query:
    """Lock a particular pending query (opened by its URL) for ``user``; QueryLocked if someone else holds it."""
    query = Query.objects.select_for_update(of=("self",)).select_related("round__project").get(pk=query.pk)
    query_claim_check(query=query, user=user)
    _take_lock(query, user, timezone.now())
    query.save(update_fields=["assignee", "locked_until"])
    return query


def mask_dice(suggested: np.ndarray, labeled: np.ndarray, within: np.ndarray | None = None) -> float | None:
    """Dice of two partial index masks: 2·|agreeing labeled pixels| / (|suggested| + |labeled|).

    A pixel counts in a mask when it is not 255; it agrees when both masks give
    it the same class. A suggestion covering half the pixels perfectly scores
    2/3, so the number reflects how much of the final label the pre-fill saved.
    None (n/a) when the suggestion labels nothing inside ``within``: an empty
    suggestion pre-filled nothing to be right or wrong about, and a 0 for it
    would drag a round's median down for the model's caution, not its errors.
    """
    has_s = suggested != IGNORE_INDEX
    has_l = labeled != IGNORE_INDEX
    if within is not None:
        has_s &= within
        has_l &= within
    if not has_s.any():
        return None
    denominator = int(has_s.sum()) + int(has_l.sum())
    agree = int((has_s & has_l & (suggested == labeled)).sum())
    return 2.0 * agree / denominator


def _suggestion_dice(query: Query, mask: np.ndarray) -> float | None:
    suggestion = query_suggestion(query=query)
    if suggestion is None:
        return None
    try:
        with suggestion.mask.open("rb") as handle:
            suggested = read_mask(handle.read(), size=mask.shape[::-1], num_classes=IGNORE_INDEX)
    except (OSError, InvalidImage):
        return None  # a broken suggestion file must not block a submit
    return mask_dice(suggested, mask, read_region(query=query))


def _base_mask(*, image: Image, query: Query, base_version: int) -> np.ndarray:
    """The whole-image mask of the version a save builds on; all void for version 0 (or one not in its lane)."""
    base = annotation_lane(image=image, query=query).filter(version=int(base_version)).first() \
        if int(base_version) > 0 else None
    if base is not None:
        try:
            with base.mask.open("rb") as handle:
                return read_mask(handle.read(), size=(image.width, image.height), num_classes=IGNORE_INDEX).copy()
        except (OSError, InvalidImage):
            pass  # an unreadable base: the staleness check or the annotator's reload sorts it out
    return np.full((image.height, image.width), IGNORE_INDEX, dtype=np.uint8)


def _read_upload(*, query: Query, image: Image, mask_png: bytes, base_version: int, num_classes: int) -> np.ndarray:
    """The uploaded mask as the whole image's: a tile query's upload is the tile, written into its base version."""
    tile = query_tile(query=query)
    if tile is None:
        return read_mask(mask_png, size=(image.width, image.height), num_classes=num_classes)
    part = read_mask(mask_png, size=(tile.width, tile.height), num_classes=num_classes)
    whole = _base_mask(image=image, query=query, base_version=base_version)
    whole[tile.slices] = part
    return whole


def annotation_save(
    *,
    query: Query,
    user: AbstractBaseUser,
    mask_png: bytes,
    base_version: int,
    submit: bool = False,
    time_spent: float = 0.0,
) -> SaveResult:
    """Store the annotator's mask of ``query``'s image as a new version (a draft, or the submission).

    ``base_version`` is the image's version the annotator started from (0 for
    none). For a tile query ``mask_png`` is the tile's mask (see Tiles above).
    ``time_spent`` is the active time since the previous save of this
    query; it is booked on the query even when an identical draft is not stored.
    Submitting marks the query done, scores the pre-filled suggestion against
    the result (Dice inside the query's region) and closes the round when it
    was the last pending query.
    """
    query = Query.objects.select_related("round__project", "image").get(pk=query.pk)
    project, image = query.round.project, query.image
    _require_member(project, user)
    seconds = _clean_seconds(time_spent)
    try:
        mask = _read_upload(query=query, image=image, mask_png=mask_png, base_version=base_version,
                            num_classes=project.classes.count())
    except InvalidImage as exc:
        raise InvalidMask(f"The mask was not saved: {exc}") from exc
    data = encode_png(mask)  # canonical bytes: the checksum then identifies the content
    checksum = sha256_bytes(data)
    dice = _suggestion_dice(query, mask) if submit else None
    stored = None
    closed_round = None
    try:
        with transaction.atomic():
            if submit:
                round_ = Round.objects.select_for_update().get(pk=query.round_id)
            query = Query.objects.select_for_update(of=("self",)).select_related("round").get(pk=query.pk)
            if query.status != Query.Status.PENDING:
                raise Conflict(f"This query was {query.get_status_display().lower()} already.")
            if submit and round_.state != Round.State.LABELING:
                # The lead closed the round early: keep the work as a draft, then say why it was not submitted.
                closed_round, submit, dice = round_, False, None
            now = timezone.now()
            _take_lock(query, user, now)
            Image.objects.select_for_update().only("id").get(pk=image.pk)  # serialises version numbers per image
            # The version this query builds on (the copies of an agreement pair do not see each other's).
            latest = annotation_lane(image=image, query=query).order_by("-version").first()
            latest_version = latest.version if latest else 0
            top_version = image.annotations.aggregate(top=Max("version"))["top"] or 0
            if int(base_version) != latest_version:
                who, same_user = _saved_by(latest, user)
                raise StaleVersion(
                    f"Version {latest_version} of this image was saved{who} after you opened version "
                    f"{base_version}; merge or reload before saving.",
                    latest=latest, same_user=same_user,
                )
            query.time_spent_seconds += seconds
            fields = ["assignee", "locked_until", "time_spent_seconds"]
            if not submit and latest is not None and latest.mask_checksum == checksum:
                query.save(update_fields=fields)
                result = SaveResult(annotation=latest, created=False)
            else:
                annotation = Annotation(
                    image=image, query=query, version=top_version + 1, parent=latest, author=user,
                    mask_checksum=checksum, time_spent_seconds=seconds, is_submitted=submit,
                    labeled_pixels=int((mask != IGNORE_INDEX).sum()), suggestion_dice=dice,
                )
                annotation.mask.save(f"image{image.pk}_v{annotation.version}.png", ContentFile(data), save=False)
                stored = annotation.mask
                annotation.save()
                if submit:
                    resubmitted = query.returned_to_id is not None
                    query.status, query.submitted_at, query.locked_until = Query.Status.SUBMITTED, now, None
                    query.returned_to = None
                    fields += ["status", "submitted_at", "returned_to"]
                query.save(update_fields=fields)
                if submit:  # to a reviewer, or the agreement of a completed pair (annotator/services/review.py)
                    review_after_submit(query=query, annotation=annotation, resubmitted=resubmitted)
                next_round = round_close_if_complete(round_=round_) if submit else None
                result = SaveResult(annotation=annotation, created=True, next_round=next_round)
    except IntegrityError as exc:  # the unique (image, version) constraint: a concurrent save won
        if stored is not None:
            stored.storage.delete(stored.name)
        latest = image.annotations.select_related("author").order_by("-version").first()
        raise StaleVersion("Another save of this image happened at the same moment; merge or reload.",
                           latest=latest, same_user=_saved_by(latest, user)[1]) from exc
    except BaseException:
        if stored is not None:
            stored.storage.delete(stored.name)
        raise
    if closed_round is not None:
        raise RoundClosed(
            f"Round {closed_round.number} was closed; your work is kept as draft version "
            f"{result.annotation.version} but can no longer be submitted.",
            saved=result,
        )
    return result


@transaction.atomic
def query_skip(*, query: Query, user: AbstractBaseUser, reason: str, time_spent: float = 0.0) -> Round | None:
    """Give up on a query with a reason the lead can read; returns the next round if this completed one."""
    reason = (reason or "").strip()
    if not reason:
        raise ServiceError("Say why you skip this query (e.g. 'image too dark', 'unsure about the classes').")
    round_ = Round.objects.select_for_update().get(pk=query.round_id)
    query = Query.objects.select_for_update(of=("self",)).select_related("round__project").get(pk=query.pk)
    _require_member(query.round.project, user)
    if query.status != Query.Status.PENDING:
        raise Conflict(f"This query was {query.get_status_display().lower()} already.")
    if round_.state != Round.State.LABELING:
        raise Conflict(f"Round {round_.number} is not open for labeling.")
    now = timezone.now()
    _take_lock(query, user, now)
    query.status, query.skip_reason, query.locked_until = Query.Status.SKIPPED, reason[:255], None
    query.time_spent_seconds += _clean_seconds(time_spent)
    query.save(update_fields=["status", "skip_reason", "assignee", "locked_until", "time_spent_seconds"])
    return round_close_if_complete(round_=round_)


@transaction.atomic
def query_release(*, query: Query, user: AbstractBaseUser, time_spent: float = 0.0) -> Query:
    """Hand a query back to the queue (the annotator leaves it); a no-op unless ``user`` holds it."""
    query = Query.objects.select_for_update(of=("self",)).select_related("round__project").get(pk=query.pk)
    _require_member(query.round.project, user)
    if query.status == Query.Status.PENDING and query.assignee_id == user.pk:
        query.assignee, query.locked_until = None, None
        query.time_spent_seconds += _clean_seconds(time_spent)
        query.save(update_fields=["assignee", "locked_until", "time_spent_seconds"])
    return query
