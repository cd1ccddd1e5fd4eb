"""A round's selection on rows: rows → plain records → ``learning.round_step.propose_round`` → Query rows.

The round step itself (score, calibrate, select, suggest) is the ML core's,
the same function the benchmark simulators call; this module only reads the
project into plain records and stores the proposal. A large pool is scored
first by ``learning.score_shard`` tasks on several workers, each writing one
shard of the selection store (:func:`score_round_shard`); the round step then
finds the shards and only selects.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from django.conf import settings as django_settings
from django.db import transaction

from learning.checkpoint import load_model
from learning.pretrained import BackboneChoice
from learning.progress import check_stop
from learning.round_step import SelectionSettings, propose_round, validation_predictions
from learning.selection import Budget, ScoreCache
from learning.suggestions import background_classes_of
from models_store import storage

from ..models import Job, Project, Round
from .job_progress import JobReporter
from .jobs import job_progress
from .queries import image_queries_store, queries_store
from .round_data import class_names, latest_labels, pool_images_of, round_data, round_pool
from .round_training import backbone_choice, backbone_file_ready, train_config
from .superpixels import image_superpixels

BUDGET_UNITS = {Project.BudgetUnit.IMAGES: "images", Project.BudgetUnit.REGIONS: "regions",
                Project.BudgetUnit.PIXEL_PERCENT: "percent"}

# Where each phase of selection sits inside its share of the round job's progress bar.
SELECTION_PHASES = {"calibrate": (0.0, 0.1), "score": (0.1, 0.6), "superpixels": (0.6, 0.8), "suggest": (0.8, 1.0)}

# The app's rounds draw from seed 0: a simulator run with seed 0 makes the same random choices.
APP_SELECTION_SEED = 0

# The job's phase while shard tasks score the pool (the selection task does not dispatch twice).
SHARDS_PHASE = "score-shards"


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


def _round_model(round_: Round, classes: list[str]):
    """The round's model and selection settings (every scoring worker of the round builds the same)."""
    project, model_version = round_.project, round_.model_version
    model, _ = load_model(storage.version_dir(model_version), expected_classes=classes)
    model_size = model_version.train_config.get("size") or (project.train_height, project.train_width)
    return model, selection_settings(project, size=(int(model_size[0]), int(model_size[1])))


def _score_cache(round_: Round) -> ScoreCache:
    return ScoreCache(storage.score_cache_dir(round_.project.pk), str(round_.model_version.pk))


def _parallel_scoring_min_shards() -> int:
    """Pools of at least this many shards are scored by shard tasks on several workers (0: never)."""
    return int(django_settings.MASKLOOP_PARALLEL_SCORING_MIN_SHARDS)


def _scoring_queue() -> str:
    return str(django_settings.MASKLOOP_SCORING_QUEUE)


def _dispatch_shards(job_id: int, round_: Round, shards: list[int]) -> None:
    """Score ``shards`` on the scoring queue in parallel, then run the round's selection task again (a chord).

    Each shard task writes its shard of the selection store (acks late: a
    worker that dies mid-shard has its message delivered again, and only that
    shard is redone); the selection task then finds every shard and selects.
    """
    from celery import chord

    from learning.tasks import round_select, score_shard

    queue = _scoring_queue()
    header = [score_shard.si(job_id=job_id, shard=index).set(queue=queue) for index in shards]
    Job.objects.filter(pk=job_id).update(phase=SHARDS_PHASE, message=f"round {round_.number}: scoring "
                                         f"{len(shards)} shards of the pool on the {queue!r} queue")
    transaction.on_commit(lambda: chord(header)(round_select.si(job_id=job_id)))


def score_round_shard(*, job_id: int, shard: int) -> str:
    """One shard of the round's pool into its selection store (the ``learning.score_shard`` task).

    Reads only the shard's masks; returns quietly when the job or round is
    gone or the round left selection. Idempotent: a shard already stored for
    the same labels is not scored again.
    """
    from learning.round_step import summary_spec
    from learning.selection.store import pool_shards
    from learning.selection.streaming import score_shard

    job = Job.objects.select_related("round__project", "round__model_version").filter(pk=job_id).first()
    round_ = job.round if job is not None else None
    if round_ is None or round_.state != Round.State.SELECTING or round_.model_version is None:
        return "gone"
    project = round_.project
    classes = class_names(project)
    model, settings = _round_model(round_, classes)
    images = pool_images_of(project)
    spec = summary_spec(settings, len(images))
    shards = pool_shards(len(images), spec.shard_size)
    if shard >= len(shards):
        return "gone"  # the pool shrank since the shards were planned: the selection task scores what is left
    # Masks are lazy: score_shard reads only those of this shard's images.
    images, pool = round_pool(project)
    by_key = {f"image-{image.pk}": image for image in images}
    store = _score_cache(round_).summaries(spec)
    scored = score_shard(model, pool, shard, store, regions=lambda key: image_superpixels(image=by_key[key]))
    done = sum(1 for _ in store.directory.glob("shard-*.npz"))
    job_progress(job_id=job_id, phase=SHARDS_PHASE, progress=Job.objects.get(pk=job_id).progress,
                 message=f"round {round_.number}: {done}/{len(shards)} shards of the pool scored")
    return "scored" if scored else "present"


def select_round(job_id: int, round_: Round, *, start: float = 0.0, end: float = 100.0) -> dict[str, Any] | None:
    """Propose the round's queries with its model and store them with their suggestions; returns the stats.

    A pool of many shards is first scored by shard tasks on several workers:
    then this returns None and the round's selection task runs again once
    every shard is stored. A job re-queued after that (a shard task failed
    for good, a worker died) scores the shards still missing itself.
    """
    from learning.round_step import summary_spec
    from learning.selection.streaming import missing_shards

    project = round_.project
    classes = class_names(project)
    model_version = round_.model_version
    model, settings = _round_model(round_, classes)
    labels = latest_labels(project)  # read once for training masks, validation and the pool
    data = round_data(project, labels)
    images, pool = round_pool(project, labels)
    by_key = {entry.key: image for entry, image in zip(pool, images)}
    cache = _score_cache(round_)
    minimum = _parallel_scoring_min_shards()
    if minimum and Job.objects.filter(pk=job_id).exclude(phase=SHARDS_PHASE).exists():
        missing = missing_shards(pool, cache.summaries(summary_spec(settings, len(pool))))
        if len(missing) >= minimum:
            _dispatch_shards(job_id, round_, missing)
            return None
    reporter = JobReporter(job_id, start=start, end=end, phases=SELECTION_PHASES)
    proposal = propose_round(
        model, pool,
        calibration=validation_predictions(model, data.val, size=settings.size, batch_size=settings.batch_size),
        settings=settings, round_index=round_.number, val_miou=model_version.miou,
        background_classes=background_classes_of((s.mask for s in data.labeled), len(classes)),
        seed=APP_SELECTION_SEED, regions=lambda key: image_superpixels(image=by_key[key]),
        cache=cache, progress=reporter, should_stop=reporter.should_stop,
    )
    queries_store(round_=round_, model_version=model_version, proposal=proposal, images=by_key)
    return {**proposal.stats(settings, classes), "model_version": model_version.version,
            "val_miou": model_version.miou}


def cold_start_budget_images(project: Project, images: list) -> int:
    """How many whole images round 0 asks for when there is no model: what the budget buys (at least one), or
    the project's cold-start minimum when that is more, capped at half the pool so later rounds keep a choice.

    A first model trained on the one image a 1 % budget buys predicts the background everywhere
    (docs/BENCHMARKS.md, "Start from nothing"), so the minimum decides the first model's worth.
    """
    return max(cold_start_budget_bought(project, images), cold_start_minimum(project, len(images)))


def cold_start_minimum(project: Project, pool_size: int) -> int:
    """The project's cold-start minimum, at most half the pool."""
    return min(project.cold_start_images, pool_size // 2)


def cold_start_budget_bought(project: Project, images: list) -> int:
    """How many whole images of typical size round 0's budget buys (at least one)."""
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


def cold_start_encoder(job_id: int, project: Project) -> BackboneChoice | None:
    """The pretrained encoder round 0 describes images with, when the project has one (else None).

    Self-supervised pretraining runs here, before the first queries, when the
    project asks for it: round 1's training reuses the finished run.
    """
    backbone = backbone_choice(project)
    path = backbone_file_ready(job_id, project, backbone, progress_end=50)
    return replace(backbone, path=path) if path else None


def select_round_cold(job_id: int, round_: Round) -> dict[str, Any]:
    """Round 0 without a model: the most diverse whole images the budget buys, no suggestions."""
    from learning.data import load_image
    from learning.selection.cold_start import cold_start_order, encoder_descriptors, image_descriptor

    project = round_.project
    images = pool_images_of(project)
    encoder = cold_start_encoder(job_id, project)
    reporter = JobReporter(job_id, start=50 if encoder and encoder.kind == "ssl" else 0, end=100)

    def described(number: int) -> None:
        reporter("describe", number, len(images))
        check_stop(reporter.should_stop, "selection")

    if encoder is not None:
        size = train_config(project, round_index=0, warm_start=False).size
        descriptors = encoder_descriptors(project.architecture, encoder.path, (load_image(i.file.path) for i in images),
                                          size, progress=described)
        method = f"k-center on encoder features ({encoder.description})"
    else:
        descriptors = []
        for number, image in enumerate(images, start=1):
            descriptors.append(image_descriptor(load_image(image.file.path)))
            described(number)
        descriptors = np.stack(descriptors) if descriptors else np.zeros((0, 0))
        method = "k-center on image descriptors"
    bought, count = cold_start_budget_bought(project, images), cold_start_budget_images(project, images)
    order = cold_start_order(descriptors) if len(descriptors) else iter(())
    chosen = [images[index] for index, _ in zip(order, range(count))]
    image_queries_store(round_=round_, images=chosen)
    if count > bought:
        method += (f"; {count} images, the project's cold-start minimum (the round budget buys {bought}), so the "
                   "first model has more than that to learn from")
    return {"strategy": f"cold start: {method}", "query_unit": "image", "queries": len(chosen),
            "query_pixels": int(sum(image.pixels for image in chosen)), "cold_start": True,
            "suggestion_precision": None, "suggestion_coverage": None, "model_version": None, "val_miou": None}
