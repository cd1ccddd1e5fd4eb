"""The round loop's services in-process: idempotency, crash leftovers, cancellation, failures, pretraining.

The worker tests (test_round_loop.py) prove the Celery plumbing; these pin
what each step does when it is delivered twice, finds the leftovers of a
killed worker, is cancelled, or fails.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from django.db import transaction

from annotator.models import Job, Project, Query, Round, Suggestion
from annotator.services.jobs import job_cancel_request
from annotator.services.rounds import job_retry, project_start
from learning import services
from models_store.models import ModelVersion
from tests.app.test_round_loop import tiny_project

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def started(users, settings):
    project = tiny_project(users, steps_initial=2)
    with transaction.atomic():
        round_ = project_start(project=project)
    return project, round_, Job.objects.get(round=round_)


def test_training_twice_stores_one_model(started):
    project, round_, job = started
    assert services.round_train_run(job_id=job.pk) == "trained"
    first = ModelVersion.objects.get(round=round_)
    assert services.train_round(job.pk, round_) == first  # a duplicate delivery finds the stored model
    assert services.round_train_run(job_id=job.pk) == "trained"  # the job was handed to selection; runs again
    assert ModelVersion.objects.filter(project=project).count() == 1


def test_a_checkpoint_left_by_a_killed_worker_is_adopted_not_retrained(started, settings):
    project, round_, job = started
    services.round_train_run(job_id=job.pk)
    model = ModelVersion.objects.get(round=round_)
    directory = Path(settings.MODELS_STORE_ROOT) / model.path
    written = (directory / "weights.pt").stat().st_mtime_ns
    Round.objects.filter(pk=round_.pk).update(state=Round.State.TRAINING, model_version=None)
    model.delete()  # the worker died after renaming the checkpoint into place, before the row
    again = services.train_round(job.pk, Round.objects.get(pk=round_.pk))
    assert again.path == model.path and (directory / "weights.pt").stat().st_mtime_ns == written
    assert ModelVersion.objects.filter(project=project).count() == 1


def test_selection_twice_stores_the_queries_once(started):
    project, round_, job = started
    services.round_train_run(job_id=job.pk)
    assert services.round_select_run(job_id=job.pk) == "opened"
    count = Query.objects.filter(round=round_).count()
    assert count > 0 and Suggestion.objects.filter(query__round=round_).count() == count
    Round.objects.filter(pk=round_.pk).update(state=Round.State.SELECTING)  # as if the open never committed
    Job.objects.filter(pk=job.pk).update(state=Job.State.QUEUED)
    assert services.round_select_run(job_id=job.pk) == "opened"
    assert Query.objects.filter(round=round_).count() == count


def test_every_suggestion_stores_the_full_confidence_map(started):
    from PIL import Image as PILImage

    project, round_, job = started
    services.round_train_run(job_id=job.pk)
    services.round_select_run(job_id=job.pk)
    for suggestion in Suggestion.objects.filter(query__round=round_):
        mask = np.asarray(PILImage.open(suggestion.mask.path))
        confidence = np.asarray(PILImage.open(suggestion.confidence.path))
        assert mask.shape == confidence.shape == (suggestion.query.image.height, suggestion.query.image.width)
        assert (confidence[mask == 255] > 0).any()  # the heat map shows doubt where nothing is suggested


def test_a_cancelled_job_leaves_the_round_retryable(started, django_capture_on_commit_callbacks):
    project, round_, job = started
    job_cancel_request(job=Job.objects.get(pk=job.pk))  # queued: cancelled at once
    assert services.round_train_run(job_id=job.pk) == "gone"
    assert Round.objects.get(pk=round_.pk).state == Round.State.TRAINING
    with django_capture_on_commit_callbacks(execute=False):
        retry = job_retry(job=Job.objects.get(pk=job.pk))
    Job.objects.filter(pk=retry.pk).update(cancel_requested=True)
    assert services.round_train_run(job_id=retry.pk) == "cancelled"  # a running one stops at its next report
    assert Job.objects.get(pk=retry.pk).state == Job.State.CANCELLED
    assert not ModelVersion.objects.filter(project=project).exists()


def test_a_failure_ends_the_job_with_a_readable_message_and_keeps_the_round(started):
    project, round_, job = started
    Path(project.images.filter(domain="source").first().file.path).write_bytes(b"not a jpeg any more")
    assert services.round_train_run(job_id=job.pk) == "failed"
    job.refresh_from_db()
    assert job.state == Job.State.FAILED and job.message and "Traceback" in job.error
    assert Round.objects.get(pk=round_.pk).state == Round.State.TRAINING
    assert not ModelVersion.objects.filter(project=project).exists()


def test_ssl_pretraining_runs_before_round_zero_and_initialises_it(users, settings):
    project = tiny_project(users, steps_initial=2)
    Project.objects.filter(pk=project.pk).update(ssl_pretraining=True)
    with transaction.atomic():
        round_ = project_start(project=Project.objects.get(pk=project.pk))
    job = Job.objects.get(round=round_)
    assert services.round_train_run(job_id=job.pk) == "trained"
    encoder = Path(settings.MODELS_STORE_ROOT) / f"project-{project.pk}" / "pretrain" / "encoder" / "weights.pt"
    assert encoder.exists()
    model = ModelVersion.objects.get(round=round_)
    assert model.train_config["backbone_checkpoint"] == str(encoder)
    assert "self-supervised pretraining" in Job.objects.get(pk=job.pk).log


def test_a_backbone_file_as_initial_checkpoint_initialises_the_encoder(users, settings, tmp_path):
    import torch

    from learning.models import build_model

    backbone = tmp_path / "backbone.pt"
    model = build_model("lraspp_mobilenet_v3_large", 3)
    torch.save({f"backbone.{k}": v for k, v in model.backbone.state_dict().items()}, backbone)
    project = tiny_project(users, steps_initial=2)
    Project.objects.filter(pk=project.pk).update(init_checkpoint=str(backbone))
    with transaction.atomic():
        round_ = project_start(project=Project.objects.get(pk=project.pk))
    assert services.round_train_run(job_id=Job.objects.get(round=round_).pk) == "trained"
    assert ModelVersion.objects.get(round=round_).train_config["backbone_checkpoint"] == str(backbone)
