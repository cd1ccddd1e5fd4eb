"""Make ``import torchvision`` work next to the CPU build of torch.

PyPI's torchvision 0.28.0 (the release built for torch 2.13.0) ships C++ ops
compiled against CUDA. Next to the CPU wheel of torch its ``_C.so`` cannot be
loaded, and torchvision's import then dies in ``_meta_registrations.py`` with
``RuntimeError: operator torchvision::nms does not exist``: it registers fake
kernels for ``torchvision::nms`` and ``torchvision::qnms`` without checking the
extension loaded. Defining just those two schemas lets the pure-Python parts
(models, transforms) import and run; the C++ ops (nms, roi pooling kernels,
image decoding) stay unavailable, and maskloop reads images with Pillow.

The real extension is tried first, so on a machine where it loads (CUDA torch
on a GPU worker) nothing is faked. Every module of ``learning`` that needs
torchvision imports it through :func:`import_torchvision`.
"""
from __future__ import annotations

import importlib.util
import os
from types import ModuleType

import torch

_fragment: torch.library.Library | None = None  # must outlive this module's import
HAS_TORCHVISION_OPS: bool | None = None


def _prepare() -> bool:
    global _fragment
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        raise ImportError("torchvision is not installed: pip install -r requirements.txt")
    extension = os.path.join(os.path.dirname(spec.origin), "_C.so")
    try:
        torch.ops.load_library(extension)
        return True
    except OSError:
        pass
    if _fragment is None:
        _fragment = torch.library.Library("torchvision", "FRAGMENT")
        _fragment.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _fragment.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    return False


def import_torchvision() -> ModuleType:
    """Return the ``torchvision`` module, patched to import on a CPU-only torch."""
    global HAS_TORCHVISION_OPS
    if HAS_TORCHVISION_OPS is None:
        HAS_TORCHVISION_OPS = _prepare()
    import torchvision

    return torchvision
