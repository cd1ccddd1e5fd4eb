"""The app's round worker and the benchmark simulator run the same round step.

Same model, pool, labels, already-asked pixels and seed: the queries the app
stores (and their suggestions) are exactly the ones the campaign simulator
proposes. If someone assembles the round step differently on one side, the
label-efficiency figures in docs/BENCHMARKS.md stop describing the app.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from django.db import transaction
from PIL import Image as PILImage

from annotator.imaging import encode_png
from annotator.models import Image, Job, Query, Round, Suggestion
from annotator.services.labeling import annotation_save, query_next
from annotator.services.round_data import latest_labels, queried_masks
from annotator.services.round_jobs import round_select_run, round_train_run
from annotator.services.rounds import project_start
from annotator.services.superpixels import image_superpixels
from benchmarks.campaign.config import Arm, quick_config
from benchmarks.campaign.data import CampaignData
from benchmarks.campaign.simulation import evaluate_val, propose
from learning.checkpoint import load_model
from learning.data import Sample, load_image, load_mask
from models_store.storage import version_dir
from tests.app.test_round_loop import ORACLE, tiny_project

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def simulator_inputs(project, round_: Round):
    """The project's rows as the simulator's in-memory campaign: same images, regions, classes and settings."""
    pool = list(project.images.filter(domain=Image.Domain.TARGET, split=Image.Split.POOL).order_by("pk"))
    source = project.images.filter(domain=Image.Domain.SOURCE).order_by("pk")
    val = project.images.filter(split=Image.Split.VAL).order_by("pk")
    keys = [f"image-{image.pk}" for image in pool]
    data = CampaignData(
        source=[Sample(image=i.file.path, mask=i.gt_mask.path, key=f"image-{i.pk}") for i in source],
        pool_keys=keys, pool_images={k: load_image(i.file.path) for k, i in zip(keys, pool)},
        pool_gt={k: ORACLE[i.original_name] for k, i in zip(keys, pool)},
        pool_regions={k: image_superpixels(image=i) for k, i in zip(keys, pool)},
        val=[Sample(image=i.file.path, mask=i.gt_mask.path, key=f"image-{i.pk}") for i in val],
        class_names=list(project.classes.order_by("index").values_list("name", flat=True)),
    )
    config = replace(quick_config(), size=(project.train_height, project.train_width), batch_size=8,
                     measure=project.uncertainty_measure, target_precision=project.suggestion_precision)
    arm = Arm("app", "the project's settings", project.strategy, project.query_unit, project.budget_per_round,
              "percent", uncertainty_weight=1.0 - project.diversity_weight)
    by_pk = {image.pk: f"image-{image.pk}" for image in pool}
    labels = {by_pk[pk]: load_mask(a.mask.path) for pk, a in latest_labels(project).items() if pk in by_pk}
    asked = queried_masks(project)
    queried = {k: asked.get(pk, np.zeros(data.pool_gt[k].shape, bool)) for pk, k in by_pk.items()}
    model, _ = load_model(version_dir(round_.model_version), expected_classes=data.class_names)
    evaluation = evaluate_val(config, data, model)
    return config, data, arm, model, evaluation, labels, queried


def assert_same_round(project, round_: Round) -> int:
    round_ = Round.objects.get(pk=round_.pk)
    config, data, arm, model, evaluation, labels, queried = simulator_inputs(project, round_)
    assert evaluation.miou == pytest.approx(round_.model_version.miou, abs=1e-9)  # one definition of val mIoU
    proposal = propose(config, data, arm, model, evaluation, labels=labels, queried=queried,
                       round_index=round_.number, seed=0)
    stored = {f"image-{q.image_id}": q for q in Query.objects.filter(round=round_)}
    assert stored and set(stored) == {q.key for q in proposal.queries}
    for proposed in proposal.queries:
        query = stored[proposed.key]
        region = np.asarray(PILImage.open(query.region_mask.path)) > 0
        assert np.array_equal(region, proposed.spec.mask)
        assert query.pixels == proposed.spec.pixels and query.priority == proposed.spec.rank
        suggestion = np.asarray(PILImage.open(Suggestion.objects.get(query=query).mask.path))
        assert np.array_equal(suggestion, proposed.suggestion.mask)
    return len(stored)


def test_the_app_and_the_simulator_propose_the_same_queries_and_suggestions(users):
    project = tiny_project(users, steps_initial=3)
    with transaction.atomic():
        round0 = project_start(project=project)
    job = Job.objects.get(round=round0)
    assert round_train_run(job_id=job.pk) == "trained" and round_select_run(job_id=job.pk) == "opened"
    assert assert_same_round(project, round0) > 0

    # Round 1 starts from the answers to round 0: labels and already-asked pixels must reach both sides alike.
    annotator = users["annotator"]
    while (query := query_next(project=project, user=annotator)) is not None:
        region = np.asarray(PILImage.open(query.region_mask.path)) > 0
        mask = np.where(region, ORACLE[query.image.original_name], 255).astype(np.uint8)
        annotation_save(query=query, user=annotator, mask_png=encode_png(mask), base_version=0, submit=True)
    round1 = Round.objects.get(project=project, number=1)
    job = Job.objects.get(round=round1)
    assert round_train_run(job_id=job.pk) == "trained" and round_select_run(job_id=job.pk) == "opened"
    assert assert_same_round(project, round1) > 0
