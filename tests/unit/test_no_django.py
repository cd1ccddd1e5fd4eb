"""The ML core must stay importable (and testable, and usable from a notebook) without Django."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_ml_core_does_not_import_django():
    """Every module under learning/ but the Celery task module, found by walking the package (new ones included)."""
    code = textwrap.dedent("""
        import importlib, pkgutil, sys
        import learning
        names = [info.name for info in pkgutil.walk_packages(learning.__path__, "learning.")
                 if info.name != "learning.tasks"]
        for name in names:
            importlib.import_module(name)
        leaked = sorted(m for m in sys.modules if m == "django" or m.startswith("django.")
                        or m == "annotator" or m.startswith("annotator."))
        print("CHECKED", len(names), "LEAKED", leaked)
        sys.exit(1 if leaked or len(names) < 25 else 0)
    """)
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_only_the_task_module_of_learning_mentions_django_or_annotator():
    offenders = [str(path.relative_to(ROOT)) for path in (ROOT / "learning").rglob("*.py")
                 if path.name != "tasks.py"
                 and any(line.lstrip().startswith(("import django", "from django", "import annotator",
                                                   "from annotator")) for line in path.read_text().splitlines())]
    assert offenders == []
