"""Where a round-0 model's backbone starts: ImageNet weights, a local file, self-supervised, or nothing.

ImageNet weights come through torchvision's weights API and live in
torch's hub cache (``$TORCH_HOME/hub/checkpoints/``, ``~/.cache/torch`` by
default): a machine that is online downloads them once; an offline one uses
a file someone placed there (the same file name torchvision downloads), or
is told exactly where to put it and which other options it has. A cached
file is checked against the hash in its name before it is used.

Modes (``resolve_backbone``):

- ``imagenet``: ImageNet weights, or an error that says how to get them;
- ``file``: a local backbone ``state_dict`` (``TrainConfig.backbone_checkpoint``);
- ``ssl``: self-supervised pretraining on the project's own images (the caller runs it);
- ``none``: random initialisation;
- ``auto``: the best that is available, in that order: the local file when
  the lead gave one (an explicit choice), ImageNet (cached, or downloaded
  when ``download``), self-supervised when the caller allows it, else none.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from learning.tv_compat import import_torchvision

MODES = ("auto", "imagenet", "file", "ssl", "none")

# architecture -> (torchvision weights enum, member) of its ImageNet classifier backbone
IMAGENET_BACKBONES = {
    "deeplabv3_mobilenet_v3_large": ("MobileNet_V3_Large_Weights", "IMAGENET1K_V1"),
    "lraspp_mobilenet_v3_large": ("MobileNet_V3_Large_Weights", "IMAGENET1K_V1"),
    "deeplabv3_resnet50": ("ResNet50_Weights", "IMAGENET1K_V1"),
    "deeplabv3_resnet101": ("ResNet101_Weights", "IMAGENET1K_V1"),
}
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{6,})\.")


class PretrainedUnavailable(Exception):
    """The requested weights cannot be had here; the message says what to do instead."""


@dataclass(frozen=True)
class BackboneChoice:
    """What round 0 starts from: ``kind`` one of imagenet / file / ssl / none, ``path`` a backbone file or None."""

    kind: str
    path: str | None
    description: str

    def to_dict(self) -> dict:
        return {"kind": self.kind, "path": self.path, "description": self.description}


def imagenet_weights(arch: str):
    """torchvision's weights entry for ``arch``'s ImageNet backbone."""
    if arch not in IMAGENET_BACKBONES:
        raise PretrainedUnavailable(f"no ImageNet backbone is known for {arch!r}")
    enum_name, member = IMAGENET_BACKBONES[arch]
    return getattr(getattr(import_torchvision().models, enum_name), member)


def cache_path(weights) -> Path:
    """Where torchvision keeps (or would download) ``weights``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name


def _check_hash(path: Path) -> None:
    found = _HASH_IN_NAME.search(path.name)
    if found is None:
        return
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if not digest.startswith(found.group(1)):
        raise PretrainedUnavailable(
            f"{path} does not match the hash in its name ({found.group(1)}…, the file's is {digest[:12]}…): "
            "it is damaged or another file; delete it, or replace it with torchvision's file of that name")


def imagenet_backbone_file(arch: str, *, download: bool) -> Path:
    """The cached ImageNet weights file of ``arch``'s backbone, downloading it first when allowed and needed."""
    weights = imagenet_weights(arch)
    path = cache_path(weights)
    if path.exists():
        _check_hash(path)
        return path
    advice = (f"place torchvision's file {path.name} (from {weights.url}) at {path}, set the project's initial "
              "checkpoint to a local backbone file, or choose self-supervised pretraining or none")
    if not download:
        raise PretrainedUnavailable(f"ImageNet weights for {arch} are not in the cache and downloads are off: {advice}")
    try:
        weights.get_state_dict(progress=False, check_hash=True)  # torchvision downloads into the hub cache
    except Exception as error:  # noqa: BLE001 - URLError, DNS, HTTP, disk: all mean "not available here"
        raise PretrainedUnavailable(
            f"ImageNet weights for {arch} could not be downloaded ({type(error).__name__}: {error}); "
            f"is this machine offline? {advice}") from error
    if not path.exists():
        raise PretrainedUnavailable(f"torchvision reported success but {path} is missing: {advice}")
    return path


def resolve_backbone(mode: str, arch: str, *, local_file: str | None = None, download: bool = True,
                     ssl_allowed: bool = False) -> BackboneChoice:
    """Pick the backbone start for ``mode``; raises PretrainedUnavailable when an explicit choice cannot be met."""
    if mode not in MODES:
        raise ValueError(f"unknown pretrained mode {mode!r}; choose one of {MODES}")
    if mode in ("file", "auto") and local_file:
        if not Path(local_file).is_file():
            raise PretrainedUnavailable(f"the local backbone file {local_file} does not exist")
        return BackboneChoice("file", str(local_file), f"local backbone file {Path(local_file).name}")
    if mode == "file":
        raise PretrainedUnavailable("'file' needs a local backbone file: set the project's initial checkpoint")
    if mode in ("imagenet", "auto"):
        try:
            path = imagenet_backbone_file(arch, download=download)
            return BackboneChoice("imagenet", str(path), f"ImageNet weights (torchvision {path.name})")
        except PretrainedUnavailable:
            if mode == "imagenet":
                raise
    if mode == "ssl" or (mode == "auto" and ssl_allowed):
        return BackboneChoice("ssl", None, "self-supervised pretraining on the project's own images")
    reason = "" if mode == "none" else " (no ImageNet weights, local file or self-supervised pretraining available)"
    return BackboneChoice("none", None, "random initialisation" + reason)
