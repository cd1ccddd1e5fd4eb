"""The round state machine: start a project, close a round, open the next one, retry a failed job.

Rounds only move forward (``Round.TRANSITIONS``). Every transition happens
here, under a row lock, and the background work it triggers is enqueued only
after the transaction commits. The work itself (train → evaluate → select →
suggest) is one round step, ``learning.round_step.propose_round`` after
training; the round worker services that run it and store its rows
(``annotator.services.round_training`` and ``annotator.services.round_selection``)
call back into :func:`round_mark_selecting`, :func:`round_open` and
:func:`round_finish`.
"""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from ..models import Image, Job, Project, Query, Round
from .errors import ServiceError
from .init_checkpoints import init_checkpoint_resolve
from .jobs import job_create, job_enqueue


def _enqueue_round_job(round_: Round) -> Job:
    # The task module imports services, not the reverse. A round without labels to train on (a cold
    # start) begins with selection.
    from learning.tasks import round_select, round_train

    job = job_create(kind=Job.Kind.ROUND, project=round_.project, round_=round_,
                     message=f"round {round_.number}: queued")
    job_enqueue(job=job, task=round_select if round_.state == Round.State.SELECTING else round_train)
    return job


def project_readiness(*, project: Project) -> list[str]:
    """What stops a project from starting, as sentences; empty when it can start.

    Classes and target images are all a project needs: labeled source
    images, masks imported with target images and validation masks are
    optional (without labels round 0 asks for a diverse first set; without
    validation masks the app sets validation images aside to be labeled).
    """
    problems = []
    if project.classes.count() < 2:
        problems.append("define at least two classes")
    if not project.images.filter(domain=Image.Domain.TARGET, split=Image.Split.POOL).exists():
        problems.append("import target images into the unlabeled pool")
    if project.init_checkpoint:  # set before the roots rule, or its file was removed since
        try:
            init_checkpoint_resolve(project.init_checkpoint, project=project)
        except ServiceError as exc:
            problems.append(str(exc))
    return problems


@transaction.atomic
def project_start(*, project: Project, user: AbstractBaseUser | None = None) -> Round:
    """Open round 0.

    With labeled data (source masks, or masks imported with pool images)
    round 0 trains first, then selects and suggests. Without any (a project
    of plain images) round 0 selects a diverse first set for people to label
    and the first model trains when those labels arrive. Either way, when no
    validation masks were imported, validation images are set aside now.
    """
    from .round_data import has_labels

    from .projects import project_refuse_if_archived

    project = Project.objects.select_for_update().get(pk=project.pk)
    project_refuse_if_archived(project)
    if project.has_started:
        raise ServiceError(f"{project.name} has started already")
    problems = project_readiness(project=project)
    if problems:
        raise ServiceError(f"{project.name} cannot start yet: " + "; ".join(problems))
    project.state = Project.State.ACTIVE
    project.save(update_fields=["state"])
    state = Round.State.TRAINING if has_labels(project) else Round.State.SELECTING
    round_ = Round.objects.create(project=project, number=0, state=state)
    validation_reserve(project=project, round_=round_)
    _enqueue_round_job(round_)
    return round_


# Never set aside more than this share of the pool for validation: the rest must remain to be labeled.
MAX_VALIDATION_SHARE = 0.3


def validation_reserve(*, project: Project, round_: Round) -> list[Query]:
    """Set aside a frozen random sample of pool images as validation images, each a whole-image query.

    Only when no validation image with a mask was imported. The sample is
    random (seeded by the project, so it is reproducible) rather than chosen
    by a model, so the mIoU it measures is unbiased; the images leave the
    pool for good: they never enter training or selection.
    """
    import numpy as np

    if project.validation_images == 0 or project.images.filter(split=Image.Split.VAL).exclude(gt_mask="").exists():
        return []
    # Pool images with imported masks are labels already: they stay training data.
    pool = list(project.images.filter(domain=Image.Domain.TARGET, split=Image.Split.POOL, gt_mask="")
                .order_by("pk").values_list("pk", flat=True))
    # A small pool still gets one validation image, as long as two remain to be labeled.
    count = min(project.validation_images, max(int(len(pool) >= 3), int(len(pool) * MAX_VALIDATION_SHARE)))
    if count == 0:
        return []
    chosen = sorted(np.random.default_rng(project.pk).choice(pool, size=count, replace=False).tolist())
    Image.objects.filter(pk__in=chosen).update(split=Image.Split.VAL)
    images = Image.objects.filter(pk__in=chosen).order_by("pk")
    return [Query.objects.create(round=round_, image=image, kind=Query.Kind.VALIDATION, pixels=image.pixels,
                                 priority=index) for index, image in enumerate(images)]


def _move(round_: Round, state: str) -> None:
    if not round_.can_move_to(state):
        raise ServiceError(f"round {round_.number} is {round_.state}; it cannot become {state}")
    round_.state = state


@transaction.atomic
def round_close(*, round_: Round, user: AbstractBaseUser | None = None) -> Round | None:
    """Close a labeling round (all queries done, or a lead closes it early) and open the next one.

    Returns the next round, or None when the project has reached its last round.
    Pending queries of a closed round stay pending but are never handed out again.
    Calling it on an already closed round is a no-op that returns its successor.
    """
    from .projects import project_refuse_if_archived

    round_ = Round.objects.select_for_update().get(pk=round_.pk)
    if round_.state == Round.State.CLOSED:
        return round_.project.rounds.filter(number=round_.number + 1).first()
    project_refuse_if_archived(round_.project)
    if round_.state != Round.State.LABELING:
        raise ServiceError(f"round {round_.number} is {round_.get_state_display().lower()}, not labeling")
    _move(round_, Round.State.CLOSED)
    round_.closed_at = timezone.now()
    round_.save(update_fields=["state", "closed_at"])
    Query.objects.filter(round=round_, status=Query.Status.PENDING).update(assignee=None, locked_until=None)
    # The next round always trains (the labels just collected must reach the
    # model); whether it also selects queries is decided when it gets there.
    following = Round.objects.create(project=round_.project, number=round_.number + 1, state=Round.State.TRAINING)
    _enqueue_round_job(following)
    return following


def round_close_if_complete(*, round_: Round) -> Round | None:
    """Called after every submit/skip and review decision: closes the round once no query is pending
    (and, when the project asks for it, no review of its queries either)."""
    from .review import review_holds_round

    if Project.objects.filter(pk=round_.project_id, archived_at__isnull=False).exists():
        return None  # archived: nothing starts there; the round waits until the lead unarchives the project
    if (round_.state == Round.State.LABELING and not round_.queries.filter(status=Query.Status.PENDING).exists()
            and not review_holds_round(round_=round_)):
        return round_close(round_=round_)
    return None


@transaction.atomic
def round_mark_selecting(*, round_: Round, model_version) -> Round:
    """Training succeeded: the new model becomes the round's model and selection starts."""
    round_ = Round.objects.select_for_update().get(pk=round_.pk)
    if round_.state == Round.State.TRAINING:
        _move(round_, Round.State.SELECTING)
        round_.model_version = model_version
        round_.save(update_fields=["state", "model_version"])
    return round_


@transaction.atomic
def round_open(*, round_: Round, stats: dict | None = None) -> Round:
    """Queries and suggestions are stored: annotators can start."""
    from .review import agreement_replicas_create

    round_ = Round.objects.select_for_update().get(pk=round_.pk)
    if round_.state == Round.State.SELECTING:
        _move(round_, Round.State.LABELING)
        round_.opened_at = timezone.now()
        agreement_replicas_create(round_=round_)  # second copies for agreement, before anyone can label
        # The budget counts what trains the model; validation queries and agreement copies are reported apart.
        round_.budget_planned_pixels = sum(round_.queries.filter(kind=Query.Kind.LABEL, replica_of__isnull=True)
                                           .values_list("pixels", flat=True))
        round_.stats = {**round_.stats, **(stats or {})}
        round_.save(update_fields=["state", "opened_at", "budget_planned_pixels", "stats"])
    return round_


@transaction.atomic
def round_finish(*, round_: Round, stats: dict | None = None) -> Round:
    """The last round: its model is trained and evaluated, nothing more is asked; the project ends."""
    round_ = Round.objects.select_for_update().get(pk=round_.pk)
    if round_.state == Round.State.SELECTING:
        _move(round_, Round.State.CLOSED)
        round_.closed_at = timezone.now()
        round_.stats = {**round_.stats, **(stats or {})}
        round_.save(update_fields=["state", "closed_at", "stats"])
        Project.objects.filter(pk=round_.project_id).update(state=Project.State.FINISHED)
    return round_


@transaction.atomic
def job_retry(*, job: Job, user: AbstractBaseUser | None = None) -> Job:
    """Run a failed or cancelled round job again; it resumes from the round's current state.

    :meth:`Job.retry_refusal` decides which jobs may; the round row is locked
    first, so two retries of its jobs cannot both see "nothing else queued".
    """
    job = Job.objects.select_for_update().get(pk=job.pk)
    if job.round_id is not None:
        job.round = Round.objects.select_for_update().get(pk=job.round_id)
    refusal = job.retry_refusal()
    if refusal:
        raise ServiceError(refusal)
    from .projects import project_refuse_if_archived

    project_refuse_if_archived(job.round.project)
    return _enqueue_round_job(job.round)
