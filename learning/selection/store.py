"""The selection store: a pool's image summaries on disk, one ``.npz`` shard per slice of the pool.

A shard holds the :class:`~learning.selection.summaries.ImageSummary` of
``shard_size`` consecutive pool images as columns (a few kilobytes per image
instead of the megabyte of full score maps), so selection over 100,000
images reads a few hundred megabytes at most and holds only the small
columns in memory; region descriptors stay in the shard files until the
shortlist asks for them.

Shards are written to a temp file and ``os.replace``d into place, and each
records a fingerprint of its inputs (image keys, labels, already-queried
pixels; lazy masks by their identity, unread): a worker that dies mid-shard
leaves no shard, so only that shard is scored again, and a shard whose labels
changed since is scored again too.
Every shard of one pool lives under one folder per model version and
:class:`SummarySpec`, next to the score cache of that version
(:meth:`learning.selection.scoring.ScoreCache.summaries`).
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from learning.selection.masks import mask_identity
from learning.selection.summaries import ImageSummary, fill_from

# Bump when the shard layout or what a summary means changes: old shards are then ignored.
FORMAT = 1
SHARD_SIZE = 256
# Region descriptors kept per image when the pool is large; small pools keep more (see SummarySpec.for_pool).
MIN_KEPT_FEATURES = 4


@dataclass(frozen=True)
class SummarySpec:
    """How a pool is scored and summarised; part of the store's folder name, so changing it rescores."""

    measure: str
    size: tuple[int, int]
    unit: str
    num_classes: int
    context: int = 1
    rarity: bool = False
    keep_features: int | None = None  # region descriptors kept per image (None: all)
    batch_size: int = 8
    shard_size: int = SHARD_SIZE

    def tag(self) -> str:
        keep = "all" if self.keep_features is None else str(self.keep_features)
        return (f"v{FORMAT}-{self.measure}-{self.size[0]}x{self.size[1]}-{self.unit}-c{self.num_classes}"
                f"-x{self.context}-r{int(self.rarity)}-k{keep}-s{self.shard_size}")

    @staticmethod
    def keep_for_pool(images: int, max_shortlist: int) -> int | None:
        """Region descriptors worth keeping per image: enough for the shortlist's per-image cap.

        The shortlist takes at most ``ceil(2 * size / images)`` regions of
        one image and ``size <= max_shortlist``; a small pool keeps them all.
        """
        per_image = -(-2 * max_shortlist // max(1, images))
        return None if per_image > 64 else max(MIN_KEPT_FEATURES, per_image)


def pool_shards(count: int, shard_size: int) -> list[range]:
    """The pool positions of each shard: consecutive slices of ``shard_size`` images."""
    return [range(start, min(count, start + shard_size)) for start in range(0, count, shard_size)]


def shard_fingerprint(entries: Sequence) -> str:
    """What a shard's summaries depend on besides the model and the spec: keys, labels, queried pixels.

    Region maps are a function of the image (its superpixels) and so of its key.
    Lazy masks are named by their identity, never read (:func:`~learning.selection.masks.mask_identity`).
    """
    h = hashlib.sha1()
    for entry in entries:
        h.update(f"{entry.key}\0{mask_identity(entry.labels)}\0{mask_identity(entry.queried)}\n".encode())
    return h.hexdigest()


def _offsets(lengths: Sequence[int]) -> np.ndarray:
    return np.r_[0, np.cumsum(np.asarray(lengths, dtype=np.int64))].astype(np.int64)


# The small columns selection loads for every image; the rest stays on disk until asked for.
COLUMNS = ("keys", "image_size", "canvas", "features", "candidate", "pixels", "uncertainty", "centre",
           "class_counts", "region_offsets", "region_ids", "region_pixels", "region_uncertainty", "region_scores",
           "centre_offsets")


def shard_arrays(summaries: Sequence[ImageSummary], fingerprint: str) -> dict[str, np.ndarray]:
    """One shard's columns (see :data:`COLUMNS`, plus kept descriptors, centre descriptors and class shares)."""
    n = len(summaries)
    dim = len(summaries[0].features) if n else 0
    regions = [s.regions for s in summaries if s.regions is not None]
    if regions and len(regions) != n:
        raise ValueError("a shard holds image summaries or region summaries, not both")

    def cat(parts, dtype, shape=(0,)):
        return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(shape, dtype)

    counts = [s.class_counts for s in summaries]
    arrays = {
        "fingerprint": np.asarray(fingerprint),
        "keys": np.asarray([s.key for s in summaries], dtype=str),
        "image_size": np.asarray([s.image_size for s in summaries], dtype=np.int64).reshape(n, 2),
        "canvas": np.asarray([s.canvas for s in summaries], dtype=np.int64).reshape(n, 2),
        "score": np.asarray([s.score for s in summaries], dtype=np.float64),
        "features": np.stack([s.features for s in summaries]).astype(np.float32) if n else np.zeros((0, 0), np.float32),
        "candidate": np.asarray([s.candidate for s in summaries], dtype=bool),
        "pixels": np.asarray([s.pixels for s in summaries], dtype=np.int64),
        "uncertainty": np.asarray([s.uncertainty for s in summaries], dtype=np.float64),
        "centre": np.asarray([s.centre for s in summaries], dtype=bool),
        "class_counts": (np.stack(counts).astype(np.int64) if n and all(c is not None for c in counts)
                         else np.zeros((n, 0), np.int64)),
        "region_offsets": _offsets([len(r.ids) for r in regions]),
        "region_ids": cat([r.ids for r in regions], np.int32),
        "region_pixels": cat([r.pixels for r in regions], np.int64),
        "region_uncertainty": cat([r.uncertainty for r in regions], np.float64),
        "region_scores": cat([r.scores for r in regions], np.float64),
        "feature_offsets": _offsets([len(r.feature_ids) for r in regions]),
        "feature_ids": cat([r.feature_ids for r in regions], np.int32),
        "region_features": cat([r.features for r in regions], np.float32, (0, dim)),
        "centre_offsets": _offsets([len(r.centre_ids) for r in regions]),
        "centre_ids": cat([r.centre_ids for r in regions], np.int32),
        "centre_features": cat([r.centre_features for r in regions], np.float32, (0, dim)),
    }
    shares = [r.shares for r in regions if r.shares is not None]
    if shares:
        arrays["share_offsets"] = _offsets([len(s) for s in shares])
        arrays["shares"] = np.concatenate(shares).astype(np.float64)
    return arrays


class SummaryStore:
    """The shards of one pool's summaries (one model version, one :class:`SummarySpec`) in ``directory``."""

    def __init__(self, directory: str | os.PathLike, spec: SummarySpec):
        self.directory = Path(directory)
        self.spec = spec

    def path(self, index: int) -> Path:
        return self.directory / f"shard-{index:05d}.npz"

    def fingerprint(self, index: int) -> str | None:
        """The fingerprint of the stored shard, or None when there is none (or it is unreadable)."""
        try:
            with np.load(self.path(index), allow_pickle=False) as data:
                return str(data["fingerprint"])
        except (OSError, KeyError, ValueError):
            return None

    def has(self, index: int, fingerprint: str) -> bool:
        return self.fingerprint(index) == fingerprint

    def write(self, index: int, summaries: Sequence[ImageSummary], fingerprint: str) -> Path:
        """Write a shard atomically; a concurrent writer of the same shard writes the same bytes."""
        path = self.path(index)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as stream:
                np.savez(stream, **shard_arrays(summaries, fingerprint))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def read(self, index: int, names: Sequence[str] = COLUMNS) -> dict[str, np.ndarray]:
        with np.load(self.path(index), allow_pickle=False) as data:
            return {name: data[name] for name in names if name in data.files}

    def read_matching(self, index: int, fingerprint: str,
                      names: Sequence[str] = COLUMNS) -> dict[str, np.ndarray] | None:
        """:meth:`read` in the same open as the fingerprint check: None if the shard is missing, unreadable or stale."""
        try:
            with np.load(self.path(index), allow_pickle=False) as data:
                if str(data["fingerprint"]) != fingerprint:
                    return None
                return {name: data[name] for name in names if name in data.files}
        except (OSError, KeyError, ValueError):
            return None

    def bytes_on_disk(self) -> int:
        return sum(p.stat().st_size for p in self.directory.glob("shard-*.npz")) if self.directory.is_dir() else 0


class StoredFeatures:
    """A :class:`~learning.selection.summaries.FeatureSource` reading descriptors from the store's shards.

    ``recompute({image: region ids})`` supplies descriptors a shard did not
    keep (it scores those images again); images are pool positions.
    """

    def __init__(self, store: SummaryStore, shard_size: int, recompute=None):
        self.store = store
        self.shard_size = shard_size
        self.recompute = recompute
        self._open: tuple[int, dict[str, np.ndarray]] | None = None

    def _shard(self, index: int, names: tuple[str, ...]) -> dict[str, np.ndarray]:
        if self._open is None or self._open[0] != index or not all(n in self._open[1] for n in names):
            self._open = (index, self.store.read(index, names))
        return self._open[1]

    def _rows(self, image: int, offsets: str, ids: str, values: str) -> tuple[np.ndarray, np.ndarray]:
        shard, local = divmod(image, self.shard_size)
        data = self._shard(shard, (offsets, ids, values))
        start, end = data[offsets][local], data[offsets][local + 1]
        return data[ids][start:end].astype(np.int64), data[values][start:end]

    def region_features(self, wanted: Mapping[int, np.ndarray]) -> dict[int, np.ndarray]:
        images = sorted(wanted)
        ids = [np.asarray(wanted[i], dtype=np.int64) for i in images]
        counts = [len(i) for i in ids]
        rows = self.region_feature_rows(np.repeat(np.asarray(images, dtype=np.int64), counts),
                                        np.concatenate(ids) if ids else np.zeros(0, np.int64))
        return dict(zip(images, np.split(rows, np.cumsum(counts)[:-1]))) if images else {}

    def region_feature_rows(self, images: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Descriptor of region ``ids[j]`` of image ``images[j]`` in row ``j``: one vectorised search per shard.

        Pairs a shard did not keep go to ``recompute`` (by image), no python step per image otherwise.
        """
        images, ids = np.asarray(images, dtype=np.int64), np.asarray(ids, dtype=np.int64)
        order = np.argsort(images, kind="stable")
        shards = images[order] // self.shard_size
        out, missing = None, []
        for part in np.split(order, np.flatnonzero(np.diff(shards)) + 1) if len(order) else []:
            shard = int(images[part[0]] // self.shard_size)
            data = self._shard(shard, ("feature_offsets", "feature_ids", "region_features"))
            offsets, kept = data["feature_offsets"], data["region_features"]
            kept_ids = data["feature_ids"].astype(np.int64)
            if out is None:
                out = np.zeros((len(images), kept.shape[1]), dtype=np.float32)
            # (image in shard, region id) as one sorted key: kept ids ascend within each image.
            width = int(max(kept_ids.max(initial=0), ids[part].max(initial=0))) + 1
            kept_key = np.repeat(np.arange(len(offsets) - 1, dtype=np.int64), np.diff(offsets)) * width + kept_ids
            key = (images[part] - shard * self.shard_size) * width + ids[part]
            pos = np.minimum(np.searchsorted(kept_key, key), max(0, len(kept_key) - 1))
            hit = kept_key[pos] == key if len(kept_key) else np.zeros(len(key), dtype=bool)
            out[part[hit]] = kept[pos[hit]]
            missing.append(part[~hit])
        lacking = np.concatenate(missing) if missing else np.zeros(0, np.int64)
        if len(lacking):
            if self.recompute is None:
                raise KeyError(f"region descriptors of images {sorted(set(images[lacking].tolist()))} were not kept")
            fill_from(self.recompute, images, ids, lacking, out)
        return out if out is not None else np.zeros((0, 0), dtype=np.float32)

    def centre_features(self, images: Sequence[int]) -> dict[int, np.ndarray]:
        return {image: self._rows(image, "centre_offsets", "centre_ids", "centre_features")[1]
                for image in sorted(images)}

    def region_shares(self, image: int) -> np.ndarray:
        shard, local = divmod(image, self.shard_size)
        data = self._shard(shard, ("share_offsets", "shares"))
        return data["shares"][data["share_offsets"][local]:data["share_offsets"][local + 1]]
