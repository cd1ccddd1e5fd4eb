"""Reads for review and agreement: who may review, which version a query builds on, the review queue, the dashboard.

The writes are all in :mod:`annotator.services.review`; the one rule of what
trains the model is in :func:`annotator.services.round_data.latest_labels`.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from .models import Agreement, Annotation, Image, Membership, Project, Query, Review
from .selectors import membership_role

REVIEW_ROLES = (Membership.Role.LEAD, Membership.Role.REVIEWER)


def membership_can_review(*, project: Project, user: AbstractBaseUser) -> bool:
    """Leads and reviewers review (staff count as leads)."""
    return membership_role(project=project, user=user) in REVIEW_ROLES


def paired_raw_versions() -> Q:
    """Versions an annotator saved on one copy of an agreement pair: private to that copy until the pair merges."""
    in_pair = Q(query__replica_of__isnull=False) | Exists(Query.objects.filter(replica_of=OuterRef("query_id")))
    return Q(origin=Annotation.Origin.ANNOTATOR) & in_pair


def annotation_lane(*, image: Image, query: Query | None = None) -> QuerySet[Annotation]:
    """The versions of ``image`` that ``query`` builds on (saves check their base version against the newest).

    Every version of the image, except what annotators saved on the copies of an
    agreement pair: each copy sees only its own, so the two masks stay
    independent; everybody sees the pair's merge once it exists.
    """
    versions = image.annotations.select_related("author")
    hidden = paired_raw_versions()
    if query is not None:
        hidden &= ~Q(query_id=query.pk)
    return versions.exclude(hidden)


def query_latest_annotation(*, query: Query) -> Annotation | None:
    return annotation_lane(image=query.image, query=query).order_by("-version").first()


def query_pair(query: Query) -> tuple[Query, Query] | None:
    """(first, replica) when ``query`` is one copy of an agreement pair."""
    if query.replica_of_id is not None:
        return query.replica_of, query
    replica = Query.objects.filter(replica_of=query).first()
    return (query, replica) if replica is not None else None


def review_rejection_for(*, query: Query) -> Review | None:
    """The rejection a query waits to be fixed for (shown on its annotator's labeling page)."""
    if query.returned_to_id is None:
        return None
    first = query.replica_of_id or query.pk
    return (Review.objects.filter(query_id=first, state=Review.State.REJECTED).select_related("reviewer")
            .order_by("-decided_at", "-pk").first())


def returned_queries(*, project: Project, user: AbstractBaseUser) -> list[tuple[Query, Review | None]]:
    """The user's rejected queries waiting for a fix, with the rejection of each."""
    queries = (Query.objects.filter(round__project=project, returned_to=user, status=Query.Status.PENDING)
               .select_related("image", "round").order_by("priority", "pk"))
    return [(query, review_rejection_for(query=query)) for query in queries]


def review_list(*, project: Project, state: str | None = Review.State.PENDING) -> QuerySet[Review]:
    reviews = (Review.objects.filter(query__round__project=project)
               .select_related("query__image", "query__round", "annotation__author", "reviewer", "agreement"))
    if state:
        reviews = reviews.filter(state=state)
    return reviews.order_by("created_at", "pk")


def review_annotators(review: Review) -> list[Annotation]:
    """The submitted annotator versions a review is about: one, or both masks of a pair."""
    if review.agreement_id is not None:
        return [review.agreement.first, review.agreement.second]
    return [review.annotation]


# --- Dashboard ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnnotatorReview:
    username: str
    reviewed: int
    accepted: int
    fixed: int
    rejected: int
    pending: int

    @property
    def acceptance_rate(self) -> float | None:
        """Accepted as submitted, of the decided reviews (a fix is not an acceptance)."""
        decided = self.accepted + self.fixed + self.rejected
        return self.accepted / decided if decided else None


@dataclass(frozen=True)
class AnnotatorAgreement:
    username: str
    pairs: int
    mean_iou: float | None
    boundary_f: float | None
    passed: int


@dataclass(frozen=True)
class ClassAgreement:
    name: str
    pairs: int  # pairs in which either annotator used the class
    mean_iou: float | None


@dataclass
class ReviewSummary:
    review_mode: str
    training_source: str
    waiting: int = 0
    oldest_wait_seconds: float | None = None
    median_wait_seconds: float | None = None
    waiting_by_round: dict[int, int] = field(default_factory=dict)
    decided: int = 0
    annotators: list[AnnotatorReview] = field(default_factory=list)
    agreement_pairs: int = 0
    agreement_passed: int = 0
    agreement_annotators: list[AnnotatorAgreement] = field(default_factory=list)
    agreement_classes: list[ClassAgreement] = field(default_factory=list)

    @property
    def is_active(self) -> bool:
        return self.review_mode != "off" or self.agreement_pairs > 0 or self.waiting > 0 or self.decided > 0


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def review_summary(*, project: Project, now: datetime | None = None) -> ReviewSummary:
    """What the dashboard's review panel shows: the waiting reviews and for how long, acceptance per
    annotator, agreement per annotator and per class."""
    now = now or timezone.now()
    summary = ReviewSummary(review_mode=project.review_mode, training_source=project.training_source)
    reviews = list(Review.objects.filter(query__round__project=project)
                   .select_related("annotation__author", "query__round", "agreement__first__author",
                                   "agreement__second__author"))
    waits = []
    per_user: dict[str, dict[str, int]] = {}
    for review in reviews:
        if review.state == Review.State.PENDING:
            waits.append((now - review.created_at).total_seconds())
            number = review.query.round.number
            summary.waiting_by_round[number] = summary.waiting_by_round.get(number, 0) + 1
        else:
            summary.decided += 1
        for annotation in review_annotators(review):
            name = annotation.author.get_username() if annotation.author else "(deleted user)"
            entry = per_user.setdefault(name, dict.fromkeys(("reviewed", "accepted", "fixed", "rejected", "pending"), 0))
            entry["reviewed"] += 1
            entry[review.state] += 1
    summary.waiting = len(waits)
    if waits:
        summary.oldest_wait_seconds = max(waits)
        summary.median_wait_seconds = statistics.median(waits)
    summary.annotators = [AnnotatorReview(username=name, **entry) for name, entry in sorted(per_user.items())]

    # Agreement: the newest comparison of each pair (a rejected pair compared again counts once).
    newest: dict[int, Agreement] = {}
    for agreement in (Agreement.objects.filter(query__round__project=project)
                      .select_related("first__author", "second__author").order_by("created_at", "pk")):
        newest[agreement.query_id] = agreement
    pairs = list(newest.values())
    summary.agreement_pairs = len(pairs)
    summary.agreement_passed = sum(a.passed for a in pairs)
    by_user: dict[str, dict[str, list]] = {}
    for agreement in pairs:
        for annotation in (agreement.first, agreement.second):
            name = annotation.author.get_username() if annotation.author else "(deleted user)"
            entry = by_user.setdefault(name, {"iou": [], "bf": [], "passed": []})
            entry["iou"].append(agreement.score)
            if agreement.boundary_f is not None:
                entry["bf"].append(agreement.boundary_f)
            entry["passed"].append(agreement.passed)
    summary.agreement_annotators = [
        AnnotatorAgreement(username=name, pairs=len(entry["iou"]), mean_iou=_mean(entry["iou"]),
                           boundary_f=_mean(entry["bf"]), passed=sum(entry["passed"]))
        for name, entry in sorted(by_user.items())
    ]
    names = dict(project.classes.values_list("index", "name"))
    per_class: dict[int, list[float]] = {}
    for agreement in pairs:
        for index, value in (agreement.per_class_iou or {}).items():
            if value is not None:
                per_class.setdefault(int(index), []).append(float(value))
    summary.agreement_classes = [
        ClassAgreement(name=names.get(index, str(index)), pairs=len(values), mean_iou=_mean(values))
        for index, values in sorted(per_class.items())
    ]
    return summary
