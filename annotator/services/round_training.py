"""A round's training on rows: rows → samples → ``learning.train`` → a stored checkpoint and its ModelVersion.

Round 0 trains from scratch (or from the project's initial weights) on the
labeled source with domain adaptation on the unlabeled target pool; every
later round fine-tunes the current model on every label so far. The
checkpoint is written atomically; a worker that died after writing it but
before registering it leaves a checkpoint the next delivery adopts.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from django.conf import settings

from learning.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from learning.pretrained import BackboneChoice, PretrainedUnavailable, resolve_backbone
from learning.recipe import RecipeSettings, has_labeled_source, round_train_config
from learning.round_step import train_round_model
from learning.train import TrainConfig, checkpoint_meta
from models_store import storage
from models_store.models import ModelVersion
from models_store.selectors import model_version_current
from models_store.services import model_version_register, model_version_set_aside

from ..models import Image, Project, Round
from .errors import ServiceError
from .job_progress import TRAINING_PHASES, JobReporter
from .jobs import job_log
from .round_data import RoundData, class_names, image_sample, round_data

log = logging.getLogger(__name__)

# Share of a round job's progress bar spent training; selection and suggestions take the rest.
TRAIN_SHARE = 80


def recipe_settings(project: Project) -> RecipeSettings:
    """The project's training settings as the ML core's plain record (sizes 0 × 0 = from the images)."""
    size = (project.train_height, project.train_width) if project.train_height and project.train_width else None
    return RecipeSettings(
        arch=project.architecture, num_classes=project.classes.count(), size=size,
        steps_initial=project.train_steps_initial, steps_per_round=project.train_steps_per_round,
        adversarial=project.adversarial_adaptation, self_training=project.self_training,
        consistency=project.consistency_training, pixel_contrastive=project.pixel_contrastive,
        target_statistics=project.target_statistics,
        round_minutes=settings.MASKLOOP_ROUND_TRAIN_MINUTES, initial_minutes=settings.MASKLOOP_ROUND0_TRAIN_MINUTES,
        max_train_pixels=settings.MASKLOOP_TRAIN_MAX_PIXELS or None,  # None: by the worker's device
    )


def train_config(project: Project, *, round_index: int, warm_start: bool, labeled_source: bool = True) -> TrainConfig:
    """The project's settings as a TrainConfig for this round (the recipe: learning/recipe.py)."""
    from learning.adaptation import OBJECTIVES

    sizes = project.images.filter(domain=Image.Domain.TARGET).values_list("height", "width")
    return round_train_config(recipe_settings(project), round_index=round_index, warm_start=warm_start,
                              image_sizes=list(sizes), available_objectives=tuple(OBJECTIVES),
                              labeled_source=labeled_source)


def _init_state(project: Project, parent: ModelVersion | None, classes: list[str]):
    """Warm start from the current model, else the project's local checkpoint, else nothing."""
    if parent is not None:
        state, _ = load_checkpoint(storage.version_dir(parent), expected_classes=classes)
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


def _adopt_checkpoint(directory: Path, classes: list[str]) -> dict[str, Any] | None:
    """The meta of a complete checkpoint left by a worker that died before registering it, else None.

    An incomplete one cannot exist (checkpoints are renamed into place whole),
    but a corrupt disk can still hand us one: it is moved aside, never used.
    """
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


def backbone_choice(project: Project) -> BackboneChoice:
    """Where round 0's backbone starts, from the project's setting (or the deployment default)."""
    mode = settings.MASKLOOP_PRETRAINED if project.pretrained == Project.Pretrained.DEFAULT else project.pretrained
    local = project.init_checkpoint if project.init_checkpoint and Path(project.init_checkpoint).is_file() else None
    try:
        return resolve_backbone(mode, project.architecture, local_file=local,
                                download=settings.MASKLOOP_PRETRAINED_DOWNLOAD, ssl_allowed=project.ssl_pretraining)
    except PretrainedUnavailable as error:  # an explicit choice that cannot be met: say why, fail the job
        raise ServiceError(str(error)) from error


def pretrain_project_encoder(job_id: int, project: Project, reporter: JobReporter) -> Path:
    """Self-supervised pretraining of the encoder on the project's images, before round 0.

    Every image but the frozen validation ones, labels ignored. The run
    checkpoints itself under the project's model store, so a worker killed
    halfway resumes where it stopped; a finished run is reused as it is.
    """
    from learning.pretrain import pretrain_encoder, round0_pretrain_config

    images = [image_sample(image) for image in
              project.images.exclude(split__in=(Image.Split.VAL, Image.Split.TEST)).order_by("pk")]
    config = round0_pretrain_config(project.architecture, train_config(project, round_index=0, warm_start=False).size,
                                    project.train_steps_initial, checkpoint_dir=str(storage.pretrain_dir(project.pk)))
    job_log(job_id=job_id, line=f"self-supervised pretraining of the {config.arch} encoder on {len(images)} images, "
                                f"{config.steps} steps")
    result = pretrain_encoder(images, config, progress=reporter, should_stop=reporter.should_stop)
    job_log(job_id=job_id, line=f"pretraining done ({result.total_seconds:.0f} s, resumed at step {result.resumed_from})")
    return result.encoder_path


def _mix_note(labeled, share: float) -> str:
    targets = sum(sample.target for sample in labeled)
    if not share or not targets or targets == len(labeled):
        return ""
    return f"; {share:.0%} of each batch and of the cross-entropy from the {targets} labeled target images"


def backbone_file_ready(job_id: int, project: Project, backbone: BackboneChoice, *, progress_end: int) -> str | None:
    """The backbone file ``backbone`` names, running the project's self-supervised pretraining first when it is
    the choice (a finished run is reused); its progress fills the job's bar up to ``progress_end``."""
    if backbone.kind != "ssl":
        return backbone.path
    return str(pretrain_project_encoder(job_id, project, JobReporter(job_id, start=0, end=progress_end,
                                                                     phases=TRAINING_PHASES)))


def train_round(job_id: int, round_: Round) -> ModelVersion:
    """Train the round's model once; a second call returns the model the first one stored."""
    existing = ModelVersion.objects.filter(round=round_).first()
    if existing is not None:
        return existing
    project = round_.project
    classes = class_names(project)
    parent = _readable_current_model(project, round_, classes)
    directory = storage.round_checkpoint_dir(project.pk, round_.number)
    meta = _adopt_checkpoint(directory, classes)
    if meta is None:
        meta = _train_and_store(job_id, project, round_, parent, classes, directory)
    return model_version_register(project=project, round_=round_, directory=directory, meta=meta, parent=parent)


def _readable_current_model(project: Project, round_: Round, classes: list[str]) -> ModelVersion | None:
    """The model to fine-tune: the newest promoted one whose checkpoint is whole.

    A corrupt checkpoint (bad disk, a truncated copy) would fail every retry;
    it is set aside (rejected, with the reason) and the one before serves.
    """
    from learning.checkpoint import verify_checkpoint

    while (current := model_version_current(project=project, before_round=round_.number)) is not None:
        try:
            meta = verify_checkpoint(storage.version_dir(current))
            if meta["classes"] == classes:
                return current
            reason = f"trained for classes {meta['classes']}, the project has {classes}"
        except (CheckpointError, storage.StoreError) as error:
            reason = str(error)
        log.warning("model v%s cannot be fine-tuned and is set aside: %s", current.version, reason)
        model_version_set_aside(model_version=current, reason=f"checkpoint unusable: {reason}")
    return None


def miou_text(miou: float | None) -> str:
    """0.16698613811979637 → "16.7 %" (how the job log writes an mIoU); None → n/a."""
    return "n/a (no validation labels yet)" if miou is None else f"{100 * miou:.1f} %"


def _consistency_note(project: Project, planned: TrainConfig) -> str:
    """Say so when the project asks for consistency training and this round leaves it out (learning/recipe.py:
    from scratch its mean teacher would only copy its own early mistakes, so it joins from round 1 on)."""
    if project.consistency_training and "consistency" not in planned.objective_names:
        return "; consistency training is on but joins from the first fine-tuning round (round 1): its mean " \
               "teacher needs a trained model to copy"
    return ""


def _adaptation_note(project: Project, planned: TrainConfig) -> str:
    """Say so when the project asks for adversarial adaptation and this round leaves it out (learning/recipe.py:
    with no labeled source image there is no second domain to adapt from)."""
    if project.adversarial_adaptation and not planned.adversarial:
        return "; adversarial adaptation is on but left out: no labeled image comes from a source domain, so " \
               "there is no domain gap to close"
    return ""


def _train_and_store(job_id: int, project: Project, round_: Round, parent: ModelVersion | None,
                     classes: list[str], directory: Path) -> dict[str, Any]:
    data = round_data(project)
    if not data.labeled:
        raise ServiceError(f"round {round_.number}: nothing is labeled yet, so no model can train; label at least "
                           "one query (every query of the last round was skipped or left empty)")
    init_state = _init_state(project, parent, classes)
    recipe = recipe_settings(project)
    sizes = list(project.images.filter(domain=Image.Domain.TARGET).values_list("height", "width"))
    train_start, backbone, backbone_file = 0, None, None
    if init_state is None:
        backbone = backbone_choice(project)
        job_log(job_id=job_id, line=f"round {round_.number}: the backbone starts from {backbone.description}")
        train_start = TRAIN_SHARE // 2 if backbone.kind == "ssl" else 0
        backbone_file = backbone_file_ready(job_id, project, backbone, progress_end=train_start)
    planned = train_config(project, round_index=round_.number, warm_start=init_state is not None,
                           labeled_source=has_labeled_source(data.labeled))
    job_log(job_id=job_id, line=(
        f"round {round_.number}: {'fine-tuning model v' + str(parent.version) if parent else 'training from scratch'}"
        f" on {len(data.labeled)} labeled images ({data.labeled_target_pixels} human-labeled target pixels"
        f"{_mix_note(data.labeled, planned.target_label_share)}), "
        f"{len(data.unlabeled)} unlabeled target images, {planned.steps} steps at {planned.size}, "
        f"objectives {list(planned.objective_names)}{_consistency_note(project, planned)}"
        f"{_adaptation_note(project, planned)}"))
    from learning.adaptation import OBJECTIVES

    reporter = JobReporter(job_id, start=train_start, end=TRAIN_SHARE, phases=TRAINING_PHASES)
    trained = train_round_model(
        recipe, round_index=round_.number, labeled=data.labeled, unlabeled=data.unlabeled, val=data.val,
        init_state=init_state, current_state=init_state if parent is not None else None, image_sizes=sizes,
        backbone_checkpoint=backbone_file, available_objectives=tuple(OBJECTIVES),
        progress=reporter, should_stop=reporter.should_stop)
    result, config, decision = trained.result, trained.config, trained.promotion
    app_metrics = _metrics_json(result.metrics, classes, data, result.train_seconds)
    app_metrics.update(train_steps=result.steps, train_steps_planned=config.steps)
    app_metrics["pretrained"] = (backbone.to_dict() if backbone is not None else
                                 {"kind": "fine-tune", "path": None, "description": f"model v{parent.version}"
                                  if parent else "the project's initial checkpoint"})
    if result.batchnorm is not None:
        app_metrics["batchnorm"] = result.batchnorm.to_dict()
        job_log(job_id=job_id, line=f"round {round_.number}: BatchNorm statistics "
                                    f"{'of the target pool' if result.batchnorm.chosen == 'target' else 'as trained'}"
                                    f" ({result.batchnorm.reason})")
    meta = checkpoint_meta(result, classes=classes, parent=parent.path if parent else None,
                           app_metrics=app_metrics, project=project.pk, round=round_.number)
    meta["app_metrics"]["promotion"] = decision.to_dict()
    save_checkpoint(directory, state_dict=result.state_dict, meta=meta)
    job_log(job_id=job_id, line=f"round {round_.number}: {'promoted' if decision.promote else 'kept the current model'}"
                                f" ({decision.reason})")
    cut = (f" (time budget of {config.time_budget_s / 60:g} min: {result.steps} of {config.steps} steps)"
           if result.steps < config.steps else "")
    job_log(job_id=job_id, line=f"round {round_.number}: validation mIoU {miou_text(app_metrics['miou'])}, "
                                f"{result.train_seconds:.0f} s training{cut}")
    return meta
