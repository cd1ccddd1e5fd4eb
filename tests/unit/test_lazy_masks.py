"""Lazy pool masks: the round step reads an image's labels and queried pixels only while it needs them.

The app's pools hand :class:`LazyMask` loaders instead of arrays, so a pool of
100,000 images with thousands labeled never holds every mask at once. The
proposal must be the one the same pool with arrays gets, each mask read once
while its image is scored and once more if it is queried, and the selection
store told stale or fresh by the masks' identities alone.
"""
from __future__ import annotations

import weakref
from collections import Counter

import numpy as np
import pytest

from learning.round_step import Calibration, PoolImage, SelectionSettings, propose_round
from learning.selection import Budget, ScoreCache
from learning.selection.masks import LazyMask, mask_array, mask_identity
from learning.selection.store import SummarySpec, shard_fingerprint
from learning.selection.streaming import load_table, missing_shards, score_into_store
from tests.unit.test_selection_store import SIZE, model, superpixels, synthetic_pool  # noqa: F401 (fixture)

# A region proposal holds at most the masks of the image it works on and of the one before it.
MAX_ALIVE = 4


class Loads:
    """Lazy masks over a pool's arrays that count their reads and how many of the read copies are still alive."""

    def __init__(self):
        self.calls: Counter[str] = Counter()
        self._alive: list[weakref.ref] = []
        self.peak = 0

    def alive(self) -> int:
        self._alive = [ref for ref in self._alive if ref() is not None]
        return len(self._alive)

    def lazy(self, key: str, kind: str, array: np.ndarray | None) -> LazyMask | None:
        if array is None:
            return None

        def load() -> np.ndarray:
            self.calls[key] += 1
            self.peak = max(self.peak, self.alive() + 1)
            copy = array.copy()  # a fresh array per read, as a file read gives
            self._alive.append(weakref.ref(copy))
            return copy

        return LazyMask(identity=f"{kind}-{key}-{mask_identity(array)}", load=load)

    def pool(self, arrays: list[PoolImage]) -> list[PoolImage]:
        return [PoolImage(e.key, e.image, labels=self.lazy(e.key, "labels", e.labels),
                          queried=self.lazy(e.key, "queried", e.queried)) for e in arrays]


def masks_of(entry: PoolImage) -> int:
    return (entry.labels is not None) + (entry.queried is not None)


def propose(model, pool, settings, *, regions=None, cache=None):
    return propose_round(model, pool, calibration=Calibration([], []), settings=settings, round_index=2,
                         val_miou=0.4, regions=regions, cache=cache, device="cpu")


@pytest.mark.parametrize("unit,strategy,budget", [("region", "adaptive", Budget(10.0, "percent")),
                                                  ("image", "entropy_diversity", Budget(3, "images"))])
def test_a_lazy_pool_proposes_what_the_same_pool_of_arrays_does_reading_each_mask_per_image(
        model, tmp_path, unit, strategy, budget):
    arrays = synthetic_pool(24, seed=7, labeled_every=2)
    regions = superpixels(arrays)
    settings = SelectionSettings(strategy=strategy, unit=unit, budget=budget, num_classes=3, size=SIZE, batch_size=4)
    loads = Loads()
    lazy = loads.pool(arrays)
    assert sum(map(masks_of, lazy)) > 3 * MAX_ALIVE

    expected = propose(model, arrays, settings, regions=regions)
    proposal = propose(model, lazy, settings, regions=regions, cache=ScoreCache(tmp_path, "v1"))
    assert proposal.queries and [q.key for q in proposal.queries] == [q.key for q in expected.queries]
    for got, want in zip(proposal.queries, expected.queries):
        assert (got.spec.region_ids, got.spec.pixels, got.spec.rank, got.spec.score) == \
            (want.spec.region_ids, want.spec.pixels, want.spec.rank, want.spec.score)
        assert np.array_equal(got.spec.mask, want.spec.mask)
        assert np.array_equal(got.suggestion.mask, want.suggestion.mask)

    # Each mask is read once while its image is scored, once more if the image is queried; never all at once.
    queried = {q.key for q in proposal.queries}
    assert loads.calls == Counter({e.key: masks_of(e) * (1 + (e.key in queried)) for e in lazy if masks_of(e)})
    assert loads.peak <= MAX_ALIVE and loads.alive() == 0

    # With the store filled, a second round step checks it by identity and reads only the queried images' masks.
    loads.calls.clear()
    again = propose(model, lazy, settings, regions=regions, cache=ScoreCache(tmp_path, "v1"))
    assert [q.key for q in again.queries] == [q.key for q in proposal.queries]
    assert loads.calls == Counter({e.key: masks_of(e) for e in lazy if e.key in queried and masks_of(e)})


def test_the_store_is_fresh_while_identities_stay_and_stale_when_one_changes(model, tmp_path):
    arrays = synthetic_pool(9, seed=1)
    loads = Loads()
    lazy = loads.pool(arrays)
    spec = SummarySpec(measure="entropy", size=SIZE, unit="image", num_classes=3, batch_size=4, shard_size=4)
    store = ScoreCache(tmp_path, "v1").summaries(spec)
    score_into_store(model, lazy, store, device="cpu")
    reads = sum(loads.calls.values())

    assert missing_shards(loads.pool(arrays), store) == []  # new loaders, same identities: nothing to score
    assert len(load_table(lazy, store)) == len(lazy)
    assert sum(loads.calls.values()) == reads  # checking the store read no mask
    # Arrays of the same content are named by their digest, not by a lazy identity: scored again, not trusted
    # (shard 2, one image with neither mask, has the same inputs either way).
    assert [masks_of(e) for e in arrays[8:]] == [0] and missing_shards(arrays, store) == [0, 1]

    relabeled = list(lazy)
    new = np.zeros(arrays[5].image.shape[:2], np.uint8)
    relabeled[5] = PoolImage(lazy[5].key, lazy[5].image, labels=LazyMask("annotation-new", lambda: new),
                             queried=lazy[5].queried)
    assert missing_shards(relabeled, store) == [1]
    with pytest.raises(LookupError):
        load_table(relabeled, store)


def test_arrays_and_lazy_masks_resolve_and_are_named_by_one_rule():
    array = np.arange(6, dtype=np.uint8).reshape(2, 3)
    lazy = LazyMask("annotation-7", lambda: array)
    assert mask_array(None) is None and mask_array(array) is array and mask_array(lazy) is array
    assert mask_identity(None) == "-" and mask_identity(lazy) == "lazy:annotation-7"
    assert mask_identity(array) == mask_identity(array.copy()) != mask_identity(array.astype(np.int64))
    unread = LazyMask("annotation-7", None)  # a fingerprint never calls load
    assert shard_fingerprint([PoolImage("a", None, labels=lazy)]) == \
        shard_fingerprint([PoolImage("a", None, labels=unread)])
