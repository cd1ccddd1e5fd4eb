"""Per-pixel uncertainty maps from class probabilities.

Every measure maps probabilities shaped ``(..., C, H, W)`` to ``(..., H, W)``
in ``[0, 1]`` where **higher means more uncertain**, so measures are
interchangeable in the region and image scores built on top of them. The maps
accept numpy arrays (what the rest of the ML core passes around) and torch
tensors (what :mod:`learning.selection.scoring` computes on, batched, right
after the forward pass) and return the same kind they were given.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import torch

ArrayLike = TypeVar("ArrayLike", np.ndarray, torch.Tensor)

_CLASS_DIM = -3  # probs are (..., C, H, W)


def _as_tensor(probs: np.ndarray | torch.Tensor) -> torch.Tensor:
    tensor = torch.as_tensor(probs)
    if tensor.ndim < 3:
        raise ValueError(f"expected probabilities shaped (..., C, H, W), got {tuple(tensor.shape)}")
    return tensor.float()


def _like_input(result: torch.Tensor, probs: ArrayLike) -> ArrayLike:
    if isinstance(probs, np.ndarray):
        return result.numpy().astype(np.float32, copy=False)
    return result


def entropy_map(probs: ArrayLike) -> ArrayLike:
    """Shannon entropy normalised by ``log C``: 0 = one-hot, 1 = uniform."""
    p = _as_tensor(probs)
    num_classes = p.shape[_CLASS_DIM]
    if num_classes < 2:
        return _like_input(torch.zeros_like(p.select(_CLASS_DIM, 0)), probs)
    # xlogy gives 0 * log 0 = 0 without an epsilon that would bias tiny probs.
    entropy = -torch.special.xlogy(p, p).sum(dim=_CLASS_DIM)
    return _like_input((entropy / math.log(num_classes)).clamp_(0.0, 1.0), probs)


def entropy_from_log_probs(log_probs: torch.Tensor, probs: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`entropy_map` from log-probabilities ``(..., C, H, W)`` (e.g. ``logits.log_softmax``).

    The scoring fast path: ``-(p * log p).sum`` costs a multiply-add per
    element where ``xlogy`` costs a logarithm, which on a CPU is as slow as
    the rest of the per-pixel work together.
    """
    num_classes = log_probs.shape[_CLASS_DIM]
    if num_classes < 2:
        return torch.zeros_like(log_probs.select(_CLASS_DIM, 0))
    p = log_probs.exp() if probs is None else probs
    entropy = -(p * log_probs).sum(dim=_CLASS_DIM)
    return (entropy / math.log(num_classes)).clamp_(0.0, 1.0)


def _top_two(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Best and second-best value along the class axis by a running pairwise max.

    ``topk`` over a short class axis is ~20x slower on a CPU than these C
    elementwise passes.
    """
    first = p.select(_CLASS_DIM, 0).clone()
    second = torch.full_like(first, -float("inf"))
    for c in range(1, p.shape[_CLASS_DIM]):
        current = p.select(_CLASS_DIM, c)
        second = torch.maximum(second, torch.minimum(first, current))
        first = torch.maximum(first, current)
    return first, second


def margin_map(probs: ArrayLike) -> ArrayLike:
    """``1 - (top1 - top2)``: 1 when the two best classes tie."""
    p = _as_tensor(probs)
    if p.shape[_CLASS_DIM] < 2:
        return _like_input(torch.zeros_like(p.select(_CLASS_DIM, 0)), probs)
    first, second = _top_two(p)
    return _like_input((1.0 - (first - second)).clamp_(0.0, 1.0), probs)


def least_confidence_map(probs: ArrayLike) -> ArrayLike:
    """``1 - max p`` rescaled by ``C / (C - 1)`` so a uniform prediction scores 1."""
    p = _as_tensor(probs)
    num_classes = p.shape[_CLASS_DIM]
    if num_classes < 2:
        return _like_input(torch.zeros_like(p.select(_CLASS_DIM, 0)), probs)
    top1 = p.amax(dim=_CLASS_DIM)
    scaled = (1.0 - top1) * (num_classes / (num_classes - 1))
    return _like_input(scaled.clamp_(0.0, 1.0), probs)


UncertaintyMeasure = Callable[[ArrayLike], ArrayLike]

UNCERTAINTY_MEASURES: dict[str, UncertaintyMeasure] = {
    "entropy": entropy_map,
    "margin": margin_map,
    "least_confidence": least_confidence_map,
}


def uncertainty_map(probs: ArrayLike, measure: str = "entropy") -> ArrayLike:
    """Look a measure up by name (the name stored in a strategy config)."""
    try:
        fn = UNCERTAINTY_MEASURES[measure]
    except KeyError:
        raise ValueError(f"unknown uncertainty measure {measure!r}; known: {sorted(UNCERTAINTY_MEASURES)}") from None
    return fn(probs)
