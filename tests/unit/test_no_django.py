"""The ML core must stay importable (and testable, and usable from a notebook) without Django."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_ml_core_does_not_import_django():
    code = textwrap.dedent("""
        import importlib, pkgutil, sys
        modules = ["learning.models", "learning.data", "learning.train", "learning.inference",
                   "learning.metrics", "learning.checkpoint", "learning.device", "learning.adaptation",
                   "learning.selection"]
        for name in modules:
            importlib.import_module(name)
        import learning.selection as selection
        for info in pkgutil.iter_modules(selection.__path__, "learning.selection."):
            importlib.import_module(info.name)
        leaked = sorted(m for m in sys.modules if m == "django" or m.startswith("django."))
        print("LEAKED", leaked)
        sys.exit(1 if leaked else 0)
    """)
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env=env)
    assert result.returncode == 0, result.stdout + result.stderr
