"""Review and agreement: every state change of a review, a pair of annotators, and a rejected query.

Review. With the project's review mode on, a submitted version gets a
:class:`~annotator.models.Review` (every submission, or a deterministic
sample; a resubmission after a rejection always). A reviewer accepts it,
fixes it (their corrected mask is a new version) or rejects it with a
comment: the query then goes back, pending, to the annotator who submitted
it and to nobody else (``Query.returned_to``). A review's state moves once.

Agreement. ``Project.agreement_percent`` of each round's label queries get a
second copy (``Query.replica_of``) that another annotator labels without
seeing the first (:func:`annotator.selectors_review.annotation_lane`). When
both copies are submitted, :func:`learning.agreement.agreement_score` compares
them inside the query; the merge (agreed pixels kept, disputed ones void) is
stored as a version of its own, and a pair below the threshold goes to review.

What trains. Nothing here decides it: the one rule, on these rows, is
:func:`annotator.services.round_data.latest_labels`.

Concurrency, as for saves (:mod:`annotator.services.labeling`): each change
locks the round, the review and the query rows (in that order, as submits
do), so two reviewers deciding one review, or a reviewer and an annotator
acting on one query, cannot both succeed: the later one gets a
:class:`Conflict` (HTTP 409) and its mask is not stored over the other's. A
fix names the version it started from and is refused with
:class:`~annotator.services.labeling.StaleVersion` when another was saved in
between. A round waits for its reviews before it closes when
``Project.review_blocks_round`` says so (:func:`review_holds_round`).
"""
from __future__ import annotations

import hashlib
import math

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from learning.agreement import agreement_score, merge_masks
from learning.labels import IGNORE_INDEX

from ..imaging import InvalidImage, encode_png, read_mask, sha256_bytes
from ..models import Agreement, Annotation, Image, Project, Query, Review, Round, Suggestion
from ..selectors_labeling import read_region
from ..selectors_review import annotation_lane, membership_can_review, query_pair
from .errors import Conflict, PermissionDenied, ServiceError
from .rounds import round_close_if_complete

MAX_MARKS = 200
MAX_COMMENT = 2000


# --- Agreement copies (at round open) ----------------------------------------------------------------------


def agreement_replicas_create(*, round_: Round) -> list[Query]:
    """Give ``agreement_percent`` of the round's label queries a second copy for another annotator.

    Called by :func:`annotator.services.rounds.round_open` inside its
    transaction, once per round. Which queries is random but reproducible (seeded
    by the round); the copy shares the region and the suggestion files.
    """
    percent = round_.project.agreement_percent
    originals = list(round_.queries.filter(kind=Query.Kind.LABEL, replica_of__isnull=True, replicas__isnull=True)
                     .order_by("pk"))
    if percent <= 0 or not originals:
        return []
    count = min(len(originals), math.ceil(len(originals) * percent / 100))
    chosen = np.random.default_rng([round_.project_id, round_.number]).choice(len(originals), count, replace=False)
    replicas = []
    for index in sorted(chosen.tolist()):
        first = originals[index]
        replica = Query.objects.create(
            round=round_, image=first.image, region_key=first.region_key, region_mask=first.region_mask.name,
            region_bbox=first.region_bbox, pixels=first.pixels, score=first.score, priority=first.priority,
            kind=first.kind, replica_of=first,
        )
        for suggestion in first.suggestions.all():
            Suggestion.objects.create(query=replica, model_version=suggestion.model_version,
                                      mask=suggestion.mask.name, confidence=suggestion.confidence.name,
                                      coverage=suggestion.coverage, precision=suggestion.precision)
        replicas.append(replica)
    return replicas


# --- After a submit ------------------------------------------------------------------------------------------


def _sampled(query: Query, percent: int) -> bool:
    """A reproducible coin for ``query``: the same query is sampled whoever asks and however often."""
    digest = hashlib.sha256(f"review-sample:{query.pk}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < percent / 100


def review_reason(*, project: Project, query: Query, resubmitted: bool) -> str | None:
    """Why a submission of ``query`` is reviewed, or None when it is not."""
    if resubmitted:
        return Review.Reason.RESUBMITTED
    if project.review_mode == Project.ReviewMode.ALL:
        return Review.Reason.ALL
    if project.review_mode == Project.ReviewMode.SAMPLE and _sampled(query, project.review_sample_percent):
        return Review.Reason.SAMPLE
    return None


def review_after_submit(*, query: Query, annotation: Annotation, resubmitted: bool) -> Review | Agreement | None:
    """Route a submission: a review, the agreement of a completed pair, or nothing.

    Called by :func:`annotator.services.labeling.annotation_save` inside the
    submit's transaction, with the round, the query and the image rows locked.
    """
    project = query.round.project
    pair = query_pair(query)
    if pair is not None:
        return _pair_submitted(project, pair, query)
    reason = review_reason(project=project, query=query, resubmitted=resubmitted)
    if reason is None:
        return None
    return Review.objects.create(query=query, annotation=annotation, reason=reason)


def _read(annotation: Annotation, image: Image) -> np.ndarray:
    return read_mask(annotation.mask.path, size=(image.width, image.height), num_classes=IGNORE_INDEX)


def _next_version(image: Image) -> int:
    return (image.annotations.aggregate(top=Max("version"))["top"] or 0) + 1


def _store_version(*, image: Image, query: Query, mask: np.ndarray, parent: Annotation | None, origin: str,
                   author: AbstractBaseUser | None, seconds: float = 0.0) -> Annotation:
    """A new submitted version of ``image`` (a merge or a reviewer's fix); the caller holds the image row lock."""
    data = encode_png(mask)
    annotation = Annotation(
        image=image, query=query, version=_next_version(image), parent=parent, author=author,
        mask_checksum=sha256_bytes(data), time_spent_seconds=seconds, is_submitted=True, origin=origin,
        labeled_pixels=int((mask != IGNORE_INDEX).sum()),
    )
    annotation.mask.save(f"image{image.pk}_v{annotation.version}.png", ContentFile(data), save=False)
    try:
        annotation.save()
    except BaseException:
        annotation.mask.storage.delete(annotation.mask.name)
        raise
    return annotation


def _submitted_version(query: Query) -> Annotation | None:
    return (query.annotations.filter(is_submitted=True, origin=Annotation.Origin.ANNOTATOR)
            .select_related("author").order_by("-version").first())


def _pair_submitted(project: Project, pair: tuple[Query, Query], just: Query) -> Agreement | None:
    """The second copy of a pair was submitted: compare the two masks, merge them, review when they disagree."""
    first, replica = pair
    other = replica if just.pk == first.pk else first
    other = Query.objects.select_for_update(of=("self",)).get(pk=other.pk)
    if other.status != Query.Status.SUBMITTED:
        return None  # the other annotator is not done yet: nothing trains from this pair meanwhile
    first = Query.objects.select_related("image", "round__project").get(pk=first.pk)
    image = first.image
    a, b = _submitted_version(first), _submitted_version(Query.objects.get(pk=replica.pk))
    mask_a, mask_b = _read(a, image), _read(b, image)
    region = read_region(query=first)
    if region is not None:  # score inside the query only: outside it both masks hold the same earlier labels
        mask_a, mask_b = np.where(region, mask_a, IGNORE_INDEX), np.where(region, mask_b, IGNORE_INDEX)
    score = agreement_score(mask_a, mask_b, project.classes.count(), tolerance=project.agreement_boundary_px)
    # Outside the query the merge keeps what everybody else sees of the image (labels of other queries too).
    base = annotation_lane(image=image).order_by("-version").first()
    merged = (_read(base, image).copy() if base is not None
              else np.full((image.height, image.width), IGNORE_INDEX, np.uint8))
    inside = region if region is not None else np.ones(merged.shape, bool)
    merged[inside] = merge_masks(mask_a, mask_b)[inside]
    merged_version = _store_version(image=image, query=first, mask=merged, parent=base,
                                    origin=Annotation.Origin.MERGE, author=None)
    passed = score.miou is not None and score.miou >= project.agreement_threshold
    agreement = Agreement.objects.create(
        query=first, first=a, second=b, merged=merged_version, score=score.miou or 0.0,
        per_class_iou={str(k): v for k, v in score.per_class_iou.items()}, boundary_f=score.boundary_f,
        passed=passed,
    )
    if not passed:
        Review.objects.create(query=first, annotation=merged_version, agreement=agreement,
                              reason=Review.Reason.DISAGREEMENT)
    return agreement


# --- Round closing ----------------------------------------------------------------------------------------


def review_holds_round(*, round_: Round) -> bool:
    """The round must not close yet: the project waits for reviews and one of its queries has one pending."""
    project = Project.objects.only("review_blocks_round").get(pk=round_.project_id)
    return project.review_blocks_round and Review.objects.filter(
        query__round=round_, state=Review.State.PENDING).exists()


# --- Decisions -------------------------------------------------------------------------------------------------


def _lock_review(review: Review, user: AbstractBaseUser) -> tuple[Review, Round]:
    """Lock the round, then the review (the order submits use); refuse a decided review or a non-reviewer."""
    round_id = Review.objects.filter(pk=review.pk).values_list("query__round_id", flat=True).first()
    if round_id is None:
        raise Conflict("This review no longer exists.")
    round_ = Round.objects.select_for_update().select_related("project").get(pk=round_id)
    review = (Review.objects.select_for_update(of=("self",))
              .select_related("query__image", "query__round__project", "annotation__author", "agreement")
              .get(pk=review.pk))
    project = round_.project
    if not membership_can_review(project=project, user=user):
        raise PermissionDenied("Only the project's leads and reviewers can review.")
    if review.state != Review.State.PENDING:
        who = f" by {review.reviewer}" if review.reviewer else ""
        raise Conflict(f"This review was {review.get_state_display().lower()}{who} already.")
    authors = {a.author_id for a in ([review.agreement.first, review.agreement.second]
                                     if review.agreement_id else [review.annotation])}
    if user.pk in authors and not user.is_staff:
        raise PermissionDenied("You cannot review your own mask: another reviewer has to.")
    return review, round_


def _decide(review: Review, user: AbstractBaseUser, state: str, comment: str) -> None:
    review.state, review.reviewer, review.decided_at = state, user, timezone.now()
    review.comment = (comment or "").strip()[:MAX_COMMENT]


@transaction.atomic
def review_accept(*, review: Review, user: AbstractBaseUser, comment: str = "") -> Review:
    """The submitted version is right as it is: it may train (and closes the round if it was the last wait)."""
    review, round_ = _lock_review(review, user)
    _decide(review, user, Review.State.ACCEPTED, comment)
    review.save(update_fields=["state", "reviewer", "decided_at", "comment"])
    round_close_if_complete(round_=round_)
    return review


def _clean_marks(marks, image: Image) -> list[list[int]]:
    cleaned = []
    for mark in list(marks or [])[:MAX_MARKS]:
        try:
            x, y = (int(round(float(v))) for v in mark[:2])
        except (TypeError, ValueError, IndexError):
            raise ServiceError("Each mark is a point [x, y] in image pixels.") from None
        if not (0 <= x < image.width and 0 <= y < image.height):
            raise ServiceError(f"Mark ({x}, {y}) lies outside the {image.width}×{image.height} image.")
        cleaned.append([x, y])
    return cleaned


@transaction.atomic
def review_reject(*, review: Review, user: AbstractBaseUser, comment: str, marks=()) -> Review:
    """Send the query back to its annotator (both copies to theirs, for a pair) with the reviewer's comment.

    The rejected version never trains. While the round is still labeling the
    query becomes pending again, reserved for that annotator; in a round that
    closed meanwhile nothing can be fixed any more and the rejection only
    keeps the mask out of training.
    """
    if not (comment or "").strip():
        raise ServiceError("Say what is wrong, so the annotator knows what to fix.")
    review, round_ = _lock_review(review, user)
    review.marks = _clean_marks(marks, review.query.image)
    _decide(review, user, Review.State.REJECTED, comment)
    review.save(update_fields=["state", "reviewer", "decided_at", "comment", "marks"])
    if round_.state == Round.State.LABELING:
        pair = query_pair(review.query)
        for query in pair if pair is not None else (review.query,):
            query = Query.objects.select_for_update(of=("self",)).get(pk=query.pk)
            submitted = _submitted_version(query)
            annotator = submitted.author if submitted is not None and submitted.author else query.assignee
            query.status, query.submitted_at, query.locked_until = Query.Status.PENDING, None, None
            query.assignee = query.returned_to = annotator
            query.save(update_fields=["status", "submitted_at", "locked_until", "assignee", "returned_to"])
    return review


def review_fix(*, review: Review, user: AbstractBaseUser, mask_png: bytes, base_version: int,
               comment: str = "", time_spent: float = 0.0) -> Review:
    """The reviewer corrects the mask: their version is stored (it trains), the review ends as fixed.

    ``base_version`` is the version the reviewer started from (the one under
    review); a version saved in between makes this a StaleVersion (409).
    """
    from .labeling import InvalidMask, StaleVersion, _clean_seconds

    fix = None
    try:
        with transaction.atomic():
            review, round_ = _lock_review(review, user)
            query = Query.objects.select_for_update(of=("self",)).get(pk=review.query_id)
            image = Image.objects.select_for_update().get(pk=query.image_id)
            try:
                mask = read_mask(mask_png, size=(image.width, image.height),
                                 num_classes=round_.project.classes.count())
            except InvalidImage as exc:
                raise InvalidMask(f"The fix was not saved: {exc}") from exc
            latest = annotation_lane(image=image, query=query).order_by("-version").first()
            latest_version = latest.version if latest else 0
            if int(base_version) != latest_version:
                raise StaleVersion(f"Version {latest_version} of this image was saved after you opened version "
                                   f"{base_version}; reload before fixing.", latest=latest)
            fix = _store_version(image=image, query=query, mask=mask, parent=latest,
                                 origin=Annotation.Origin.REVIEW, author=user, seconds=_clean_seconds(time_spent))
            _decide(review, user, Review.State.FIXED, comment)
            review.fix = fix
            review.save(update_fields=["state", "reviewer", "decided_at", "comment", "fix"])
            round_close_if_complete(round_=round_)
    except BaseException:
        if fix is not None:  # the row rolled back: its file must not stay behind
            fix.mask.storage.delete(fix.mask.name)
        raise
    return review
