"""The round loop end to end through a real Celery worker process (not eager mode).

train → select → suggestions stored → round open; annotators submit every
query; the next round appears with a new model version and its mIoU. And the
fault case: the worker is SIGKILLed mid-training, restarted, and the round
completes with exactly one new model version. Both run with review on: every
submission is reviewed, only accepted masks train, and a round closes once
its reviews are decided.
"""
from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
from django.db import transaction
from PIL import Image as PILImage

from annotator.imaging import encode_png
from annotator.models import Image, Job, Project, Query, Review, Round, Suggestion
from annotator.services.labeling import annotation_save, query_next
from annotator.selectors_review import query_latest_annotation
from annotator.services.review import review_accept, review_reject
from annotator.services.projects import ClassSpec, membership_set, project_create
from annotator.services.rounds import project_start
from models_store.models import ModelVersion
from tests.conftest import wait_for
from tests.factories import make_image

pytestmark = [pytest.mark.worker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SIZE = (64, 48)  # width, height


def scene(rng: np.random.Generator, dark: bool) -> tuple[np.ndarray, np.ndarray]:
    """Sky above a horizon, road below, one car: a 3-class picture a tiny model learns in a few steps."""
    w, h = SIZE
    mask = np.zeros((h, w), np.uint8)
    horizon = int(rng.integers(16, 28))
    mask[horizon:] = 1
    x, y = int(rng.integers(4, 40)), int(rng.integers(horizon + 2, 38))
    mask[y:y + 8, x:x + 16] = 2
    colours = np.array([[120, 180, 240], [90, 90, 95], [200, 40, 40]], np.float32)
    image = colours[mask] + rng.normal(0, 8, (h, w, 3))
    if dark:
        image = image * 0.45 + np.array([10, 10, 35])
    return np.clip(image, 0, 255).astype(np.uint8), mask


def tiny_project(users, *, steps_initial: int, rounds: int = 2, review: bool = False) -> Project:
    """``review``: every submission reviewed, only accepted masks train, rounds wait for their reviews."""
    review_settings = dict(review_mode=Project.ReviewMode.ALL, training_source=Project.TrainingSource.ACCEPTED,
                           review_blocks_round=True) if review else {}
    project = project_create(
        name="Tiny loop",
        classes=[ClassSpec(0, "sky", "#87ceeb", "1"), ClassSpec(1, "road", "#555555", "2"),
                 ClassSpec(2, "car", "#dc143c", "3")],
        created_by=users["lead"],
        architecture=Project.Architecture.LRASPP_MOBILENET, train_height=48, train_width=64,
        train_steps_initial=steps_initial, train_steps_per_round=3, rounds_total=rounds,
        query_unit=Project.QueryUnit.REGION, budget_unit=Project.BudgetUnit.PIXEL_PERCENT, budget_per_round=10.0,
        adversarial_adaptation=True, self_training=True, consistency_training=False,
        **review_settings,
    )
    membership_set(project=project, user=users["annotator"], role="annotator")
    rng = np.random.default_rng(0)
    for i in range(4):
        pixels, gt = scene(rng, dark=False)
        make_image(project, name=f"day_{i}.jpg", pixels=pixels, gt=gt, domain="source", split="train", size=SIZE)
    for i in range(5):
        pixels, gt = scene(rng, dark=True)
        split = Image.Split.VAL if i >= 3 else Image.Split.POOL
        make_image(project, name=f"dusk_{i}.jpg", pixels=pixels, gt=gt if split == "val" else None,
                   domain="target", split=split, size=SIZE)
        ORACLE[f"dusk_{i}.jpg"] = gt  # what the simulated annotator paints
    return project


ORACLE: dict[str, np.ndarray] = {}


def round_state(project: Project, number: int) -> str | None:
    return Round.objects.filter(project=project, number=number).values_list("state", flat=True).first()


def round_done(project: Project, number: int) -> bool:
    """The round is open for labeling and its job has recorded its success (a moment later), or a job failed."""
    if Job.objects.filter(project=project, state=Job.State.FAILED).exists():
        return True
    return round_state(project, number) == Round.State.LABELING and Job.objects.filter(
        project=project, round__number=number, state=Job.State.SUCCEEDED).exists()


def failed_job_report(project: Project) -> str:
    return "\n".join(f"job {j.pk} {j.state} {j.phase} {j.message}\n{j.error[-1500:]}"
                     for j in Job.objects.filter(project=project))


def test_a_round_trains_selects_suggests_opens_and_the_next_one_follows(users, start_worker):
    worker = start_worker("loop")
    project = tiny_project(users, steps_initial=4, review=True)
    with transaction.atomic():
        project_start(project=project)
    wait_for(lambda: round_done(project, 0), timeout=600, what="round 0 to open for labeling",
             log_path=worker.log_path)
    assert round_state(project, 0) == Round.State.LABELING, failed_job_report(project)

    round0 = Round.objects.get(project=project, number=0)
    first_model = ModelVersion.objects.get(project=project)
    assert round0.model_version == first_model and first_model.state == ModelVersion.State.PROMOTED
    assert first_model.metrics["miou"] is not None and set(first_model.metrics["per_class_iou"]) == {"sky", "road", "car"}
    assert first_model.metrics["labeled_target_pixels"] == 0
    queries = list(round0.queries.all())
    assert queries and all(q.image.split == Image.Split.POOL for q in queries)
    budget = int(0.10 * 3 * SIZE[0] * SIZE[1])
    assert 0 < sum(q.pixels for q in queries) <= budget
    assert Suggestion.objects.filter(query__round=round0).count() == len(queries)
    assert round0.stats["queries"] == len(queries) and "suggestion_precision" in round0.stats
    job = Job.objects.get(round=round0)
    assert (job.state, job.progress) == (Job.State.SUCCEEDED, 100)

    # The oracle annotator labels each queried region with the ground truth.
    while (query := query_next(project=project, user=users["annotator"])) is not None:
        region = np.asarray(PILImage.open(query.region_mask.path)) > 0
        mask = np.where(region, ORACLE[query.image.original_name], 255).astype(np.uint8)
        annotation_save(query=query, user=users["annotator"], mask_png=encode_png(mask), base_version=0,
                        submit=True, time_spent=12.0)
    assert not round0.queries.filter(status=Query.Status.PENDING).exists()

    # Review on: the round waits for its reviews. The lead rejects one mask, the annotator fixes and
    # resubmits it, then every review is accepted and the round closes.
    assert round_state(project, 0) == Round.State.LABELING
    reviews = list(Review.objects.filter(query__round=round0, state=Review.State.PENDING))
    assert len(reviews) == len(queries)
    review_reject(review=reviews[0], user=users["lead"], comment="label the whole region")
    returned = query_next(project=project, user=users["annotator"])
    assert returned.pk == reviews[0].query_id
    region = np.asarray(PILImage.open(returned.region_mask.path)) > 0
    mask = np.where(region, ORACLE[returned.image.original_name], 255).astype(np.uint8)
    annotation_save(query=returned, user=users["annotator"], mask_png=encode_png(mask),
                    base_version=query_latest_annotation(query=returned).version, submit=True, time_spent=5.0)
    for review in Review.objects.filter(query__round=round0, state=Review.State.PENDING):
        review_accept(review=review, user=users["lead"])
    assert round_state(project, 0) == Round.State.CLOSED

    wait_for(lambda: round_done(project, 1), timeout=600, what="round 1 to open", log_path=worker.log_path)
    assert round_state(project, 1) == Round.State.LABELING, failed_job_report(project)
    second = ModelVersion.objects.get(project=project, round__number=1)
    assert second.version == 2 and second.parent == first_model
    assert second.metrics["miou"] is not None
    assert second.metrics["labeled_target_pixels"] == sum(q.pixels for q in queries)
    assert second.train_config["steps"] == 3  # a warm-started fine-tune, not a full retrain
    assert Round.objects.get(pk=round0.pk).state == Round.State.CLOSED


def test_worker_killed_mid_training_recovers_with_exactly_one_model(users, start_worker, settings):
    worker = start_worker("fault")
    project = tiny_project(users, steps_initial=40, rounds=1, review=True)
    with transaction.atomic():
        project_start(project=project)
    job = Job.objects.get(project=project)
    wait_for(lambda: Job.objects.filter(pk=job.pk, phase="train", progress__gte=12).exists(),
             timeout=240, what="training to be under way", log_path=worker.log_path)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    job.refresh_from_db()
    assert job.state == Job.State.RUNNING and not ModelVersion.objects.filter(project=project).exists()

    restarted = start_worker("fault")  # same name: it finds the job its previous process was running
    wait_for(lambda: round_done(project, 0), timeout=600, what="the round to complete after the restart",
             log_path=restarted.log_path)
    assert round_state(project, 0) == Round.State.LABELING, failed_job_report(project)
    assert ModelVersion.objects.filter(project=project).count() == 1
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED and job.attempts >= 2
    assert "re-queued" in job.log
    store = Path(settings.MODELS_STORE_ROOT) / f"project-{project.pk}"
    assert sorted(p.name for p in store.iterdir() if p.name.startswith("round")) == ["round-000"]
    assert not [p for p in store.iterdir() if p.name.startswith(".tmp")]
