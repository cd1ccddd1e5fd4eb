"""Where a project's first model may start from: the one rule for ``Project.init_checkpoint``.

A path on the server is a capability: accepting any of them would let every
user who may create a project probe the file system and warm-start from (then
download) another project's weights. So an initial checkpoint is either

* a backbone file or a checkpoint folder (with ``meta.json``) that staff placed
  under ``MASKLOOP_INIT_CHECKPOINT_ROOTS``, or
* a model of the project's own (a new project has none).

Paths are resolved (symlinks followed) before the check, ``..`` is refused,
and every refusal is the same sentence, so the answer never tells whether a
path outside the roots exists. The lead pages offer :func:`init_checkpoint_choices`;
the API serializer and the project services call :func:`init_checkpoint_resolve`.
"""
from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings

from models_store import storage
from models_store.models import ModelVersion

from ..models import Project
from .errors import ServiceError

# The settings page lists at most this many files; a root is a shelf of checkpoints, not a data lake.
MAX_CHOICES = 500


def init_checkpoint_roots() -> list[Path]:
    """The folders staff place initial checkpoints in (``MASKLOOP_INIT_CHECKPOINT_ROOTS``), resolved."""
    return [Path(root).resolve() for root in settings.MASKLOOP_INIT_CHECKPOINT_ROOTS]


def _own_models(project: Project | None) -> dict[Path, int]:
    """The checkpoint folders of the project's models → their version numbers."""
    if project is None or project.pk is None:
        return {}
    folders = {}
    for model_version in ModelVersion.objects.filter(project=project).order_by("version"):
        try:
            folders[storage.version_dir(model_version)] = model_version.version
        except storage.StoreError:
            continue
    return folders


def _resolve(value: str, roots: list[Path], own_models: dict[Path, int]) -> str | None:
    path = Path(value)
    if not value.strip() or ".." in path.parts:
        return None
    store = storage.store_root().resolve()
    for candidate in [path] if path.is_absolute() else [root / path for root in roots]:
        try:
            real = candidate.resolve()
            # Another project's model never qualifies, even if a root was set to (a folder above) the store.
            allowed = real in own_models or (
                not real.is_relative_to(store) and any(real.is_relative_to(root) for root in roots))
            if allowed and (real.is_file() or (real / "meta.json").is_file()):
                return str(real)
        except (OSError, ValueError, RuntimeError):  # unreadable, a NUL byte, a symlink loop
            continue
    return None


def init_checkpoint_resolve(value: str, *, project: Project | None = None) -> str:
    """The real path of an allowed initial checkpoint for ``project``; ServiceError (one sentence) otherwise.

    ``value`` is absolute, or relative to a root. Missing and forbidden paths get the same answer.
    """
    real = _resolve(value, init_checkpoint_roots(), _own_models(project))
    if real is None:
        raise ServiceError(
            f"initial checkpoint {value!r}: choose a backbone file or a checkpoint folder (with meta.json) that "
            "staff placed under MASKLOOP_INIT_CHECKPOINT_ROOTS, or a model of this project"
        )
    return real


def init_checkpoint_choices(*, project: Project | None = None) -> list[tuple[str, str]]:
    """(real path, label) of what :func:`init_checkpoint_resolve` accepts: own models, then the roots' entries."""
    roots, own_models = init_checkpoint_roots(), _own_models(project)
    models = {_resolve(str(folder), roots, own_models): f"model v{version} of this project"
              for folder, version in own_models.items()}
    shelf: dict[str, str] = {}
    for root in roots:
        for folder, subfolders, files in os.walk(root):
            here = Path(folder)
            if (here / "meta.json").is_file():
                subfolders[:] = []  # a checkpoint folder is one choice, not its files
                candidates = [(here, f"{here.relative_to(root)}/ (checkpoint folder)")]
            else:
                candidates = [(here / name, str((here / name).relative_to(root))) for name in files]
            for path, label in candidates:
                real = _resolve(str(path), roots, own_models)
                if real is not None and real not in models:
                    shelf.setdefault(real, label)
            if len(shelf) >= MAX_CHOICES:
                break
    models.pop(None, None)
    return [*models.items(), *sorted(shelf.items(), key=lambda entry: entry[1])][:MAX_CHOICES]
