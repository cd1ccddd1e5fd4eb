"""Active selection: score the pool, cut it into query units, pick what to label next.

Public API, called by ``learning/round_step.py``'s ``propose_round`` (which
the app's round worker and the campaign simulator both run)::

    scores = score_pool(model, samples, measure="entropy", size=(240, 320), cache=ScoreCache(root, version))
    pool = [PoolItem(score=s, regions=superpixels[s.key], labels=labels.get(s.key)) for s in scores]
    queries = select_queries(pool, Budget(1.0, "percent"), "adaptive", round_index=r, val_miou=miou)

The simulator answers the queries with :func:`query_labels` (an oracle) and
folds them in with :func:`merge_labels`.

That holds every image's full score record in memory, which suits a small
pool. The round step streams instead: ``streaming.score_into_store`` keeps
per image only its :class:`~learning.selection.summaries.ImageSummary`, in
shards on disk, and ``strategies.select_from_table`` selects from them with
the same result.

Modules: ``uncertainty`` (per-pixel maps), ``regions`` (SLIC / grid units,
RIPU scores, region features), ``diversity`` (k-center order, distances,
groups of neighbours), ``scoring`` (:class:`PoolScore`, :func:`score_pool`,
``iter_scores``, :class:`ScoreCache`), ``summaries`` (what selection keeps
of a scored image), ``store`` (summaries in shards on disk), ``streaming``
(pool → store → table), ``candidates`` (summaries -> units), ``queries``
(budgets, query specs), ``strategies`` (the registry, :func:`select_queries`,
``select_from_table``).
"""
from learning.selection.candidates import PoolItem
from learning.selection.queries import Budget, QuerySpec, merge_labels, query_labels
from learning.selection.regions import grid_regions, slic_regions
from learning.selection.scoring import PoolScore, ScoreCache, score_pool
from learning.selection.strategies import (
    DEFAULT_STRATEGY,
    STRATEGIES,
    AdaptiveSchedule,
    SelectionParams,
    select_queries,
    strategy_weight,
)

__all__ = [
    "DEFAULT_STRATEGY",
    "STRATEGIES",
    "AdaptiveSchedule",
    "Budget",
    "PoolItem",
    "PoolScore",
    "QuerySpec",
    "ScoreCache",
    "SelectionParams",
    "grid_regions",
    "merge_labels",
    "query_labels",
    "score_pool",
    "select_queries",
    "slic_regions",
    "strategy_weight",
]
