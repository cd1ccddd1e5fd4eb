"""The round loop on database rows: rows → Samples and arrays → the ML core → rows and files.

Only this module and ``learning.tasks`` import Django in ``learning``. The
work is split in two steps, each a Celery task and each idempotent:

``round_train_run``  (queue ``training``)
    fine-tune from the project's current model (or train round 0 from
    scratch) on labeled source + every target label so far, with domain
    adaptation on the unlabeled target pool; evaluate on the frozen
    validation images; store the checkpoint atomically and its ModelVersion
    (one per round: unique constraint); the round moves to *selecting*.
``round_select_run`` (queue ``default``)
    score the pool with that model, select the round's queries within the
    budget, store them with their suggestions in one transaction, open the
    round (or, in the last round, finish the project).

A task that is delivered twice, or re-queued after its worker died, finds
the round further along and only does what is left.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import Max

from annotator.imaging import encode_png
from annotator.models import Annotation, Image, Job, Project, Query, Round, Suggestion
from annotator.services.jobs import (
    job_fail, job_log, job_mark_cancelled, job_progress, job_requeue, job_start, job_succeed, jobs_orphaned,
)
from annotator.services.rounds import round_finish, round_mark_selecting, round_open
from models_store.models import ModelVersion

log = logging.getLogger(__name__)

# Share of a round job's progress bar spent training; selection and suggestions take the rest.
TRAIN_SHARE = 80


class JobCancelled(Exception):
    """The lead cancelled the job between two phases."""


# --- rows → samples ---------------------------------------------------------------------------------------


def _sample(image: Image, mask_path: str | None):
    from learning.data import Sample

    return Sample(image=image.file.path, mask=mask_path, key=f"image-{image.pk}")


def latest_labels(project: Project) -> dict[int, Annotation]:
    """The newest submitted annotation of every target image that has one."""
    latest = (Annotation.objects.filter(image__project=project, is_submitted=True)
              .values("image_id").annotate(version=Max("version")))
    wanted = {(row["image_id"], row["version"]) for row in latest}
    rows = Annotation.objects.filter(image__project=project, is_submitted=True,
                                     image_id__in=[image_id for image_id, _ in wanted])
    return {a.image_id: a for a in rows if (a.image_id, a.version) in wanted}


@dataclass
class RoundData:
    labeled: list  # Samples: labeled source + human-labeled target (255 outside the labeled pixels)
    unlabeled: list  # Samples: the target pool (masks = human labels where present, for the DA objectives)
    val: list  # Samples: frozen validation images with ground truth
    labeled_target_pixels: int
    pool_pixels: int


def round_data(project: Project) -> RoundData:
    """What a round trains on. Validation images never enter training or selection."""
    labels = latest_labels(project)
    source = project.images.filter(domain=Image.Domain.SOURCE, split=Image.Split.TRAIN).exclude(gt_mask="")
    pool = list(project.images.filter(domain=Image.Domain.TARGET, split=Image.Split.POOL).order_by("pk"))
    val = project.images.filter(split=Image.Split.VAL).exclude(gt_mask="").order_by("pk")
    labeled = [_sample(image, image.gt_mask.path) for image in source.order_by("pk")]
    labeled += [_sample(image, labels[image.pk].mask.path) for image in pool if image.pk in labels]
    unlabeled = [_sample(image, labels[image.pk].mask.path if image.pk in labels else None) for image in pool]
    return RoundData(
        labeled=labeled, unlabeled=unlabeled, val=[_sample(image, image.gt_mask.path) for image in val],
        labeled_target_pixels=sum(labels[image.pk].labeled_pixels for image in pool if image.pk in labels),
        pool_pixels=sum(image.pixels for image in pool),
    )


# --- progress ---------------------------------------------------------------------------------------------


class JobReporter:
    """Turns ML-core progress callbacks into throttled Job updates and answers "should I stop?"."""

    def __init__(self, job_id: int, *, start: float, end: float, min_interval: float = 1.0):
        self.job_id, self.start, self.end, self.min_interval = job_id, start, end, min_interval
        self._last_write = 0.0
        self._last_phase = ""
        self.cancelled = False

    def __call__(self, phase: str, step: int, total: int, loss: float | None = None) -> None:
        now = time.monotonic()
        if phase == self._last_phase and now - self._last_write < self.min_interval and step < total:
            return
        fraction = step / total if total else 0.0
        weights = {"pseudo_labels": (0.0, 0.1), "teacher": (0.0, 0.1), "train": (0.1, 0.95),
                   "evaluate": (0.95, 1.0), "pretrain": (0.0, 1.0)}
        low, high = weights.get(phase, (0.0, 1.0))
        overall = self.start + (self.end - self.start) * (low + (high - low) * fraction)
        message = f"{phase} {step}/{total}" + (f", loss {loss:.3f}" if loss is not None else "")
        self.cancelled = job_progress(job_id=self.job_id, phase=phase, progress=overall, message=message)
        self._last_write, self._last_phase = now, phase

    def should_stop(self) -> bool:
        return self.cancelled


def _check_cancel(job_id: int) -> None:
    if Job.objects.filter(pk=job_id, cancel_requested=True).exists():
        raise JobCancelled()


# --- training ---------------------------------------------------------------------------------------------


def class_names(project: Project) -> list[str]:
    return list(project.classes.order_by("index").values_list("name", flat=True))


def checkpoint_dir(project: Project, round_: Round) -> Path:
    return Path(settings.MODELS_STORE_ROOT) / f"project-{project.pk}" / f"round-{round_.number:03d}"


def train_config(project: Project, round_: Round, *, warm_start: bool):
    """The project's settings as a TrainConfig for this round."""
    from learning.train import TrainConfig

    objectives = []
    # Mean-teacher consistency needs a teacher worth copying: from scratch it
    # confirms its own early bias (measured on the demo: dusk mIoU 0.52 → 0.04,
    # one class everywhere), so it joins from the first warm-started round on.
    if project.consistency_training and warm_start:
        objectives.append("consistency")
    if project.pixel_contrastive:
        objectives.append("pixel_contrastive")
    from learning.adaptation import OBJECTIVES

    objectives = tuple(name for name in objectives if name in OBJECTIVES)  # those this build provides
    return TrainConfig(
        arch=project.architecture,
        num_classes=project.classes.count(),
        size=(project.train_height, project.train_width),
        steps=project.train_steps_per_round if warm_start else project.train_steps_initial,
        lr=3e-4 if warm_start else 1e-3,
        adversarial=project.adversarial_adaptation,
        self_training=project.self_training,
        objectives=objectives,
        seed=round_.number,
        # Round 0 from scratch: pseudo-labels only once the model has learnt something.
        self_training_start=0.0 if warm_start else 0.5,
        # Annotators wait for fine-tuning rounds: fit them in the deployment's time budget.
        time_budget_s=60.0 * settings.MASKLOOP_ROUND_TRAIN_MINUTES if warm_start else 0.0,
    )


def _init_state(project: Project, parent: ModelVersion | None, classes: list[str]):
    """Warm start from the current model, else the project's local checkpoint, else nothing."""
    from learning.checkpoint import load_checkpoint

    if parent is not None:
        state, _ = load_checkpoint(Path(settings.MODELS_STORE_ROOT) / parent.path, expected_classes=classes)
        return state
    if project.init_checkpoint and Path(project.init_checkpoint, "meta.json").exists():
        state, _ = load_checkpoint(project.init_checkpoint, expected_classes=classes)
        return state
    return None


def _metrics_json(metrics, classes: list[str], data: RoundData, seconds: float) -> dict[str, Any]:
    values = metrics.to_dict() if metrics is not None else {}
    per_class = values.get("per_class_iou") or [None] * len(classes)
    return {
        "miou": values.get("miou"),
        "per_class_iou": dict(zip(classes, per_class)),
        "pixel_accuracy": values.get("pixel_accuracy"),
        "val_images": len(data.val),
        "labeled_target_pixels": data.labeled_target_pixels,
        "labeled_target_fraction": data.labeled_target_pixels / data.pool_pixels if data.pool_pixels else 0.0,
        "train_seconds": round(seconds, 1),
    }


def _register_version(project: Project, round_: Round, directory: Path, meta: dict[str, Any],
                      parent: ModelVersion | None) -> ModelVersion:
    """The ModelVersion row of a stored checkpoint; the existing one if a duplicate delivery got here first."""
    try:
        with transaction.atomic():
            version = (project.model_versions.aggregate(top=Max("version"))["top"] or 0) + 1
            return ModelVersion.objects.create(
                project=project, round=round_, version=version, parent=parent,
                path=str(directory.relative_to(settings.MODELS_STORE_ROOT)),
                architecture=meta["architecture"], classes=meta["classes"], metrics=meta.get("app_metrics", {}),
                train_config=meta.get("training_config", {}),
                labeled_target_pixels=meta.get("app_metrics", {}).get("labeled_target_pixels", 0),
                state=ModelVersion.State.PROMOTED,
            )
    except IntegrityError:
        return ModelVersion.objects.get(round=round_)


def _adopt_checkpoint(directory: Path, classes: list[str]) -> dict[str, Any] | None:
    """The meta of a complete checkpoint left by a worker that died before registering it, else None.

    An incomplete one cannot exist (checkpoints are renamed into place whole),
    but a corrupt disk can still hand us one: it is moved aside, never used.
    """
    from learning.checkpoint import CheckpointError, load_checkpoint

    if not directory.exists():
        return None
    try:
        _, meta = load_checkpoint(directory, expected_classes=classes)
        return meta
    except CheckpointError as error:
        aside = directory.with_name(f"{directory.name}.broken-{int(time.time())}")
        log.warning("moving unusable checkpoint %s aside to %s: %s", directory, aside, error)
        os.replace(directory, aside)
        return None


def pretrain_project_encoder(job_id: int, project: Project, reporter: JobReporter) -> Path:
    """Self-supervised pretraining of the encoder on the project's images, before round 0.

    Every image but the frozen validation ones, labels ignored. The run
    checkpoints itself under the project's model store, so a worker killed
    halfway resumes where it stopped; a finished run is reused as it is.
    """
    from learning.pretrain import PretrainConfig, pretrain_encoder

    images = [_sample(image, None) for image in
              project.images.exclude(split__in=(Image.Split.VAL, Image.Split.TEST)).order_by("pk")]
    height, width = project.train_height, project.train_width
    config = PretrainConfig(
        arch=project.architecture, load_size=(height, width), view_size=(max(32, height // 2), max(32, width // 2)),
        steps=project.train_steps_initial, checkpoint_dir=str(
            Path(settings.MODELS_STORE_ROOT) / f"project-{project.pk}" / "pretrain"),
    )
    job_log(job_id=job_id, line=f"self-supervised pretraining of the {config.arch} encoder on {len(images)} images, "
                                f"{config.steps} steps")
    result = pretrain_encoder(images, config, progress=reporter, should_stop=reporter.should_stop)
    job_log(job_id=job_id, line=f"pretraining done ({result.total_seconds:.0f} s, resumed at step {result.resumed_from})")
    return result.encoder_path


def train_round(job_id: int, round_: Round) -> ModelVersion:
    """Train the round's model once; a second call returns the model the first one stored."""
    from learning.checkpoint import save_checkpoint
    from learning.train import checkpoint_meta, train

    existing = ModelVersion.objects.filter(round=round_).first()
    if existing is not None:
        return existing
    project = round_.project
    classes = class_names(project)
    parent = (project.model_versions.filter(state=ModelVersion.State.PROMOTED, round__number__lt=round_.number)
              .order_by("-version").first())
    directory = checkpoint_dir(project, round_)
    meta = _adopt_checkpoint(directory, classes)
    if meta is None:
        data = round_data(project)
        init_state = _init_state(project, parent, classes)
        config = train_config(project, round_, warm_start=init_state is not None)
        train_start = 0
        if init_state is None and project.init_checkpoint and Path(project.init_checkpoint).is_file():
            # A single file is a backbone (e.g. a local ImageNet classifier): it initialises the encoder only.
            config = dataclasses.replace(config, backbone_checkpoint=project.init_checkpoint)
        elif init_state is None and project.ssl_pretraining:
            train_start = TRAIN_SHARE // 2
            encoder = pretrain_project_encoder(job_id, project, JobReporter(job_id, start=0, end=train_start))
            config = dataclasses.replace(config, backbone_checkpoint=str(encoder))
        job_log(job_id=job_id, line=(
            f"round {round_.number}: {'fine-tuning model v' + str(parent.version) if parent else 'training from scratch'}"
            f" on {len(data.labeled)} labeled images ({data.labeled_target_pixels} human-labeled target pixels), "
            f"{len(data.unlabeled)} unlabeled target images, {config.steps} steps at {config.size}, "
            f"objectives {list(config.objective_names)}"))
        reporter = JobReporter(job_id, start=train_start, end=TRAIN_SHARE)
        result = train(config, labeled=data.labeled, unlabeled=data.unlabeled, val=data.val,
                       init_state=init_state, progress=reporter, should_stop=reporter.should_stop)
        app_metrics = _metrics_json(result.metrics, classes, data, result.train_seconds)
        app_metrics.update(train_steps=result.steps, train_steps_planned=config.steps)
        meta = checkpoint_meta(result, classes=classes, parent=parent.path if parent else None,
                               app_metrics=app_metrics, project=project.pk, round=round_.number)
        save_checkpoint(directory, state_dict=result.state_dict, meta=meta)
        cut = (f" (time budget of {config.time_budget_s / 60:g} min: {result.steps} of {config.steps} steps)"
               if result.steps < config.steps else "")
        job_log(job_id=job_id, line=f"round {round_.number}: validation mIoU {app_metrics['miou']}, "
                                    f"{result.train_seconds:.0f} s training{cut}")
    return _register_version(project, round_, directory, meta, parent)


def round_train_run(*, job_id: int, worker: str = "") -> str:
    job = job_start(job_id=job_id, worker=worker)
    if job is None or job.round is None:
        return "gone"
    round_ = job.round
    try:
        if round_.state == Round.State.TRAINING:
            model_version = train_round(job_id, round_)
            round_ = round_mark_selecting(round_=round_, model_version=model_version)
        if round_.state != Round.State.SELECTING:
            job_succeed(job_id=job_id, message=f"round {round_.number} is {round_.state} already")
            return "done"
        _check_cancel(job_id)
    except Exception as error:
        return _end_with_error(job_id, error)
    return _hand_over_to_selection(job_id, round_)


def _hand_over_to_selection(job_id: int, round_: Round) -> str:
    from learning.tasks import round_select

    with transaction.atomic():
        Job.objects.filter(pk=job_id, state=Job.State.RUNNING).update(
            state=Job.State.QUEUED, worker="", phase="select", progress=TRAIN_SHARE,
            message=f"round {round_.number}: model trained; selection queued")
        transaction.on_commit(lambda: round_select.apply_async(kwargs={"job_id": job_id}))
    return "trained"


def _end_with_error(job_id: int, error: Exception) -> str:
    from learning.train import TrainingCancelled

    if isinstance(error, (TrainingCancelled, JobCancelled)):
        job_mark_cancelled(job_id=job_id)
        return "cancelled"
    log.exception("round job %s failed", job_id)
    job_fail(job_id=job_id, error=error)
    return "failed"


# --- selection and suggestions -----------------------------------------------------------------------------


def _budget(project: Project):
    from learning.selection.queries import Budget

    unit = {Project.BudgetUnit.IMAGES: "images", Project.BudgetUnit.REGIONS: "regions",
            Project.BudgetUnit.PIXEL_PERCENT: "percent"}[project.budget_unit]
    return Budget(amount=project.budget_per_round, unit=unit)


def _load_mask(path: str) -> np.ndarray:
    from learning.data import load_mask

    return load_mask(path)


def background_classes(project: Project, data: RoundData, num_classes: int) -> list[int]:
    """'Stuff' classes (sky, road, …): those covering more than their fair share of the labeled source pixels.

    They get the stricter 0.97 fallback threshold where validation pixels are too few to calibrate.
    """
    counts = np.zeros(num_classes, dtype=np.int64)
    for sample in data.labeled[:200]:
        mask = _load_mask(sample.mask)
        counts += np.bincount(mask[mask != 255].ravel(), minlength=num_classes)[:num_classes]
    total = counts.sum()
    return [int(c) for c in np.flatnonzero(counts > total / max(1, num_classes))] if total else []


def _region_key(spec) -> str:
    if spec.region_ids is None:
        return ""
    digest = hashlib.sha1(",".join(map(str, sorted(spec.region_ids))).encode()).hexdigest()[:16]
    return f"sp-{len(spec.region_ids)}-{digest}"


def select_round(job_id: int, round_: Round) -> dict[str, Any]:
    """Score, select and suggest; store every query and suggestion of the round in one transaction."""
    from annotator.services.superpixels import image_superpixels
    from learning.checkpoint import load_model
    from learning.inference import predict
    from learning.selection.candidates import PoolItem
    from learning.selection.resample import resize_bilinear
    from learning.selection.scoring import ScoreCache, score_pool
    from learning.selection.strategies import SelectionParams, select_queries, strategy_weight
    from learning.suggestions import calibrate_thresholds, make_suggestion, suggestion_quality

    project = round_.project
    classes = class_names(project)
    model_version = round_.model_version
    model, _ = load_model(Path(settings.MODELS_STORE_ROOT) / model_version.path, expected_classes=classes)
    size = (project.train_height, project.train_width)
    data = round_data(project)
    reporter = JobReporter(job_id, start=TRAIN_SHARE, end=100)

    # Thresholds that make suggested pixels reach the target precision on the frozen validation images.
    reporter("calibrate", 0, 1)
    val_predictions, val_truth = [], []
    for sample, prediction in zip(data.val, predict(model, data.val, size=size, output_size="original")):
        val_predictions.append((prediction.label, prediction.confidence))
        val_truth.append(_load_mask(sample.mask))
    thresholds = calibrate_thresholds(
        val_predictions, val_truth, len(classes), target_precision=project.suggestion_precision,
        background_classes=background_classes(project, data, len(classes)),
    )
    val_quality = None
    for (pred, conf), truth in zip(val_predictions, val_truth):
        quality = suggestion_quality(make_suggestion(pred=pred, confidence=conf, thresholds=thresholds).mask, truth)
        val_quality = quality if val_quality is None else val_quality + quality
    _check_cancel(job_id)

    pool = list(project.images.filter(domain=Image.Domain.TARGET, split=Image.Split.POOL).order_by("pk"))
    labels = latest_labels(project)
    cache = ScoreCache(Path(settings.MODELS_STORE_ROOT) / f"project-{project.pk}" / "scores", str(model_version.pk))
    scores = score_pool(model, [_sample(image, None) for image in pool], measure=project.uncertainty_measure,
                        size=size, cache=cache)
    reporter("score", 1, 3)
    region_unit = project.query_unit == Project.QueryUnit.REGION
    items = []
    for image, score in zip(pool, scores):
        regions = image_superpixels(image=image) if region_unit else None
        items.append(PoolItem(score=score, regions=regions,
                              labels=_load_mask(labels[image.pk].mask.path) if image.pk in labels else None))
        reporter("superpixels", len(items), len(pool))
    _check_cancel(job_id)
    val_miou = model_version.miou
    params = SelectionParams(uncertainty_weight=1.0 - project.diversity_weight, num_classes=len(classes))
    specs = select_queries(items, _budget(project), project.strategy, unit=project.query_unit,
                           round_index=round_.number, val_miou=val_miou, params=params, seed=round_.number)
    by_key = {f"image-{image.pk}": (image, score) for image, score in zip(pool, scores)}
    reporter("suggest", 2, 3)

    prepared = []
    for spec in specs:
        image, score = by_key[spec.key]
        suggestion = make_suggestion(pred=score.pred, confidence=score.confidence, thresholds=thresholds,
                                     region_mask=spec.mask if spec.region_ids is not None else None,
                                     size=spec.mask.shape)
        # The heat overlay shows the model's confidence everywhere, most of all where nothing was suggested.
        confidence = np.clip(np.rint(resize_bilinear(score.confidence, spec.mask.shape) * 255), 0, 255)
        prepared.append((spec, image, suggestion, confidence.astype(np.uint8)))
    weight = strategy_weight(project.strategy, round_index=round_.number, val_miou=val_miou, params=params)
    stats = {
        "strategy": project.strategy, "query_unit": project.query_unit,
        "diversity_weight": None if weight is None else round(1.0 - weight, 3),
        "queries": len(specs), "query_pixels": int(sum(spec.pixels for spec in specs)),
        "suggestion_precision": val_quality.precision if val_quality else None,
        "suggestion_coverage": val_quality.coverage if val_quality else None,
        "suggested_pixels": int(sum(s.suggested_pixels for _, _, s, _ in prepared)),
        "thresholds": dict(zip(classes, (round(float(v), 4) for v in thresholds.values))),
        "model_version": model_version.version, "val_miou": val_miou,
    }
    _store_queries(round_, model_version, prepared)
    return stats


def _store_queries(round_: Round, model_version: ModelVersion, prepared: list) -> None:
    """All queries and suggestions of the round, or none of them (a retry starts from a clean slate)."""
    written: list = []
    try:
        with transaction.atomic():
            if Query.objects.filter(round=round_).exists():
                return  # a previous delivery stored them; the round only needs opening
            for spec, image, suggestion, confidence in prepared:
                query = Query(round=round_, image=image, region_key=_region_key(spec), pixels=int(spec.pixels),
                              score=float(spec.score), priority=int(spec.rank))
                if spec.region_ids is not None:
                    ys, xs = np.nonzero(spec.mask)
                    query.region_bbox = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
                    query.region_mask.save(f"r{round_.pk}-i{image.pk}.png",
                                           ContentFile(encode_png(spec.mask.astype(np.uint8) * 255)), save=False)
                    written.append(query.region_mask)
                query.save()
                row = Suggestion(query=query, model_version=model_version,
                                 coverage=suggestion.suggested_pixels / max(1, int(spec.pixels)))
                row.mask.save(f"q{query.pk}-m{model_version.pk}.png", ContentFile(encode_png(suggestion.mask)),
                              save=False)
                written.append(row.mask)
                row.confidence.save(f"q{query.pk}-m{model_version.pk}-conf.png",
                                    ContentFile(encode_png(confidence)), save=False)
                written.append(row.confidence)
                row.save()
    except BaseException:
        for file in written:
            file.storage.delete(file.name)
        raise


def round_select_run(*, job_id: int, worker: str = "") -> str:
    job = job_start(job_id=job_id, worker=worker)
    if job is None or job.round is None:
        return "gone"
    round_ = job.round
    try:
        if round_.state != Round.State.SELECTING:
            job_succeed(job_id=job_id, message=f"round {round_.number} is {round_.state} already")
            return "done"
        if round_.number >= round_.project.rounds_total:
            round_finish(round_=round_, stats={"final": True, "val_miou": round_.model_version.miou})
            job_succeed(job_id=job_id, message=f"round {round_.number}: final model evaluated; project finished")
            return "finished"
        stats = select_round(job_id, round_)
        if stats["queries"] == 0:
            round_finish(round_=round_, stats={**stats, "final": True})
            job_succeed(job_id=job_id, message="nothing left to label: project finished")
            return "finished"
        round_open(round_=round_, stats=stats)
        job_succeed(job_id=job_id, message=f"round {round_.number} open: {stats['queries']} queries, "
                                           f"{stats['query_pixels']} pixels")
        return "opened"
    except Exception as error:
        return _end_with_error(job_id, error)


# --- recovery ---------------------------------------------------------------------------------------------


def jobs_recover(*, worker: str) -> list[int]:
    """Re-queue round jobs whose worker died (called when a worker starts); returns their ids."""
    from learning.tasks import round_select, round_train

    requeued = []
    for job in jobs_orphaned(worker=worker, stale_after_seconds=settings.MASKLOOP_JOB_STALE_SECONDS):
        if job.kind != Job.Kind.ROUND or job.round is None:
            job_fail(job_id=job.pk, error=f"its worker {job.worker} stopped while it ran; start it again")
            continue
        task = round_select if job.round.state == Round.State.SELECTING else round_train
        if job_requeue(job=job, task=task):
            requeued.append(job.pk)
    return requeued
