"""Settings for pytest: the normal settings, with every path in a directory of this test run.

Each run gets its own var directory (several runs may share a checkout), and
the environment variable is set before the settings are read so that worker
processes started by the tests inherit the same paths.
"""
import os
from pathlib import Path

os.environ.setdefault(
    "MASKLOOP_VAR_DIR", str(Path(__file__).resolve().parent.parent / "var" / f"test-{os.getpid()}")
)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings_test")

from .settings import *  # noqa: E402,F401,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
