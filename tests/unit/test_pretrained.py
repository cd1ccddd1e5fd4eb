"""Pretrained backbones: the hub cache path, its hash check, the offline message, and what 'auto' falls back to.

Nothing here downloads: the weights entry is replaced by one whose file the
test places in a temporary hub cache (or that fails like an offline machine).
"""
from __future__ import annotations

import hashlib
import io
import urllib.error

import pytest
import torch

from learning import pretrained
from learning.models import build_model
from learning.pretrained import PretrainedUnavailable, resolve_backbone
from learning.tv_compat import import_torchvision

ARCH = "lraspp_mobilenet_v3_large"


class OfflineWeights:
    def __init__(self, name: str):
        self.url = f"https://download.example/models/{name}"

    def get_state_dict(self, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")


@pytest.fixture
def hub(tmp_path, monkeypatch):
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub" / "checkpoints"
    torch.hub.set_dir(str(tmp_path / "unused"))


def imagenet_classifier_file(hub_dir) -> tuple[str, dict]:
    """A MobileNetV3 classifier state_dict (keys ``features.N…``, as torchvision ships it), named by its hash."""
    torch.manual_seed(3)
    state = import_torchvision().models.mobilenet_v3_large(weights=None).state_dict()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    name = f"mobilenet_v3_large-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    hub_dir.mkdir(parents=True, exist_ok=True)
    (hub_dir / name).write_bytes(data)
    return name, state


def test_weights_placed_in_the_cache_are_found_checked_and_loaded_into_the_backbone(hub, monkeypatch):
    name, state = imagenet_classifier_file(hub)
    monkeypatch.setattr(pretrained, "imagenet_weights", lambda arch: OfflineWeights(name))
    choice = resolve_backbone("auto", ARCH)
    assert choice.kind == "imagenet" and choice.path == str(hub / name) and name in choice.description
    model = build_model(ARCH, 3, backbone_checkpoint=choice.path)
    assert torch.equal(model.backbone.state_dict()["0.0.weight"], state["features.0.0.weight"])


def test_a_damaged_cached_file_is_refused(hub, monkeypatch):
    name, _ = imagenet_classifier_file(hub)
    (hub / name).write_bytes(b"truncated")
    monkeypatch.setattr(pretrained, "imagenet_weights", lambda arch: OfflineWeights(name))
    with pytest.raises(PretrainedUnavailable, match="does not match the hash"):
        resolve_backbone("imagenet", ARCH)


def test_offline_and_not_cached_says_where_to_put_the_file_and_what_else_to_choose(hub, monkeypatch):
    monkeypatch.setattr(pretrained, "imagenet_weights", lambda arch: OfflineWeights("mobilenet_v3_large-8738ca79.pth"))
    with pytest.raises(PretrainedUnavailable) as error:
        resolve_backbone("imagenet", ARCH)
    message = str(error.value)
    assert "offline" in message and str(hub / "mobilenet_v3_large-8738ca79.pth") in message
    assert "local backbone file" in message and "URLError" in message
    with pytest.raises(PretrainedUnavailable, match="downloads are off"):
        resolve_backbone("imagenet", ARCH, download=False)


def test_auto_takes_the_local_file_then_self_supervised_then_none_when_imagenet_is_missing(hub, monkeypatch, tmp_path):
    monkeypatch.setattr(pretrained, "imagenet_weights", lambda arch: OfflineWeights("mobilenet_v3_large-8738ca79.pth"))
    local = tmp_path / "backbone.pt"
    torch.save(build_model(ARCH, 3).backbone.state_dict(), local)
    assert resolve_backbone("auto", ARCH, local_file=str(local)).kind == "file"
    assert resolve_backbone("auto", ARCH, ssl_allowed=True).kind == "ssl"
    fallback = resolve_backbone("auto", ARCH)
    assert fallback.kind == "none" and fallback.path is None and "no ImageNet weights" in fallback.description
    assert resolve_backbone("none", ARCH).description == "random initialisation"
    with pytest.raises(PretrainedUnavailable, match="initial checkpoint"):
        resolve_backbone("file", ARCH)


def test_the_real_torchvision_entries_name_the_files_torchvision_downloads():
    assert pretrained.cache_path(pretrained.imagenet_weights(ARCH)).name == "mobilenet_v3_large-8738ca79.pth"
    assert pretrained.cache_path(pretrained.imagenet_weights("deeplabv3_resnet50")).name == "resnet50-0676ba61.pth"
