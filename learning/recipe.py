"""The training recipe of a labeling round, decided in one place for the app and the benchmarks.

A project (or a benchmark arm) states what it wants in a :class:`RecipeSettings`;
:func:`round_train_config` turns that into the ``TrainConfig`` of one round:
round 0 trains from scratch (or a pretrained backbone) at a higher learning
rate, later rounds fine-tune the current model. The defaults here are the
ones measured to hold on more than one dataset (docs/BENCHMARKS.md, "Dataset
suite" and "Training recipe"): unweighted cross-entropy plus a soft Dice
term, so a rare foreground class is neither ignored nor painted everywhere.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from learning.train import TrainConfig

# Pixels per training image when the size comes from the data, by the device that trains. On a CPU fewer
# pixels buy more steps within a round's minutes, and the steps are worth more than the pixels: round 0
# given 15 minutes on a 2-core CPU at 144 × 192 against 240 × 320 (docs/BENCHMARKS.md, "Training recipe").
CPU_MAX_TRAIN_PIXELS = 144 * 192
# A CUDA worker keeps the size the app trained at before the CPU default came down (measured on no GPU here);
# MASKLOOP_TRAIN_MAX_PIXELS raises it (e.g. 512 * 512).
GPU_MAX_TRAIN_PIXELS = 240 * 320
SIZE_MULTIPLE = 16  # the networks' output stride: sizes divisible by it keep feature maps aligned
MIN_SIDE = 64

DEFAULT_CLASS_WEIGHTING = "none"
DEFAULT_DICE_WEIGHT = 1.0
# Half of each labeled batch, and half of the cross-entropy, from the target images' labels when a labeled
# source is mixed in (learning.train.supervised_loss): what the campaign measured on CamVid.
DEFAULT_TARGET_LABEL_SHARE = 0.5
# Re-estimated on the target pool, BatchNorm statistics gave round 0 +7 mIoU on CamVid dusk and -8 on the polyp
# frames: "auto" keeps them only where the target validation labels score them higher.
DEFAULT_TARGET_STATISTICS = "auto"


@dataclass(frozen=True)
class RecipeSettings:
    arch: str
    num_classes: int
    size: tuple[int, int] | None = None  # None: from the images (auto_train_size)
    steps_initial: int = 600
    # 400 planned steps (the round's time budget trims them on a slow worker): against 200, from the same round-0
    # models, +0.7 to +3.2 mIoU for ours at rounds 1-3 on CamVid and polyp, every label +0.9 to +5.0; ~6 min a
    # round on a 2-core CPU (docs/BENCHMARKS.md, "ablation: suite_steps400" and "suite_400steps").
    steps_per_round: int = 400
    adversarial: bool = True
    self_training: bool = False
    consistency: bool = False  # mean-teacher consistency when fine-tuning: off, as annotator.models.Project says why
    pixel_contrastive: bool = False
    round_minutes: float = 7.0  # fine-tuning rounds fit this budget (0 = no budget)
    initial_minutes: float = 0.0  # round 0's budget (0 = no budget: every planned step)
    max_train_pixels: int | None = None  # None: default_max_train_pixels() of the device that trains
    class_weighting: str = DEFAULT_CLASS_WEIGHTING
    dice_weight: float = DEFAULT_DICE_WEIGHT
    target_label_share: float = DEFAULT_TARGET_LABEL_SHARE
    finetune_lr: float = 3e-4
    finetune_head_only: bool = False  # fine-tuning rounds train the head alone (TrainConfig.freeze_backbone)
    # Share of a fine-tuning round's planned steps whose learning rate rises linearly from ~0 (TrainConfig.
    # warmup_steps). Each round starts a fresh AdamW state, whose first steps move every weight by about the full
    # learning rate whatever its gradient's size: a jolt to a model that was already at its best. 0 = none: on
    # polyp (round 1, 2 seeds × ours / random regions / every label) 10 % of warm-up moved each candidate by at most
    # 0.9 mIoU and left seed 0's drop below round 0 as it was (docs/BENCHMARKS.md, "ablation: suite_warmup").
    finetune_warmup: float = 0.0
    rare_class_temperature: float = 0.0  # > 0: rare-class sampling of the labeled source (TrainConfig field)
    # BatchNorm statistics of the target pool after training, where target validation labels say they help
    # (TrainConfig.target_statistics; docs/BENCHMARKS.md, "Target BatchNorm statistics").
    target_statistics: str = DEFAULT_TARGET_STATISTICS

    def __post_init__(self) -> None:
        if not 0.0 <= self.finetune_warmup < 1.0:  # also refuses NaN
            raise ValueError(f"finetune_warmup must be in [0, 1): {self.finetune_warmup!r}")


def default_max_train_pixels(device_type: str | None = None) -> int:
    """The training-size cap for ``device_type`` ("cpu", "cuda", ...; None: the device training picks)."""
    if device_type is None:
        from learning.device import pick_device

        device_type = pick_device().type
    return GPU_MAX_TRAIN_PIXELS if device_type == "cuda" else CPU_MAX_TRAIN_PIXELS


def auto_train_size(image_sizes: Sequence[tuple[int, int]], max_pixels: int | None = None) -> tuple[int, int]:
    """A training size (H, W) from the images' own sizes: their median shape, shrunk to ``max_pixels``
    (None: :func:`default_max_train_pixels` of the device that trains).

    Never upscales (224 × 224 patches train at 224 × 224 on a GPU), keeps the
    median aspect ratio, and rounds to multiples of :data:`SIZE_MULTIPLE`.
    """
    if not image_sizes:
        raise ValueError("no images to take a training size from")
    max_pixels = max_pixels or default_max_train_pixels()
    heights, widths = zip(*((int(h), int(w)) for h, w in image_sizes))
    height, width = float(np.median(heights)), float(np.median(widths))
    scale = min(1.0, math.sqrt(max_pixels / (height * width)))

    def side(value: float) -> int:
        return max(MIN_SIDE, int(value * scale) // SIZE_MULTIPLE * SIZE_MULTIPLE)

    return side(height), side(width)


def round_train_config(settings: RecipeSettings, *, round_index: int, warm_start: bool,
                       image_sizes: Sequence[tuple[int, int]] = (),
                       available_objectives: Sequence[str] | None = None, seed: int = 0,
                       labeled_source: bool = True) -> TrainConfig:
    """The TrainConfig of one round: ``warm_start`` = fine-tuning the current model, else round 0.

    ``labeled_source``: whether any labeled image comes from a source domain.
    Without one (a project of its own images only) there is no domain gap to
    close: adversarial adaptation would only tell labeled target images from
    unlabeled ones of the same domain, at the cost of a second batch per step,
    so it is left out (:func:`adaptation_applies`).
    The random stream is ``seed * 1000 + round_index`` (the app runs seed 0: the round number).
    """
    objectives = []
    # Mean-teacher consistency needs a teacher worth copying: from scratch it
    # confirms its own early bias (measured on the demo: dusk mIoU 0.52 → 0.04,
    # one class everywhere), so it joins from the first warm-started round on.
    if settings.consistency and warm_start:
        objectives.append("consistency")
    if settings.pixel_contrastive:
        objectives.append("pixel_contrastive")
    if available_objectives is not None:
        objectives = [name for name in objectives if name in available_objectives]
    size = settings.size or auto_train_size(image_sizes, settings.max_train_pixels)
    minutes = settings.round_minutes if warm_start else settings.initial_minutes
    steps = settings.steps_per_round if warm_start else settings.steps_initial
    return TrainConfig(
        arch=settings.arch, num_classes=settings.num_classes, size=size,
        steps=steps, warmup_steps=round(settings.finetune_warmup * steps) if warm_start else 0,
        lr=settings.finetune_lr if warm_start else 1e-3,
        adversarial=adaptation_applies(settings, labeled_source=labeled_source),
        self_training=settings.self_training, objectives=tuple(objectives),
        seed=int(seed) * 1000 + int(round_index),
        # Round 0 from scratch: pseudo-labels only once the model has learnt something.
        self_training_start=0.0 if warm_start else 0.5,
        time_budget_s=60.0 * minutes,
        class_weighting=settings.class_weighting, dice_weight=settings.dice_weight,
        target_label_share=settings.target_label_share,
        freeze_backbone=settings.finetune_head_only and warm_start,
        rare_class_temperature=settings.rare_class_temperature,
        target_statistics=settings.target_statistics,
    )


def has_labeled_source(labeled: Sequence) -> bool:
    """Whether any labeled sample comes from a source domain (``Sample.target`` false): what ``labeled_source`` means."""
    return any(not sample.target for sample in labeled)


def adaptation_applies(settings: RecipeSettings, *, labeled_source: bool) -> bool:
    """Adversarial domain adaptation runs when the project asks for it and a labeled source domain exists."""
    return settings.adversarial and labeled_source
