"""The round state machine: start a project, close a round, open the next one, retry a failed job.

Rounds only move forward (``Round.TRANSITIONS``). Every transition happens
here, under a row lock, and the background work it triggers is enqueued only
after the transaction commits. The work itself (train → evaluate → select →
suggest) lives in ``learning.services``; its Celery tasks call back into
:func:`round_mark_selecting`, :func:`round_open` and :func:`round_finish`.
"""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from ..models import Image, Job, Project, Query, Round
from .errors import ServiceError
from .jobs import job_create, job_enqueue


def _enqueue_round_job(round_: Round) -> Job:
    from learning.tasks import round_train  # the task module imports services, not the reverse

    job = job_create(kind=Job.Kind.ROUND, project=round_.project, round_=round_,
                     message=f"round {round_.number}: queued")
    job_enqueue(job=job, task=round_train)
    return job


def project_readiness(*, project: Project) -> list[str]:
    """What stops a project from starting, as sentences; empty when it can start."""
    problems = []
    if project.classes.count() < 2:
        problems.append("define at least two classes")
    labeled_source = project.images.filter(domain=Image.Domain.SOURCE).exclude(gt_mask="").count()
    if labeled_source == 0:
        problems.append("import labeled source images (images + masks)")
    if not project.images.filter(domain=Image.Domain.TARGET, split=Image.Split.POOL).exists():
        problems.append("import target images into the unlabeled pool")
    if not project.images.filter(split=Image.Split.VAL).exclude(gt_mask="").exists():
        problems.append("mark target images with ground truth as validation images (they are frozen afterwards)")
    return problems


@transaction.atomic
def project_start(*, project: Project, user: AbstractBaseUser | None = None) -> Round:
    """Open round 0: train on labeled source + unlabeled target, then select and suggest."""
    project = Project.objects.select_for_update().get(pk=project.pk)
    if project.state != Project.State.DRAFT or project.rounds.exists():
        raise ServiceError(f"{project.name} has started already")
    problems = project_readiness(project=project)
    if problems:
        raise ServiceError(f"{project.name} cannot start yet: " + "; ".join(problems))
    project.state = Project.State.ACTIVE
    project.save(update_fields=["state"])
    round_ = Round.objects.create(project=project, number=0, state=Round.State.TRAINING)
    _enqueue_round_job(round_)
    return round_


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
    round_ = Round.objects.select_for_update().get(pk=round_.pk)
    if round_.state == Round.State.CLOSED:
        return round_.project.rounds.filter(number=round_.number + 1).first()
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
    """Called after every submit/skip: closes the round once no query is pending."""
    if round_.state == Round.State.LABELING and not round_.queries.filter(status=Query.Status.PENDING).exists():
        return round_close(round_=round_)
    return None


def round_is_last_labeling(*, round_: Round) -> bool:
    """True when this round must not ask for more labels: the round count or total budget is used up."""
    project = round_.project
    return round_.number >= project.rounds_total


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
    round_ = Round.objects.select_for_update().get(pk=round_.pk)
    if round_.state == Round.State.SELECTING:
        _move(round_, Round.State.LABELING)
        round_.opened_at = timezone.now()
        round_.budget_planned_pixels = sum(round_.queries.values_list("pixels", flat=True))
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
    """Run a failed or cancelled round job again; it resumes from the round's current state."""
    job = Job.objects.select_for_update().get(pk=job.pk)
    if job.kind != Job.Kind.ROUND or job.round_id is None:
        raise ServiceError("only round jobs can be retried")
    if job.state not in (Job.State.FAILED, Job.State.CANCELLED):
        raise ServiceError(f"job {job.pk} is {job.state}; only failed or cancelled jobs can be retried")
    round_ = Round.objects.select_for_update().get(pk=job.round_id)
    if round_.state not in (Round.State.TRAINING, Round.State.SELECTING):
        raise ServiceError(f"round {round_.number} is {round_.state}: nothing to retry")
    if round_.jobs.exclude(pk=job.pk).filter(state__in=(Job.State.QUEUED, Job.State.RUNNING)).exists():
        raise ServiceError(f"round {round_.number} already has a job queued or running")
    return _enqueue_round_job(round_)
