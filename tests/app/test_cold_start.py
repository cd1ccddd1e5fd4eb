"""Start from nothing: a project of plain target images (no source, no masks) runs its whole loop.

Round 0 asks for a diverse first set without a model and sets validation
images aside; once they are labeled the first model trains, and round 1
comes with suggestions and a validation mIoU.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from django.db import transaction
from PIL import Image as PILImage

from annotator.imaging import encode_png
from annotator.models import Image, Job, Project, Query, Round, Suggestion
from annotator.services.labeling import annotation_save, query_next
from annotator.services.projects import ClassSpec, membership_set, project_create
from annotator.services.round_data import MIN_VALIDATION_LABELS
from annotator.services.round_jobs import round_select_run, round_train_run
from annotator.services.rounds import project_readiness, project_start
from models_store.models import ModelVersion
from tests.app.test_round_loop import SIZE, scene
from tests.factories import make_image

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def plain_project(users):
    project = project_create(
        name="Plain images",
        classes=[ClassSpec(0, "sky", "#87ceeb", "1"), ClassSpec(1, "road", "#555555", "2"),
                 ClassSpec(2, "car", "#dc143c", "3")],
        created_by=users["lead"], architecture=Project.Architecture.LRASPP_MOBILENET, train_height=48,
        train_width=64, train_steps_initial=6, train_steps_per_round=3, rounds_total=3,
        query_unit=Project.QueryUnit.REGION, budget_unit=Project.BudgetUnit.PIXEL_PERCENT, budget_per_round=20.0,
        validation_images=MIN_VALIDATION_LABELS, adversarial_adaptation=False, cold_start_images=4,
    )
    membership_set(project=project, user=users["annotator"], role="annotator")
    rng = np.random.default_rng(0)
    truth = {}
    for i in range(20):
        pixels, gt = scene(rng, dark=bool(i % 2))
        image = make_image(project, name=f"plain_{i}.jpg", pixels=pixels, size=SIZE)
        truth[image.pk] = gt
    return project, truth


def label_everything(project, truth, user) -> int:
    labeled = 0
    while (query := query_next(project=project, user=user)) is not None:
        mask = truth[query.image_id]
        if query.region_mask:
            region = np.asarray(PILImage.open(query.region_mask.path)) > 0
            mask = np.where(region, mask, 255).astype(np.uint8)
        annotation_save(query=query, user=user, mask_png=encode_png(mask), base_version=0, submit=True)
        labeled += 1
    return labeled


def test_plain_images_are_enough_to_start(plain_project):
    project, _ = plain_project
    assert project_readiness(project=project) == []


def test_a_project_of_plain_images_runs_from_a_diverse_first_set_to_suggestions(plain_project, users,
                                                                                django_capture_on_commit_callbacks):
    project, truth = plain_project
    with django_capture_on_commit_callbacks(execute=False):
        with transaction.atomic():
            round0 = project_start(project=project)
    assert round0.state == Round.State.SELECTING  # no labels: nothing to train yet
    validation = list(Query.objects.filter(round=round0, kind=Query.Kind.VALIDATION))
    assert len(validation) == MIN_VALIDATION_LABELS
    assert all(q.image.split == Image.Split.VAL and not q.region_key for q in validation)

    job = Job.objects.get(round=round0)
    assert round_select_run(job_id=job.pk) == "opened"
    round0.refresh_from_db()
    picked = Query.objects.filter(round=round0, kind=Query.Kind.LABEL)
    # 20 % of the 15 pool images' pixels buys 3 whole images (no model to score regions yet); the project's
    # cold-start minimum asks for 4
    assert picked.count() == 4 and not Suggestion.objects.filter(query__round=round0).exists()
    assert not {q.image_id for q in picked} & {q.image_id for q in validation}
    assert round0.stats["cold_start"] and round0.budget_planned_pixels == 4 * SIZE[0] * SIZE[1]
    assert "4 images, the project's cold-start minimum (the round budget buys 3)" in round0.stats["strategy"]
    assert not ModelVersion.objects.filter(project=project).exists()

    with django_capture_on_commit_callbacks(execute=False):  # the next round's job is run by hand
        assert label_everything(project, truth, users["annotator"]) == 4 + MIN_VALIDATION_LABELS
    round1 = Round.objects.get(project=project, number=1)
    job = Job.objects.get(round=round1)
    assert round_train_run(job_id=job.pk) == "trained", Job.objects.get(pk=job.pk).error
    first = ModelVersion.objects.get(round=round1)
    assert first.metrics["val_images"] == MIN_VALIDATION_LABELS and first.miou is not None
    assert round_select_run(job_id=job.pk) == "opened"
    queries = Query.objects.filter(round=round1)
    assert queries.exists() and Suggestion.objects.filter(query__round=round1).count() == queries.count()
    assert not queries.filter(image__split=Image.Split.VAL).exists()  # validation never selected


@pytest.mark.parametrize(("minimum", "budget", "pool", "expected"), [
    (10, 1.0, 100, 10),  # a 1 % budget buys one image: the minimum asks for ten
    (0, 1.0, 100, 1),  # no minimum: what the budget buys
    (10, 1.0, 8, 4),  # at most half the pool, so later rounds keep a choice
    (5, 20.0, 100, 20),  # a budget that buys more than the minimum is spent as it is
])
def test_the_cold_start_round_asks_for_the_minimum_or_what_the_budget_buys(minimum, budget, pool, expected):
    from types import SimpleNamespace

    from annotator.services.round_selection import cold_start_budget_images

    project = Project(budget_unit=Project.BudgetUnit.PIXEL_PERCENT, budget_per_round=budget, cold_start_images=minimum)
    assert cold_start_budget_images(project, [SimpleNamespace(pixels=100)] * pool) == expected


def test_a_first_model_on_the_projects_own_labels_leaves_adversarial_adaptation_out_and_says_why(
        plain_project, users, django_capture_on_commit_callbacks):
    project, truth = plain_project
    Project.objects.filter(pk=project.pk).update(adversarial_adaptation=True, train_steps_initial=2)
    with django_capture_on_commit_callbacks(execute=False), transaction.atomic():
        round0 = project_start(project=Project.objects.get(pk=project.pk))
    assert round_select_run(job_id=Job.objects.get(round=round0).pk) == "opened"
    with django_capture_on_commit_callbacks(execute=False):
        label_everything(project, truth, users["annotator"])
    job = Job.objects.get(round__project=project, round__number=1)
    assert round_train_run(job_id=job.pk) == "trained"
    assert "adversarial adaptation is on but left out: no labeled image comes from a source domain" in \
        Job.objects.get(pk=job.pk).log
    assert not ModelVersion.objects.get(round__number=1, project=project).train_config["adversarial"]


def test_round_zero_of_a_labeled_project_trains_first_and_still_sets_validation_aside(users):
    from tests.app.test_round_loop import tiny_project

    project = tiny_project(users, steps_initial=2)
    Image.objects.filter(project=project, split=Image.Split.VAL).update(gt_mask="")  # no validation masks
    with transaction.atomic():
        round0 = project_start(project=Project.objects.get(pk=project.pk))
    assert round0.state == Round.State.TRAINING
    assert Query.objects.filter(round=round0, kind=Query.Kind.VALIDATION).count() == 1  # 30 % of a 5-image pool


def test_round_zero_describes_images_with_the_self_supervised_encoder_and_round_one_reuses_it(
        plain_project, settings, users, django_capture_on_commit_callbacks):
    project, truth = plain_project
    Project.objects.filter(pk=project.pk).update(ssl_pretraining=True, train_steps_initial=2)
    with django_capture_on_commit_callbacks(execute=False), transaction.atomic():
        round0 = project_start(project=Project.objects.get(pk=project.pk))
    job = Job.objects.get(round=round0)
    assert round_select_run(job_id=job.pk) == "opened"
    round0.refresh_from_db()
    assert "encoder features (self-supervised pretraining" in round0.stats["strategy"]
    encoder = Path(settings.MODELS_STORE_ROOT) / f"project-{project.pk}" / "pretrain" / "encoder" / "weights.pt"
    assert encoder.exists()
    assert Query.objects.filter(round=round0, kind=Query.Kind.LABEL).count() == 4
    with django_capture_on_commit_callbacks(execute=False):
        label_everything(project, truth, users["annotator"])
    job = Job.objects.get(round__project=project, round__number=1)
    assert round_train_run(job_id=job.pk) == "trained"
    log = Job.objects.get(pk=job.pk).log
    assert "pretraining done" in log and "resumed at step 2" in log  # the finished run, not a second one
    assert ModelVersion.objects.get(round__number=1, project=project).train_config["backbone_checkpoint"] == str(encoder)


def test_round_zero_describes_images_with_a_local_backbone_file(plain_project, settings, tmp_path):
    import torch

    from learning.models import build_model
    from learning.selection.cold_start import encoder_descriptors

    project, _ = plain_project
    backbone = tmp_path / "backbone.pt"
    torch.manual_seed(0)
    model = build_model(project.architecture, 3)
    torch.save({f"backbone.{k}": v for k, v in model.backbone.state_dict().items()}, backbone)
    settings.MASKLOOP_INIT_CHECKPOINT_ROOTS = [str(tmp_path)]
    Project.objects.filter(pk=project.pk).update(init_checkpoint=str(backbone))
    with transaction.atomic():
        round0 = project_start(project=Project.objects.get(pk=project.pk))
    assert round_select_run(job_id=Job.objects.get(round=round0).pk) == "opened"
    round0.refresh_from_db()
    assert "encoder features (local backbone file backbone.pt)" in round0.stats["strategy"]
    # the features are the backbone's own: unit length, and different images give different vectors
    images = [np.full((48, 64, 3), v, np.uint8) for v in (0, 128)]
    rows = encoder_descriptors(project.architecture, str(backbone), images, (48, 64))
    assert rows.shape[0] == 2 and np.allclose(np.linalg.norm(rows, axis=1), 1.0)
    assert not np.allclose(rows[0], rows[1])
