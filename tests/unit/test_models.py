from __future__ import annotations

import pytest
import torch

from learning.device import Numerics, cpu_has_native_bf16, numerics_for, pick_device
from learning.models import ARCHITECTURES, build_model, load_backbone, model_forward
from learning.tv_compat import import_torchvision


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_every_architecture_builds_and_forward_matches_torchvision(arch):
    model = build_model(arch, 3).eval()
    x = torch.randn(1, 3, 40, 56)
    with torch.no_grad():
        out = model_forward(model, x)
        reference = model(x)["out"]
    assert out.logits.shape == (1, 3, 40, 56)
    assert out.features.ndim == 4 and out.features.shape[0] == 1
    torch.testing.assert_close(out.logits, reference)


def test_feature_width_is_the_decoder_width():
    with torch.no_grad():
        deeplab = model_forward(build_model("deeplabv3_mobilenet_v3_large", 4).eval(), torch.randn(1, 3, 64, 64))
        lraspp = model_forward(build_model("lraspp_mobilenet_v3_large", 4).eval(), torch.randn(1, 3, 64, 64))
    assert deeplab.features.shape[1] == 256
    assert lraspp.features.shape[1] == 128


def test_unknown_architecture_is_refused():
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("unet_from_nowhere", 3)


def test_imagenet_style_backbone_checkpoint_is_loaded(tmp_path):
    # An ImageNet MobileNetV3 classifier names its tensors features.N...; that is what a
    # locally supplied torchvision checkpoint looks like.
    classifier = import_torchvision().models.mobilenet_v3_large(weights=None, dilated=True)
    with torch.no_grad():
        for p in classifier.parameters():
            p.fill_(0.125)
    path = tmp_path / "mobilenet_v3_large_imagenet.pth"
    torch.save(classifier.state_dict(), path)

    model = build_model("deeplabv3_mobilenet_v3_large", 5, backbone_checkpoint=path)
    first_conv = model.backbone["0"][0].weight
    assert torch.all(first_conv == 0.125)
    assert model.classifier[-1].out_channels == 5  # the head is the project's, untouched


def test_backbone_checkpoint_of_another_architecture_is_refused(tmp_path):
    path = tmp_path / "lraspp.pth"
    torch.save(build_model("lraspp_mobilenet_v3_large", 2).state_dict(), path)
    model = build_model("deeplabv3_resnet50", 2)
    with pytest.raises(ValueError, match="backbone tensors match"):
        load_backbone(model, path)


def test_pick_device_prefers_explicit_then_environment(monkeypatch):
    assert pick_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("MASKLOOP_DEVICE", "cpu")
    assert pick_device() == torch.device("cpu")
    monkeypatch.delenv("MASKLOOP_DEVICE")
    assert pick_device().type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_cpu_numerics_use_channels_last_and_bf16_only_where_native():
    numerics = numerics_for(torch.device("cpu"))
    assert numerics.channels_last
    assert numerics.autocast_dtype == (torch.bfloat16 if cpu_has_native_bf16() else None)
    assert numerics_for(torch.device("cpu"), "fp32").autocast_dtype is None
    with pytest.raises(ValueError):
        numerics_for(torch.device("cpu"), "fp16")


def test_bf16_forward_agrees_with_fp32():
    model = build_model("lraspp_mobilenet_v3_large", 3).eval()
    x = torch.randn(2, 3, 48, 48)
    fast = Numerics(torch.device("cpu"), torch.bfloat16, channels_last=True)
    with torch.no_grad():
        reference = model_forward(model, x).logits.argmax(1)
        model = fast.prepare_model(model)
        with fast.autocast():
            approx = model_forward(model, fast.prepare_input(x)).logits.float().argmax(1)
    assert (approx == reference).float().mean() > 0.9


def test_batchnorm_statistics_follow_short_fine_tunes():
    # MobileNetV3's ImageNet momentum (0.01) leaves eval-mode statistics far behind a
    # few-hundred-step round; build_model resets every BatchNorm to 0.1.
    model = build_model("deeplabv3_mobilenet_v3_large", 3)
    momenta = {m.momentum for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert momenta == {0.1}
