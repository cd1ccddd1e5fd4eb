"""Where to run and with which numerics.

Measured on the 2-core EPYC (avx512_bf16) this project develops on, for
deeplabv3_mobilenet_v3_large at 240x320, batch 8, 2 threads, quiet machine:
a train step (forward, loss, backward, SGD) takes 0.83 s in fp32 and 0.42 s
with channels_last + bf16 autocast; a forward pass 0.14 s vs 0.05 s. So that
is the CPU default. On CUDA, autocast to bf16 where the card supports it (no
loss scaling needed), else fp16 with a GradScaler. CPUs without native bf16
fall back to fp32: emulated bf16 is slower there.

Threads: when other processes compete for the cores, 2 OpenMP threads spin at
barriers and a step ran 4-7x slower than with 1 thread (measured with 5 busy
processes on 2 cores); ``OMP_WAIT_POLICY=PASSIVE`` removes most of that loss.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import ContextManager

import torch


def pick_device(preference: str | torch.device | None = None) -> torch.device:
    """``preference`` if given (``"cpu"``, ``"cuda"``, ``"cuda:1"``), else CUDA when present, else CPU.

    The ``MASKLOOP_DEVICE`` environment variable overrides the automatic choice.
    """
    if preference is None or preference == "auto":
        preference = os.environ.get("MASKLOOP_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(preference)


def cpu_has_native_bf16() -> bool:
    checker = getattr(torch.backends.cpu, "get_cpu_capability", None)
    capability = checker() if checker else ""
    if "AVX512" in capability or "AMX" in capability:
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


@dataclass(frozen=True)
class Numerics:
    """How tensors are laid out and which dtype autocast uses on one device."""

    device: torch.device
    autocast_dtype: torch.dtype | None  # None = plain fp32
    channels_last: bool

    @property
    def needs_grad_scaler(self) -> bool:
        return self.device.type == "cuda" and self.autocast_dtype == torch.float16

    def autocast(self) -> ContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        model = model.to(self.device)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def numerics_for(device: torch.device, precision: str = "auto") -> Numerics:
    """``precision``: ``"auto"`` (fastest measured), ``"fp32"``, ``"bf16"`` or ``"fp16"`` (CUDA only)."""
    if precision == "fp32":
        return Numerics(device, None, channels_last=device.type == "cpu")
    if precision == "bf16":
        return Numerics(device, torch.bfloat16, channels_last=True)
    if precision == "fp16":
        if device.type != "cuda":
            raise ValueError("fp16 autocast is for CUDA; use bf16 or fp32 on CPU")
        return Numerics(device, torch.float16, channels_last=True)
    if precision != "auto":
        raise ValueError(f"unknown precision {precision!r}")
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return Numerics(device, dtype, channels_last=True)
    if device.type == "cpu":
        return Numerics(device, torch.bfloat16 if cpu_has_native_bf16() else None, channels_last=True)
    return Numerics(device, None, channels_last=False)
