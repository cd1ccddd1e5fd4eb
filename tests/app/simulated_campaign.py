"""A project two rounds into its campaign, built from factories (real rows and files, no training).

The dashboard, API and export tests read what the round loop would have
written: models with metrics, rounds with stats, submitted annotations with
their suggestion Dice, annotators' time on task, and jobs with logs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
from django.utils import timezone

from annotator.models import Image, Job, Project, Query, Round
from tests.factories import (
    make_annotation, make_image, make_job, make_model_version, make_query, make_round, make_suggestion,
)

SIZE = (32, 24)  # width, height: tiny, so the PNGs cost nothing


@dataclass
class Campaign:
    project: Project
    rounds: list[Round] = field(default_factory=list)
    models: list = field(default_factory=list)
    annotations: list = field(default_factory=list)
    masks: dict[int, np.ndarray] = field(default_factory=dict)  # image id → the mask its label should hold
    pool: list[Image] = field(default_factory=list)
    val: list[Image] = field(default_factory=list)
    source: list[Image] = field(default_factory=list)


def striped_mask(seed: int, *, void_rows: int = 0) -> np.ndarray:
    """A mask using classes 0..2 in bands, with some void rows on top (a region label)."""
    width, height = SIZE
    mask = np.zeros((height, width), np.uint8)
    mask[:, width // 3: 2 * width // 3] = 1
    mask[:, 2 * width // 3:] = 2
    mask = np.roll(mask, seed, axis=1)
    mask[:void_rows] = 255
    return mask


def metrics(miou: float, fraction: float, pool_pixels: int, car: float | None) -> dict:
    return {
        "miou": miou, "pixel_accuracy": min(0.99, miou + 0.3),
        "per_class_iou": {"road": miou + 0.2, "car": car, "sky": miou + 0.1},
        "val_images": 2, "labeled_target_pixels": int(fraction * pool_pixels),
        "labeled_target_fraction": fraction, "train_seconds": 42.0,
    }


def build_campaign(project: Project, *, annotator, lead) -> Campaign:
    """Round 0 closed (two queries labeled), round 1 labeling (one of three labeled)."""
    campaign = Campaign(project=project)
    for i in range(2):
        image = make_image(project, name=f"day_{i}.jpg", size=SIZE, domain=Image.Domain.SOURCE,
                           split=Image.Split.TRAIN, gt=striped_mask(i))
        campaign.source.append(image)
        campaign.masks[image.pk] = striped_mask(i)
    for i in range(5):
        campaign.pool.append(make_image(project, name=f"dusk_{i}.jpg", size=SIZE))
    for i in range(2):
        image = make_image(project, name=f"dusk_val_{i}.jpg", size=SIZE, split=Image.Split.VAL,
                           gt=striped_mask(10 + i))
        campaign.val.append(image)
        campaign.masks[image.pk] = striped_mask(10 + i)
    pool_pixels = 5 * SIZE[0] * SIZE[1]
    now = timezone.now()

    round0 = make_round(project, number=0, state=Round.State.CLOSED, budget_planned_pixels=2 * SIZE[0] * SIZE[1],
                        stats={"strategy": "adaptive", "diversity_weight": 0.8, "queries": 2,
                               "suggestion_precision": 0.91, "suggestion_coverage": 0.55})
    model0 = make_model_version(project, round_=round0, metrics=metrics(0.41, 0.0, pool_pixels, None))
    round0.model_version = model0
    round0.save()
    round1 = make_round(project, number=1, state=Round.State.LABELING, budget_planned_pixels=3 * SIZE[0] * SIZE[1],
                        stats={"strategy": "adaptive", "diversity_weight": 0.6, "queries": 3,
                               "suggestion_precision": 0.94, "suggestion_coverage": 0.68})
    model1 = make_model_version(project, round_=round1, parent=model0,
                                metrics=metrics(0.52, 2 / 5, pool_pixels, 0.18))
    round1.model_version = model1
    round1.save()
    campaign.rounds, campaign.models = [round0, round1], [model0, model1]

    labeled = [(round0, campaign.pool[0], 0.62, 40.0, 0), (round0, campaign.pool[1], 0.70, 55.0, 4),
               (round1, campaign.pool[2], 0.81, 30.0, 0)]
    for position, (round_, image, dice, seconds, void_rows) in enumerate(labeled):
        query = make_query(round_, image, assignee=annotator, status=Query.Status.SUBMITTED,
                           time_spent_seconds=seconds, submitted_at=now - timedelta(minutes=10 - position))
        mask = striped_mask(position + 3, void_rows=void_rows)
        suggestion = mask.copy()
        suggestion[:, :4] = 255
        make_suggestion(query, suggestion, np.full(mask.shape, 0.9, np.float32), precision=0.9)
        annotation = make_annotation(query, mask, author=annotator, time_spent=seconds)
        annotation.suggestion_dice = dice
        annotation.save(update_fields=["suggestion_dice"])
        campaign.annotations.append(annotation)
        campaign.masks[image.pk] = mask
    for image in campaign.pool[3:5]:
        make_query(round1, image)
    # A draft on a pending query: exports must ignore it.
    make_annotation(round1.queries.get(image=campaign.pool[3]), striped_mask(7), author=annotator, submitted=False)

    make_job(project, kind=Job.Kind.IMPORT, message="imported 9, skipped 0, rejected 0",
             log="[10:00:00] imported 9, skipped 0, rejected 0\n")
    make_job(project, round=round0, message="round 0: labeling open", log="[10:01:00] trained 600 steps\n")
    make_job(project, round=round1, message="round 1: labeling open", log="[10:20:00] fine-tuned 200 steps\n")
    project.state = Project.State.ACTIVE
    project.save(update_fields=["state"])
    return campaign
