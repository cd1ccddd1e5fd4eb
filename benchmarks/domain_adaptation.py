"""Domain adaptation on CamVid day -> dusk: does adapting to unlabeled dusk frames beat source-only?

Protocol (../shared/datasets/camvid-daydusk, 11 classes, void = 255):

- source: the 577 labeled day frames; the last 10 % of each day sequence (by
  frame order) is held out as *day val*, the rest trains.
- target: the 62 dusk frames by frame order: the first 46 are the unlabeled
  *pool*, the last 16 the *dusk val* split (frame order, never random: adjacent
  video frames are near-duplicates).
- one **base** model is trained from scratch on day frames only (no ImageNet
  weights exist here) and cached under var/bench/domain_adaptation/;
- every **arm** continues from that base for the same number of steps with
  the same images per step, so "source-only, continued" is the fair baseline:

  source_only   12 day frames per step
  target_bn     8 day + 4 pool frames, no target loss: the pool only enters
                BatchNorm statistics (every DA arm gets this effect too)
  adversarial   8 day + 4 pool frames, output-space discriminator (AdaptSegNet)
  self_training 8 day + 4 pool frames, CBST pseudo-labels from the base model
  both          8 day + 4 pool frames, both objectives
  *_tbn         the same, with pseudo-labels predicted by a copy of the base model
                whose BatchNorm statistics were re-estimated on the pool (AdaBN)
  ablations     adversarial_x10 (lambda_adv 0.01 instead of AdaptSegNet's 0.001) and
                self_training_p20 (CBST's initial portion, 20 %, instead of 50 %)
  upper_bound   12 labeled frames per step from day + the pool *with its labels*
                (pool oversampled to about a third of the frames)

The network trains at --size (default 240x320); metrics are computed at the
labels' full 360x480 resolution. Each arm runs in its own process so its peak
RSS is its own; results are cached per arm and seed, so an interrupted run
resumes where it stopped.

    python benchmarks/domain_adaptation.py --quick      # smoke test, ~2-3 minutes, writes nothing to docs
    python benchmarks/domain_adaptation.py              # full run (see --help), writes docs/BENCHMARKS.md
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import report  # noqa: E402

DATASET = ROOT.parent / "shared" / "datasets" / "camvid-daydusk"
WORK = ROOT / "var" / "bench" / "domain_adaptation"
ARMS = ("source_only", "target_bn", "adversarial", "adversarial_x10", "self_training", "self_training_p20",
        "self_training_tbn", "both", "both_tbn", "upper_bound")
ADAPTING = ("target_bn", "adversarial", "adversarial_x10", "self_training", "self_training_p20", "self_training_tbn",
            "both", "both_tbn")
SELF_TRAINING = ("self_training", "self_training_p20", "self_training_tbn", "both", "both_tbn")
TARGET_BN_PSEUDO_LABELS = ("self_training_tbn", "both_tbn")
ABLATIONS = ("adversarial_x10", "self_training_p20")  # run after the main arms, for --ablation-seeds seeds
ARM_LABELS = {
    "base": "base model (before continuing)",
    "source_only": "source-only, continued",
    "target_bn": "control: pool frames through BatchNorm only",
    "adversarial": "+ adversarial (output space)",
    "adversarial_x10": "+ adversarial, λ_adv × 10",
    "self_training": "+ self-training (CBST)",
    "self_training_p20": "+ self-training, CBST portion 20 %",
    "self_training_tbn": "+ self-training, pseudo-labels with target BN statistics",
    "both_tbn": "+ adversarial + self-training (target BN pseudo-labels)",
    "both": "+ adversarial + self-training",
    "upper_bound": "upper bound: + all dusk pool labels",
}


@dataclass(frozen=True)
class Plan:
    size: tuple[int, int]
    base_steps: int
    base_lr: float
    arm_steps: int
    arm_lr: float
    seeds: int
    labeled_per_step: int = 8
    target_per_step: int = 4
    arch: str = "deeplabv3_mobilenet_v3_large"
    adversarial_weight: float = 0.001
    subset: int = 0  # quick mode: cap every split to this many frames (0 = all)
    # One intra-op thread: on the 2 shared cores, 2 OpenMP threads per process ran a step
    # 4-7x slower than 1 thread whenever other jobs were busy (spinning at barriers).
    threads: int = 1

    def key(self, *fields: str) -> str:
        data = {f: getattr(self, f) for f in fields} if fields else asdict(self)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]


FULL = Plan(size=(240, 320), base_steps=1600, base_lr=2e-3, arm_steps=150, arm_lr=3e-4, seeds=3)
QUICK = Plan(size=(96, 128), base_steps=30, base_lr=2e-3, arm_steps=8, arm_lr=3e-4, seeds=1, subset=12)


# --- data ------------------------------------------------------------------------------------------------


def splits(plan: Plan) -> dict[str, list]:
    from learning.data import folder_samples

    day = folder_samples(DATASET / "source")
    dusk = folder_samples(DATASET / "target")
    day_train, day_val = [], []
    for sequence in sorted({s.key.split("_")[0] for s in day}):
        frames = sorted((s for s in day if s.key.startswith(sequence + "_")), key=lambda s: s.key)
        cut = len(frames) - max(1, round(0.1 * len(frames)))
        day_train += frames[:cut]
        day_val += frames[cut:]
    dusk = sorted(dusk, key=lambda s: s.key)
    data = {"day_train": day_train, "day_val": day_val, "dusk_pool": dusk[:46], "dusk_val": dusk[46:]}
    if plan.subset:
        data = {name: samples[: plan.subset if name != "dusk_val" else max(2, plan.subset // 3)]
                for name, samples in data.items()}
    return data


def unlabeled(samples: list) -> list:
    from learning.data import Sample

    return [Sample(image=s.image, mask=None, key=s.key) for s in samples]


def class_names() -> list[str]:
    return [c["name"] for c in json.loads((DATASET / "classes.json").read_text())["classes"]]


# --- one run (in a child process) ------------------------------------------------------------------------


def base_config(plan: Plan):
    from learning.train import TrainConfig

    return TrainConfig(arch=plan.arch, num_classes=11, size=plan.size, batch_size=plan.labeled_per_step,
                       steps=plan.base_steps, lr=plan.base_lr, optimizer="adamw", weight_decay=1e-2,
                       schedule="onecycle", class_weighting="enet", seed=0, log_every=50)


def arm_config(plan: Plan, arm: str, seed: int):
    from learning.train import TrainConfig

    adapting = arm in ADAPTING
    return TrainConfig(
        arch=plan.arch, num_classes=11, size=plan.size,
        batch_size=plan.labeled_per_step if adapting else plan.labeled_per_step + plan.target_per_step,
        target_batch_size=plan.target_per_step, steps=plan.arm_steps, lr=plan.arm_lr, optimizer="adamw",
        weight_decay=1e-2, schedule="poly", warmup_steps=max(1, plan.arm_steps // 15), class_weighting="enet",
        seed=seed, log_every=25, adversarial=arm in ("adversarial", "adversarial_x10", "both", "both_tbn"),
        self_training=arm in SELF_TRAINING, pseudo_label_target_bn=arm in TARGET_BN_PSEUDO_LABELS,
        objectives=("target_batchnorm",) if arm == "target_bn" else (),
        adversarial_weight=plan.adversarial_weight * (10 if arm == "adversarial_x10" else 1),
        **({"pseudo_label_portion": 0.2} if arm == "self_training_p20" else {}),
    )


def evaluate_both(model, data, plan: Plan) -> dict:
    from learning.inference import evaluate

    return {name: evaluate(model, data[name], 11, size=plan.size, batch_size=8).to_dict()
            for name in ("dusk_val", "day_val")}


def run_base(plan: Plan, out: Path) -> dict:
    from learning.checkpoint import save_checkpoint
    from learning.models import build_model
    from learning.train import checkpoint_meta, train

    data = splits(plan)
    if out.exists():  # trained and saved, but killed before its result file was written
        import shutil

        shutil.rmtree(out)
    result = train(base_config(plan), labeled=data["day_train"], progress=_printer("base"))
    model = build_model(plan.arch, 11)
    model.load_state_dict(result.state_dict)
    metrics = evaluate_both(model, data, plan)
    save_checkpoint(out, state_dict=result.state_dict,
                    meta=checkpoint_meta(result, classes=class_names(), benchmark_metrics=metrics))
    return {"arm": "base", "seed": 0, "metrics": metrics, "seconds_per_step": result.seconds_per_step,
            "train_seconds": result.train_seconds, "steps": result.steps,
            "images_per_step": plan.labeled_per_step, "history": result.history}


def run_arm(plan: Plan, arm: str, seed: int, base: Path) -> dict:
    from learning.checkpoint import load_checkpoint
    from learning.models import build_model
    from learning.train import train

    data = splits(plan)
    init_state, _ = load_checkpoint(base, expected_classes=class_names())
    config = arm_config(plan, arm, seed)
    labeled, pool = data["day_train"], []
    if arm == "upper_bound":
        # About a third of each batch from the labeled pool, like the 4-of-12 target frames of the DA arms.
        repeats = max(1, round(0.5 * len(labeled) / max(len(data["dusk_pool"]), 1)))
        labeled = labeled + data["dusk_pool"] * repeats
    elif arm != "source_only":
        pool = unlabeled(data["dusk_pool"])
    result = train(config, labeled=labeled, unlabeled=pool, init_state=init_state, progress=_printer(arm))
    model = build_model(plan.arch, 11)
    model.load_state_dict(result.state_dict)
    images_per_step = config.batch_size + (config.target_batch_size if pool else 0)
    return {"arm": arm, "seed": seed, "metrics": evaluate_both(model, data, plan),
            "seconds_per_step": result.seconds_per_step, "train_seconds": result.train_seconds,
            "steps": result.steps, "images_per_step": images_per_step, "history": result.history,
            "objectives": result.objective_summaries}


def _printer(name: str):
    last = [0.0]

    def progress(phase, step, total, loss):
        now = time.monotonic()
        if now - last[0] >= 30 or step == total:
            last[0] = now
            loss_text = f" loss {loss:.4f}" if loss is not None else ""
            print(f"[{time.strftime('%H:%M:%S')}] {name} {phase} {step}/{total}{loss_text}", flush=True)

    return progress


def child_main(args: argparse.Namespace) -> int:
    import torch

    plan = Plan(**json.loads(args.plan))
    torch.set_num_threads(plan.threads)
    if args.child == "base":
        result = run_base(plan, Path(args.base))
    else:
        result = run_arm(plan, args.child, args.seed, Path(args.base))
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(args.result).write_text(json.dumps(result, indent=1))
    return 0


def spawn(plan: Plan, child: str, *, seed: int, base: Path, result: Path) -> dict:
    if result.exists():
        return json.loads(result.read_text())
    env = dict(os.environ, OMP_NUM_THREADS=str(plan.threads), OMP_WAIT_POLICY="PASSIVE", PYTHONUNBUFFERED="1")
    command = [sys.executable, str(Path(__file__).resolve()), "--child", child, "--seed", str(seed),
               "--plan", json.dumps(asdict(plan)), "--base", str(base), "--result", str(result)]
    print(f"--- {child} seed {seed}", flush=True)
    started = time.monotonic()
    subprocess.run(command, check=True, env=env, cwd=ROOT)
    print(f"--- {child} seed {seed} done in {time.monotonic() - started:.0f} s", flush=True)
    return json.loads(result.read_text())


# --- diagnostics in the parent ----------------------------------------------------------------------------


def pseudo_label_quality(plan: Plan, base: Path) -> dict:
    """How good are the base model's CBST pseudo-labels on the dusk pool (whose labels we do have)?

    Per portion: overall coverage (share of the labeled pixels that get a pseudo-label) and
    precision, and per class (by pseudo-label class) the precision.
    """
    import numpy as np
    import torch

    from learning.adaptation.batchnorm import with_target_statistics
    from learning.adaptation.pseudo_labels import class_thresholds, pseudo_label
    from learning.checkpoint import load_model
    from learning.data import CACHE, resize_mask
    from learning.labels import IGNORE_INDEX
    from learning.device import numerics_for
    from learning.inference import predict

    torch.set_num_threads(plan.threads)
    data = splits(plan)
    model, _ = load_model(base, expected_classes=class_names())
    config = arm_config(plan, "self_training", 0)
    pool = unlabeled(data["dusk_pool"])
    truths = [resize_mask(CACHE.get_or_load("mask", s.mask, None), plan.size) for s in data["dusk_pool"]]
    adapted = with_target_statistics(model, pool, size=plan.size, numerics=numerics_for(torch.device("cpu")))
    out = {}
    for name, network, portion in (("base model, portion 50 %", model, config.pseudo_label_portion),
                                   ("base model, portion 20 %", model, 0.2),
                                   ("target BN statistics, portion 50 %", adapted, config.pseudo_label_portion)):
        confidences, labels = [], []
        for prediction in predict(network, pool, size=plan.size, batch_size=8):
            confidences.append(prediction.confidence)
            labels.append(prediction.label)
        thresholds = class_thresholds(confidences, labels, 11, portion=portion, cap=config.pseudo_label_cap,
                                      floor=config.pseudo_label_floor)
        hits = np.zeros(11, np.int64)
        kept = np.zeros(11, np.int64)
        labeled = correct = 0
        for conf, lab, truth in zip(confidences, labels, truths):
            mask = pseudo_label(conf, lab, thresholds)
            valid = truth != IGNORE_INDEX
            chosen = valid & (mask != IGNORE_INDEX)
            kept += np.bincount(mask[chosen], minlength=11)[:11]
            hits += np.bincount(mask[chosen & (mask == truth)], minlength=11)[:11]
            labeled += int(valid.sum())
            correct += int((lab[valid] == truth[valid]).sum())
        out[name] = {
            "pixel_accuracy": correct / max(labeled, 1),
            "thresholds": [round(float(t), 3) for t in thresholds],
            "coverage": float(kept.sum() / max(labeled, 1)),
            "precision": float(hits.sum() / max(kept.sum(), 1)),
            "class_precision": [float(h / k) if k else None for h, k in zip(hits, kept)],
        }
    return out


# --- report ----------------------------------------------------------------------------------------------


def miou_in_labels(metrics: dict) -> float:
    """mIoU over the classes present in the split's labels: the same class set for every arm.

    The library's mIoU also counts a class that only appears in the prediction (IoU 0), so on
    dusk val, which has no fence pixels, an arm that predicts a few fence pixels loses 1/11 of
    its score against an arm that predicts none. For comparing arms, a fixed set is fairer.
    """
    present = [iou for iou, acc in zip(metrics["per_class_iou"], metrics["per_class_accuracy"]) if acc is not None]
    return sum(present) / len(present)


def _mean_std(values: list[float]) -> tuple[float, float]:
    import numpy as np

    return float(np.mean(values)), float(np.std(values)) if len(values) > 1 else 0.0


def _fmt(values: list[float]) -> str:
    if not values:
        return "–"
    mean, std = _mean_std(values)
    return f"{100 * mean:.1f} ± {100 * std:.1f}" if len(values) > 1 else f"{100 * mean:.1f}"


def render(plan: Plan, results: list[dict], pseudo: dict | None, day_train_count: int, wall_seconds: float,
           machine: str, command: str, quick: bool) -> str:
    import numpy as np

    names = class_names()
    by_arm: dict[str, list[dict]] = {}
    for r in results:
        by_arm.setdefault(r["arm"], []).append(r)
    order = [a for a in ("base", *ARMS) if a in by_arm]

    def miou(arm: str, split: str) -> list[float]:
        return [miou_in_labels(r["metrics"][split]) for r in by_arm[arm]]

    def miou_library(arm: str, split: str) -> list[float]:
        return [r["metrics"][split]["miou"] for r in by_arm[arm]]

    rows = []
    source = np.mean(miou("source_only", "dusk_val")) if "source_only" in by_arm else None
    upper = np.mean(miou("upper_bound", "dusk_val")) if "upper_bound" in by_arm else None
    for arm in order:
        rs = by_arm[arm]
        per_step = float(np.mean([r["seconds_per_step"] for r in rs]))
        labeled_per_step = plan.labeled_per_step if arm == "base" or arm in ADAPTING \
            else plan.labeled_per_step + plan.target_per_step
        epoch = per_step * day_train_count / labeled_per_step
        gap = "–"
        if source is not None and upper is not None and arm in ARMS and upper != source:
            gap = f"{100 * (np.mean(miou(arm, 'dusk_val')) - source) / (upper - source):.0f} %"
        rows.append([ARM_LABELS[arm], len(rs), _fmt(miou(arm, "dusk_val")), _fmt(miou_library(arm, "dusk_val")),
                     _fmt(miou(arm, "day_val")), gap,
                     f"{per_step:.2f}", f"{epoch:.0f}" if epoch >= 10 else f"{epoch:.1f}", f"{max(r['peak_rss_mb'] for r in rs):.0f}"])
    main = report.markdown_table(
        ["arm", "seeds", "dusk val mIoU %", "(all predicted classes)", "day val mIoU %", "dusk gap closed", "s / step", "s / day epoch",
         "peak RSS MB"], rows)

    def per_class(split: str) -> str:
        header = ["arm", *names]
        table_rows = []
        for arm in order:
            cells = []
            for c in range(len(names)):
                values = [r["metrics"][split]["per_class_iou"][c] for r in by_arm[arm]]
                values = [v for v in values if v is not None]
                cells.append(f"{100 * np.mean(values):.1f}" if values else "n/a")
            table_rows.append([ARM_LABELS[arm], *cells])
        return report.markdown_table(header, table_rows)

    lines = [
        "## Domain adaptation: CamVid day → dusk" + (" (QUICK SMOKE RUN: not a result)" if quick else ""),
        "",
        f"- Command: `{command}`",
        f"- Machine: {machine}. Other engineers shared the 2 cores during the run: timings are noisy.",
        f"- Training time summed over all {len(results)} runs: {sum(r['train_seconds'] for r in results) / 60:.0f} min "
        f"(plus evaluation; this invocation took {wall_seconds / 60:.0f} min, reusing cached runs from "
        f"var/bench/domain_adaptation/). Date: {time.strftime('%Y-%m-%d %H:%M')}.",
        "- s / step and s / day epoch are wall-clock under whatever load the shared machine had while that run "
        "ran (1 thread per run): compare them across arms with care.",
        f"- Model: `{plan.arch}` from random initialisation (no ImageNet weights are available here), "
        f"trained at {plan.size[0]}×{plan.size[1]}; metrics at the labels' full 360×480 resolution.",
        f"- Splits by frame order: day train {day_train_count} frames, day val = last 10 % of each day sequence; "
        "dusk pool = first 46 dusk frames (unlabeled except in the upper bound), dusk val = last 16.",
        f"- Base: {plan.base_steps} steps × {plan.labeled_per_step} day frames, AdamW, one-cycle LR "
        f"(max {plan.base_lr}), ENet class weights, random scale 0.75–1.5 / crop / flip / colour jitter. "
        f"Every arm then continues from it for {plan.arm_steps} steps at {plan.labeled_per_step + plan.target_per_step} "
        f"frames per step (DA arms: {plan.labeled_per_step} day + {plan.target_per_step} pool), AdamW, poly LR from {plan.arm_lr}.",
        f"- Adversarial: λ_adv = {plan.adversarial_weight}, discriminator (AdaptSegNet's 5-layer FC net) trained with Adam 1e-4 on softmax maps at 1/4 of the training size. "
        "Self-training: CBST class-wise thresholds (each predicted class keeps its 50 % most confident pixels, "
        "anything ≥ 0.95 kept), pseudo-labels computed once from the base model in eval mode, i.e. with its day "
        "BatchNorm statistics, except in the *target BN* arms, where a copy of the base model with BatchNorm "
        "statistics re-estimated on the pool predicts them (the library default since this benchmark).",
        f"- Control arm: the DA arms forward 4 pool frames with the 8 day frames, so BatchNorm statistics see "
        "dusk whatever the loss; the BatchNorm-only control isolates that effect.",
        f"- Each arm runs in its own process with {plan.threads} intra-op thread(s) and OMP_WAIT_POLICY=PASSIVE.",
        "- mIoU % = mean IoU over the classes present in that split's labels (dusk val has no fence: 10 classes; "
        "day val 11), so every arm is scored on the same classes; the library's mIoU, which also counts classes that "
        "are only predicted, is shown for dusk as well.",
        "- mIoU: mean ± standard deviation over seeds (seed = continuation order, augmentation and discriminator "
        "initialisation; the base model is shared). Gap closed = (arm − source-only) / (upper bound − source-only) on dusk.",
        "",
        main,
        "",
    ]
    if pseudo:
        lines += ["Quality of the base model's CBST pseudo-labels on the dusk pool, against its withheld labels "
                  "(argmax accuracy = all pixels; coverage = share of labeled pixels that get a pseudo-label; "
                  "precision overall and per pseudo-label class, %):", ""]
        pseudo_rows = []
        for name, q in pseudo.items():
            pseudo_rows.append([name, f"{100 * q['pixel_accuracy']:.1f}", f"{100 * q['coverage']:.0f}",
                                f"{100 * q['precision']:.1f}",
                                *[f"{100 * p:.0f}" if p is not None else "–" for p in q["class_precision"]]])
        lines += [report.markdown_table(["pseudo-labels from", "argmax accuracy %", "coverage %", "precision %", *names],
                                        pseudo_rows), ""]
    lines += ["Per-class IoU % on dusk val (mean over seeds; n/a = class absent from labels and predictions):", "",
              per_class("dusk_val"), "", "Per-class IoU % on day val:", "", per_class("day_val"), ""]
    return "\n".join(lines)


def verdict(results: list[dict]) -> list[str]:
    import numpy as np

    by_arm: dict[str, list[float]] = {}
    for r in results:
        by_arm.setdefault(r["arm"], []).append(miou_in_labels(r["metrics"]["dusk_val"]))
    if "source_only" not in by_arm:
        return []
    base_mean = np.mean(by_arm["source_only"])
    base_std = np.std(by_arm["source_only"])
    lines = []
    for arm in ADAPTING:
        if arm not in by_arm:
            continue
        delta = 100 * (np.mean(by_arm[arm]) - base_mean)
        spread = 100 * max(base_std, np.std(by_arm[arm]))
        seeds = min(len(by_arm[arm]), len(by_arm["source_only"]))
        if seeds < 2:
            status = "is ahead of" if delta > 0 else "does NOT beat"
            note = "one seed, no spread estimate"
        else:
            status = "beats" if delta > spread else ("does not clearly beat" if delta > 0 else "does NOT beat")
            note = f"seed spread ±{spread:.1f}"
        line = f"{ARM_LABELS[arm]} {status} source-only on dusk ({delta:+.1f} mIoU points, {note})"
        if arm != "target_bn" and "target_bn" in by_arm:
            line += f"; against the BatchNorm-only control: {100 * (np.mean(by_arm[arm]) - np.mean(by_arm['target_bn'])):+.1f}"
        lines.append(line + ".")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (minutes); does not write docs")
    parser.add_argument("--seeds", type=int, help="continuation seeds per arm")
    parser.add_argument("--base-steps", type=int)
    parser.add_argument("--arm-steps", type=int)
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    parser.add_argument("--ablation-seeds", type=int, default=1, help="seeds for the ablation arms (run last)")
    parser.add_argument("--adversarial-weight", type=float)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--plan", help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args)

    if not DATASET.exists():
        print(f"dataset not found: {DATASET}")
        return 1
    plan = QUICK if args.quick else FULL
    overrides = {k: v for k, v in {"seeds": args.seeds, "base_steps": args.base_steps, "arm_steps": args.arm_steps,
                                   "adversarial_weight": args.adversarial_weight, "threads": args.threads}.items()
                 if v is not None}
    plan = replace(plan, **overrides)
    started = time.monotonic()
    work = WORK / ("quick" if args.quick else "full")
    work.mkdir(parents=True, exist_ok=True)
    base_key = plan.key("size", "base_steps", "base_lr", "labeled_per_step", "arch", "subset")
    base_dir = work / f"base-{base_key}"
    results = [spawn(plan, "base", seed=0, base=base_dir, result=work / f"base-{base_key}.json")]
    pseudo = pseudo_label_quality(plan, base_dir)
    print(f"pseudo-labels on the dusk pool: {pseudo}", flush=True)
    arm_key = plan.key()
    runs = [(seed, arm) for seed in range(plan.seeds) for arm in args.arms if arm not in ABLATIONS]
    runs += [(seed, arm) for seed in range(min(plan.seeds, args.ablation_seeds)) for arm in args.arms
             if arm in ABLATIONS]
    for seed, arm in runs:
        results.append(spawn(plan, arm, seed=seed, base=base_dir, result=work / f"{arm}-s{seed}-{arm_key}.json"))

    import torch

    torch.set_num_threads(plan.threads)
    day_train_count = len(splits(plan)["day_train"])
    markdown = render(plan, results, pseudo, day_train_count, time.monotonic() - started,
                      report.machine_description(), report.command_line(), args.quick)
    lines = verdict(results)
    if lines:
        markdown += "\n" + "\n".join(f"- {line}" for line in lines) + "\n"
    print(markdown)
    (work / "report.md").write_text(markdown)
    if not args.quick and not args.no_write:
        path = report.write_section("domain_adaptation", markdown)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
