"""Segmentation networks: which architectures exist, how to build one, how to run it.

Everything is torchvision's DeepLab family built with ``weights=None`` and
``weights_backbone=None``: maskloop never downloads weights. A local backbone
state_dict (ImageNet classifier weights or an earlier segmentation checkpoint)
can be loaded instead.

:func:`model_forward` is the one forward pass the rest of the ML core uses: it
returns logits at the input size *and* the decoder features that selection
pools into region/image descriptors, so nothing has to hook into torchvision's
internals twice.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from learning.device import pick_device  # noqa: F401  (public re-export: models.pick_device)
from learning.tv_compat import import_torchvision

log = logging.getLogger(__name__)

DEFAULT_ARCHITECTURE = "deeplabv3_mobilenet_v3_large"
BATCHNORM_MOMENTUM = 0.1

# name -> (builder name in torchvision.models.segmentation, short description)
ARCHITECTURES: dict[str, str] = {
    "deeplabv3_mobilenet_v3_large": "DeepLabV3, MobileNetV3-Large backbone (11 M params; the CPU default)",
    # Fewer parameters, yet on a 2-core CPU it trained fewer steps in 15 minutes than the default, and scored lower on
    # both datasets (docs/BENCHMARKS.md, "Training recipe").
    "lraspp_mobilenet_v3_large": "LR-ASPP, MobileNetV3-Large backbone (3 M params; no faster to train on a CPU)",
    "deeplabv3_resnet50": "DeepLabV3, ResNet-50 backbone (40 M params; GPU workers)",
    "deeplabv3_resnet101": "DeepLabV3, ResNet-101 backbone (59 M params; GPU workers)",
}


@dataclass
class ForwardOutput:
    """What one forward pass yields.

    ``logits``: (N, C, H, W) at the input's size. ``features``: (N, D, h, w)
    decoder features at the network's output stride (D = 256 for DeepLabV3,
    128 for LR-ASPP), the input of the final 1x1 classifier.
    """

    logits: torch.Tensor
    features: torch.Tensor


def build_model(arch: str = DEFAULT_ARCHITECTURE, num_classes: int = 2, *,
                backbone_checkpoint: str | Path | None = None) -> nn.Module:
    """Build a randomly initialised segmentation network (never downloads anything).

    ``backbone_checkpoint`` is a local ``state_dict`` file whose backbone part is
    loaded: torchvision ImageNet classifier weights (``features.N...`` for
    MobileNetV3, ``conv1/layer1...`` for ResNet) or a full segmentation
    state_dict (``backbone....``). The heads always start fresh because the
    class count is the project's.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    segmentation = import_torchvision().models.segmentation
    builder: Callable[..., nn.Module] = getattr(segmentation, arch)
    model = builder(weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=False)
    # torchvision's MobileNetV3 uses BatchNorm momentum 0.01, tuned for ImageNet-length
    # schedules. Here a round fine-tunes for a few hundred steps at a fairly high LR: the
    # running statistics then trail the weights so far that eval-mode predictions collapse
    # (measured: 2 % mIoU in eval vs 19 % in train mode after 300 steps from scratch).
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = BATCHNORM_MOMENTUM
    if backbone_checkpoint is not None:
        load_backbone(model, backbone_checkpoint)
    return model


def load_backbone(model: nn.Module, path: str | Path) -> int:
    """Copy matching backbone tensors from a local state_dict file; returns how many were loaded.

    Raises ``ValueError`` when fewer than 90 % of the backbone's tensors find a
    same-shaped match: a silently half-loaded backbone trains like a random one.
    """
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    target = model.backbone.state_dict()
    matched: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for prefix in ("backbone.", "features.", "module.", ""):
            if key.startswith(prefix) and key[len(prefix):] in target:
                candidate = key[len(prefix):]
                if target[candidate].shape == value.shape:
                    matched[candidate] = value
                break
    if len(matched) < 0.9 * len(target):
        raise ValueError(
            f"{path}: only {len(matched)} of {len(target)} backbone tensors match this architecture; "
            "is it a checkpoint of a different backbone?"
        )
    model.backbone.load_state_dict(matched, strict=False)
    log.info("loaded %d/%d backbone tensors from %s", len(matched), len(target), path)
    return len(matched)


def model_forward(model: nn.Module, x: torch.Tensor) -> ForwardOutput:
    """Run ``model`` on a normalised batch (N, 3, H, W); logits come back at (H, W)."""
    size = x.shape[-2:]
    backbone_out = model.backbone(x)
    head = model.classifier
    if isinstance(head, nn.Sequential):  # DeepLabHead: ASPP, conv3x3, BN, ReLU, conv1x1
        features = backbone_out["out"]
        for layer in list(head)[:-1]:
            features = layer(features)
        logits = head[-1](features)
    else:  # LRASPPHead: replay its forward to keep the fused high-level features
        low, high = backbone_out["low"], backbone_out["high"]
        features = head.cbr(high) * head.scale(high)
        features = F.interpolate(features, size=low.shape[-2:], mode="bilinear", align_corners=False)
        logits = head.low_classifier(low) + head.high_classifier(features)
    logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
    return ForwardOutput(logits=logits, features=features)

