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
from annotator.services.round_jobs import round_select_run, round_train_run
from annotator.services.round_training import train_round
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
    assert round_train_run(job_id=job.pk) == "trained"
    first = ModelVersion.objects.get(round=round_)
    # Which BatchNorm statistics it kept, and why, is on record (the recipe's "auto": learning.train.settle_statistics).
    assert first.metrics["batchnorm"]["mode"] == "auto" and first.metrics["batchnorm"]["chosen"] in ("training", "target")
    assert "round 0: BatchNorm statistics" in Job.objects.get(pk=job.pk).log
    assert train_round(job.pk, round_) == first  # a duplicate delivery finds the stored model
    assert round_train_run(job_id=job.pk) == "trained"  # the job was handed to selection; runs again
    assert ModelVersion.objects.filter(project=project).count() == 1


def test_a_checkpoint_left_by_a_killed_worker_is_adopted_not_retrained(started, settings):
    project, round_, job = started
    round_train_run(job_id=job.pk)
    model = ModelVersion.objects.get(round=round_)
    directory = Path(settings.MODELS_STORE_ROOT) / model.path
    written = (directory / "weights.pt").stat().st_mtime_ns
    Round.objects.filter(pk=round_.pk).update(state=Round.State.TRAINING, model_version=None)
    model.delete()  # the worker died after renaming the checkpoint into place, before the row
    again = train_round(job.pk, Round.objects.get(pk=round_.pk))
    assert again.path == model.path and (directory / "weights.pt").stat().st_mtime_ns == written
    assert ModelVersion.objects.filter(project=project).count() == 1


def test_selection_twice_stores_the_queries_once(started):
    project, round_, job = started
    round_train_run(job_id=job.pk)
    assert round_select_run(job_id=job.pk) == "opened"
    count = Query.objects.filter(round=round_).count()
    assert count > 0 and Suggestion.objects.filter(query__round=round_).count() == count
    Round.objects.filter(pk=round_.pk).update(state=Round.State.SELECTING)  # as if the open never committed
    Job.objects.filter(pk=job.pk).update(state=Job.State.QUEUED)
    assert round_select_run(job_id=job.pk) == "opened"
    assert Query.objects.filter(round=round_).count() == count


def test_every_suggestion_stores_the_full_confidence_map(started):
    from PIL import Image as PILImage

    project, round_, job = started
    round_train_run(job_id=job.pk)
    round_select_run(job_id=job.pk)
    for suggestion in Suggestion.objects.filter(query__round=round_):
        mask = np.asarray(PILImage.open(suggestion.mask.path))
        confidence = np.asarray(PILImage.open(suggestion.confidence.path))
        assert mask.shape == confidence.shape == (suggestion.query.image.height, suggestion.query.image.width)
        assert (confidence[mask == 255] > 0).any()  # the heat map shows doubt where nothing is suggested


def test_a_cancelled_job_leaves_the_round_retryable(started, django_capture_on_commit_callbacks):
    project, round_, job = started
    job_cancel_request(job=Job.objects.get(pk=job.pk))  # queued: cancelled at once
    assert round_train_run(job_id=job.pk) == "gone"
    assert Round.objects.get(pk=round_.pk).state == Round.State.TRAINING
    with django_capture_on_commit_callbacks(execute=False):
        retry = job_retry(job=Job.objects.get(pk=job.pk))
    Job.objects.filter(pk=retry.pk).update(cancel_requested=True)
    assert round_train_run(job_id=retry.pk) == "cancelled"  # a running one stops at its next report
    assert Job.objects.get(pk=retry.pk).state == Job.State.CANCELLED
    assert not ModelVersion.objects.filter(project=project).exists()


def test_a_failure_ends_the_job_with_a_readable_message_and_keeps_the_round(started):
    project, round_, job = started
    Path(project.images.filter(domain="source").first().file.path).write_bytes(b"not a jpeg any more")
    assert round_train_run(job_id=job.pk) == "failed"
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
    assert round_train_run(job_id=job.pk) == "trained"
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
    settings.MASKLOOP_INIT_CHECKPOINT_ROOTS = [str(tmp_path)]  # where staff placed it
    Project.objects.filter(pk=project.pk).update(init_checkpoint=str(backbone))
    with transaction.atomic():
        round_ = project_start(project=Project.objects.get(pk=project.pk))
    assert round_train_run(job_id=Job.objects.get(round=round_).pk) == "trained"
    assert ModelVersion.objects.get(round=round_).train_config["backbone_checkpoint"] == str(backbone)


def test_a_region_skipped_or_left_void_is_not_proposed_again(started, users, django_capture_on_commit_callbacks):
    from PIL import Image as PILImage

    from annotator.imaging import encode_png
    from annotator.services.labeling import annotation_save, query_next, query_skip
    from annotator.services.rounds import round_close

    project, round_, job = started
    Project.objects.filter(pk=project.pk).update(budget_per_round=30.0)  # several queries in round 0
    round_train_run(job_id=job.pk)
    assert round_select_run(job_id=job.pk) == "opened"
    assert Query.objects.filter(round=round_).count() >= 2
    annotator = users["annotator"]
    skipped = query_next(project=project, user=annotator)
    query_skip(query=skipped, user=annotator, reason="cannot tell")
    left_void = query_next(project=project, user=annotator)
    region = np.asarray(PILImage.open(left_void.region_mask.path)) > 0
    with django_capture_on_commit_callbacks(execute=False):  # the next round's job is run by hand below
        annotation_save(query=left_void, user=annotator, mask_png=encode_png(np.full(region.shape, 255, np.uint8)),
                        base_version=0, submit=True, time_spent=3.0)
        if Round.objects.get(pk=round_.pk).state == Round.State.LABELING:
            round_close(round_=Round.objects.get(pk=round_.pk))
    asked: dict[int, np.ndarray] = {}
    for query in (skipped, left_void):
        mask = np.asarray(PILImage.open(query.region_mask.path)) > 0
        asked[query.image_id] = asked.get(query.image_id, np.zeros_like(mask)) | mask
    following = Round.objects.get(project=project, number=1)
    next_job = Job.objects.get(round=following)
    assert round_train_run(job_id=next_job.pk) == "trained"
    assert round_select_run(job_id=next_job.pk) == "opened"
    proposed = list(Query.objects.filter(round=following))
    assert proposed
    for query in proposed:
        mask = np.asarray(PILImage.open(query.region_mask.path)) > 0
        if query.image_id in asked:
            assert not (mask & asked[query.image_id]).any(), "pixels already asked for were proposed again"


def test_a_worse_model_is_kept_for_the_record_and_the_current_one_serves_on(users, monkeypatch,
                                                                           django_capture_on_commit_callbacks):
    import dataclasses

    import learning.train
    from annotator.services.rounds import round_close
    from models_store.services import model_version_promote

    project = tiny_project(users, steps_initial=40)
    with transaction.atomic():
        round0 = project_start(project=project)
    job = Job.objects.get(round=round0)
    assert round_train_run(job_id=job.pk) == "trained" and round_select_run(job_id=job.pk) == "opened"
    first = ModelVersion.objects.get(round=round0)
    with django_capture_on_commit_callbacks(execute=False):
        round1 = round_close(round_=Round.objects.get(pk=round0.pk))

    real_train = learning.train.train

    def broken_train(config, **kwargs):  # a fine-tune that paints "car" everywhere
        result = real_train(config, **kwargs)
        state = {k: v.clone() for k, v in result.state_dict.items()}
        for key, value in state.items():
            if key.startswith("classifier") and key.endswith("bias") and value.shape == (config.num_classes,):
                value[2] += 100.0
        return dataclasses.replace(result, state_dict=state)

    monkeypatch.setattr(learning.train, "train", broken_train)
    job = Job.objects.get(round=round1)
    assert round_train_run(job_id=job.pk) == "trained"
    candidate = ModelVersion.objects.get(round=round1)
    assert candidate.state == ModelVersion.State.REJECTED and "worse beyond noise" in candidate.promotion_reason
    assert Round.objects.get(pk=round1.pk).model_version == first  # the round serves the current model
    assert first.promotion_reason == "the project's first model"
    assert "kept the current model" in Job.objects.get(pk=job.pk).log

    model_version_promote(model_version=candidate, user=users["lead"])  # a lead overrides keep-best
    candidate.refresh_from_db()
    assert candidate.is_promoted and candidate.metrics["promotion"]["rule"] == "manual"
    model_version_promote(model_version=first, user=users["lead"])  # ... and rolls back again
    candidate.refresh_from_db()
    first.refresh_from_db()
    assert first.is_promoted and not candidate.is_promoted and "rolled back to v1" in candidate.promotion_reason


def test_round_zero_starts_from_imagenet_weights_placed_in_the_cache(users, monkeypatch):
    import torch

    from learning import pretrained
    from tests.unit.test_pretrained import OfflineWeights, imagenet_classifier_file

    name, _ = imagenet_classifier_file(Path(torch.hub.get_dir()) / "checkpoints")
    monkeypatch.setattr(pretrained, "imagenet_weights", lambda arch: OfflineWeights(name))
    project = tiny_project(users, steps_initial=2)
    with transaction.atomic():
        round_ = project_start(project=project)
    job = Job.objects.get(round=round_)
    assert round_train_run(job_id=job.pk) == "trained"
    model = ModelVersion.objects.get(round=round_)
    assert model.metrics["pretrained"]["kind"] == "imagenet" and name in model.metrics["pretrained"]["description"]
    assert model.train_config["backbone_checkpoint"].endswith(name)
    assert f"starts from ImageNet weights (torchvision {name})" in Job.objects.get(pk=job.pk).log


def test_imagenet_asked_for_but_not_available_offline_fails_with_what_to_do(users):
    project = tiny_project(users, steps_initial=2)
    Project.objects.filter(pk=project.pk).update(pretrained=Project.Pretrained.IMAGENET)
    with transaction.atomic():
        round_ = project_start(project=Project.objects.get(pk=project.pk))
    job = Job.objects.get(round=round_)
    assert round_train_run(job_id=job.pk) == "failed"
    job.refresh_from_db()
    assert "not in the cache and downloads are off" in job.message and "Traceback" not in job.error
    assert "local backbone file" in job.error and Round.objects.get(pk=round_.pk).state == Round.State.TRAINING



def test_a_corrupt_checkpoint_is_set_aside_so_the_next_round_trains_and_is_never_downloaded(
        users, django_capture_on_commit_callbacks):
    from annotator.services.errors import ServiceError
    from annotator.services.exports import model_checkpoint_dir
    from annotator.services.rounds import round_close
    from models_store.storage import version_dir

    project = tiny_project(users, steps_initial=2)
    with transaction.atomic():
        round0 = project_start(project=project)
    job = Job.objects.get(round=round0)
    assert round_train_run(job_id=job.pk) == "trained" and round_select_run(job_id=job.pk) == "opened"
    first = ModelVersion.objects.get(round=round0)
    (version_dir(first) / "weights.pt").write_bytes(b"a disk that lost the file's end")
    with pytest.raises(ServiceError, match="cannot be downloaded: .*corrupt"):
        model_checkpoint_dir(first)
    with django_capture_on_commit_callbacks(execute=False):
        round1 = round_close(round_=Round.objects.get(pk=round0.pk))
    assert round_train_run(job_id=Job.objects.get(round=round1).pk) == "trained"  # not stuck failing forever
    first.refresh_from_db()
    assert first.state == ModelVersion.State.REJECTED and "checkpoint unusable" in first.promotion_reason
    second = ModelVersion.objects.get(round=round1)
    assert second.is_promoted and second.parent is None  # trained afresh instead of from the broken file


def test_labeled_target_images_are_marked_and_fine_tuning_mixes_them_into_every_batch(
        started, users, django_capture_on_commit_callbacks):
    from PIL import Image as PILImage

    from annotator.imaging import encode_png
    from annotator.services.labeling import annotation_save, query_next
    from annotator.services.round_data import round_data

    project, round_, job = started
    round_train_run(job_id=job.pk)
    assert round_select_run(job_id=job.pk) == "opened"
    annotator = users["annotator"]
    with django_capture_on_commit_callbacks(execute=False):
        while (query := query_next(project=project, user=annotator)) is not None:
            region = np.asarray(PILImage.open(query.region_mask.path)) > 0
            annotation_save(query=query, user=annotator, mask_png=encode_png(np.where(region, 1, 255).astype(np.uint8)),
                            base_version=0, submit=True)
    labeled = round_data(project).labeled
    targets = [s for s in labeled if s.target]
    assert targets and len(targets) < len(labeled)
    source_ids = set(project.images.filter(domain="source").values_list("pk", flat=True))
    assert {s.key for s in labeled if not s.target} == {f"image-{pk}" for pk in source_ids}
    following = Job.objects.get(round__project=project, round__number=1)
    assert round_train_run(job_id=following.pk) == "trained"
    assert (f"50% of each batch and of the cross-entropy from the {len(targets)} labeled target images"
            in Job.objects.get(pk=following.pk).log)
