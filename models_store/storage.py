"""Where model files live under MODELS_STORE_ROOT: the one owner of the store's folder layout.

    <MODELS_STORE_ROOT>/project-<id>/round-<NNN>/     a round's checkpoint (weights.pt + meta.json)
    <MODELS_STORE_ROOT>/project-<id>/pretrain/        self-supervised encoder pretraining (resumable)
    <MODELS_STORE_ROOT>/project-<id>/scores/<mv>/     the pool's score cache, one folder per model version

ModelVersion.path is stored relative to the root, so the store can move
between machines (every worker mounts it, possibly at another path).
"""
from __future__ import annotations

from pathlib import Path

from django.conf import settings


class StoreError(Exception):
    """A stored path that leaves the model store, or files that are not there."""


def store_root() -> Path:
    return Path(settings.MODELS_STORE_ROOT)


def project_dir(project_id: int) -> Path:
    return store_root() / f"project-{project_id}"


def round_checkpoint_dir(project_id: int, round_number: int) -> Path:
    return project_dir(project_id) / f"round-{round_number:03d}"


def pretrain_dir(project_id: int) -> Path:
    return project_dir(project_id) / "pretrain"


def score_cache_dir(project_id: int) -> Path:
    return project_dir(project_id) / "scores"


def relative_path(directory: Path) -> str:
    """What a ModelVersion row stores for ``directory``."""
    return str(Path(directory).relative_to(store_root()))


def version_dir(model_version, *, must_exist: bool = False) -> Path:
    """The checkpoint folder of ``model_version``; refuses a stored path that leaves the store."""
    root = store_root().resolve()
    folder = (root / model_version.path).resolve()
    if not folder.is_relative_to(root):
        raise StoreError(f"model v{model_version.version}: its path leaves the model store")
    if must_exist and (not folder.is_dir() or not any(folder.iterdir())):
        raise StoreError(f"model v{model_version.version}: the checkpoint files are missing ({folder})")
    return folder
