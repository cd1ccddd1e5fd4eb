"""Checkpoints: one directory per model version, written atomically, verified on load.

Layout of a version directory::

    weights.pt   the model's state_dict (torch.save), loaded with weights_only=True
    meta.json    architecture, classes, normalization, training config, parent,
                 metrics, data hashes, and the sha256 of weights.pt

Both files are written into a hidden temp directory next to the destination
and the directory is renamed into place, so a worker killed mid-write leaves
only a ``.tmp-*`` folder, never a version that looks valid. ``meta.json``
records the weights' sha256, so a file truncated or damaged later is caught
before torch tries to unpickle it.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

WEIGHTS_FILE = "weights.pt"
META_FILE = "meta.json"
FORMAT_VERSION = 1


class CheckpointError(Exception):
    """A checkpoint that cannot be used: missing, truncated, corrupt, or for other classes."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def class_names(classes: Sequence[Any]) -> list[str]:
    """Class list as names: accepts names, or dicts/objects with a ``name``."""
    names = []
    for item in classes:
        if isinstance(item, str):
            names.append(item)
        elif isinstance(item, dict) and "name" in item:
            names.append(str(item["name"]))
        elif hasattr(item, "name"):
            names.append(str(item.name))
        else:
            raise TypeError(f"cannot read a class name from {item!r}")
    return names


def save_checkpoint(dest_dir: str | os.PathLike, *, state_dict: dict[str, torch.Tensor], meta: dict[str, Any]
                    ) -> Path:
    """Write ``state_dict`` + ``meta`` as the new version directory ``dest_dir`` and return it.

    ``meta`` must name ``architecture`` and ``classes``; anything else JSON-able
    is kept (training config, parent version, metrics, data hashes, ...).
    Refuses to replace an existing ``dest_dir``: a version is immutable.
    """
    dest = Path(dest_dir)
    missing = [key for key in ("architecture", "classes") if key not in meta]
    if missing:
        raise CheckpointError(f"meta is missing {missing}: a checkpoint must say what it is")
    if dest.exists():
        raise CheckpointError(f"{dest} already exists; model versions are never overwritten")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{dest.name}-", dir=dest.parent))
    try:
        weights = tmp / WEIGHTS_FILE
        buffer = io.BytesIO()
        torch.save({k: v.detach().cpu().contiguous() for k, v in state_dict.items()}, buffer)
        with open(weights, "wb") as handle:
            handle.write(buffer.getvalue())
            handle.flush()
            os.fsync(handle.fileno())
        full_meta = {
            **meta,
            "classes": class_names(meta["classes"]),
            "format_version": FORMAT_VERSION,
            "weights_file": WEIGHTS_FILE,
            "weights_sha256": _sha256(weights),
            "weights_bytes": weights.stat().st_size,
        }
        with open(tmp / META_FILE, "w") as handle:
            json.dump(full_meta, handle, indent=2, sort_keys=True, default=str)
            handle.flush()
            os.fsync(handle.fileno())
        _fsync_dir(tmp)
        if dest.exists():  # lost a race with another writer of the same version
            raise CheckpointError(f"{dest} already exists; model versions are never overwritten")
        # rename(2) onto an existing non-empty directory fails, so a concurrent
        # writer that got there first is never clobbered.
        os.rename(tmp, dest)
        _fsync_dir(dest.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The ``meta.json`` of a version directory, or a :class:`CheckpointError` saying what is wrong."""
    directory = Path(path)
    meta_path = directory / META_FILE
    if not directory.is_dir():
        raise CheckpointError(f"{directory} is not a checkpoint directory")
    if not meta_path.exists():
        raise CheckpointError(f"{directory} has no {META_FILE}: not a checkpoint, or an interrupted write")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{meta_path} is not valid JSON ({error}); the checkpoint is corrupt") from error
    for key in ("architecture", "classes", "weights_sha256"):
        if key not in meta:
            raise CheckpointError(f"{meta_path} lacks {key!r}; the checkpoint is incomplete")
    return meta


def verify_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The meta of a version directory whose weights file is whole (size and sha256 as recorded); else CheckpointError."""
    directory = Path(path)
    meta = read_meta(directory)
    weights = directory / meta.get("weights_file", WEIGHTS_FILE)
    if not weights.exists():
        raise CheckpointError(f"{weights} is missing")
    size = weights.stat().st_size
    if "weights_bytes" in meta and size != meta["weights_bytes"]:
        raise CheckpointError(
            f"{weights} is truncated or corrupt: {size} bytes on disk, {meta['weights_bytes']} recorded in {META_FILE}"
        )
    actual = _sha256(weights)
    if actual != meta["weights_sha256"]:
        raise CheckpointError(
            f"{weights} is corrupt: sha256 {actual[:12]}... does not match {meta['weights_sha256'][:12]}... in {META_FILE}"
        )
    return meta


def load_checkpoint(path: str | os.PathLike, *, expected_classes: Sequence[Any] | None = None
                    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state_dict, meta) of a version directory, after checking integrity and the class list."""
    directory = Path(path)
    meta = read_meta(directory)
    if expected_classes is not None:
        expected = class_names(expected_classes)
        if expected != meta["classes"]:
            raise CheckpointError(
                f"{directory} was trained for classes {meta['classes']} but {expected} were expected; "
                "a model cannot be reused after the class list changes (retrain from scratch)"
            )
    verify_checkpoint(directory)
    weights = directory / meta.get("weights_file", WEIGHTS_FILE)
    try:
        state_dict = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling errors come in many types
        raise CheckpointError(f"{weights} cannot be read as a state_dict: {error}") from error
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"{weights} holds a {type(state_dict).__name__}, not a state_dict")
    return state_dict, meta


def load_model(path: str | os.PathLike, *, expected_classes: Sequence[Any] | None = None,
               device: torch.device | str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Build the checkpoint's architecture, load its weights, and return it in eval mode on ``device``."""
    from learning.device import pick_device
    from learning.models import build_model

    state_dict, meta = load_checkpoint(path, expected_classes=expected_classes)
    model = build_model(meta["architecture"], len(meta["classes"]))
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as error:
        raise CheckpointError(f"{path}: weights do not fit {meta['architecture']} "
                              f"with {len(meta['classes'])} classes: {error}") from error
    return model.to(pick_device(device)).eval(), meta
