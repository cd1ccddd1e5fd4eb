"""A round's selection on rows: rows → plain records → ``learning.round_step.propose_round`` → Query rows.

The round step itself (score, calibrate, select, suggest) is the ML core's,
the same function the benchmark simulators call; this module only reads the
project into plain records and stores the proposal.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from learning.checkpoint import load_model
from learning.progress import check_stop
from learning.round_step import SelectionSettings, propose_round, validation_predictions
from learning.selection import Budget, ScoreCache
from learning.suggestions import background_classes_of
from models_store import storage

from ..models import Project, Round
from .job_progress import JobReporter
from .queries import image_queries_store, queries_store
from .round_data import class_names, latest_labels, pool_images_of, round_data, round_pool
from .superpixels import image_superpixels

BUDGET_UNITS = {Project.BudgetUnit.IMAGES: "images", Project.BudgetUnit.REGIONS: "regions",
                Project.BudgetUnit.PIXEL_PERCENT: "percent"}

# Where each phase of selection sits inside its share of the round job's progress bar.
SELECTION_PHASES = {"calibrate": (0.0, 0.1), "score": (0.1, 0.6), "superpixels": (0.6, 0.8), "suggest": (0.8, 1.0)}

# The app's rounds draw from seed 0: a simulator run with seed 0 makes the same random choices.
APP_SELECTION_SEED = 0


def selection_settings(project: Project, *, size: tuple[int, int]) -> SelectionSettings:
    """The project's selection and suggestion settings as the ML core's plain record.

    ``size``: what the network sees, the size its model was trained at.
    """
    return SelectionSettings(
        strategy=project.strategy, unit=project.query_unit,
        budget=Budget(amount=project.budget_per_round, unit=BUDGET_UNITS[project.budget_unit]),
        num_classes=project.classes.count(), size=size,
        measure=project.uncertainty_measure, target_precision=project.suggestion_precision,
        uncertainty_weight=1.0 - project.diversity_weight,
    )


def select_round(job_id: int, round_: Round, *, start: float = 0.0, end: float = 100.0) -> dict[str, Any]:
    """Propose the round's queries with its model and store them with their suggestions; returns the stats."""
    project = round_.project
    classes = class_names(project)
    model_version = round_.model_version
    model, _ = load_model(storage.version_dir(model_version), expected_classes=classes)
    model_size = model_version.train_config.get("size") or (project.train_height, project.train_width)
    settings = selection_settings(project, size=(int(model_size[0]), int(model_size[1])))
    labels = latest_labels(project)  # read once for training masks, validation and the pool
    data = round_data(project, labels)
    images, pool = round_pool(project, labels)
    by_key = {entry.key: image for entry, image in zip(pool, images)}
    reporter = JobReporter(job_id, start=start, end=end, phases=SELECTION_PHASES)
    proposal = propose_round(
        model, pool,
        calibration=validation_predictions(model, data.val, size=settings.size, batch_size=settings.batch_size),
        settings=settings, round_index=round_.number, val_miou=model_version.miou,
        background_classes=background_classes_of((s.mask for s in data.labeled), len(classes)),
        seed=APP_SELECTION_SEED, regions=lambda key: image_superpixels(image=by_key[key]),
        cache=ScoreCache(storage.score_cache_dir(project.pk), str(model_version.pk)),
        progress=reporter, should_stop=reporter.should_stop,
    )
    queries_store(round_=round_, model_version=model_version, proposal=proposal, images=by_key)
    return {**proposal.stats(settings, classes), "model_version": model_version.version,
            "val_miou": model_version.miou}


def cold_start_budget_images(project: Project, images: list) -> int:
    """How many whole images round 0's budget buys when there is no model (at least one)."""
    from learning.selection.regions import SEGMENTS_PER_PIXEL

    budget = Budget(amount=project.budget_per_round, unit=BUDGET_UNITS[project.budget_unit])
    if budget.unit == "images":
        return max(1, min(len(images), int(budget.amount)))
    pixels = [image.pixels for image in images]
    if budget.unit == "regions":  # as many pixels as that many superpixels cover
        limit = budget.amount / SEGMENTS_PER_PIXEL
    else:
        limit = budget.pixel_limit(int(sum(pixels)))
    taken, total = 0, 0
    for value in pixels:  # the budget in whole images of typical size, rounded up
        if total >= limit:
            break
        taken, total = taken + 1, total + value
    return max(1, taken)


def select_round_cold(job_id: int, round_: Round) -> dict[str, Any]:
    """Round 0 without a model: the most diverse whole images the budget buys, no suggestions."""
    from learning.data import load_image
    from learning.selection.cold_start import cold_start_order, image_descriptor

    project = round_.project
    images = pool_images_of(project)
    reporter = JobReporter(job_id, start=0, end=100)
    descriptors = []
    for number, image in enumerate(images, start=1):
        descriptors.append(image_descriptor(load_image(image.file.path)))
        reporter("describe", number, len(images))
        check_stop(reporter.should_stop, "selection")
    count = cold_start_budget_images(project, images)
    order = cold_start_order(np.stack(descriptors)) if descriptors else iter(())
    chosen = [images[index] for index, _ in zip(order, range(count))]
    image_queries_store(round_=round_, images=chosen)
    return {"strategy": "cold start: k-center on image descriptors", "query_unit": "image", "queries": len(chosen),
            "query_pixels": int(sum(image.pixels for image in chosen)), "cold_start": True,
            "suggestion_precision": None, "suggestion_coverage": None, "model_version": None, "val_miou": None}
