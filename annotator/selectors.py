"""Reads: who may see what, the lists the pages and the API show, and the per-round metrics of a project."""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Case, CharField, Count, Exists, Max, OuterRef, Q, QuerySet, Subquery, Sum, Value, When

from .models import Annotation, Image, Job, Membership, Project, Query, Round, Suggestion
from .selectors_labeled import LabeledPixels, labeled_pixels
from .services.round_data import MIN_VALIDATION_LABELS


def project_list_for_user(*, user: AbstractBaseUser) -> QuerySet[Project]:
    """Projects the user belongs to (every project for staff), with role, current round and open queries."""
    projects = Project.objects.all() if user.is_staff else Project.objects.filter(memberships__user=user)
    role = Membership.objects.filter(project=OuterRef("pk"), user=user).values("role")[:1]
    return projects.annotate(
        role=Subquery(role),
        current_round=Max("rounds__number"),
        open_queries=Count("rounds__queries", filter=Q(rounds__queries__status=Query.Status.PENDING), distinct=True),
    ).order_by("name")


def project_ids_for_user(*, user: AbstractBaseUser) -> QuerySet:
    """Ids of the projects a user may read, as a subquery for ``project__in=``."""
    if user.is_staff:
        return Project.objects.values("pk")
    return Membership.objects.filter(user=user).values("project_id")


def membership_role(*, project: Project, user: AbstractBaseUser) -> str | None:
    """'lead', 'annotator', or None; staff count as leads everywhere."""
    if not user.is_authenticated:
        return None
    if user.is_staff:
        return Membership.Role.LEAD
    return Membership.objects.filter(project=project, user=user).values_list("role", flat=True).first()


def membership_list(*, project: Project) -> QuerySet[Membership]:
    return project.memberships.select_related("user").order_by("-role", "user__username")


def image_split_counts(*, project: Project) -> dict[str, dict[str, int]]:
    """{domain: {split: count}} with ``labeled`` (images with ground truth) per domain."""
    counts: dict[str, dict[str, int]] = {d: {s: 0 for s in Image.Split.values} | {"labeled": 0, "total": 0}
                                         for d in Image.Domain.values}
    rows = project.images.values("domain", "split").annotate(n=Count("pk"), gt=Count("pk", filter=~Q(gt_mask="")))
    for row in rows:
        counts[row["domain"]][row["split"]] = row["n"]
        counts[row["domain"]]["labeled"] += row["gt"]
        counts[row["domain"]]["total"] += row["n"]
    return counts


def round_current(*, project: Project) -> Round | None:
    return project.rounds.order_by("-number").first()


# --- Images: status, overlays, validation --------------------------------------------------------------------

# What the image browser shows and filters by, in the order it decides them: a source image is "source"
# whatever else holds, a validation image "validation" (labeled or not), and so on.
IMAGE_STATUSES = ("unlabeled", "queried", "labeled", "validation", "source", "test")


def image_list_with_status(*, project: Project, status: str = "", domain: str = "") -> QuerySet[Image]:
    """The project's images annotated with ``status`` (one of :data:`IMAGE_STATUSES`) and ``has_label``.

    queried: a pending query in a round that is still selecting or labeling;
    labeled: a submitted label from an annotator, or a mask imported with it.
    ``has_label`` says the same for validation and source images.
    """
    pending = Query.objects.filter(image=OuterRef("pk"), status=Query.Status.PENDING,
                                   round__state__in=[Round.State.SELECTING, Round.State.LABELING])
    submitted = Annotation.objects.filter(image=OuterRef("pk"), is_submitted=True)
    images = project.images.annotate(has_label=Exists(submitted) | ~Q(gt_mask="")).annotate(status=Case(
        When(domain=Image.Domain.SOURCE, then=Value("source")),
        When(split=Image.Split.VAL, then=Value("validation")),
        When(split=Image.Split.TEST, then=Value("test")),
        When(Exists(pending), then=Value("queried")),
        When(has_label=True, then=Value("labeled")),
        default=Value("unlabeled"), output_field=CharField(),
    ))
    if status:
        images = images.filter(status=status)
    if domain:
        images = images.filter(domain=domain)
    return images.order_by("original_name", "pk")


def image_status_counts(*, project: Project) -> dict[str, int]:
    counts = dict.fromkeys(IMAGE_STATUSES, 0)
    for row in image_list_with_status(project=project).order_by().values("status").annotate(n=Count("pk")):
        counts[row["status"]] = row["n"]
    return counts


@dataclass(frozen=True)
class ImageOverlays:
    """What the read-only image page draws over an image: its latest mask and the latest suggestion for it."""

    mask: Annotation | None  # the newest saved version (a draft included)
    ground_truth: bool  # no version yet, but a mask came with the import
    suggestion: Suggestion | None


def image_overlays(*, image: Image) -> ImageOverlays:
    mask = image.annotations.select_related("author").order_by("-version").first()
    suggestion = (Suggestion.objects.filter(query__image=image).select_related("model_version", "query__round")
                  .order_by("-created_at", "-pk").first())
    return ImageOverlays(mask=mask, ground_truth=mask is None and bool(image.gt_mask), suggestion=suggestion)


@dataclass(frozen=True)
class ValidationProgress:
    """How far the project's validation is: imported masks, or labels made in the app (counted from ``needed``)."""

    images: int
    imported: int  # validation images that came with a mask
    labeled: int  # validation images with a submitted label from the app
    needed: int

    @property
    def ready(self) -> bool:
        return self.imported > 0 or (self.images > 0 and self.labeled >= self.needed)


def validation_progress(*, project: Project) -> ValidationProgress:
    validation = project.images.filter(split=Image.Split.VAL)
    return ValidationProgress(
        images=validation.count(), imported=validation.exclude(gt_mask="").count(),
        labeled=validation.filter(annotations__is_submitted=True).distinct().count(),
        needed=MIN_VALIDATION_LABELS,
    )


def job_list(*, project: Project, limit: int = 50) -> list[Job]:
    return list(project.jobs.select_related("round").order_by("-created_at")[:limit])


def job_error_for(*, job: Job, user: AbstractBaseUser | None) -> str:
    """Why ``job`` failed, as ``user`` may read it: the traceback (server paths) for staff, else its one line."""
    if not job.error or (user is not None and user.is_staff):
        return job.error
    return job.message or "failed"


# --- Metrics -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoundMetrics:
    """One round: the model trained at its start, and the labels collected during it."""

    number: int
    state: str
    model_version_id: int | None
    model_version: int | None
    miou: float | None
    pixel_accuracy: float | None
    per_class_iou: dict[str, float | None]
    labeled_target_fraction: float | None  # of the pool, labeled before this round: what its model trained on
    labeled_target_pixels: int | None
    train_seconds: float | None
    strategy: str | None
    diversity_weight: float | None
    budget_planned_pixels: int
    labeled_pixels: int  # labeled in this round's answers (annotator.selectors_labeled): adds up to the total
    queries: int
    submitted: int
    skipped: int
    pending: int
    suggestion_precision: float | None
    suggestion_coverage: float | None
    suggestion_dice_mean: float | None
    suggestion_dice_median: float | None
    suggestion_dice_count: int


@dataclass(frozen=True)
class AnnotatorThroughput:
    username: str
    submitted: int
    skipped: int
    active_hours: float
    queries_per_hour: float | None
    median_seconds: float | None
    labeled_pixels: int


@dataclass(frozen=True)
class ProjectMetrics:
    classes: list[str]
    rounds: list[RoundMetrics]
    annotators: list[AnnotatorThroughput]
    baseline_miou: float | None  # round 0: source only (+ domain adaptation), no target label
    latest_miou: float | None
    target_pool_pixels: int
    validation_images: int
    labeled_pixels_total: int  # every round's labeled_pixels together (annotator.selectors_labeled)
    labeled_fraction: float | None  # labeled_pixels_total / target_pool_pixels
    budget_note: str = ""
    rounds_total: int = 0
    notes: list[str] = field(default_factory=list)


def _float(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _round_metrics(round_: Round, model, dice: list[float], counts: dict, suggestion_stats: dict,
                   labeled: LabeledPixels) -> RoundMetrics:
    metrics = (model.metrics or {}) if model is not None else {}
    stats = round_.stats or {}
    precision = _float(stats.get("suggestion_precision"))
    coverage = _float(stats.get("suggestion_coverage"))
    # The round loop writes the summary into Round.stats; rounds written before it
    # (or by hand) fall back to the mean over their Suggestion rows.
    if precision is None:
        precision = _float(suggestion_stats.get("precision"))
    if coverage is None:
        coverage = _float(suggestion_stats.get("coverage"))
    trained_on = labeled.before(round_.number)
    return RoundMetrics(
        number=round_.number, state=round_.state,
        model_version_id=model.pk if model else None, model_version=model.version if model else None,
        miou=_float(metrics.get("miou")), pixel_accuracy=_float(metrics.get("pixel_accuracy")),
        per_class_iou={str(k): _float(v) for k, v in (metrics.get("per_class_iou") or {}).items()},
        labeled_target_fraction=labeled.share(trained_on), labeled_target_pixels=trained_on,
        train_seconds=_float(metrics.get("train_seconds")),
        strategy=stats.get("strategy"), diversity_weight=_float(stats.get("diversity_weight")),
        budget_planned_pixels=round_.budget_planned_pixels,
        labeled_pixels=labeled.by_round.get(round_.number, 0),
        queries=counts.get("total", 0), submitted=counts.get("submitted", 0), skipped=counts.get("skipped", 0),
        pending=counts.get("pending", 0),
        suggestion_precision=precision, suggestion_coverage=coverage,
        suggestion_dice_mean=statistics.fmean(dice) if dice else None,
        suggestion_dice_median=statistics.median(dice) if dice else None,
        suggestion_dice_count=len(dice),
    )


def project_metrics(*, project: Project) -> ProjectMetrics:
    """Everything the dashboard and ``/api/projects/{id}/metrics/`` show, in a handful of queries."""
    from models_store.models import ModelVersion

    rounds = list(project.rounds.order_by("number"))
    models = {mv.round_id: mv for mv in ModelVersion.objects.filter(project=project, round__isnull=False)}
    counts = {
        row["round_id"]: row
        for row in Query.objects.filter(round__project=project).values("round_id").annotate(
            total=Count("pk"),
            submitted=Count("pk", filter=Q(status=Query.Status.SUBMITTED)),
            skipped=Count("pk", filter=Q(status=Query.Status.SKIPPED)),
            pending=Count("pk", filter=Q(status=Query.Status.PENDING)),
        )
    }
    dice: dict[int, list[float]] = {}
    for round_id, value in Annotation.objects.filter(
        query__round__project=project, is_submitted=True, suggestion_dice__isnull=False
    ).values_list("query__round_id", "suggestion_dice"):
        dice.setdefault(round_id, []).append(float(value))
    suggestion_stats: dict[int, dict] = {}
    for round_id, precision, coverage in Suggestion.objects.filter(query__round__project=project).values_list(
        "query__round_id", "precision", "coverage"
    ):
        entry = suggestion_stats.setdefault(round_id, {"p": [], "c": []})
        if precision is not None:
            entry["p"].append(precision)
        entry["c"].append(coverage)
    suggestion_means = {
        rid: {"precision": statistics.fmean(e["p"]) if e["p"] else None,
              "coverage": statistics.fmean(e["c"]) if e["c"] else None}
        for rid, e in suggestion_stats.items()
    }
    labeled = labeled_pixels(project=project)
    round_rows = [
        _round_metrics(r, models.get(r.pk), dice.get(r.pk, []), counts.get(r.pk, {}), suggestion_means.get(r.pk, {}),
                       labeled)
        for r in rounds
    ]
    with_model = [r for r in round_rows if r.miou is not None]
    notes = []
    if rounds and rounds[0].number == 0 and round_rows[0].miou is None:
        cold = rounds[0].state != Round.State.TRAINING and rounds[0].model_version_id is None
        notes.append("Round 0 has no model: without labels to train on, it asks for a diverse first set; the "
                     "first model trains in round 1 from those labels." if cold else
                     "Round 0 has no evaluated model yet: the baseline appears once its training finishes.")
    return ProjectMetrics(
        classes=list(project.classes.order_by("index").values_list("name", flat=True)),
        rounds=round_rows,
        annotators=annotator_throughput(project=project, labeled=labeled),
        baseline_miou=next((r.miou for r in round_rows if r.number == 0), None),
        latest_miou=with_model[-1].miou if with_model else None,
        target_pool_pixels=labeled.pool_pixels,
        validation_images=project.images.filter(split=Image.Split.VAL).count(),
        labeled_pixels_total=labeled.total, labeled_fraction=labeled.share(labeled.total),
        budget_note=f"{project.budget_per_round:g} {project.get_budget_unit_display().lower()}",
        rounds_total=project.rounds_total,
        notes=notes,
    )


def annotator_throughput(*, project: Project, labeled: LabeledPixels | None = None) -> list[AnnotatorThroughput]:
    """Per person: submitted queries, active hours (time on task), queries per active hour, median time, and
    the pixels their versions added (annotator.selectors_labeled)."""
    labeled = labeled or labeled_pixels(project=project)
    per_user: dict[str, dict] = {}
    queries = (
        Query.objects.filter(round__project=project, status__in=[Query.Status.SUBMITTED, Query.Status.SKIPPED])
        .select_related("assignee")
        .annotate(annotation_seconds=Sum("annotations__time_spent_seconds", filter=Q(annotations__is_submitted=True)))
    )
    submitted_authors = dict(
        Annotation.objects.filter(query__round__project=project, is_submitted=True)
        .values_list("query_id", "author__username")
    )
    for query in queries:
        name = query.assignee.get_username() if query.assignee else submitted_authors.get(query.pk)
        if not name:
            continue
        entry = per_user.setdefault(name, {"times": [], "submitted": 0, "skipped": 0})
        if query.status == Query.Status.SKIPPED:
            entry["skipped"] += 1
            continue
        # Query.time_spent_seconds is the time on task the labeling page records;
        # older rows only have it on their annotations.
        seconds = query.time_spent_seconds or float(query.annotation_seconds or 0.0)
        entry["times"].append(seconds)
        entry["submitted"] += 1
    rows = []
    for name, entry in sorted(per_user.items()):
        hours = sum(entry["times"]) / 3600
        rows.append(AnnotatorThroughput(
            username=name, submitted=entry["submitted"], skipped=entry["skipped"], active_hours=hours,
            queries_per_hour=entry["submitted"] / hours if hours > 0 else None,
            median_seconds=statistics.median(entry["times"]) if entry["times"] else None,
            labeled_pixels=labeled.by_author.get(name, 0),
        ))
    return rows
