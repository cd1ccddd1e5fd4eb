"""Target images through BatchNorm only (AdaBN-style: Li et al., 2016), with no loss of their own.

Every objective that draws a target batch also changes BatchNorm statistics,
because the loop forwards source and target frames together. This objective
does only that, so a benchmark can tell how much of an adaptation method's
gain is just "the normalisation statistics now include the target domain".
"""
from __future__ import annotations

from learning.adaptation.base import TargetObjective, register_objective


@register_objective("target_batchnorm")
class TargetBatchNorm(TargetObjective):
    """Draw the target batch (so BatchNorm sees it); add no loss term."""
