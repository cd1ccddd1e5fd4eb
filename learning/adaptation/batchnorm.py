"""BatchNorm statistics and the target domain.

Two uses of the same observation (Li et al., "Revisiting Batch Normalization
for Practical Domain Adaptation", 2016: AdaBN): a network trained on day frames
normalises dusk frames with day statistics, and a good part of its domain gap
is just that.

- ``"target_batchnorm"``: an objective that draws the target batch but adds
  no loss, so BatchNorm statistics include the target domain. Every objective
  that draws target frames gets this effect too (the loop forwards source and
  target together); this one isolates it for benchmarks.
- :func:`with_target_statistics`: a copy of a model whose BatchNorm running
  statistics are re-estimated on target images, used to compute pseudo-labels.
  On CamVid dusk it raised the base model's pixel accuracy on the unlabeled
  pool from 63 % to 77 % and CBST pseudo-label precision from 73 % to 87 %.
- :func:`choose_statistics`: whether a trained model keeps the statistics it
  trained with or takes the target pool's (``TrainConfig.target_statistics``).
  Measured on round-0 models (docs/BENCHMARKS.md, "Target BatchNorm
  statistics"), the pool's statistics moved target validation mIoU by +26 on the demo, +7 on
  CamVid dusk and by -8 on the polyp frames: no fixed answer holds on every
  dataset, so ``"auto"`` lets the target validation labels decide.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
import torch
from torch import nn

from learning.adaptation.base import TargetObjective, register_objective
from learning.data import Sample, Size, SegmentationDataset, collate
from learning.device import Numerics
from learning.models import model_forward


@register_objective("target_batchnorm")
class TargetBatchNorm(TargetObjective):
    """Draw the target batch (so BatchNorm sees it); add no loss term."""


def _batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def with_target_statistics(model: nn.Module, samples: Sequence[Sample], *, size: Size, numerics: Numerics,
                           batch_size: int = 8) -> nn.Module:
    """A copy of ``model`` (eval mode) whose BatchNorm running statistics are those of ``samples``.

    Weights are shared by value, not touched; only the copy's running means and
    variances change (cumulative average over one pass, no augmentation). Fewer
    than two samples cannot be batch-normalised in train mode, so the copy then
    keeps the original statistics.
    """
    adapted = copy.deepcopy(model).eval()
    if len(samples) < 2:
        return adapted
    norms = _batchnorms(adapted)
    saved_momentum = [bn.momentum for bn in norms]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative moving average: every batch weighs the same
        bn.train()  # only the norms: dropout stays off
    dataset = SegmentationDataset(samples, size)
    batch_size = max(2, batch_size)
    starts = list(range(0, len(dataset), batch_size))
    if len(dataset) - starts[-1] == 1:  # a lone last image cannot be batch-normalised
        starts.pop()
    with torch.no_grad():
        for start in starts:
            stop = len(dataset) if start == starts[-1] else start + batch_size
            images, _ = collate(dataset[i] for i in range(start, stop))
            with numerics.autocast():
                model_forward(adapted, numerics.prepare_input(images))
    for bn, momentum in zip(norms, saved_momentum):
        bn.momentum = momentum
    return adapted.eval()


# TrainConfig.target_statistics: "off" keeps the statistics a model trained with; "on" always takes the target
# pool's; "auto" takes them only when they score higher on the target validation labels (none: as trained).
STATISTICS_MODES = ("off", "on", "auto")
# BatchNorm statistics settle within a few hundred images; a larger pool is sampled (the same images each call).
MAX_STATISTICS_IMAGES = 256


@dataclass(frozen=True)
class StatisticsChoice:
    """Which BatchNorm statistics a trained model keeps, and why (kept with the model's metrics)."""

    mode: str  # the setting, one of STATISTICS_MODES
    chosen: str  # "training" (as trained) | "target" (re-estimated on the target pool)
    reason: str
    images: int = 0  # target images the statistics were estimated on
    val_miou: dict[str, float | None] = field(default_factory=dict)  # by variant, where scored

    def to_dict(self) -> dict:
        return asdict(self)


def statistics_images(samples: Sequence[Sample], *, limit: int = MAX_STATISTICS_IMAGES, seed: int = 0) -> list[Sample]:
    """The target images to estimate statistics on: every one, or ``limit`` of them drawn with ``seed``
    (pool order kept); masks are dropped, as statistics need only the images."""
    chosen = range(len(samples))
    if len(samples) > limit:
        chosen = sorted(np.random.default_rng(seed).choice(len(samples), size=limit, replace=False).tolist())
    return [Sample(image=samples[i].image, key=samples[i].key, target=True) for i in chosen]


def needs_target_variant(mode: str, *, images: int, has_validation: bool) -> bool:
    """Whether :func:`choose_statistics` could pick the target statistics, so they are worth estimating."""
    check_statistics_mode(mode)
    return images >= 2 and (mode == "on" or (mode == "auto" and has_validation))


def choose_statistics(mode: str, *, images: int, val_miou: dict[str, float | None] | None) -> StatisticsChoice:
    """The one rule for a trained model's BatchNorm statistics.

    ``val_miou``: target validation mIoU by variant ("training", "target"),
    None when the project has no target validation labels. ``"auto"`` takes
    the target statistics only when they score strictly higher; without
    validation labels nothing says they help, so the model stays as trained.
    """
    check_statistics_mode(mode)
    scored = dict(val_miou or {})
    if mode == "off":
        return StatisticsChoice(mode, "training", "target statistics are off", images, scored)
    if images < 2:
        return StatisticsChoice(mode, "training", "fewer than two target images to estimate statistics on",
                                images, scored)
    if mode == "on":
        return StatisticsChoice(mode, "target", "target statistics are on", images, scored)
    if val_miou is None:
        return StatisticsChoice(mode, "training", "no target validation labels to compare on: kept as trained",
                                images, scored)
    target, trained = scored.get("target"), scored.get("training")
    if target is not None and (trained is None or target > trained):
        return StatisticsChoice(mode, "target", f"target statistics score {_pct(target)} on target validation "
                                f"against {_pct(trained)} as trained", images, scored)
    return StatisticsChoice(mode, "training", f"as trained scores {_pct(trained)} on target validation against "
                            f"{_pct(target)} with target statistics", images, scored)


def check_statistics_mode(mode: str) -> None:
    if mode not in STATISTICS_MODES:
        raise ValueError(f"unknown target_statistics {mode!r}; choose one of {STATISTICS_MODES}")


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} mIoU"
