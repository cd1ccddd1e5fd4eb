"""One round step of the labeling loop: score the pool, calibrate, select, suggest.

Given a trained model, the target pool (images, the labels so far, the
pixels already sent to annotators), the model's predictions on the
validation images and the project's selection settings,
:func:`propose_round` returns one plain :class:`RoundProposal`: the queries
to ask, each with its pre-filled suggestion, and what was measured on the
way. It neither reads nor writes rows or files (bar the selection store in the
optional score cache), so the app's selection worker and every benchmark simulator call
this same function: the worker stores the proposal as Query and Suggestion
rows for people to answer, a simulator answers it with an oracle.

    rows → PoolImage / Calibration / SelectionSettings → propose_round → RoundProposal → rows
"""
from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np
from torch import nn

from learning.data import Sample
from learning.inference import predict
from learning.progress import ProgressFn, StopFn, check_stop, report
from learning.selection import (
    Budget,
    QuerySpec,
    ScoreCache,
    SelectionParams,
    strategy_weight,
)
from learning.selection.masks import Mask
from learning.selection.resample import resize_bilinear, resize_nearest
from learning.selection.scoring import iter_scores
from learning.selection.store import SummarySpec, SummaryStore
from learning.selection.strategies import AdaptiveSchedule, picks_by_uncertainty, select_from_table
from learning.selection.streaming import load_table, score_into_store
from learning.suggestions import (
    Suggestion,
    SuggestionQuality,
    Thresholds,
    calibrate_for_queries,
    make_suggestion,
    suggestion_quality,
)

Size = tuple[int, int]
RegionsFn = Callable[[str], np.ndarray]


@dataclass
class PoolImage:
    """One unlabeled (or partly labeled) target image of the pool.

    ``image``: a path or an ``(H, W, 3)`` uint8 array. ``labels``: uint8 mask
    at the image's resolution, 255 where nobody labeled yet. ``queried``: bool
    mask of every pixel already sent to an annotator (answered, skipped or
    left void): none of them is proposed again. Either mask may be a
    :class:`~learning.selection.masks.LazyMask` (the app's large pools): it is
    read only while selection scores or queries this image, and its identity
    stands for it in the selection store's fingerprint.
    """

    key: str
    image: object
    labels: Mask = None
    queried: Mask = None


@dataclass
class Calibration:
    """The model's ``(pred, confidence)`` on each validation image and the images' ground truth."""

    predictions: list[tuple[np.ndarray, np.ndarray]]
    truths: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.truths)


@dataclass(frozen=True)
class SelectionSettings:
    """What a project (or a benchmark arm) decides about selection and suggestions."""

    strategy: str
    unit: str  # "image" | "region"
    budget: Budget
    num_classes: int
    size: Size  # the (H, W) the network sees
    measure: str = "entropy"
    target_precision: float = 0.95
    uncertainty_weight: float | None = None  # None: the strategy's own (schedule or default)
    rarity_power: float = 0.0
    batch_size: int = 8
    explore_share: float = 0.0  # share of the picks drawn at random (SelectionParams.explore_share)
    random_rounds: int | None = None  # None: the adaptive schedule's own (AdaptiveSchedule.random_rounds)

    def params(self) -> SelectionParams:
        overrides = {} if self.uncertainty_weight is None else {"uncertainty_weight": self.uncertainty_weight}
        if self.random_rounds is not None:
            overrides["schedule"] = replace(AdaptiveSchedule(), random_rounds=self.random_rounds)
        return SelectionParams(num_classes=self.num_classes, rarity_power=self.rarity_power,
                               explore_share=self.explore_share, **overrides)


@dataclass
class ProposedQuery:
    """One query: which pixels of which image, and what the model pre-fills there.

    ``confidence``: the model's confidence as a uint8 heat map at the
    query's resolution (shown everywhere, most usefully where nothing was
    suggested).
    """

    key: str
    spec: QuerySpec
    suggestion: Suggestion
    confidence: np.ndarray


@dataclass
class RoundProposal:
    queries: list[ProposedQuery]
    thresholds: Thresholds
    uncertainty_weight: float | None  # the weight selection used (None: no diversity step)
    val_quality: SuggestionQuality | None  # the thresholds' suggestions on the validation images
    background_classes: list[int] = field(default_factory=list)

    @property
    def query_pixels(self) -> int:
        return int(sum(q.spec.pixels for q in self.queries))

    @property
    def suggested_pixels(self) -> int:
        return int(sum(q.suggestion.suggested_pixels for q in self.queries))

    def stats(self, settings: SelectionSettings, class_names: Sequence[str]) -> dict:
        """A JSON-able summary (the round's stats in the app, a log line in benchmarks)."""
        weight = self.uncertainty_weight
        return {
            "strategy": settings.strategy, "query_unit": settings.unit,
            "diversity_weight": None if weight is None else round(1.0 - weight, 3),
            "queries": len(self.queries), "query_pixels": self.query_pixels,
            "suggestion_precision": self.val_quality.precision if self.val_quality else None,
            "suggestion_coverage": self.val_quality.coverage if self.val_quality else None,
            "suggested_pixels": self.suggested_pixels,
            "thresholds": dict(zip(class_names, (round(float(v), 4) for v in self.thresholds.values))),
        }


def summary_spec(settings: SelectionSettings, pool_size: int) -> SummarySpec:
    """How :func:`propose_round` scores and summarises a pool of ``pool_size`` images with these settings.

    Scoring workers that fill the store ahead of the round step
    (:func:`learning.selection.streaming.score_shard`) use the same spec, so
    their shards are the ones the round step looks for.
    """
    from learning.selection import store

    params = settings.params()
    return SummarySpec(
        measure=settings.measure, size=settings.size, unit=settings.unit, num_classes=settings.num_classes,
        context=params.context, rarity=params.rarity_power > 0, batch_size=settings.batch_size,
        keep_features=SummarySpec.keep_for_pool(pool_size, params.max_shortlist) if settings.unit == "region" else None,
        shard_size=store.SHARD_SIZE,
    )


@contextmanager
def _summary_store(cache: ScoreCache | None, spec: SummarySpec) -> Iterator[SummaryStore]:
    """The model version's selection store in the score cache, or a temporary one without a cache."""
    if cache is not None:
        yield cache.summaries(spec)
        return
    with tempfile.TemporaryDirectory(prefix="maskloop-summaries-") as directory:
        yield SummaryStore(directory, spec)


def selection_seed(seed: int, round_index: int) -> int:
    """The random stream of one round's selection: the same for the app (seed 0) and a simulator's seed 0."""
    return int(seed) * 1000 + int(round_index)


# Validation images are compared with their truth at their own resolution up to this many pixels, larger ones
# (a 12-megapixel photo) on a nearest-neighbour grid of this size: a round holds every validation image's
# prediction, confidence and truth at once (6 bytes a pixel), so 100 such photos would otherwise take 7 GB.
MAX_VALIDATION_PIXELS = 1024 * 1024


def validation_predictions(model: nn.Module, samples: Sequence[Sample], *, size: Size, batch_size: int = 8,
                           device=None) -> Calibration:
    """Predict every validation image at its own resolution (at most :data:`MAX_VALIDATION_PIXELS`), for
    :func:`propose_round`'s calibration and keep-best's comparison."""
    from learning.data import load_mask

    predictions, truths = [], []
    for sample, prediction in zip(samples, predict(model, samples, size=size, output_size="original",
                                                   batch_size=batch_size, device=device,
                                                   max_output_pixels=MAX_VALIDATION_PIXELS)):
        predictions.append((prediction.label, prediction.confidence))
        truths.append(resize_nearest(load_mask(sample.mask), prediction.label.shape))  # as it is when sizes match
    return Calibration(predictions, truths)


def propose_round(
    model: nn.Module,
    pool: Sequence[PoolImage],
    *,
    calibration: Calibration,
    settings: SelectionSettings,
    round_index: int,
    val_miou: float | None,
    background_classes: Sequence[int] = (),
    seed: int = 0,
    regions: RegionsFn | None = None,
    cache: ScoreCache | None = None,
    device=None,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
) -> RoundProposal:
    """Score the pool with ``model``, calibrate suggestion thresholds, select within the budget, suggest.

    ``calibration``: the model's predictions on the frozen validation images
    (:func:`validation_predictions`); with none, every class gets its
    fallback threshold. ``regions(key)``: the image's superpixel map at its
    own resolution (region queries only; the annotator's click-fill must see
    the same regions). ``seed`` with ``round_index`` fixes the random
    choices (:func:`selection_seed`). Raises
    :class:`learning.progress.Cancelled` between phases when
    ``should_stop()`` turns True.

    Memory stays flat as the pool grows: scoring streams over the pool and
    keeps per image only its selection summary, in the selection store of
    ``cache`` (a temporary one without), shard by shard; shards already
    there for the same labels are not scored again (so shards scored by
    other workers, :func:`learning.selection.streaming.score_shard`, are
    merged here). Only the queried images are scored again, for their
    suggestions. Lazy masks (:class:`~learning.selection.masks.LazyMask`)
    are read per image while it is scored, and again for the queried ones,
    so memory does not grow with the labeled images either.
    """
    background = sorted(int(c) for c in background_classes)
    report(progress, "calibrate", 0, 1)
    # Queries picked by uncertainty sit where the model errs most: their thresholds hold in uncertain regions too.
    thresholds = calibrate_for_queries(calibration.predictions, calibration.truths, settings.num_classes,
                                       uncertain=picks_by_uncertainty(settings.strategy),
                                       target_precision=settings.target_precision, background_classes=background)
    val_quality = None
    for (pred, conf), truth in zip(calibration.predictions, calibration.truths):
        quality = suggestion_quality(make_suggestion(pred=pred, confidence=conf, thresholds=thresholds).mask, truth)
        val_quality = quality if val_quality is None else val_quality + quality
    check_stop(should_stop, "selection")

    params = settings.params()
    region_fn = regions if regions is not None and settings.unit == "region" else None
    with _summary_store(cache, summary_spec(settings, len(pool))) as store:
        # Streams over the pool: per image only its summary stays (on disk), never its full maps.
        score_into_store(model, pool, store, regions=region_fn, device=device, progress=progress,
                         should_stop=should_stop)
        check_stop(should_stop, "selection")
        report(progress, "superpixels", len(pool), len(pool))
        table = load_table(pool, store, model=model, regions=region_fn, device=device)
        specs = select_from_table(table, settings.budget, settings.strategy, round_index=round_index,
                                  val_miou=val_miou, params=params, seed=selection_seed(seed, round_index))
    report(progress, "suggest", 0, len(specs))
    weight = strategy_weight(settings.strategy, round_index=round_index, val_miou=val_miou, params=params)
    # Suggestions need the full maps: score the handful of queried images again.
    position = {entry.key: i for i, entry in enumerate(pool)}
    queried = [pool[position[spec.key]] for spec in specs]
    records = iter_scores(model, [Sample(image=entry.image, key=entry.key) for entry in queried],
                          measure=settings.measure, size=settings.size, batch_size=settings.batch_size,
                          device=device, cache_images=False)
    queries = []
    for number, (spec, score) in enumerate(zip(specs, records), start=1):
        suggestion = make_suggestion(pred=score.pred, confidence=score.confidence, thresholds=thresholds,
                                     region_mask=spec.mask if spec.region_ids is not None else None,
                                     size=spec.mask.shape)
        heat = np.clip(np.rint(resize_bilinear(score.confidence, spec.mask.shape) * 255), 0, 255).astype(np.uint8)
        queries.append(ProposedQuery(spec.key, spec, suggestion, heat))
        report(progress, "suggest", number, len(specs))
    return RoundProposal(queries, thresholds, weight, val_quality, background)


# --- the training half of a round ------------------------------------------------------------------------


@dataclass
class RoundModel:
    """A round's trained model, the config it trained with, and whether it replaces the current one."""

    result: object  # learning.train.TrainResult
    config: object  # learning.train.TrainConfig
    promotion: object  # learning.promotion.PromotionDecision


def train_round_model(
    recipe,
    *,
    round_index: int,
    labeled: Sequence[Sample],
    unlabeled: Sequence[Sample] = (),
    val: Sequence[Sample] = (),
    init_state: dict | None = None,
    current_state: dict | None = None,
    image_sizes: Sequence[tuple[int, int]] = (),
    backbone_checkpoint: str | None = None,
    available_objectives: Sequence[str] | None = None,
    seed: int = 0,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
) -> RoundModel:
    """Train a round's model with the recipe (learning.recipe) and decide keep-best (learning.promotion).

    ``init_state``: the weights to fine-tune (the current model, or a
    project's initial checkpoint), None to train from scratch or from
    ``backbone_checkpoint``. ``current_state``: the model this one would
    replace (None for the first). Both the app's training worker and the
    benchmark suite call this.
    """
    from dataclasses import replace

    from learning.recipe import has_labeled_source, round_train_config
    from learning.train import train

    config = round_train_config(recipe, round_index=round_index, warm_start=init_state is not None,
                                image_sizes=image_sizes, available_objectives=available_objectives, seed=seed,
                                labeled_source=has_labeled_source(labeled))
    if init_state is None and backbone_checkpoint:
        config = replace(config, backbone_checkpoint=str(backbone_checkpoint))
    result = train(config, labeled=labeled, unlabeled=unlabeled, val=val, init_state=init_state,
                   progress=progress, should_stop=should_stop)
    return RoundModel(result, config, promotion_decision(config, result, current_state, val))


def promotion_decision(config, result, current_state: dict | None, val: Sequence[Sample]):
    """Keep-best: the new model against the one it would replace, on the same validation images."""
    from learning.models import build_model
    from learning.promotion import decide_on_training, decide_on_validation, first_model, image_confusions

    if current_state is None:
        return first_model()
    if not val:
        return decide_on_training(result.history)
    confusions = []
    for state in (result.state_dict, current_state):
        model = build_model(config.arch, config.num_classes)
        model.load_state_dict(state)
        calibration = validation_predictions(model.eval(), val, size=config.size)
        confusions.append(image_confusions([pred for pred, _ in calibration.predictions], calibration.truths,
                                           config.num_classes))
    return decide_on_validation(*confusions)
