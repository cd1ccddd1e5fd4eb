from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from learning.progress import Cancelled
from learning.models import build_model
from learning.pretrain import (
    Crop, PretrainConfig, _main, info_nce, latest_checkpoint, nt_xent, overlapping_crops, pretrain_encoder,
    render_views, sample_points,
)
from learning.train import TrainConfig, train
from learning.tv_compat import import_torchvision

TINY = dict(arch="lraspp_mobilenet_v3_large", load_size=(32, 48), view_size=(48, 64), crop_scale=(0.4, 0.9),
            batch_size=2, steps=4, points_per_image=4, precision="fp32", save_every=2, warmup_steps=1)


def test_a_point_seen_in_both_views_lands_on_the_same_image_pixel():
    # an image whose pixel values encode their own coordinates
    h, w = 40, 60
    ys, xs = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    image = torch.stack([ys / h, xs / w, torch.zeros(h, w)])[None]
    rng = np.random.default_rng(3)
    first, second = overlapping_crops(rng, (h, w), (20, 30), (0.3, 0.6))
    first = Crop(first.top, first.left, first.height, first.width, flip=True)  # mirrored views too
    y, x = sample_points(rng, first, second, 16)
    for crop in (first, second):
        view = render_views(image, [crop], (80, 120))  # upsampled: bilinear is exact on a linear ramp
        grid = crop.to_grid(torch.tensor(y).float(), torch.tensor(x).float())[None, :, None]
        values = F.grid_sample(view, grid, mode="bilinear", padding_mode="border", align_corners=False)[0, :, :, 0]
        # pixel (y, x) holds (y, x) / size at its centre, i.e. at continuous coordinate (y + .5, x + .5)
        assert torch.allclose(values[0], torch.tensor(y).float().sub(0.5) / h, atol=0.02)
        assert torch.allclose(values[1], torch.tensor(x).float().sub(0.5) / w, atol=0.02)


def test_overlapping_crops_share_area_and_keep_the_view_aspect():
    rng = np.random.default_rng(0)
    for _ in range(50):
        a, b = overlapping_crops(rng, (240, 320), (128, 160), (0.2, 0.6))
        box = a.intersect(b)
        assert box is not None
        for crop in (a, b):
            assert 0 <= crop.top and crop.top + crop.height <= 240 + 1e-6
            assert 0 <= crop.left and crop.left + crop.width <= 320 + 1e-6
            assert 0.75 * 1.25 - 1e-6 <= crop.width / crop.height <= 1.25 * 4 / 3 + 1e-6


def test_info_nce_and_nt_xent_known_values():
    eye = torch.eye(2)
    # logits = identity: each row's positive at 1, one negative at 0 (temperature 1)
    assert info_nce(eye, eye, 1.0).item() == pytest.approx(-math.log(math.e / (math.e + 1)), rel=1e-6)
    # views [e0, e1] and [e0, e1]: each of 4 views has its positive at 1 and negatives 0, 1 (the other image's
    # two views are orthogonal: 0 and 0; its own other view: positive)
    expected = -math.log(math.e / (math.e + 2))
    assert nt_xent(eye, eye, 1.0).item() == pytest.approx(expected, rel=1e-6)


def test_pretraining_resumes_exactly_where_it_was_interrupted(tmp_path, tiny_samples):
    images = tiny_samples(3, labeled=False)
    straight = pretrain_encoder(images, PretrainConfig(**TINY, checkpoint_dir=str(tmp_path / "a")))
    assert straight.resumed_from == 0 and straight.encoder_path.exists()
    assert all(math.isfinite(h["loss"]) and "dense" in h and "global" in h for h in straight.history)

    calls = []

    def stop_after_two() -> bool:
        calls.append(1)
        return len(calls) > 2

    config = PretrainConfig(**TINY, checkpoint_dir=str(tmp_path / "b"))
    with pytest.raises(Cancelled):
        pretrain_encoder(images, config, should_stop=stop_after_two)
    assert latest_checkpoint(tmp_path / "b").name == "step-000002"
    resumed = pretrain_encoder(images, config)
    assert resumed.resumed_from == 2
    for key, value in straight.state_dict.items():
        assert torch.allclose(value.float(), resumed.state_dict[key].float(), atol=1e-5), key
    # only the newest checkpoints are kept, next to the finished encoder
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["encoder", "step-000002", "step-000004"]
    # a finished run is handed back without training again
    again = pretrain_encoder(images, config)
    assert again.resumed_from == 4 and again.encoder_path == resumed.encoder_path


def test_the_pretrained_encoder_initialises_training(tmp_path, tiny_samples):
    result = pretrain_encoder(tiny_samples(2, labeled=False),
                              PretrainConfig(**{**TINY, "steps": 1}, checkpoint_dir=str(tmp_path)))
    model = build_model("lraspp_mobilenet_v3_large", 2, backbone_checkpoint=result.encoder_path)
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, result.state_dict[f"backbone.{key}"]), key
    config = TrainConfig(arch="lraspp_mobilenet_v3_large", num_classes=2, size=(32, 48), batch_size=2, steps=1,
                         backbone_checkpoint=str(result.encoder_path))
    assert train(config, labeled=tiny_samples(2)).steps == 1


@pytest.mark.parametrize("arch", ["deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large"])
def test_a_torchvision_imagenet_mobilenet_v3_file_loads_as_the_backbone(tmp_path, arch):
    """The layout of torchvision's ImageNet classifier (``features.N...``, plus a ``classifier.*`` that is skipped)."""
    classifier = import_torchvision().models.mobilenet_v3_large(weights=None)
    path = tmp_path / "mobilenet_v3_large-imagenet.pth"
    torch.save(classifier.state_dict(), path)
    model = build_model(arch, 3, backbone_checkpoint=path)
    reference = classifier.state_dict()
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, reference[f"features.{key}"]), key


def test_cli_pretrains_and_resumes(tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(folder / f"f{i}.png")
    args = ["--images", str(tmp_path), "--out", str(tmp_path / "ssl"), "--arch", "lraspp_mobilenet_v3_large",
            "--batch-size", "2", "--load-size", "32", "48", "--view-size", "48", "64", "--save-every", "1"]
    assert _main([*args, "--steps", "1"]) == 0
    meta = json.loads((tmp_path / "ssl" / "encoder" / "meta.json").read_text())
    assert meta["kind"] == "ssl_encoder" and meta["images"] == 3
    assert "encoder:" in capsys.readouterr().out


def test_round0_pretraining_decodes_at_the_training_size_with_half_size_views():
    from learning.pretrain import round0_pretrain_config

    config = round0_pretrain_config("deeplabv3_mobilenet_v3_large", (240, 320), 300, checkpoint_dir="/x", seed=2)
    assert (config.load_size, config.view_size, config.steps, config.seed) == ((240, 320), (120, 160), 300, 2)
    assert round0_pretrain_config("deeplabv3_mobilenet_v3_large", (48, 64), 10).view_size == (32, 32)
