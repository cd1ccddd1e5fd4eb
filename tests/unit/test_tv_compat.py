"""The torchvision shim: importing through it works here, and its fallback works where the C++ ops fail."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_torchvision_gives_working_segmentation_builders():
    from learning.tv_compat import import_torchvision

    torchvision = import_torchvision()
    model = torchvision.models.segmentation.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None,
                                                                     num_classes=3)
    assert sum(p.numel() for p in model.parameters()) > 1_000_000


def test_fallback_defines_the_missing_schemas_when_the_extension_cannot_load():
    # Force the failure the CPU wheel hits (CUDA-built _C.so) even where it would load,
    # in a fresh interpreter because torchvision can only be imported once per process.
    code = textwrap.dedent("""
        import torch
        def refuse(path):
            raise OSError("simulated: libtorch_cuda.so not found")
        torch.ops.load_library = refuse
        from learning import tv_compat
        tv = tv_compat.import_torchvision()
        assert tv_compat.HAS_TORCHVISION_OPS is False
        model = tv.models.segmentation.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=2)
        model.eval()
        out = model(torch.zeros(1, 3, 32, 32))["out"]
        assert tuple(out.shape) == (1, 2, 32, 32), out.shape
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")
