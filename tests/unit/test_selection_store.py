"""Memory-bounded selection: the streamed, summarised, sharded round step proposes exactly what the in-memory one did.

``reference_proposal`` is the round step as it was before the selection
store: every image's full score record held in memory (``score_pool``),
``select_queries`` on PoolItems, suggestions from the held records. The
store path (``propose_round``) must give the same queries, masks, ranks,
scores and suggestions.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from learning.data import Sample
from learning.models import build_model
from learning.round_step import (
    Calibration,
    PoolImage,
    SelectionSettings,
    propose_round,
    selection_seed,
    validation_predictions,
)
from learning.selection import Budget, PoolItem, ScoreCache, SelectionParams, score_pool, select_queries, slic_regions
from learning.selection.resample import resize_bilinear
from learning.selection.store import SummarySpec, pool_shards
from learning.selection.streaming import load_table, missing_shards, score_into_store, score_shard
from learning.selection.strategies import picks_by_uncertainty
from learning.suggestions import calibrate_for_queries, make_suggestion

SIZE = (32, 48)


@pytest.fixture(scope="module")
def model():
    """A random network whose uncertainty varies over pixels and images (not all-certain, not all-uniform)."""
    from learning.data import normalize, resize_image, to_tensor

    torch.manual_seed(0)
    net = build_model("lraspp_mobilenet_v3_large", 3)
    for module in net.modules():  # BatchNorm statistics of the pool itself, estimated once
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None
    with torch.no_grad():
        net.train()(normalize(torch.stack([to_tensor(resize_image(e.image, SIZE)) for e in synthetic_pool(14)])))
        for p in net.classifier.parameters():
            p.mul_(3)
    return net.eval()


def reference_proposal(model, pool, *, calibration, settings, round_index, val_miou, seed=0, regions=None):
    """The round step with every full score record in memory (the code path before the selection store)."""
    thresholds = calibrate_for_queries(calibration.predictions, calibration.truths, settings.num_classes,
                                       uncertain=picks_by_uncertainty(settings.strategy),
                                       target_precision=settings.target_precision)
    samples = [Sample(image=entry.image, key=entry.key) for entry in pool]
    scores = score_pool(model, samples, measure=settings.measure, size=settings.size, batch_size=settings.batch_size,
                        device="cpu")
    items = [PoolItem(score=score, regions=regions(entry.key) if regions and settings.unit == "region" else None,
                      labels=entry.labels, queried=entry.queried) for entry, score in zip(pool, scores)]
    specs = select_queries(items, settings.budget, settings.strategy, unit=settings.unit, round_index=round_index,
                           val_miou=val_miou, params=settings.params(), seed=selection_seed(seed, round_index))
    by_key = {score.key: score for score in scores}
    out = []
    for spec in specs:
        score = by_key[spec.key]
        suggestion = make_suggestion(pred=score.pred, confidence=score.confidence, thresholds=thresholds,
                                     region_mask=spec.mask if spec.region_ids is not None else None,
                                     size=spec.mask.shape)
        heat = np.clip(np.rint(resize_bilinear(score.confidence, spec.mask.shape) * 255), 0, 255).astype(np.uint8)
        out.append((spec, suggestion, heat))
    return out


def synthetic_pool(count, *, seed=0, size=(40, 56), labeled_every=3):
    """Blobby scenes of three classes; some images partly labeled, some with pixels already asked for."""
    rng = np.random.default_rng(seed)
    pool = []
    for i in range(count):
        image = rng.integers(0, 80, (*size, 3), dtype=np.uint8)
        for _ in range(3):
            top, left = rng.integers(0, size[0] - 8), rng.integers(0, size[1] - 8)
            image[top:top + rng.integers(6, 20), left:left + rng.integers(6, 28)] += rng.integers(40, 170, 3,
                                                                                                   dtype=np.uint8)
        labels = queried = None
        if i % labeled_every == 1:
            labels = np.full(size, 255, np.uint8)
            labels[: rng.integers(8, size[0])] = rng.integers(0, 3)
        if i % 5 == 2:
            queried = np.zeros(size, bool)
            queried[:, : rng.integers(4, size[1])] = True
        pool.append(PoolImage(key=f"img-{i:03d}", image=image, labels=labels, queried=queried))
    return pool


def superpixels(pool):
    maps = {entry.key: slic_regions(entry.image, n_segments=10) for entry in pool}
    return maps.__getitem__


def assert_same(proposal, reference):
    assert proposal.queries, "the comparison needs queries"
    assert len({q.spec.score for q in proposal.queries}) > 1, "the comparison needs scores that differ"
    assert len(proposal.queries) == len(reference)
    for query, (spec, suggestion, heat) in zip(proposal.queries, reference):
        assert (query.key, query.spec.region_ids, query.spec.pixels, query.spec.rank) == \
            (spec.key, spec.region_ids, spec.pixels, spec.rank)
        assert query.spec.score == spec.score
        assert np.array_equal(query.spec.mask, spec.mask)
        assert np.array_equal(query.suggestion.mask, suggestion.mask)
        assert np.array_equal(query.confidence, heat)


CASES = [
    ("adaptive", "region", Budget(8.0, "percent"), "kmeans", 0.0),
    ("region", "region", Budget(9, "regions"), "kcenter", 0.0),
    ("region", "region", Budget(12.0, "percent"), "kmeans", 0.5),
    ("entropy_diversity", "image", Budget(3, "images"), "kmeans", 0.0),
    ("entropy_diversity", "image", Budget(30.0, "percent"), "kcenter", 0.0),
    ("entropy", "image", Budget(4, "images"), "kmeans", 0.0),
    ("random", "region", Budget(6.0, "percent"), "kmeans", 0.0),
]


@pytest.mark.parametrize("strategy,unit,budget,diversity,rarity", CASES)
def test_the_store_path_proposes_what_the_in_memory_path_did(model, strategy, unit, budget, diversity, rarity,
                                                             tmp_path, monkeypatch):
    from learning.selection import strategies

    pool = synthetic_pool(14)
    regions = superpixels(pool)
    settings = SelectionSettings(strategy=strategy, unit=unit, budget=budget, num_classes=3, size=SIZE,
                                 batch_size=4, rarity_power=rarity)
    monkeypatch.setattr(strategies.SelectionParams, "__init__", _with_diversity(diversity))
    calibration = validation_predictions(model, [Sample(image=e.image, mask=np.zeros(e.image.shape[:2], np.uint8))
                                                 for e in pool[:2]], size=SIZE)
    for round_index in (0, 3):
        reference = reference_proposal(model, pool, calibration=calibration, settings=settings,
                                       round_index=round_index, val_miou=0.4, regions=regions)
        proposal = propose_round(model, pool, calibration=calibration, settings=settings, round_index=round_index,
                                 val_miou=0.4, regions=regions, cache=ScoreCache(tmp_path, "v1"), device="cpu")
        assert_same(proposal, reference)


def _with_diversity(diversity):
    """SelectionSettings.params() builds SelectionParams with defaults: pin its diversity method for a test."""
    original = SelectionParams.__init__

    def init(self, *args, **kwargs):
        kwargs.setdefault("diversity", diversity)
        original(self, *args, **kwargs)

    return init


def test_descriptors_not_kept_in_the_store_are_recomputed_to_the_same_values(model, tmp_path):
    pool = synthetic_pool(10, seed=4)
    regions = superpixels(pool)
    spec_all = SummarySpec(measure="entropy", size=SIZE, unit="region", num_classes=3, keep_features=None,
                           batch_size=4, shard_size=4)
    spec_few = SummarySpec(measure="entropy", size=SIZE, unit="region", num_classes=3, keep_features=1,
                           batch_size=4, shard_size=4)
    cache = ScoreCache(tmp_path, "v1")
    tables = []
    for spec in (spec_all, spec_few):
        store = cache.summaries(spec)
        score_into_store(model, pool, store, regions=regions, device="cpu")
        tables.append(load_table(pool, store, model=model, regions=regions, device="cpu"))
    full, few = tables
    wanted = {i: full.region_id[full.region_item == i] for i in range(len(pool))}
    kept = full.source.region_features(wanted)
    recomputed = few.source.region_features(wanted)
    assert all(np.array_equal(kept[i], recomputed[i]) for i in wanted)
    assert cache.summaries(spec_few).bytes_on_disk() < cache.summaries(spec_all).bytes_on_disk()


def test_a_dead_worker_only_costs_its_own_shard(model, tmp_path, monkeypatch):
    pool = synthetic_pool(11, seed=2)
    spec = SummarySpec(measure="entropy", size=SIZE, unit="region", num_classes=3, batch_size=4, shard_size=4)
    store = ScoreCache(tmp_path, "v1").summaries(spec)
    assert [len(s) for s in pool_shards(len(pool), 4)] == [4, 4, 3]
    assert score_shard(model, pool, 0, store, device="cpu") and score_shard(model, pool, 2, store, device="cpu")
    first = store.path(0).read_bytes()

    # A worker dies while writing shard 1: nothing of it is left, every other shard stays.
    from learning.selection import store as store_module

    def dying_savez(stream, **arrays):
        stream.write(b"half a shard")
        raise KeyboardInterrupt("worker killed")

    monkeypatch.setattr(store_module.np, "savez", dying_savez)
    with pytest.raises(KeyboardInterrupt):
        score_shard(model, pool, 1, store, device="cpu")
    monkeypatch.undo()
    assert missing_shards(pool, store) == [1]
    assert not list(store.directory.glob("*.tmp"))
    assert score_into_store(model, pool, store, device="cpu") == [1]  # only the lost shard is scored again
    assert store.path(0).read_bytes() == first
    assert missing_shards(pool, store) == []

    # New labels in one image make only its shard stale.
    relabeled = list(pool)
    relabeled[9] = PoolImage(key=pool[9].key, image=pool[9].image, labels=np.zeros(pool[9].image.shape[:2], np.uint8))
    assert missing_shards(relabeled, store) == [2]
    with pytest.raises(LookupError):
        load_table(relabeled, store)


def test_the_store_keeps_a_small_fraction_of_the_full_records(model, tmp_path):
    pool = synthetic_pool(16, seed=5, size=(64, 96))
    spec = SummarySpec(measure="entropy", size=(64, 96), unit="region", num_classes=3, batch_size=4,
                       keep_features=SummarySpec.keep_for_pool(100_000, 100_000))
    store = ScoreCache(tmp_path, "v1").summaries(spec)
    score_into_store(model, pool, store, regions=superpixels(pool), device="cpu")
    record = score_pool(model, [Sample(image=pool[0].image)], size=(64, 96), device="cpu")[0]
    full_bytes = sum(a.nbytes for a in (record.pred, record.confidence, record.uncertainty, record.feature_map))
    assert store.bytes_on_disk() / len(pool) < full_bytes / 4


def test_without_a_cache_the_round_step_leaves_no_store_behind(model, tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    pool = synthetic_pool(5, seed=3)
    settings = SelectionSettings(strategy="entropy", unit="image", budget=Budget(2, "images"), num_classes=3,
                                 size=SIZE, batch_size=4)
    proposal = propose_round(model, pool, calibration=Calibration([], []), settings=settings, round_index=0,
                             val_miou=None, device="cpu")
    assert len(proposal.queries) == 2 and not list(tmp_path.iterdir())
