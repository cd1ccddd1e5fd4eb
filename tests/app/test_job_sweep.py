"""The periodic sweep (Celery beat → learning.jobs_sweep) re-queues jobs of dead workers while workers stay up."""
import datetime

import pytest
from django.conf import settings
from django.utils import timezone

from annotator.models import Job, Round
from learning import tasks

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch):
    """Task messages the sweep sends, as (task name, kwargs), instead of reaching a broker."""
    messages = []
    for task in (tasks.round_train, tasks.round_select):
        monkeypatch.setattr(task, "apply_async", lambda kwargs, _name=task.name: messages.append((_name, kwargs)))
    return messages


def running_job(project, *, kind=Job.Kind.ROUND, worker: str, silent_seconds: float) -> Job:
    round_ = Round.objects.create(project=project, number=Round.objects.filter(project=project).count(),
                                  state=Round.State.TRAINING) if kind == Job.Kind.ROUND else None
    return Job.objects.create(project=project, round=round_, kind=kind, state=Job.State.RUNNING, worker=worker,
                              heartbeat_at=timezone.now() - datetime.timedelta(seconds=silent_seconds))


def test_the_sweep_requeues_a_job_whose_worker_went_silent(project, sent, django_capture_on_commit_callbacks):
    dead = running_job(project, worker="training@gone", silent_seconds=settings.MASKLOOP_JOB_STALE_SECONDS + 60)
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.jobs_sweep() == [dead.pk]
    dead.refresh_from_db()
    assert (dead.state, dead.worker) == (Job.State.QUEUED, "")
    assert sent == [("learning.round_train", {"job_id": dead.pk})]


def test_the_sweep_leaves_live_jobs_alone(project, sent, django_capture_on_commit_callbacks):
    # A training job reporting progress, and an import (imports and exports run under worker "").
    training = running_job(project, worker="training@up", silent_seconds=5)
    importing = running_job(project, kind=Job.Kind.IMPORT, worker="", silent_seconds=5)
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.jobs_sweep() == []
    assert set(Job.objects.filter(pk__in=[training.pk, importing.pk]).values_list("state", flat=True)) == {"running"}
    assert sent == []


def test_beat_runs_the_sweep_every_few_seconds_and_drops_late_ones():
    (entry,) = [e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == tasks.jobs_sweep.name]
    assert entry["schedule"] == settings.MASKLOOP_JOB_SWEEP_SECONDS == 60
    assert entry["options"]["expires"] == entry["schedule"]
