"""The plug-in point for extra training objectives on target images.

The train loop (learning/train.py) does the supervised part itself. Everything
that uses the *unlabeled target* images or adds a loss term (output-space
adversarial alignment, self-training on pseudo-labels, mean-teacher
consistency, a pixel contrastive loss) is a :class:`TargetObjective` registered by name and
picked from ``TrainConfig``, so adding one means adding one class, not
editing the loop.

Life cycle inside one ``train()`` call::

    objective = build_objective(name, config, options)
    objective.setup(context)                # e.g. compute pseudo-labels with the current model
    for each step:
        batch = objective.prepare_target_batch(...)  # e.g. teacher on weak, student gets strong views
        terms = objective.loss(step)        # extra loss terms for the segmentation net
        ... backward, optimizer step ...
        objective.after_step(step)          # e.g. update a discriminator / EMA teacher
    objective.summary(), objective.state_dict()
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Sequence

import torch
from torch import nn

from learning.data import Sample, SegmentationDataset
from learning.device import Numerics
from learning.labels import IGNORE_INDEX
from learning.progress import Cancelled, ProgressFn, StopFn
from learning.models import ForwardOutput

if TYPE_CHECKING:
    from learning.train import TrainConfig




@dataclass
class ObjectiveContext:
    """What an objective may use once, before the first step."""

    config: "TrainConfig"
    model: nn.Module
    numerics: Numerics
    # The target images (unlabeled pool, masks = human labels where present).
    # An objective may replace ``target_dataset.samples`` (e.g. with pseudo-label
    # masks); the loop draws the target batch from this dataset every step.
    target_dataset: SegmentationDataset | None
    warm_start: bool
    progress: ProgressFn | None = None
    should_stop: StopFn | None = None

    def check_stop(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise Cancelled("training cancelled")


@dataclass
class StepState:
    """One training step as objectives see it. Target fields are None when no target batch was drawn."""

    step: int  # 0-based
    total_steps: int
    model: nn.Module
    numerics: Numerics
    source_images: torch.Tensor
    source_masks: torch.Tensor
    source_out: ForwardOutput  # logits in float32
    target_images: torch.Tensor | None = None
    target_masks: torch.Tensor | None = None  # human labels / pseudo-labels, 255 elsewhere
    target_out: ForwardOutput | None = None
    context: ObjectiveContext | None = None
    logs: dict[str, float] = field(default_factory=dict)


class TargetObjective:
    """Base class: override what you need; the defaults do nothing."""

    name: ClassVar[str] = ""
    needs_target_batch: ClassVar[bool] = True

    def __init__(self, config: "TrainConfig", options: dict[str, Any] | None = None):
        self.config = config
        self.options = dict(options or {})

    def setup(self, context: ObjectiveContext) -> None:
        """Called once after the model is built/warm-started and before the first step."""

    def prepare_target_batch(self, step: int, images: torch.Tensor, masks: torch.Tensor
                             ) -> tuple[torch.Tensor, torch.Tensor]:
        """Called with each step's target batch before the forward pass; returns the batch to train on.

        Default: unchanged. Mean-teacher consistency predicts on the (weakly
        augmented) images here and returns strongly augmented, CutMix-ed ones
        with the masks mixed to match. ``images`` normalised (N, 3, H, W),
        ``masks`` int64 (N, H, W) with 255 where unlabeled.
        """
        return images, masks

    def loss(self, state: StepState) -> dict[str, torch.Tensor]:
        """Extra, already weighted, loss terms for the segmentation network (name -> scalar)."""
        return {}

    def after_step(self, state: StepState) -> None:
        """Called after the segmentation optimizer stepped (update auxiliary networks here)."""

    def summary(self) -> dict[str, Any]:
        """JSON-able facts for TrainResult / checkpoint meta (thresholds, counts, ...)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Final state worth keeping beyond the run (an EMA teacher), for ``TrainResult.objective_states``."""
        return {}


ObjectiveFactory = Callable[["TrainConfig", "dict[str, Any] | None"], TargetObjective]
OBJECTIVES: dict[str, ObjectiveFactory] = {}


def register_objective(name: str) -> Callable[[type[TargetObjective]], type[TargetObjective]]:
    """Class decorator: make an objective selectable by ``name`` in ``TrainConfig.objectives``."""

    def decorate(cls: type[TargetObjective]) -> type[TargetObjective]:
        if name in OBJECTIVES:
            raise ValueError(f"objective {name!r} is registered twice")
        cls.name = name
        OBJECTIVES[name] = cls
        return cls

    return decorate


def build_objective(name: str, config: "TrainConfig", options: dict[str, Any] | None = None) -> TargetObjective:
    try:
        factory = OBJECTIVES[name]
    except KeyError:
        raise ValueError(f"unknown training objective {name!r}; registered: {sorted(OBJECTIVES)}") from None
    return factory(config, options)


def masked_cross_entropy(logits: torch.Tensor, target: torch.Tensor, *, weight: torch.Tensor | None = None,
                         ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Mean cross-entropy over labeled pixels only; exactly 0 (with a zero gradient) when none are labeled.

    ``F.cross_entropy(reduction="mean")`` returns NaN for an all-ignored batch,
    which happens routinely with sparse region labels.
    """
    per_pixel = nn.functional.cross_entropy(logits.float(), target, weight=weight, ignore_index=ignore_index,
                                            reduction="none")
    labeled = target != ignore_index
    if weight is None:
        denominator = labeled.sum()
    else:
        denominator = weight[target.clamp(max=weight.numel() - 1)].mul(labeled).sum()
    return per_pixel.sum() / denominator.clamp(min=1e-6 if weight is not None else 1)


def samples_with_masks(samples: Sequence[Sample], masks: Sequence[Any]) -> list[Sample]:
    return [replace(s, mask=m) for s, m in zip(samples, masks)]  # every other field (key, target) kept
