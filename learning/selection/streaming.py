"""Scoring a pool into the selection store shard by shard, and reading it back as one table.

``score_into_store`` streams over the pool: one batch of full score maps
(:func:`~learning.selection.scoring.iter_scores`) is in memory at a time,
each image is reduced to its :class:`~learning.selection.summaries.ImageSummary`
right away and every shard of summaries is written to the
:class:`~learning.selection.store.SummaryStore`. Shards are independent, so
several processes (Celery workers) can score disjoint shards of the same
pool into the same store; ``load_table`` then merges them for selection.
The full maps of the few images that get queried are recomputed afterwards
(their suggestions need them). An entry's labels and queried pixels may be
lazy (:class:`~learning.selection.masks.LazyMask`): they are read only while
that image is summarised, or queried, and dropped with it.

    entries (key, image, labels, queried) → score_into_store → store → load_table → select_from_table
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from torch import nn

from learning.data import Sample
from learning.progress import ProgressFn, StopFn, check_stop, report
from learning.selection.candidates import PoolItem
from learning.selection.masks import mask_array
from learning.selection.regions import region_features
from learning.selection.scoring import iter_scores
from learning.selection.store import (
    COLUMNS,
    StoredFeatures,
    SummarySpec,
    SummaryStore,
    pool_shards,
    shard_fingerprint,
)
from learning.selection.summaries import ImageSummary, SummaryTable, summarise

RegionsFn = Callable[[str], np.ndarray]


@dataclass(frozen=True)
class _ImageRef:
    """What a PoolItem needs of a score record once the record is gone: its key and image size."""

    key: str
    image_size: tuple[int, int]


def entry_item(entry, score, region_map: np.ndarray | None = None) -> PoolItem:
    """One pool entry as a :class:`PoolItem`, its lazy masks read now: for one image, dropped after use."""
    return PoolItem(score=score, regions=region_map, labels=mask_array(entry.labels),
                    queried=mask_array(entry.queried))


def summarise_entries(model: nn.Module, entries: Sequence, spec: SummarySpec, *, regions: RegionsFn | None = None,
                      device=None) -> Iterator[ImageSummary]:
    """Score ``entries`` (objects with ``key``, ``image``, ``labels``, ``queried``) and summarise each, in order."""
    records = iter_scores(model, [Sample(image=e.image, key=e.key) for e in entries], measure=spec.measure,
                          batch_size=spec.batch_size, device=device, size=spec.size, cache_images=False)
    for entry, record in zip(entries, records):
        region_map = regions(entry.key) if regions is not None and spec.unit == "region" else None
        yield summarise(entry_item(entry, record, region_map), unit=spec.unit, num_classes=spec.num_classes,
                        context=spec.context, rarity=spec.rarity, keep_features=spec.keep_features)


def missing_shards(entries: Sequence, store: SummaryStore) -> list[int]:
    """Shards of the pool the store lacks, or holds for other labels."""
    shards = pool_shards(len(entries), store.spec.shard_size)
    return [index for index, shard in enumerate(shards)
            if not store.has(index, shard_fingerprint([entries[i] for i in shard]))]


def score_shard(model: nn.Module, entries: Sequence, index: int, store: SummaryStore, *,
                regions: RegionsFn | None = None, device=None) -> bool:
    """Score and store shard ``index`` of the pool unless the store has it for these inputs; True if scored."""
    shard = pool_shards(len(entries), store.spec.shard_size)[index]
    part = [entries[i] for i in shard]
    fingerprint = shard_fingerprint(part)
    if store.has(index, fingerprint):
        return False
    summaries = list(summarise_entries(model, part, store.spec, regions=regions, device=device))
    store.write(index, summaries, fingerprint)
    return True


def score_into_store(model: nn.Module, entries: Sequence, store: SummaryStore, *, regions: RegionsFn | None = None,
                     device=None, shards: Sequence[int] | None = None, progress: ProgressFn | None = None,
                     should_stop: StopFn | None = None) -> list[int]:
    """Score the pool's shards the store lacks (``shards``: only these); returns the shards scored."""
    plan = pool_shards(len(entries), store.spec.shard_size)
    wanted = list(range(len(plan))) if shards is None else list(shards)
    scored, done = [], 0
    total = sum(len(plan[i]) for i in wanted)
    for index in wanted:
        check_stop(should_stop, "selection")
        if score_shard(model, entries, index, store, regions=regions, device=device):
            scored.append(index)
        done += len(plan[index])
        report(progress, "score", done, total)
    return scored


def recompute_region_features(model: nn.Module, entries: Sequence, spec: SummarySpec, *,
                              regions: RegionsFn | None = None, device=None) -> Callable[[Mapping], dict]:
    """A recompute hook for :class:`StoredFeatures`: scores the images again for the descriptors not kept."""

    def recompute(wanted: Mapping[int, np.ndarray]) -> dict[int, np.ndarray]:
        images = sorted(wanted)
        records = iter_scores(model, [Sample(image=entries[i].image, key=entries[i].key) for i in images],
                              measure=spec.measure, batch_size=spec.batch_size, device=device, size=spec.size,
                              cache_images=False)
        out = {}
        for i, record in zip(images, records):
            item = entry_item(entries[i], record, regions(entries[i].key) if regions is not None else None)
            out[i] = region_features(item.region_map(), record.feature_map, np.asarray(wanted[i], dtype=np.int64))
        return out

    return recompute


def load_table(entries: Sequence, store: SummaryStore, *, model: nn.Module | None = None,
               regions: RegionsFn | None = None, device=None) -> SummaryTable:
    """The pool's summaries from every shard, merged into one table (raises if a shard is missing or stale).

    ``model`` lets the table recompute region descriptors a shard did not keep.
    """
    spec = store.spec
    plan = pool_shards(len(entries), spec.shard_size)
    parts = []
    for index, shard in enumerate(plan):
        part = store.read_matching(index, shard_fingerprint([entries[i] for i in shard]), COLUMNS)
        if part is None:
            raise LookupError(f"shard {index} of the pool is missing or was scored for other labels")
        parts.append(part)

    def cat(name: str, dtype, shape=(0,)) -> np.ndarray:
        arrays = [p[name] for p in parts]
        return np.concatenate(arrays).astype(dtype, copy=False) if arrays else np.zeros(shape, dtype)

    keys = [str(k) for p in parts for k in p["keys"]]
    if keys != [e.key for e in entries]:
        raise LookupError("the store's shards hold other images than the pool")
    region_counts = np.concatenate([np.diff(p["region_offsets"]) for p in parts]) if spec.unit == "region" and parts \
        else np.zeros(0, np.int64)
    centre_counts = np.concatenate([np.diff(p["centre_offsets"]) for p in parts]) if spec.unit == "region" and parts \
        else np.zeros(len(keys), np.int64)
    image_size = cat("image_size", np.int64, (0, 2))
    class_counts = cat("class_counts", np.int64, (0, 0))
    recompute = recompute_region_features(model, entries, spec, regions=regions, device=device) if model else None

    def pool_item(i: int) -> PoolItem:
        entry = entries[i]
        region_map = regions(entry.key) if regions is not None and spec.unit == "region" else None
        ref = _ImageRef(entry.key, (int(image_size[i][0]), int(image_size[i][1])))
        return entry_item(entry, ref, region_map)

    return SummaryTable(
        unit=spec.unit, keys=keys, canvas=cat("canvas", np.int64, (0, 2)), features=cat("features", np.float32, (0, 0)),
        candidate=cat("candidate", bool), pixels=cat("pixels", np.int64), uncertainty=cat("uncertainty", np.float64),
        centre=cat("centre", bool), class_counts=class_counts if class_counts.shape[1:] != (0,) else None,
        region_item=np.repeat(np.arange(len(region_counts), dtype=np.int64), region_counts),
        region_id=cat("region_ids", np.int64), region_pixels=cat("region_pixels", np.int64),
        region_uncertainty=cat("region_uncertainty", np.float64), region_scores=cat("region_scores", np.float64),
        centre_counts=centre_counts.astype(np.int64),
        source=StoredFeatures(store, spec.shard_size, recompute), pool_item=pool_item,
    )
