"""The round state machine services, without a worker: transitions, readiness, retries."""
import numpy as np
import pytest

from annotator.models import Image, Job, Project, Query, Round
from annotator.services.errors import ServiceError
from annotator.services.rounds import (
    job_retry, project_readiness, project_start, round_close, round_close_if_complete, round_finish,
    round_mark_selecting, round_open,
)
from annotator.selectors import membership_role
from tests.factories import make_image, make_job, make_model_version, make_query, make_round

pytestmark = pytest.mark.django_db


@pytest.fixture
def ready_project(project):
    gt = np.zeros((48, 64), np.uint8)
    make_image(project, domain=Image.Domain.SOURCE, split=Image.Split.TRAIN, gt=gt)
    make_image(project, domain=Image.Domain.TARGET, split=Image.Split.POOL)
    make_image(project, domain=Image.Domain.TARGET, split=Image.Split.VAL, gt=gt)
    return project


def test_roles(project, users):
    assert membership_role(project=project, user=users["lead"]) == "lead"
    assert membership_role(project=project, user=users["annotator"]) == "annotator"
    assert membership_role(project=project, user=users["outsider"]) is None
    assert membership_role(project=project, user=users["admin"]) == "lead"  # staff administer every project


def test_readiness_names_what_is_missing(project):
    problems = project_readiness(project=project)
    assert any("unlabeled pool" in p for p in problems)  # target images are all a project must have
    assert not any("source" in p or "validation" in p for p in problems)
    with pytest.raises(ServiceError, match="cannot start yet"):
        project_start(project=project)
    assert not project.rounds.exists()


def test_start_opens_round_zero_and_queues_one_job(ready_project, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        round_ = project_start(project=ready_project)
    assert (round_.number, round_.state) == (0, Round.State.TRAINING)
    assert Project.objects.get(pk=ready_project.pk).state == Project.State.ACTIVE
    job = Job.objects.get(round=round_)
    assert (job.kind, job.state) == (Job.Kind.ROUND, Job.State.QUEUED)
    assert len(callbacks) == 1  # the task is sent only after the commit
    with pytest.raises(ServiceError, match="started already"):
        project_start(project=ready_project)


def test_closing_a_round_opens_the_next_one_once(project, django_capture_on_commit_callbacks):
    round_ = make_round(project, number=0, state=Round.State.LABELING)
    with django_capture_on_commit_callbacks(execute=False):
        following = round_close(round_=round_)
        again = round_close(round_=round_)
    assert following.pk == again.pk
    assert (following.number, following.state) == (1, Round.State.TRAINING)
    assert Job.objects.filter(round=following).count() == 1
    assert Round.objects.get(pk=round_.pk).closed_at is not None


def test_round_closes_by_itself_when_the_last_query_is_done(project, django_capture_on_commit_callbacks):
    round_ = make_round(project, number=0, state=Round.State.LABELING)
    first, second = make_query(round_, make_image(project)), make_query(round_, make_image(project))
    Query.objects.filter(pk=first.pk).update(status=Query.Status.SUBMITTED)
    assert round_close_if_complete(round_=round_) is None
    Query.objects.filter(pk=second.pk).update(status=Query.Status.SKIPPED)
    with django_capture_on_commit_callbacks(execute=False):
        following = round_close_if_complete(round_=round_)
    assert following.number == 1


def test_a_training_round_cannot_be_closed(project):
    with pytest.raises(ServiceError, match="not labeling"):
        round_close(round_=make_round(project, number=0, state=Round.State.TRAINING))


def test_selecting_then_open_then_finish(project):
    model = make_model_version(project)
    round_ = round_mark_selecting(round_=make_round(project, number=0, state=Round.State.TRAINING),
                                  model_version=model)
    assert (round_.state, round_.model_version_id) == (Round.State.SELECTING, model.pk)
    make_query(round_, make_image(project))
    round_ = round_open(round_=round_, stats={"strategy": "random"})
    assert round_.state == Round.State.LABELING and round_.budget_planned_pixels == 64 * 48
    assert round_.stats["strategy"] == "random"
    last = round_mark_selecting(round_=make_round(project, number=1, state=Round.State.TRAINING), model_version=model)
    round_finish(round_=last)
    assert Project.objects.get(pk=project.pk).state == Project.State.FINISHED


def test_retry_only_failed_round_jobs_and_never_two_at_once(project, django_capture_on_commit_callbacks):
    round_ = make_round(project, number=0, state=Round.State.TRAINING)
    failed = make_job(project, round=round_, state=Job.State.FAILED)
    with pytest.raises(ServiceError, match="only failed or cancelled"):
        job_retry(job=make_job(project, round=round_, state=Job.State.SUCCEEDED))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        retry = job_retry(job=failed)
    assert retry.state == Job.State.QUEUED and len(callbacks) == 1
    with pytest.raises(ServiceError, match="already has a job queued"):
        job_retry(job=failed)
