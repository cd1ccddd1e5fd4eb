"""Dataset suite: the app's whole round loop on every dataset, with an oracle in place of annotators.

Each round runs the app's own two halves of a round, from ``learning.round_step``:
``train_round_model`` (the app's training recipe, ``learning.recipe``, with
keep-best promotion) and ``propose_round`` (score, calibrate, select,
suggest). Only the annotator is simulated: the oracle copies the ground
truth inside each query (void stays void). The training set of a round is
what the app's worker builds: the labeled source, every target label so far
(255 outside the labeled pixels), the unlabeled pool for domain adaptation,
the frozen validation split for evaluation and promotion.

Arms: ``ours`` (the default strategy, region queries), ``random_region``,
``random_image`` and ``full`` (every pool pixel labeled from round 1 on:
the ceiling); ``ours_explore`` (ours with a quarter of its picks random
regions) only when asked. Budget: ``--percent`` of the pool's pixels per round.

    python benchmarks/suite.py --datasets polyp demo --seeds 1 --threads 1
    python benchmarks/suite.py --report-only     # re-render docs/BENCHMARKS.md from the tracked records

Finished (dataset, arm, seed) runs are appended to benchmarks/results/suite.jsonl (tracked), keyed by the
settings, so a fresh checkout re-renders the sections and a rerun resumes. Within an arm, each finished
round is kept under var/bench/suite/progress/ (not tracked): a killed run goes on from its last round, and
``--rounds 5`` after a finished ``--rounds 3`` run with the same settings adds rounds 4 and 5 only.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import datasets, report  # noqa: E402

RECORDS = ROOT / "benchmarks" / "results" / "suite.jsonl"
# Keep-best before learning.promotion.MAX_DROP (a bootstrap interval alone): what the older records ran under.
# Only --report-only can ask for it; a run always uses the app's rule.
LEGACY_PROMOTION = "bootstrap"
LEGACY_TRAIN_PIXELS = 240 * 320  # every run's training-size cap before learning.recipe.default_max_train_pixels
LEGACY_CONSISTENCY = True  # fine-tuning rounds ran with mean-teacher consistency before the recipe turned it off
# The app's fine-tuning steps before RecipeSettings.steps_per_round went to 400: a SuiteSettings without steps per
# round (every record from before) ran these, and an explicit 200 keys the same records.
LEGACY_STEPS_PER_ROUND = 200
LEGACY_TARGET_STATISTICS = "off"  # every model kept its training BatchNorm statistics before the recipe's "auto"
STATISTICS_TEXT = {  # TrainConfig.target_statistics, as a section's settings line says it
    "off": "as trained", "on": "the target pool's",
    "auto": "the target pool's where they score higher on target validation (learning.adaptation.batchnorm)",
}
BASES = ROOT / "var" / "bench" / "suite"  # round-0 models, reused by reruns with the same round-0 config
FINETUNE_ONLY_FIELDS = ("freeze_backbone",)  # TrainConfig fields round 0 never sets
KEY_OMITTED_AT_DEFAULT = {"rare_class_temperature": 0.0, "target_statistics": LEGACY_TARGET_STATISTICS}  # round-0 TrainConfig fields added after the first caches


class Arm(NamedTuple):
    """One arm of the suite: how it picks what the oracle labels (None: every pool pixel)."""
    strategy: str | None  # learning.selection strategy
    unit: str | None  # query unit: "region" or "image"
    label: str  # as the tables and plots name it
    ablation: str | None = None  # an ablation's short name in the verdict lines (None: a main arm)
    explore_share: float = 0.0  # SelectionSettings.explore_share
    uncertainty_weight: float | None = None  # SelectionSettings.uncertainty_weight (None: the strategy's)
    random_rounds: int | None = None  # SelectionSettings.random_rounds (None: the schedule's)


ARMS = {
    "ours": Arm("adaptive", "region", "ours (adaptive, regions)"),
    "random_region": Arm("random", "region", "random regions"),
    "random_image": Arm("random", "image", "random images"),
    "full": Arm(None, None, "full target supervision (ceiling)"),
    # Ablations, run only when asked: ours with a quarter of its picks random regions (exploration); the region
    # strategy at a fixed uncertainty weight (either end of ours' trade-off); ours with a random first round.
    "ours_explore": Arm("adaptive", "region", "ours + a quarter of the picks random (exploration)",
                        ablation="ours + exploration", explore_share=0.25),
    "ours_top": Arm("region", "region", "RIPU score alone, top-k (uncertainty weight 1)",
                    ablation="RIPU top-k", uncertainty_weight=1.0),
    "ours_typical": Arm("region", "region", "typical regions, one per k-means cluster (uncertainty weight 0)",
                        ablation="typical regions", uncertainty_weight=0.0),
    "ours_random_first": Arm("adaptive", "region", "ours, its first round's regions drawn at random",
                             ablation="ours with a random first round", random_rounds=1),
}
MAIN_ARMS = tuple(name for name, arm in ARMS.items() if arm.ablation is None)  # what the issue asks of every dataset


@dataclass(frozen=True)
class SuiteSettings:
    rounds: int = 5
    percent: float = 1.0
    steps_initial: int | None = None  # None: the app's default
    steps_per_round: int | None = None
    round_minutes: float | None = None  # None: the app's default budget
    recipe: tuple[tuple[str, str], ...] = ()  # further RecipeSettings overrides (name, value), e.g. an ablation
    pretrained: str = "none"  # round 0's backbone: "none" (random init) or "ssl" (the app's self-supervised pretraining)
    # The keep-best rule the records ran under (learning.promotion.RULE); LEGACY_PROMOTION: before MAX_DROP.
    promotion: str = LEGACY_PROMOTION
    # The training-size cap (RecipeSettings.max_train_pixels); LEGACY_TRAIN_PIXELS: before the CPU default came down.
    train_pixels: int = LEGACY_TRAIN_PIXELS
    # Mean-teacher consistency in fine-tuning rounds (RecipeSettings.consistency); LEGACY_CONSISTENCY: before it was off.
    consistency: bool = LEGACY_CONSISTENCY
    # TrainConfig.target_statistics of every round; LEGACY_TARGET_STATISTICS: before the recipe's "auto".
    target_statistics: str = LEGACY_TARGET_STATISTICS

    def recipe_overrides(self) -> dict:
        from learning.recipe import RecipeSettings

        out = {k: v for k, v in (("steps_initial", self.steps_initial),
                                  ("steps_per_round", self.steps_per_round or LEGACY_STEPS_PER_ROUND),
                                  ("round_minutes", self.round_minutes)) if v is not None}
        return {**out, **report.typed_overrides(RecipeSettings, self.recipe, "--recipe")}

    def key(self, dataset: str) -> str:
        settings = asdict(self)
        if settings["pretrained"] == "none":  # the settings before the option existed: their records keep their keys
            del settings["pretrained"]
        if settings["promotion"] == LEGACY_PROMOTION:  # likewise the records of the rule before MAX_DROP
            del settings["promotion"]
        if settings["train_pixels"] == LEGACY_TRAIN_PIXELS:  # and those of the size cap before it depended on the device
            del settings["train_pixels"]
        if settings["consistency"] == LEGACY_CONSISTENCY:  # and those from before consistency was off by default
            del settings["consistency"]
        if settings["target_statistics"] == LEGACY_TARGET_STATISTICS:  # and those from before target statistics
            del settings["target_statistics"]
        return hashlib.sha1(json.dumps([dataset, settings], sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class RoundRecord:
    dataset: str
    arm: str
    seed: int
    round: int
    labeled_percent: float
    miou: float  # of the model serving after this round (keep-best)
    candidate_miou: float | None
    promoted: bool
    per_class_iou: list
    suggestion_precision: float | None = None
    suggestion_coverage: float | None = None
    train_seconds: float = 0.0
    select_seconds: float = 0.0
    cpu_seconds: float = 0.0
    steps: int = 0
    key: str = ""
    extra: dict = field(default_factory=dict)
    machine: str = ""  # report.machine_description() of the run ("": recorded before the field existed)


# --- one campaign --------------------------------------------------------------------------------------------


class Simulation:
    """A dataset's pool, oracle and evaluation, shared by every arm and seed."""

    def __init__(self, name: str, settings: SuiteSettings):
        from learning.data import load_image, load_mask
        from learning.recipe import RecipeSettings
        from learning.selection import slic_regions

        self.name, self.settings = name, settings
        self.data = datasets.load(name)
        self.images = {s.key: load_image(s.image) for s in self.data.pool}
        self.truth = {s.key: load_mask(s.mask) for s in self.data.pool}
        self.regions = {key: slic_regions(image) for key, image in self.images.items()}
        self.total = sum(m.size for m in self.truth.values())
        recipe = RecipeSettings(arch="deeplabv3_mobilenet_v3_large", num_classes=self.data.num_classes,
                                max_train_pixels=settings.train_pixels, consistency=settings.consistency,
                                target_statistics=settings.target_statistics)
        self.recipe = replace(recipe, **settings.recipe_overrides())
        self.sizes = [image.shape[:2] for image in self.images.values()]

    def samples(self, labels: dict[str, np.ndarray]):
        from learning.data import Sample

        labeled = list(self.data.source) + [Sample(image=self.images[k], mask=m, key=k, target=True)
                                            for k, m in labels.items()
                                            if (m != 255).any()]
        unlabeled = [Sample(image=self.images[s.key], mask=labels.get(s.key), key=s.key) for s in self.data.pool]
        return labeled, unlabeled

    def train(self, labels, *, round_index: int, seed: int, init_state=None, current_state=None,
              backbone_checkpoint: str | None = None, recipe=None):
        """One round of the app's training; ``recipe``: this round's RecipeSettings (None: the suite's)."""
        from learning.round_step import train_round_model

        labeled, unlabeled = self.samples(labels)
        return train_round_model(recipe or self.recipe, round_index=round_index, labeled=labeled, unlabeled=unlabeled,
                                 val=self.data.val, init_state=init_state, current_state=current_state,
                                 image_sizes=self.sizes, seed=seed, backbone_checkpoint=backbone_checkpoint)

    def pretrain(self, config, seed: int) -> tuple[str, float]:
        """The app's self-supervised pretraining (learning.pretrain) on the source and pool images, never the
        validation ones; returns the encoder file and the seconds the whole run took (a finished run found on disk
        gives its recorded seconds)."""
        from learning.data import Sample
        from learning.pretrain import pretrain_encoder, round0_pretrain_config

        images = list(self.data.source) + [Sample(image=self.images[s.key], key=s.key) for s in self.data.pool]
        pretraining = round0_pretrain_config(config.arch, config.size, config.steps, seed=seed)
        digest = hashlib.sha1(json.dumps([self.name, asdict(pretraining)], sort_keys=True, default=str).encode())
        pretraining = replace(pretraining, checkpoint_dir=str(BASES / f"ssl-{self.name}-{digest.hexdigest()[:12]}"))
        result = pretrain_encoder(images, pretraining)
        return str(result.encoder_path), float(result.total_seconds)

    def base(self, seed: int):
        """Round 0's model of ``seed``, trained once per round-0 config and kept under var/bench/suite/."""
        import torch

        from learning.recipe import round_train_config

        config = round_train_config(self.recipe, round_index=0, warm_start=False, image_sizes=self.sizes, seed=seed)
        # Round 0 here has no target labels, so the target share cannot change it: one cached model for all shares.
        key = replace(config, target_label_share=0.0).to_dict()
        # Fine-tuning-only fields leave round 0 alone: the models cached before those options stay found.
        for field in FINETUNE_ONLY_FIELDS:
            key.pop(field)
        for field, default in KEY_OMITTED_AT_DEFAULT.items():  # options added later: at their default, the old key
            if key[field] == default:
                key.pop(field)
        if self.settings.pretrained != "none":
            key["pretrained"] = self.settings.pretrained
        digest = hashlib.sha1(json.dumps([self.name, key], sort_keys=True, default=str).encode())
        path = BASES / f"{self.name}-{digest.hexdigest()[:12]}.pt"
        if path.exists():
            saved = torch.load(path, weights_only=True)
            result = SimpleNamespace(state_dict=saved["state_dict"], steps=int(saved["steps"]),
                                     train_seconds=float(saved["train_seconds"]), batchnorm=saved.get("batchnorm"))
            return SimpleNamespace(config=config, result=result)
        backbone, pretrain_seconds = None, 0.0
        if self.settings.pretrained == "ssl":
            backbone, pretrain_seconds = self.pretrain(config, seed)
        trained = self.train({}, round_index=0, seed=seed, backbone_checkpoint=backbone)
        # Round 0's time is the pretraining's plus the training's, as a lead waits for both.
        trained.result.train_seconds += pretrain_seconds
        path.parent.mkdir(parents=True, exist_ok=True)
        batchnorm = trained.result.batchnorm.to_dict() if trained.result.batchnorm else None
        torch.save({"state_dict": trained.result.state_dict, "steps": trained.result.steps,
                    "train_seconds": trained.result.train_seconds, "batchnorm": batchnorm}, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)
        return trained

    def model(self, state, config):
        from learning.models import build_model

        model = build_model(config.arch, config.num_classes)
        model.load_state_dict(state)
        return model.eval()

    def evaluate(self, model, config, samples=None):
        """(mIoU, per-class IoU, calibration, per-class precision) on ``samples`` (None: the target validation split)."""
        from learning.promotion import class_iou, class_precision, image_confusions, miou_of
        from learning.round_step import validation_predictions

        calibration = validation_predictions(model, self.data.val if samples is None else samples, size=config.size)
        matrix = image_confusions([p for p, _ in calibration.predictions], calibration.truths,
                                  self.data.num_classes).sum(0)
        return miou_of(matrix), class_iou(matrix), calibration, class_precision(matrix)

    def evaluate_pool(self, model, config) -> float:
        """mIoU on the target pool against its full labels: how well a model fits the images it trained on."""
        from learning.data import Sample

        pool = [Sample(image=self.images[s.key], mask=self.truth[s.key], key=s.key, target=True) for s in self.data.pool]
        return self.evaluate(model, config, pool)[0]


def run_arm(sim: Simulation, arm: str, seed: int, base, log) -> list[RoundRecord]:
    """Round 0's model (shared by the arms of a seed), then ``rounds`` labeling rounds of ``arm``."""
    from learning.round_step import PoolImage, SelectionSettings, propose_round
    from learning.labels import class_pixel_counts
    from learning.selection import Budget, merge_labels, query_labels
    from learning.suggestions import SuggestionQuality, background_classes_of, suggestion_quality

    key = sim.settings.key(sim.name)
    machine = report.machine_description()
    progress = progress_path(sim, arm, seed)
    saved = load_progress(progress, sim, key=key, rounds=sim.settings.rounds)
    if saved is not None:  # a killed run, or a shorter one with every other setting the same: go on from there
        records, labels, queried, state, config = saved
        miou, iou, calibration, _ = sim.evaluate(sim.model(state, config), config)
        log(f"{sim.name} {arm} seed {seed}: rounds 1–{records[-1].round} from {progress.name}")
    else:
        config = base.config
        state = base.result.state_dict
        miou, iou, calibration, precision = sim.evaluate(sim.model(state, config), config)
        records = [RoundRecord(sim.name, arm, seed, 0, 0.0, miou, miou, True, iou, steps=base.result.steps,
                               train_seconds=base.result.train_seconds, key=key,
                               extra={"per_class_precision": precision,
                                      **batchnorm_extra(base.result.batchnorm)}, machine=machine)]
        labels: dict[str, np.ndarray] = {}
        queried = {k: np.zeros(m.shape, bool) for k, m in sim.truth.items()}
    spec = ARMS[arm]
    strategy, unit = spec.strategy, spec.unit
    for r in range(records[-1].round + 1, sim.settings.rounds + 1):
        cpu, started = time.process_time(), time.perf_counter()
        quality = None
        if arm == "full":
            labels = dict(sim.truth)
            queried = {k: np.ones(m.shape, bool) for k, m in sim.truth.items()}
        else:
            budget = Budget(sim.settings.percent, "percent")
            if unit == "image":  # whole images: the budget's worth of images, at least one a round
                budget = Budget(max(1, round(sim.settings.percent / 100 * len(sim.images))), "images")
            selection = SelectionSettings(strategy=strategy, unit=unit, budget=budget,
                                          num_classes=sim.data.num_classes, size=config.size,
                                          explore_share=spec.explore_share,
                                          uncertainty_weight=spec.uncertainty_weight,
                                          random_rounds=spec.random_rounds)
            pool = [PoolImage(k, sim.images[k], labels=labels.get(k), queried=queried[k]) for k in sim.images]
            masks = [s.mask for s in sim.data.source] + list(labels.values())
            proposal = propose_round(sim.model(state, config), pool, calibration=calibration, settings=selection,
                                     round_index=r - 1, val_miou=records[-1].miou,
                                     background_classes=background_classes_of(masks, sim.data.num_classes),
                                     seed=seed, regions=sim.regions.__getitem__)
            quality = SuggestionQuality()
            for query in proposal.queries:
                truth = sim.truth[query.key]
                quality = quality + suggestion_quality(query.suggestion.mask, truth, region_mask=query.spec.mask)
                labels[query.key] = merge_labels(labels.get(query.key), query_labels(query.spec, truth))
                queried[query.key] |= query.spec.mask
        select_seconds = time.perf_counter() - started
        trained = sim.train(labels, round_index=r, seed=seed, init_state=state, current_state=state)
        evaluated = sim.evaluate(sim.model(trained.result.state_dict, trained.config), trained.config)
        candidate, candidate_precision = evaluated[0], evaluated[3]
        if trained.promotion.promote:  # the candidate serves now; else the serving model's scores stand
            state, config = trained.result.state_dict, trained.config
            miou, iou, calibration, _ = evaluated
        labeled = int(sum(m.sum() for m in queried.values()))
        counts = class_pixel_counts(labels.values(), sim.data.num_classes)  # the target labels' class balance
        record = RoundRecord(
            sim.name, arm, seed, r, 100.0 * labeled / sim.total, miou, candidate, trained.promotion.promote, iou,
            suggestion_precision=quality.precision if quality else None,
            suggestion_coverage=quality.coverage if quality else None,
            train_seconds=trained.result.train_seconds, select_seconds=select_seconds,
            cpu_seconds=time.process_time() - cpu, steps=trained.result.steps, key=key,
            extra={"promotion": trained.promotion.reason, "candidate_per_class_precision": candidate_precision,
                   "candidate_per_class_iou": evaluated[1],
                   "labeled_class_share": (counts / max(1, int(counts.sum()))).tolist(),
                   **batchnorm_extra(trained.result.batchnorm)},
            machine=machine)
        records.append(record)
        save_progress(progress, records, labels, queried, state, config)
        log(f"{sim.name} {arm} seed {seed} round {r}: {record.labeled_percent:.2f}% labeled, mIoU "
            f"{100 * miou:.1f} (candidate {100 * candidate:.1f}, {'promoted' if record.promoted else 'rejected'}), "
            f"{record.steps} steps, {record.train_seconds:.0f}+{select_seconds:.0f} s")
    return records


# --- an arm's progress: resuming a killed run, extending a shorter one -------------------------------------------


def progress_path(sim: Simulation, arm: str, seed: int) -> Path:
    """Where :func:`run_arm` keeps an arm's latest finished round.

    Keyed by every setting but the number of rounds: round ``r`` of a 3-round
    run is round ``r`` of a 5-round one (each round's training and selection
    draw their random streams from the seed and the round alone), so a longer
    run goes on from a shorter one's last round instead of repeating it, and a
    killed run from its last finished round.
    """
    return BASES / "progress" / f"{sim.name}-{replace(sim.settings, rounds=0).key(sim.name)}-{arm}-seed{seed}.pt"


def save_progress(path: Path, records: list[RoundRecord], labels: dict[str, np.ndarray],
                  queried: dict[str, np.ndarray], state: dict, config) -> None:
    """The arm after its latest round: its records, which pixels it labeled (in the order it labeled the images:
    the training set's order), and the serving model. The labels themselves are the oracle's ground truth inside
    the queried pixels, so only the queried masks are kept (bit-packed)."""
    import torch

    payload = {
        "records": json.dumps([asdict(r) for r in records]),
        "label_keys": list(labels),
        "queried": {k: torch.from_numpy(np.packbits(m)) for k, m in queried.items() if m.any()},
        "state_dict": state,
        "config": json.dumps(config.to_dict()),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)


def load_progress(path: Path, sim: Simulation, *, key: str, rounds: int):
    """(records, labels, queried, serving state, its TrainConfig) saved by :func:`save_progress`, or None when
    there is none or it went past ``rounds`` (a shorter run starts over, and its rounds take the file's place).

    The records of the rounds it brings are relabeled with ``key``: the same rounds, computed the same way, now
    part of this run."""
    import torch

    from learning.labels import IGNORE_INDEX
    from learning.train import TrainConfig

    if not path.exists():
        return None
    saved = torch.load(path, weights_only=True)
    records = [RoundRecord(**{**r, "key": key}) for r in json.loads(saved["records"])]
    if records[-1].round > rounds:
        return None
    queried = {k: np.zeros(m.shape, bool) for k, m in sim.truth.items()}
    for k, bits in saved["queried"].items():
        queried[k] = np.unpackbits(bits.numpy(), count=queried[k].size).reshape(queried[k].shape).astype(bool)
    labels = {k: np.where(queried[k], sim.truth[k], IGNORE_INDEX).astype(np.uint8) for k in saved["label_keys"]}
    config = TrainConfig.from_dict({k: tuple(v) if isinstance(v, list) else v
                                    for k, v in json.loads(saved["config"]).items()})
    return records, labels, queried, saved["state_dict"], config


def batchnorm_extra(choice) -> dict:
    """A round record's note of the BatchNorm statistics its model kept (a StatisticsChoice, its dict, or None)."""
    if choice is None:
        return {}
    chosen = choice["chosen"] if isinstance(choice, dict) else choice.chosen
    return {"batchnorm": chosen}


# --- records and report --------------------------------------------------------------------------------------


def load_records(path: Path) -> list[RoundRecord]:
    return report.read_records(path, RoundRecord)


def _curve(records: list[RoundRecord], arm: str) -> dict[int, list[RoundRecord]]:
    out: dict[int, list[RoundRecord]] = {}
    for record in records:
        if record.arm == arm:
            out.setdefault(record.round, []).append(record)
    return out


def _mean(values) -> float:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else float("nan")


def _fmt(rows: list[RoundRecord], attribute: str = "miou") -> str:
    values = [getattr(r, attribute) for r in rows if getattr(r, attribute) is not None]
    if not values:
        return "–"
    spread = f" ± {100 * np.std(values):.1f}" if len(values) > 1 else ""
    return f"{100 * np.mean(values):.1f}{spread}"


def rarest_class(records: list[RoundRecord]) -> int:
    """The class with the lowest IoU in the full-supervision ceiling (or the last round of any arm)."""
    final = [r for r in records if r.arm == "full"] or records
    return report.lowest_mean_class([r.per_class_iou for r in final])


def verdicts(records: list[RoundRecord], names: list[str] = ()) -> list[str]:
    lines = []
    ours, random_region, full = (_curve(records, a) for a in ("ours", "random_region", "full"))
    rounds = sorted(r for r in ours if r > 0)
    spread = None  # std of val mIoU across seeds (ours and random regions): what the targets compare with
    if rounds and random_region:
        gaps = [_mean(x.miou for x in ours[r]) - _mean(x.miou for x in random_region.get(r, [])) for r in rounds]
        lines.append(f"ours − random regions, mean over rounds 1–{rounds[-1]}: {100 * np.nanmean(gaps):+.1f} mIoU "
                     f"(per round {', '.join(f'{100 * g:+.1f}' for g in gaps)}); target: ≥ +2")
        spread = seed_spread([ours[r] for r in rounds] + [random_region[r] for r in rounds if r in random_region])
        if spread is not None:
            below = [r for r, g in zip(rounds, gaps) if g < -spread]
            lines.append(f"seed spread (std of val mIoU across seeds, mean over arms and rounds): {100 * spread:.1f}; "
                         + (f"ours is below random regions by more than that in round(s) {below}" if below else
                            "ours is never below random regions by more than that"))
    lines += ablation_verdict(records)
    if rounds and full:
        for r in rounds:
            if r in full and r in (random_region or {}):
                ceiling, floor = _mean(x.miou for x in full[r]), _mean(x.miou for x in random_region[r])
                mine = _mean(x.miou for x in ours[r])
                gap = (f"share of the gap random regions leave that ours closes: {(mine - floor) / (ceiling - floor):.0%}"
                       if ceiling - floor > 1e-9 else "random regions are at or above full supervision here")
                lines.append(f"round {r} ({_mean(x.labeled_percent for x in ours[r]):.1f} % labeled): ours at "
                             f"{100 * mine / ceiling:.0f} % of full supervision; {gap}" if ceiling > 0 else "")
    lines += round0_precision_verdict(records, names=names)
    lines += keep_best_verdict(records, spread)
    return [line for line in lines if line]


def ablation_verdict(records: list[RoundRecord]) -> list[str]:
    """Each ablation arm against random regions and ours, on the seeds it ran (paired, round by round); where
    keep-best refused a candidate, the candidates' own gap too (what the arm's labels did to the model)."""
    lines = []
    for ablation, label in ((name, arm.ablation) for name, arm in ARMS.items() if arm.ablation):
        seeds = {r.seed for r in records if r.arm == ablation}
        paired = [r for r in records if r.seed in seeds]
        mine = _curve(paired, ablation)
        for arm, name in (("random_region", "random regions"), ("ours", "ours")):
            other = _curve(paired, arm)
            shared = sorted(r for r in mine if r > 0 and r in other)
            if not shared:
                continue
            gaps = [_mean(x.miou for x in mine[r]) - _mean(x.miou for x in other[r]) for r in shared]
            line = (f"{label} − {name}, mean over rounds 1–{shared[-1]} (seeds {sorted(seeds)}): "
                    f"{100 * np.nanmean(gaps):+.1f} mIoU (per round {', '.join(f'{100 * g:+.1f}' for g in gaps)})")
            if any(not x.promoted for r in shared for x in mine[r] + other[r]):
                candidates = [_mean(x.candidate_miou for x in mine[r]) - _mean(x.candidate_miou for x in other[r])
                              for r in shared]
                line += f"; the candidate models before keep-best: {100 * np.nanmean(candidates):+.1f}"
            lines.append(line)
    return lines


def keep_best_verdict(records: list[RoundRecord], spread: float | None) -> list[str]:
    """How many candidates keep-best rejected, and the largest drop of a promoted one against the seed spread."""
    if not records:
        return []
    rejected = [r for r in records if r.round > 0 and not r.promoted]
    drops = []
    for record in records:
        before = [x for x in records if (x.arm, x.seed, x.round) == (record.arm, record.seed, record.round - 1)]
        if record.round > 0 and record.promoted and before:
            drops.append(before[0].miou - record.miou)
    worst = max(max(drops, default=0.0), 0.0)
    target = ("" if spread is None else
              f" ({'within' if worst <= spread else 'above'} the seed spread {100 * spread:.1f}; target: within it)")
    return [f"keep-best: {len(rejected)} of {sum(1 for r in records if r.round > 0)} candidate models rejected; the "
            f"largest drop of a promoted model below its predecessor: {100 * worst:.1f} mIoU{target}"]


def round0_precision_verdict(records: list[RoundRecord], floor: float = 0.5, names: list[str] = ()) -> list[str]:
    """Whether round 0's model predicts every class somewhere with precision >= ``floor`` (no class flooding)."""
    by_seed = {r.seed: r.extra["per_class_precision"] for r in records
               if r.round == 0 and "per_class_precision" in r.extra}  # every arm records the same round 0
    rows = list(by_seed.values())
    if not rows:
        return []
    by_class = [[row[c] for row in rows] for c in range(len(rows[0]))]
    never = [c for c, values in enumerate(by_class) if all(v is None for v in values)]
    lowest = min((min(v for v in values if v is not None), c) for c, values in enumerate(by_class) if c not in never)
    def name(c: int) -> str:
        return names[c] if c < len(names) else f"class {c}"

    worst = ", ".join(name(c) for c in never) or "none"
    met = not never and lowest[0] >= floor
    return [f"round 0 ({len(rows)} seed(s)): every class predicted with precision ≥ {floor:.0%}: "
            f"{'met' if met else 'not met'} (lowest precision {100 * lowest[0]:.1f} %, {name(lowest[1])}; "
            f"never predicted: {worst})"]


def seed_spread(groups: list[list[RoundRecord]]) -> float | None:
    """The mean over (arm, round) groups of the std of val mIoU across seeds; None with one seed."""
    stds = [float(np.std([x.miou for x in group])) for group in groups if len(group) > 1]
    return float(np.mean(stds)) if stds else None


def plot(rows: list[RoundRecord], path: Path, title: str) -> None:
    """val mIoU against % of target pixels labeled, one line per arm (mean over seeds, ± std shaded)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=110)
    all_seeds = sorted({r.seed for r in rows})
    for arm in ARMS:
        curve = _curve(rows, arm)
        if not curve or arm == "full":
            continue
        rounds = sorted(curve)
        xs = np.array([_mean(x.labeled_percent for x in curve[r]) for r in rounds])
        ys = np.array([_mean(x.miou for x in curve[r]) for r in rounds])
        sd = np.array([np.std([x.miou for x in curve[r]]) for r in rounds])
        seeds = sorted({x.seed for x in curve[rounds[0]]})
        label = ARMS[arm].label + ("" if seeds == all_seeds else f" (seed{'s' if len(seeds) > 1 else ''} "
                                                                f"{', '.join(map(str, seeds))} only)")
        line, = ax.plot(xs, 100 * ys, marker="o", ms=3.5, lw=2.2 if arm == "ours" else 1.3,
                        ls="--" if ARMS[arm].unit == "image" else "-", label=label)
        ax.fill_between(xs, 100 * (ys - sd), 100 * (ys + sd), color=line.get_color(), alpha=0.12)
    full = _curve(rows, "full")
    if full:
        ceiling = _mean(x.miou for x in full[max(full)])
        ax.axhline(100 * ceiling, color="black", lw=1.1, label=f"full target supervision ({100 * ceiling:.1f})")
        ax.axhline(90 * ceiling, color="black", lw=0.7, ls=":", label="90 % of full supervision")
        bottom, top = ax.get_ylim()
        ax.set_ylim(bottom, max(top, 100 * ceiling + 2))  # the ceiling stays in view
    ax.set_xlabel("% of target pool pixels labeled")
    ax.set_ylabel("val mIoU (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7.5, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def machines_text(records: list[RoundRecord]) -> str:
    """Which machine ran which seeds (round 0 is not bit-identical across CPUs: another machine's seed is another
    sample). Records from before machines were recorded are put down to the machine rendering them: a section
    re-rendered elsewhere must have its Machine line checked against the one it replaces."""
    here = report.machine_description()
    seeds: dict[str, set[int]] = {}
    for record in records:
        seeds.setdefault(record.machine or here, set()).add(record.seed)
    if len(seeds) <= 1:
        return f"Machine: {next(iter(seeds), here)}."
    return "Machines: " + "; ".join(f"seed {', '.join(map(str, sorted(s)))} on {m}" for m, s in sorted(seeds.items())) + "."


def render(records: list[RoundRecord], settings_text: str, title: str = "Dataset suite",
           plot_name: str | None = None) -> str:
    """The markdown of one section; ``plot_name``: also draw each dataset's plot as docs/<plot_name>-<dataset>.png."""
    lines = [f"## {title}", "",
             f"{machines_text(records)} Command: "
             f"`{report.command_line().replace(' --report-only', '').replace(' --no-write', '')}` (records in "
             "benchmarks/results/suite.jsonl; the same command with `--report-only` re-renders). Every round runs the app's round step "
             "(`learning.round_step.train_round_model` with the app's recipe and keep-best, then `propose_round`); "
             f"an oracle answers the queries with the ground truth. {settings_text}"]
    for name in datasets.NAMES:
        rows = [r for r in records if r.dataset == name]
        if not rows:
            continue
        classes = datasets.load(name).class_names if datasets.available(name) else []
        rare = rarest_class(rows)
        arms = [a for a in ARMS if any(r.arm == a for r in rows)]
        rounds = sorted({r.round for r in rows})
        table = []
        for arm in arms:
            curve = _curve(rows, arm)
            for r in rounds:
                if r not in curve:
                    continue
                group = curve[r]
                table.append([ARMS[arm].label, r, len(group), f"{_mean(x.labeled_percent for x in group):.2f}",
                              _fmt(group), _fmt([replace(x, miou=x.per_class_iou[rare]) for x in group]),
                              _fmt(group, "suggestion_precision"), _fmt(group, "suggestion_coverage"),
                              f"{_mean(x.train_seconds + x.select_seconds for x in group) / 60:.1f}",
                              f"{_mean(x.cpu_seconds for x in group) / 60:.1f}"])
        figure = []
        if plot_name:
            image = ROOT / "docs" / f"{plot_name}-{name}.png"
            plot(rows, image, f"{name}: val mIoU by % of target pixels labeled ({settings_text.split(';')[0]})")
            figure = [f"![{name}: val mIoU by labeled share, per arm]({image.name})", ""]
        lines += ["", f"### {name}: {datasets.load(name).description if datasets.available(name) else ''}", "",
                  *figure,
                  report.markdown_table(
                      ["arm", "round", "seeds", "% labeled", "val mIoU", f"IoU of rarest class ({classes[rare] if rare < len(classes) else rare})",
                       "suggestion precision", "coverage", "min / round", "CPU min / round"], table), ""]
        lines += [f"- {line}" for line in verdicts(rows, names=classes)]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", choices=datasets.NAMES, default=list(datasets.NAMES))
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(MAIN_ARMS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds first-seed .. first-seed + seeds - 1: several processes or machines can each run "
                             "their own seeds into the same records")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--percent", type=float, default=1.0)
    parser.add_argument("--steps-initial", type=int)
    parser.add_argument("--steps-per-round", type=int)
    parser.add_argument("--round-minutes", type=float)
    parser.add_argument("--pretrained", choices=("none", "ssl"), default="none",
                        help="round 0's backbone: random init, or the app's self-supervised pretraining first")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--recipe", nargs="*", default=[], metavar="NAME=VALUE",
                        help="RecipeSettings overrides (learning/recipe.py), e.g. target_label_share=0")
    parser.add_argument("--records", default=str(RECORDS))
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--train-pixels", type=int, default=0,
                        help="training-size cap (learning.recipe.auto_train_size); 0: the app's default for this "
                             f"machine's device; {LEGACY_TRAIN_PIXELS} for the records from before that default")
    parser.add_argument("--promotion", choices=(current_promotion_rule(), LEGACY_PROMOTION),
                        default=current_promotion_rule(),
                        help="render the records of this keep-best rule (runs always use the app's: "
                             f"{current_promotion_rule()!r}; {LEGACY_PROMOTION!r}, the rule before a promoted model's "
                             "drop was capped, with --report-only)")
    parser.add_argument("--consistency", choices=("on", "off"), default=None,
                        help="mean-teacher consistency in fine-tuning rounds (default: the app's, off); 'on' for the "
                             "records from before it was off by default (a --recipe consistency=... still overrides)")
    parser.add_argument("--target-statistics", choices=("off", "on", "auto"), default=None,
                        help="BatchNorm statistics of the target pool after training (default: the app's, auto); "
                             f"{LEGACY_TARGET_STATISTICS!r} for the records from before the recipe chose them")
    parser.add_argument("--section", default="suite",
                        help="the docs/BENCHMARKS.md sections to write, <section>_<dataset> (e.g. one name per "
                             "ablation, so none overwrites another)")
    return parser.parse_args(argv)


def current_promotion_rule() -> str:
    from learning.promotion import RULE

    return RULE


def settings_of(args: argparse.Namespace) -> SuiteSettings:
    """The settings a command line asks for: what keys its records."""
    if args.promotion != current_promotion_rule() and not args.report_only:
        raise SystemExit(f"--promotion {args.promotion!r}: only --report-only renders another rule's records; "
                         f"a run uses the app's rule ({current_promotion_rule()!r})")
    from learning.recipe import RecipeSettings, default_max_train_pixels

    consistency = RecipeSettings.consistency if args.consistency is None else args.consistency == "on"
    statistics = args.target_statistics or RecipeSettings.target_statistics
    steps_per_round = args.steps_per_round or RecipeSettings.steps_per_round  # the app's default unless asked
    return SuiteSettings(args.rounds, args.percent, args.steps_initial,
                         None if steps_per_round == LEGACY_STEPS_PER_ROUND else steps_per_round, args.round_minutes,
                         tuple(tuple(item.split("=", 1)) for item in args.recipe), args.pretrained, args.promotion,
                         args.train_pixels or default_max_train_pixels(), consistency, statistics)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    settings = settings_of(args)
    path = Path(args.records)
    if not args.report_only:
        for name in args.datasets:
            if not datasets.available(name):
                print(f"{name}: dataset not found, skipped")
                continue
            key = settings.key(name)
            done = {(r.arm, r.seed) for r in load_records(path) if r.key == key}
            seeds = range(args.first_seed, args.first_seed + args.seeds)
            todo = [(seed, arm) for seed in seeds for arm in args.arms if (arm, seed) not in done]
            if not todo:
                continue
            sim = Simulation(name, settings)
            for seed in sorted({s for s, _ in todo}):
                base = sim.base(seed)
                print(f"{name} seed {seed}: round 0 trained, {base.result.steps} steps, "
                      f"{base.result.train_seconds:.0f} s", flush=True)
                for arm in [a for s, a in todo if s == seed]:
                    records = run_arm(sim, arm, seed, base, lambda line: print(line, flush=True))
                    path.parent.mkdir(parents=True, exist_ok=True)
                    with open(path, "a") as handle:
                        for record in records:
                            handle.write(json.dumps(asdict(record)) + "\n")
    records = load_records(path)
    text = (f"Settings: {settings.rounds} rounds at {settings.percent:g} % of the pool's pixels per round; round-0 "
            f"steps {settings.steps_initial or 'app default'}, steps per round {settings.steps_per_round or LEGACY_STEPS_PER_ROUND}"
            f", fine-tuning budget {settings.round_minutes if settings.round_minutes is not None else 'app default'} min"
            + (f"; recipe overrides {', '.join(f'{k}={v}' for k, v in settings.recipe)}" if settings.recipe else "")
            + ("; round 0 after the app's self-supervised pretraining on the source and pool images (its time "
               "counted in round 0's)" if settings.pretrained == "ssl" else "")
            + f"; training-size cap {settings.train_pixels:,} pixels"
            + f"; fine-tuning consistency {'on (the default before it was turned off)' if settings.consistency else 'off'}"
            + f"; BatchNorm statistics after training: {STATISTICS_TEXT[settings.target_statistics]}"
            + f"; keep-best rule: {settings.promotion}"
            + (" (a bootstrap interval alone, before a promoted model's drop was capped)"
               if settings.promotion == LEGACY_PROMOTION else " (learning.promotion)")
            + ".")
    for name in args.datasets:  # one section (and plot) per dataset: each may have run with its own settings
        rows = [r for r in records if r.key == settings.key(name)]
        if not rows:
            continue
        section = f"{args.section}_{name}"
        title = f"Dataset suite: {name}" + (f" (ablation: {args.section})" if args.section != "suite" else "")
        # --no-write leaves docs/ alone: the plot is written with its section only
        markdown = render(rows, text, title=title, plot_name=None if args.no_write else args.section.replace("_", "-"))
        print(markdown)
        if not args.no_write:
            report.write_section(section, markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
