"""One simulated campaign: the app's round step, answered by an oracle, then fine-tune and evaluate.

Each round of an arm:

1. :func:`propose` hands the current model, the pool (labels and queried
   pixels so far) and the val predictions to
   :func:`learning.round_step.propose_round`, the same round step the app's
   selection worker runs: score the pool, calibrate suggestion thresholds on
   dusk val, select within the budget, pre-fill suggestions;
2. the oracle answers each query from the ground truth: ``exact`` copies the
   GT pixels of the queried region (void stays void), ``dominant`` gives every
   queried superpixel its majority GT class (one click per region); the
   suggestions are measured against the GT inside the query (precision;
   coverage = share of the queried pixels they would pre-fill);
3. fine-tune (warm start, the learning core's ``train``) on day frames plus
   every dusk label so far, dusk oversampled to ``target_share`` of the
   frames, then evaluate mIoU on dusk val.

A reference runs the same rounds and steps without selection: every pool
pixel labeled, or the pool's frames with no label at all.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from benchmarks import report
from benchmarks.campaign.base_model import model_from_state, train_config
from benchmarks.campaign.config import REFERENCES, Arm, CampaignConfig
from benchmarks.campaign.data import CampaignData
from benchmarks.campaign.records import RoundRecord
from learning.labels import IGNORE_INDEX

if TYPE_CHECKING:
    from learning.round_step import Calibration, RoundProposal


@dataclass
class Evaluation:
    miou: float
    per_class_iou: list
    calibration: Calibration  # the model's (pred, confidence) on each val image and its ground truth


def evaluate_val(config: CampaignConfig, data: CampaignData, model) -> Evaluation:
    """mIoU on the dusk val split at the labels' own resolution, keeping the predictions for calibration."""
    from learning.metrics import ConfusionMatrix
    from learning.round_step import validation_predictions

    calibration = validation_predictions(model, data.val, size=config.size, batch_size=config.batch_size,
                                         device="cpu")
    matrix = ConfusionMatrix(data.num_classes)
    for (pred, _), truth in zip(calibration.predictions, calibration.truths):
        matrix.update(pred, truth)
    metrics = matrix.compute()
    return Evaluation(metrics.miou or 0.0, metrics.per_class_iou, calibration)


def oracle_labels(query, gt: np.ndarray, regions: np.ndarray, mode: str) -> np.ndarray:
    """What the simulated annotator returns for one query (255 outside it)."""
    from learning.selection import query_labels

    if mode == "exact" or query.region_ids is None:
        return query_labels(query, gt)
    out = np.full(gt.shape, IGNORE_INDEX, dtype=np.uint8)
    for rid in query.region_ids:
        inside = query.mask & (regions == rid)
        values = gt[inside]
        values = values[values != IGNORE_INDEX]
        if values.size:
            out[inside] = np.bincount(values).argmax()
    return out


def training_samples(config: CampaignConfig, data: CampaignData, labels: dict[str, np.ndarray],
                     rng: np.random.Generator, *, unlabeled_frames: bool = False) -> list:
    """Day frames plus the dusk labels so far, balanced so dusk pixels make ~``target_share`` of the loss.

    The learning core averages one cross-entropy over every labeled pixel of
    a batch. Region labels cover ~1 % of a frame, so next to fully labeled
    day frames they would weigh almost nothing while a whole labeled image
    weighs half the batch: region and image arms would not get the same
    signal from the same number of labeled pixels. RIPU averages the source
    and target losses separately; here the day masks are thinned at random
    (fresh each round) to the dusk samples' labeled density, and dusk frames
    are repeated to ``target_share`` of the frames, which gives the same
    balance without touching the training loop. ``unlabeled_frames``: dusk
    frames without any label are kept too (they reach BatchNorm, not the loss).
    """
    from learning.data import CACHE, Sample

    share = config.target_share
    target = [Sample(image=data.pool_images[k], mask=m, key=k) for k, m in labels.items()
              if unlabeled_frames or (m != IGNORE_INDEX).any()]
    if not target or share <= 0:
        return list(data.source)
    target_density = float(np.mean([(s.mask != IGNORE_INDEX).mean() for s in target]))
    source = []
    for sample in data.source:
        mask = CACHE.get_or_load("mask", sample.mask, config.size) if not isinstance(sample.mask, np.ndarray) \
            else sample.mask
        valid = mask != IGNORE_INDEX
        keep = min(1.0, target_density / max(valid.mean(), 1e-6))
        # keep == 0: no dusk label at all (frames-only reference), nothing to balance: day masks stay whole.
        if 0.0 < keep < 1.0:
            mask = np.where(valid & (rng.random(mask.shape) < keep), mask, IGNORE_INDEX).astype(np.uint8)
        source.append(Sample(image=sample.image, mask=mask, key=sample.key))
    repeats = max(1, round(share / (1 - share) * len(source) / len(target))) if share < 1 else 1
    return source + target * repeats


def fine_tune(config: CampaignConfig, data: CampaignData, state: dict, labels: dict[str, np.ndarray], *,
              seed: int, round_index: int, unlabeled_frames: bool = False) -> dict:
    """One round's training from the previous round's weights; returns the new weights."""
    from learning.train import train

    samples = training_samples(config, data, labels, np.random.default_rng([seed, round_index, 7]),
                               unlabeled_frames=unlabeled_frames)
    settings = train_config(config, data.num_classes, steps=config.steps_per_round, lr=config.lr,
                            seed=seed * 1000 + round_index, base=False)
    return train(settings, labeled=samples, init_state=state).state_dict


def propose(config: CampaignConfig, data: CampaignData, arm: Arm, model, evaluation: Evaluation, *,
            labels: dict[str, np.ndarray], queried: dict[str, np.ndarray], round_index: int, seed: int,
            cache=None) -> RoundProposal:
    """One round's queries with their suggestions, from the app's own round step.

    ``labels``/``queried``: the dusk labels so far and every pixel already
    asked for, per pool key. Background classes follow the app's rule over
    the masks this round trains on (day masks first, then the dusk labels).
    """
    from learning.round_step import PoolImage, SelectionSettings, propose_round
    from learning.selection import Budget
    from learning.suggestions import background_classes_of

    pool = [PoolImage(key, data.pool_images[key], labels=labels.get(key), queried=queried[key])
            for key in data.pool_keys]
    settings = SelectionSettings(
        strategy=arm.strategy, unit=arm.unit, budget=Budget(arm.budget_amount, arm.budget_unit),
        num_classes=data.num_classes, size=config.size, measure=config.measure,
        target_precision=config.target_precision, uncertainty_weight=arm.uncertainty_weight,
        rarity_power=arm.rarity_power, batch_size=config.batch_size,
    )
    return propose_round(
        model, pool, calibration=evaluation.calibration, settings=settings, round_index=round_index,
        val_miou=evaluation.miou,
        background_classes=background_classes_of(data.training_masks(labels), data.num_classes),
        seed=seed, regions=lambda key: data.pool_regions[key], cache=cache, device="cpu",
    )


def run_arm(config: CampaignConfig, data: CampaignData, arm: Arm, seed: int, base: dict, base_eval: Evaluation,
            score_cache_root, log: Callable[[str], None]) -> list[RoundRecord]:
    """One (arm, seed) campaign from round 0's model; one record per round (round 0 included)."""
    from learning.selection import ScoreCache, merge_labels
    from learning.suggestions import SuggestionQuality, suggestion_quality

    total = sum(data.pool_gt[k].size for k in data.pool_keys)
    labels: dict[str, np.ndarray] = {}
    queried: dict[str, np.ndarray] = {k: np.zeros(data.pool_gt[k].shape, dtype=bool) for k in data.pool_keys}
    records = [RoundRecord(arm.name, seed, 0, 0, 0.0, base_eval.miou, per_class_iou=base_eval.per_class_iou)]
    state, evaluation, version = base, base_eval, "base"
    rounds = config.rounds
    if arm.unit == "image" and config.image_rounds:
        rounds = min(rounds, config.image_rounds)
    for r in range(rounds):
        cpu_started = time.process_time()
        started = time.perf_counter()
        proposal = propose(config, data, arm, model_from_state(config, data.num_classes, state), evaluation,
                           labels=labels, queried=queried, round_index=r, seed=seed,
                           cache=ScoreCache(score_cache_root, version))
        quality = SuggestionQuality()
        for query in proposal.queries:
            gt = data.pool_gt[query.key]
            quality = quality + suggestion_quality(query.suggestion.mask, gt, region_mask=query.spec.mask)
            answer = oracle_labels(query.spec, gt, data.pool_regions[query.key], config.oracle)
            labels[query.key] = merge_labels(labels.get(query.key), answer)
            queried[query.key] |= query.spec.mask
        select_seconds = time.perf_counter() - started

        started = time.perf_counter()
        state = fine_tune(config, data, state, labels, seed=seed, round_index=r)
        version = f"{arm.name}-s{seed}-r{r + 1}"
        train_seconds = time.perf_counter() - started
        started = time.perf_counter()
        evaluation = evaluate_val(config, data, model_from_state(config, data.num_classes, state))
        labeled_pixels = int(sum(m.sum() for m in queried.values()))
        record = RoundRecord(
            arm.name, seed, r + 1, labeled_pixels, 100.0 * labeled_pixels / total, evaluation.miou,
            queries=len(proposal.queries), regions=sum(len(q.spec.region_ids or ()) for q in proposal.queries),
            weight=proposal.uncertainty_weight, suggestion_precision=quality.precision,
            suggestion_coverage=quality.coverage, select_seconds=select_seconds, train_seconds=train_seconds,
            eval_seconds=time.perf_counter() - started, cpu_seconds=time.process_time() - cpu_started,
            per_class_iou=evaluation.per_class_iou,
        )
        records.append(record)
        log(f"{arm.name} seed {seed} round {r + 1}: {record.labeled_percent:.2f}% labeled, mIoU "
            f"{100 * record.miou:.1f}, {record.queries} queries/{record.regions} regions, w={record.weight}, "
            f"suggestions P {report.percent(record.suggestion_precision, unit='%')} "
            f"C {report.percent(record.suggestion_coverage, unit='%')}, select {select_seconds:.1f}s "
            f"train {train_seconds:.0f}s")
    return records


def run_reference(config: CampaignConfig, data: CampaignData, name: str, seed: int, base: dict,
                  base_eval: Evaluation, log: Callable[[str], None]) -> list[RoundRecord]:
    """Train a reference from round 0's model: every pool pixel labeled, or the pool's frames with no label.

    The frames-only reference tells how much of an arm's gain comes from its
    dusk frames merely passing through the network (BatchNorm statistics
    follow the batch) rather than from what the annotator labeled in them.
    """
    reference = REFERENCES[name]
    labels = {k: data.pool_gt[k] if reference.labeled else np.full_like(data.pool_gt[k], IGNORE_INDEX)
              for k in data.pool_keys}
    total = sum(m.size for m in labels.values())
    labeled = total if reference.labeled else 0
    records = [RoundRecord(name, seed, 0, 0, 0.0, base_eval.miou, per_class_iou=base_eval.per_class_iou)]
    state = base
    for r in range(config.rounds):
        cpu_started = time.process_time()
        started = time.perf_counter()
        state = fine_tune(config, data, state, labels, seed=seed, round_index=r,
                          unlabeled_frames=not reference.labeled)
        train_seconds = time.perf_counter() - started
        evaluation = evaluate_val(config, data, model_from_state(config, data.num_classes, state))
        records.append(RoundRecord(name, seed, r + 1, labeled, 100.0 * labeled / total, evaluation.miou,
                                   train_seconds=train_seconds, cpu_seconds=time.process_time() - cpu_started,
                                   per_class_iou=evaluation.per_class_iou))
        log(f"{reference.label} seed {seed} round {r + 1}: mIoU {100 * evaluation.miou:.1f}")
    return records
