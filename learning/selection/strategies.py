"""Which images or regions to label next: a registry of strategies behind one call.

``select_queries(pool, budget, strategy)`` is the whole interface. A strategy
scores the candidate units (whole images or regions) and, if it has a
diversity trade-off, reorders the best of them for coverage of feature
space; :func:`~learning.selection.queries.fill_budget` then spends the budget
the same way for every strategy.

Strategies (``STRATEGIES``):

- ``random``: uniform order, the baseline every method must beat.
- ``entropy``: most uncertain first (mean uncertainty of unlabeled pixels).
- ``entropy_diversity``: uncertain *and* spread out: greedy k-center on
  decoder features over a shortlist of uncertain units, with already-labeled
  units as centres (image level by default).
- ``region``: ours, region level: RIPU score (uncertainty x class impurity of
  the neighbourhood) plus the same diversity step, at a fixed trade-off.
- ``adaptive``: ``region`` whose trade-off follows :class:`AdaptiveSchedule`:
  diversity-heavy while the model is weak (cold start: uncertainty sampling
  underperforms random at low budgets, Hacohen et al., ICML'22), shifting to
  uncertainty as rounds pass and validation mIoU rises. The default.

One trade-off ``w`` in [0, 1] drives the diversity step. The shortlist
holds the ``k * F ** (1 - w)`` best-scoring units (``k`` = units the budget
affords, ``F`` = ``candidate_factor``): just the top ``k`` at ``w = 1``, a
wide slice of the pool while the model is weak. Then, by
``SelectionParams.diversity``:

- ``"kmeans"`` (default; TypiClust, Hacohen et al. ICML'22): cluster the
  shortlist's features into ``k`` groups and take one unit per group, the
  one maximising ``(1 - w) * typicality + w * score``; groups far from
  everything already labeled go first. Typical units are what a weak model
  needs (a cold start); uncertain ones what a strong model needs.
- ``"kcenter"`` (core-set, Sener & Savarese): greedy farthest-first,
  maximising ``(1 - w) * distance to the nearest centre + w * score``.

In both, already-labeled units are centres, and ``w = 1`` is exactly top-k
by score.

At scale the shortlist holds at most ``max_shortlist`` units (or ``k``, if
more), and when ``shortlist × k`` exceeds ``exact_diversity_cost`` (pools
of tens of thousands of images) the picker runs on groups of neighbouring
units, each with its share of the picks (:func:`_partitioned_picks`):
linear in the shortlist instead of ``O(n k)``. Below that the whole
shortlist is one group, the exact reference.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from learning.selection.candidates import (
    Candidates,
    PoolItem,
    candidates_from_table,
    image_candidates,
    region_candidates,
)
from learning.selection.diversity import distinct_rows, iter_kcenter, l2_normalise, nearest_group, partition
from learning.selection.queries import (
    Budget,
    QuerySpec,
    QueryUnit,
    fill_budget,
    group_queries,
)
from learning.selection.scoring import PoolScore
from learning.selection.summaries import SummaryTable


# Shortlist size × picks up to which the diversity step runs on the whole shortlist, the reference
# (every pool of a few thousand images); above it, on groups of neighbours (k-means and k-center both
# cost O(n k D), quadratic in the pool when the budget is a share of it).
EXACT_DIVERSITY_COST = 5_000_000
# Picks each group of neighbours contributes, about: the groups hold GROUP_PICKS * n / k units.
GROUP_PICKS = 64


@dataclass(frozen=True)
class AdaptiveSchedule:
    """Uncertainty weight for a round: ``start`` early or while mIoU is low, ``end`` later.

    Progress is the mean of two signals of model maturity, each in [0, 1]:
    rounds done (``round_index / ramp_rounds``) and validation mIoU between
    ``miou_low`` and ``miou_high`` (fractions, not percent). Without a
    validation mIoU, rounds alone decide.
    """

    start: float = 0.2
    end: float = 0.9
    ramp_rounds: int = 4
    miou_low: float = 0.25
    miou_high: float = 0.6
    # The first this many rounds draw every pick at random: a model that has seen no target label yet is often
    # confidently wrong on target images, where its uncertainty does not look (0 = the schedule from round 0).
    # Off by default: measured against ours, +0.2 mIoU on the demo (3 seeds), +1.4 on CamVid (1 seed), -0.4 on
    # polyp (1 seed): within what one random draw of 1 % varies (3-5 points; docs/BENCHMARKS.md, "Dataset suite").
    random_rounds: int = 0

    def explore_share(self, round_index: int) -> float:
        """Share of this round's picks drawn uniformly at random (SelectionParams.explore_share adds to it)."""
        return 1.0 if round_index < self.random_rounds else 0.0

    def weight(self, round_index: int, val_miou: float | None = None) -> float:
        by_round = min(1.0, max(0.0, round_index / max(1, self.ramp_rounds)))
        if val_miou is None or not math.isfinite(val_miou):
            progress = by_round
        else:
            span = max(1e-9, self.miou_high - self.miou_low)
            by_miou = min(1.0, max(0.0, (val_miou - self.miou_low) / span))
            progress = 0.5 * (by_round + by_miou)
        return self.start + (self.end - self.start) * progress


@dataclass(frozen=True)
class SelectionParams:
    """Project-level knobs; the defaults follow research/al-da-anchors.md (c.3, c.4)."""

    uncertainty_weight: float = 0.5  # fixed trade-off of entropy_diversity and region
    diversity: str = "kmeans"  # "kmeans" (typical unit per cluster) | "kcenter" (core-set)
    candidate_factor: float = 50.0  # shortlist size at w = 0, in multiples of the picks
    max_shortlist: int = 100_000  # the shortlist never exceeds this (or the picks, if more): bounds memory
    exact_diversity_cost: float = EXACT_DIVERSITY_COST  # shortlist x picks above which diversity runs in groups
    per_image_cap: float = 3.0  # region picks per image <= ceil(cap * k / images with candidates)
    rarity_power: float = 0.0  # > 0: weight region scores by predicted-class rarity
    context: int = 1  # RIPU neighbourhood half-width, in canvas pixels
    # This share of the picks is drawn uniformly at random from the whole pool, interleaved with the strategy's
    # own order (exploration: units no score would reach); 0 = the strategy's order alone.
    explore_share: float = 0.0
    num_classes: int | None = None  # default: inferred from the predictions
    schedule: AdaptiveSchedule = AdaptiveSchedule()

    def __post_init__(self):
        check_explore_share(self.explore_share)


@dataclass
class SelectionContext:
    """What a strategy sees: the candidates, the round's trade-off, randomness."""

    candidates: Candidates
    picks_estimate: int  # k: about how many units the budget affords
    weight: float  # uncertainty weight of the diversity step
    params: SelectionParams
    rng: np.random.Generator
    extra_centres: np.ndarray | None


Scorer = Callable[[SelectionContext], np.ndarray]
WeightRule = Callable[[SelectionParams, int, float | None], float]


@dataclass(frozen=True)
class Strategy:
    """A name, the unit it queries by default, how it scores units, and its diversity trade-off.

    ``weight`` is None for strategies that take units in plain score order;
    otherwise it gives the round's uncertainty weight for the diversity step.
    """

    name: str
    default_unit: QueryUnit
    scores: Scorer
    weight: WeightRule | None = None
    description: str = ""


def _random_scores(ctx: SelectionContext) -> np.ndarray:
    return ctx.rng.random(len(ctx.candidates))


def _uncertainty_scores(ctx: SelectionContext) -> np.ndarray:
    return ctx.candidates.uncertainty


def _informativeness_scores(ctx: SelectionContext) -> np.ndarray:
    return ctx.candidates.informativeness


def _fixed_weight(params: SelectionParams, round_index: int, val_miou: float | None) -> float:
    return params.uncertainty_weight


def _scheduled_weight(params: SelectionParams, round_index: int, val_miou: float | None) -> float:
    return params.schedule.weight(round_index, val_miou)


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy("random", "image", _random_scores, None, "uniformly random units"),
        Strategy("entropy", "image", _uncertainty_scores, None, "most uncertain units first"),
        Strategy(
            "entropy_diversity", "image", _uncertainty_scores, _fixed_weight,
            "uncertain units spread over feature space (k-center, labeled units as centres)",
        ),
        Strategy(
            "region", "region", _informativeness_scores, _fixed_weight,
            "RIPU region score (uncertainty x impurity) + k-center diversity, fixed trade-off",
        ),
        Strategy(
            "adaptive", "region", _informativeness_scores, _scheduled_weight,
            "like region; diversity-heavy while the model is weak, uncertainty-heavy later",
        ),
    )
}
DEFAULT_STRATEGY = "adaptive"


def _best_first(scores: np.ndarray, count: int) -> np.ndarray:
    """``np.argsort(-scores, kind="stable")[:count]`` without sorting the rest (a partition first)."""
    if count >= len(scores):
        return np.argsort(-scores, kind="stable")
    threshold = np.partition(-scores, count - 1)[count - 1]
    if np.isnan(threshold):
        return np.argsort(-scores, kind="stable")[:count]
    above = np.flatnonzero(-scores < threshold)
    # Ties at the threshold: the lowest positions, as the stable sort takes them.
    head = np.concatenate([above, np.flatnonzero(-scores == threshold)[: count - len(above)]])
    return head[np.argsort(-scores[head], kind="stable")]


def _shortlist(ctx: SelectionContext, scores: np.ndarray) -> np.ndarray:
    """Top units by score; for regions at most twice a fair share per image."""
    c = ctx.candidates
    size = math.ceil(ctx.picks_estimate * max(1.0, ctx.params.candidate_factor) ** (1.0 - ctx.weight))
    size = max(1, min(len(c), size, max(ctx.params.max_shortlist, ctx.picks_estimate)))
    if c.unit == "image":
        return _best_first(scores, size)
    per_image = max(1, math.ceil(2.0 * size / np.count_nonzero(np.bincount(c.item))))
    # A unit's rank in its image depends only on the better units, so a prefix of the score order
    # decides as the whole order would; it is widened until it holds enough units under the cap.
    head = 2 * size
    while True:
        by_score = _best_first(scores, head)
        owners = c.item[by_score]
        # Rank of each unit within its image, in score order (a stable sort keeps score order per image).
        order = np.argsort(owners, kind="stable")
        sorted_owners = owners[order]
        group_start = np.r_[0, np.flatnonzero(np.diff(sorted_owners)) + 1]
        rank = np.empty(len(owners), dtype=np.int64)
        rank[order] = np.arange(len(owners)) - np.repeat(group_start, np.diff(np.r_[group_start, len(owners)]))
        kept = by_score[rank < per_image]
        if len(kept) >= size or head >= len(c):
            return kept[:size]
        head *= 2


def _centres(ctx: SelectionContext, width: int) -> np.ndarray:
    centres = ctx.candidates.centres()
    if ctx.extra_centres is not None and len(ctx.extra_centres):
        extra = l2_normalise(ctx.extra_centres)
        centres = np.concatenate([centres, extra]) if len(centres) else extra
    if len(centres) and centres.shape[1] != width:
        raise ValueError(f"labeled_features have {centres.shape[1]} dimensions, pool features {width}")
    return centres


def _scaled(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min(initial=0.0)), float(values.max(initial=0.0))
    return (values - low) / (high - low) if high > low else np.zeros_like(values, dtype=np.float64)


def _kcenter_picks(ctx: SelectionContext, features: np.ndarray, centres: np.ndarray,
                   scores: np.ndarray) -> Iterator[int]:
    return iter_kcenter(features, initial_centers=centres if len(centres) else None, scores=scores,
                        score_weight=ctx.weight)


def _typicality(features: np.ndarray, labels: np.ndarray, neighbours: int = 20) -> np.ndarray:
    """TypiClust's typicality: inverse mean distance to the nearest members of the unit's own cluster."""
    typicality = np.ones(len(features))
    # Members of each cluster in one stable sort (ascending within a cluster), not one scan of labels per cluster.
    order = np.argsort(labels, kind="stable")
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    for members in np.split(order, bounds):
        if len(members) < 2:
            continue
        x = features[members]
        sq = (x * x).sum(axis=1)
        d = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * (x @ x.T), 0.0))
        nearest = np.sort(d, axis=1)[:, 1 : min(neighbours, len(members) - 1) + 1]
        typicality[members] = 1.0 / (1e-6 + nearest.mean(axis=1))
    return typicality


def _kmeans_picks(ctx: SelectionContext, features: np.ndarray, centres: np.ndarray,
                  scores: np.ndarray) -> Iterator[int]:
    """One unit per k-means cluster not yet covered by labels, round-robin (TypiClust's recipe).

    Shortlist and labeled centres are clustered together into ``k`` + (number
    of centres, at most ``2k``) groups; groups holding a labeled centre are
    covered and come last. Uncovered groups go largest first while ``w`` is
    low (they represent most of the pool), most informative first as ``w``
    rises. In each group the unit maximising ``(1 - w) * typicality + w *
    score`` is taken.
    """
    from sklearn.cluster import KMeans

    n, k = len(features), min(ctx.picks_estimate, len(features))
    if n == 0:
        return
    if len(centres) > 2 * k:
        centres = centres[ctx.rng.choice(len(centres), 2 * k, replace=False)]
    points = np.concatenate([features, centres]) if len(centres) else features
    wanted = k + len(centres)
    groups = min(wanted, distinct_rows(points.round(6), at_least=wanted))
    fit = KMeans(n_clusters=groups, n_init=1, random_state=int(ctx.rng.integers(0, 2**31 - 1))).fit(points)
    labels, centre_labels = fit.labels_[:n], fit.labels_[n:]
    value = (1.0 - ctx.weight) * _scaled(_typicality(features, labels)) + ctx.weight * _scaled(scores)
    present, size = np.unique(labels, return_counts=True)
    covered = np.isin(present, centre_labels)
    # Each group's units best first (ties: lower position first), all groups in one sort.
    by_value = np.split(np.lexsort((-value, labels)), np.cumsum(size)[:-1])
    best = np.array([value[q[0]] for q in by_value])
    priority = (1.0 - ctx.weight) * _scaled(size.astype(np.float64)) + ctx.weight * _scaled(best)
    queues = [by_value[j] for j in np.lexsort((-priority, covered))]
    for depth in range(max(len(q) for q in queues)):
        for q in queues:
            if depth < len(q):
                yield int(q[depth])


DIVERSITY = {"kmeans": _kmeans_picks, "kcenter": _kcenter_picks}



def _partitioned_picks(ctx: SelectionContext, picker, features: np.ndarray, centres: np.ndarray,
                       scores: np.ndarray) -> Iterator[int]:
    """The diversity picker on groups of neighbouring units, each with its share of the picks, interleaved.

    The shortlist is cut into groups of about ``GROUP_PICKS * n / k`` units
    (:func:`~learning.selection.diversity.partition`); each labeled centre
    joins the group nearest it. Each group runs ``picker`` for
    ``k * size / n`` picks and the groups' orders are merged so that every
    group has contributed the same share of its picks at any point: the
    budget filler, which stops anywhere, gets picks spread over the whole
    shortlist. Cost O(n D (GROUP_PICKS + log n)): linear in the shortlist.
    """
    import heapq
    from dataclasses import replace

    n, k = len(features), max(1, ctx.picks_estimate)
    groups = partition(features, max(256, math.ceil(GROUP_PICKS * n / k)))
    owner = nearest_group(centres, features, groups) if len(centres) else np.zeros(0, dtype=np.int64)
    streams, heap = [], []
    for number, rows in enumerate(groups):
        share = max(1, round(k * len(rows) / n))
        local = replace(ctx, picks_estimate=share)
        mine = centres[owner == number] if len(centres) else centres
        streams.append((rows, share, iter(picker(local, features[rows], mine, scores[rows]))))
        heapq.heappush(heap, (0.5 / share, number, 0))
    while heap:
        _, number, taken = heapq.heappop(heap)
        rows, share, stream = streams[number]
        pick = next(stream, None)
        if pick is None:
            continue
        yield int(rows[pick])
        heapq.heappush(heap, ((taken + 1.5) / share, number, taken + 1))


def diversity_order(ctx: SelectionContext, scores: np.ndarray) -> Iterator[int]:
    """Diverse picks from the shortlist (labeled units as centres), then every other unit by score."""
    try:
        picker = DIVERSITY[ctx.params.diversity]
    except KeyError:
        raise ValueError(f"unknown diversity method {ctx.params.diversity!r}; known: {sorted(DIVERSITY)}") from None
    shortlist = _shortlist(ctx, scores)
    if ctx.weight >= 1.0:
        yield from (int(r) for r in shortlist)
    else:
        features = ctx.candidates.features(shortlist)
        centres = _centres(ctx, features.shape[1])
        if len(shortlist) * ctx.picks_estimate <= ctx.params.exact_diversity_cost:
            picks = picker(ctx, features, centres, scores[shortlist])
        else:
            picks = _partitioned_picks(ctx, picker, features, centres, scores[shortlist])
        yield from (int(shortlist[j]) for j in picks)
    rest = np.ones(len(scores), dtype=bool)
    rest[shortlist] = False
    yield from (int(r) for r in np.argsort(-scores, kind="stable") if rest[r])


def _estimate_picks(c: Candidates, budget: Budget) -> int:
    pixel_limit = budget.pixel_limit(c.total_pixels)
    if pixel_limit is None:
        return max(1, int(budget.amount))
    return max(1, math.ceil(pixel_limit / max(1.0, float(np.median(c.pixels)))))


def _checked(strategy: str, unit: QueryUnit | None, budget: Budget) -> tuple[Strategy, QueryUnit]:
    try:
        chosen = STRATEGIES[strategy]
    except KeyError:
        raise ValueError(f"unknown strategy {strategy!r}; known: {sorted(STRATEGIES)}") from None
    unit = unit or chosen.default_unit
    if unit not in ("image", "region"):
        raise ValueError(f"unknown query unit {unit!r}")
    if budget.unit == "images" and unit != "image":
        raise ValueError("an 'images' budget needs image queries")
    if budget.unit == "regions" and unit != "region":
        raise ValueError("a 'regions' budget needs region queries")
    return chosen, unit


def select_queries(
    pool: Sequence[PoolItem | PoolScore],
    budget: Budget,
    strategy: str = DEFAULT_STRATEGY,
    *,
    unit: QueryUnit | None = None,
    labeled_features: np.ndarray | None = None,
    round_index: int = 0,
    val_miou: float | None = None,
    params: SelectionParams | None = None,
    seed: int | np.random.Generator | None = 0,
) -> list[QuerySpec]:
    """Pick this round's queries from ``pool`` within ``budget``.

    ``pool``: every target pool image (labeled ones too: they are diversity
    centres and count toward ``percent`` budgets), as :class:`PoolItem` (with
    region map and labels) or bare :class:`PoolScore`. ``unit`` overrides the
    strategy's default (``"image"`` or ``"region"``). ``labeled_features``:
    extra ``(n, D)`` diversity centres (labeled images outside the pool).
    ``round_index`` (0 = first round) and ``val_miou`` (a fraction) drive the
    adaptive schedule. Returns one :class:`QuerySpec` per image, most wanted
    first; their ``pixels`` sum to at most the pixel budget.

    The pool is held in memory here; :func:`select_from_table` selects from
    a pool's summaries (what ``learning.round_step.propose_round`` keeps on
    disk for large pools) with the same result.
    """
    chosen, unit = _checked(strategy, unit, budget)
    params = params or SelectionParams()
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    items = list(pool)
    if not items:
        return []
    if unit == "image":
        c = image_candidates(items)
    else:
        c = region_candidates(
            items, num_classes=params.num_classes, context=params.context, rarity_power=params.rarity_power, rng=rng
        )
    return _select(c, chosen, budget, params, rng, labeled_features, round_index, val_miou)


def select_from_table(
    table: SummaryTable,
    budget: Budget,
    strategy: str = DEFAULT_STRATEGY,
    *,
    labeled_features: np.ndarray | None = None,
    round_index: int = 0,
    val_miou: float | None = None,
    params: SelectionParams | None = None,
    seed: int | np.random.Generator | None = 0,
) -> list[QuerySpec]:
    """:func:`select_queries` on a summarised pool; the query unit is the one the table was summarised for."""
    chosen, _ = _checked(strategy, table.unit, budget)
    params = params or SelectionParams()
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if not len(table):
        return []
    c = candidates_from_table(table, rarity_power=params.rarity_power, rng=rng)
    return _select(c, chosen, budget, params, rng, labeled_features, round_index, val_miou)


def _select(c: Candidates, chosen: Strategy, budget: Budget, params: SelectionParams, rng: np.random.Generator,
            labeled_features: np.ndarray | None, round_index: int, val_miou: float | None) -> list[QuerySpec]:
    if not len(c):
        return []
    k = _estimate_picks(c, budget)
    weight = chosen.weight(params, round_index, val_miou) if chosen.weight else 1.0
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"uncertainty weight must be in [0, 1], got {weight}")
    ctx = SelectionContext(c, k, float(weight), params, rng, labeled_features)
    scores = np.asarray(chosen.scores(ctx), dtype=np.float64)
    order = diversity_order(ctx, scores) if chosen.weight else np.argsort(-scores, kind="stable")
    # A strategy on the schedule (its trade-off) also takes the schedule's random first rounds.
    scheduled = chosen.weight is _scheduled_weight
    explore = max(params.explore_share, params.schedule.explore_share(round_index) if scheduled else 0.0)
    if explore > 0:
        order = with_exploration(order, rng.permutation(len(c)), explore)
    per_image_limit = None
    if c.unit == "region":
        per_image_limit = max(1, math.ceil(params.per_image_cap * k / len(np.unique(c.item))))
    rows = fill_budget(c, order, budget, scores=scores, per_image_limit=per_image_limit)
    return group_queries(c, rows, scores)


def check_explore_share(share: float) -> None:
    """The one rule for an exploration share: a fraction of the picks, 0 to 1."""
    if not 0.0 <= share <= 1.0:  # NaN fails too
        raise ValueError(f"explore_share must be in [0, 1], got {share}")


def with_exploration(order: Iterable[int], random_order: np.ndarray, share: float) -> Iterator[int]:
    """``order`` with every ``1 / share``-th pick taken from ``random_order`` instead (repeats are left in:
    the budget filler skips a unit it already took)."""
    check_explore_share(share)
    own = (int(pick) for pick in order)
    if share == 0.0:
        yield from own
        return
    explore = (int(pick) for pick in random_order)
    for position in itertools.count():
        source = explore if math.floor((position + 1) * share) > math.floor(position * share) else own
        pick = next(source, None)
        if pick is None:  # one stream ran dry: the other gives the rest
            yield from own if source is explore else explore
            return
        yield pick


def picks_by_uncertainty(strategy: str) -> bool:
    """Whether ``strategy`` scores units by the model's uncertainty (its queries land where the model errs most)."""
    return STRATEGIES[strategy].scores is not _random_scores


def strategy_weight(strategy: str, *, round_index: int, val_miou: float | None = None,
                    params: SelectionParams | None = None) -> float | None:
    """The uncertainty weight ``strategy`` would use this round (None: no diversity step); for logs and UI."""
    chosen = STRATEGIES[strategy]
    return chosen.weight(params or SelectionParams(), round_index, val_miou) if chosen.weight else None
