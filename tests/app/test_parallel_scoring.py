"""Scoring spread over workers: shard tasks fill the selection store, the round's selection task merges them.

Tasks run in-process (eager); a real broker and worker would deliver the same
chord: one ``learning.score_shard`` per shard, then ``learning.round_select``.
"""
from __future__ import annotations

import pytest
from django.db import transaction

from annotator.models import Job, Round
from annotator.services.round_jobs import round_select_run, round_train_run
from annotator.services.rounds import project_start
from learning.selection import store as store_module
from learning.selection import streaming
from tests.app.test_round_equivalence import assert_same_round
from tests.app.test_round_loop import tiny_project

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def one_image_shards(monkeypatch, settings):
    """Shards of one image, so the tiny pool (3 images) is scored by 3 shard tasks."""
    monkeypatch.setattr(store_module, "SHARD_SIZE", 1)
    settings.MASKLOOP_PARALLEL_SCORING_MIN_SHARDS = 2


@pytest.fixture
def scored_shards(monkeypatch):
    """Every shard index scored (not found in the store), in order, by whoever scored it."""
    calls = []
    real = streaming.score_shard

    def spy(model, entries, index, store, **kwargs):
        scored = real(model, entries, index, store, **kwargs)
        if scored:
            calls.append(index)
        return scored

    monkeypatch.setattr(streaming, "score_shard", spy)
    return calls


def trained_round(users):
    """Round 0 trained and waiting for selection; from here on tasks run in-process (eager)."""
    from config.celery import app

    project = tiny_project(users, steps_initial=3)
    with transaction.atomic():
        round0 = project_start(project=project)
    job = Job.objects.get(round=round0)
    assert round_train_run(job_id=job.pk) == "trained"
    app.conf.task_always_eager = True
    return project, round0, job


@pytest.fixture(autouse=True)
def _tasks_not_eager_afterwards():
    from config.celery import app

    yield
    app.conf.task_always_eager = False


def test_the_shard_tasks_score_the_pool_and_the_round_opens_with_the_same_queries(
        users, one_image_shards, scored_shards):
    from learning.tasks import score_shard

    assert score_shard.acks_late and score_shard.reject_on_worker_lost  # a dead worker's shard is delivered again
    project, round0, job = trained_round(users)
    assert round_select_run(job_id=job.pk) == "scoring"  # the chord ran in-process, then the selection task
    assert sorted(scored_shards) == [0, 1, 2]
    assert Round.objects.get(pk=round0.pk).state == Round.State.LABELING
    assert Job.objects.get(pk=job.pk).state == Job.State.SUCCEEDED
    assert assert_same_round(project, round0) > 0  # what one process proposes (the simulator, unsharded)


def test_a_shard_lost_with_its_worker_is_the_only_one_scored_again(users, one_image_shards, monkeypatch):
    project, round0, job = trained_round(users)
    real = streaming.score_shard
    scored, died = [], []

    def dies_once_on_shard_1(model, entries, index, store, **kwargs):
        if index == 1 and not died:
            died.append(index)
            raise SystemExit("worker killed mid-shard")  # not an Exception: no handler of ours catches it
        if real(model, entries, index, store, **kwargs):
            scored.append(index)
            return True
        return False

    monkeypatch.setattr(streaming, "score_shard", dies_once_on_shard_1)
    try:
        outcome = round_select_run(job_id=job.pk)
    except SystemExit:
        outcome = "worker died"
    if Round.objects.get(pk=round0.pk).state == Round.State.SELECTING:
        # The chord never completed: the job is still running, and the sweep re-queues it.
        assert Job.objects.get(pk=job.pk).state == Job.State.RUNNING, outcome
        assert round_select_run(job_id=job.pk) == "opened"
    assert died == [1] and sorted(scored) == [0, 1, 2]  # every shard scored once: only the lost one again
    assert Round.objects.get(pk=round0.pk).state == Round.State.LABELING
    assert assert_same_round(project, round0) > 0
