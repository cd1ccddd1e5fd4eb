"""Weight-space interpolation between the model a round started from and the one it trained.

A fine-tuning round on a few labels moves the network far from where it
started; on a shifted target domain the point between the two often scores
above both ends (WiSE-FT, Wortsman et al., CVPR'22; model soups, ICML'22),
and it cannot stray as far below its start as the fine-tuned end can. Both
ends share an architecture, so their state dicts interpolate key by key:
floating-point tensors (weights, and BatchNorm's running statistics, which
then describe the interpolated features only approximately) linearly;
integer ones (BatchNorm's step counters) are the trained model's.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch


def interpolate_states(start: Mapping[str, torch.Tensor], trained: Mapping[str, torch.Tensor],
                       start_share: float) -> dict[str, torch.Tensor]:
    """``start_share * start + (1 - start_share) * trained`` for every floating-point tensor.

    ``start_share`` in [0, 1]: 0 returns the trained weights, 1 the starting
    ones. Raises ``ValueError`` when the two do not hold the same tensors.
    """
    if not 0.0 <= start_share <= 1.0:
        raise ValueError(f"start_share must lie in [0, 1], got {start_share}")
    if set(start) != set(trained):
        missing = sorted(set(start) ^ set(trained))[:5]
        raise ValueError(f"the two models hold different tensors (e.g. {missing}): not the same architecture")
    mixed = {}
    for key, end in trained.items():
        begin = start[key]
        if begin.shape != end.shape:
            raise ValueError(f"{key}: shape {tuple(begin.shape)} against {tuple(end.shape)}")
        if end.is_floating_point():
            mixed[key] = torch.lerp(end, begin.to(device=end.device, dtype=end.dtype), float(start_share))
        else:
            mixed[key] = end.clone()
    return mixed
