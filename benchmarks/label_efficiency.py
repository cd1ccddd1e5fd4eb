"""Label-efficient learning on CamVid day -> dusk: which of SSL init, pixel contrast and consistency help?

Issue 8's ablation, on the data split of benchmarks/domain_adaptation.py (day
train / day val = last 10 % of each day sequence; dusk pool = first 46 dusk
frames by frame order, dusk val = last 16), at the same training size and
with the same recipes:

1. **ssl**: self-supervised pretraining of the encoder (learning/pretrain.py)
   on the day-train and dusk-pool images, no labels (dusk val never seen).
2. **bases**: a source-only model trained on day frames from *random* init and
   one from the *SSL* encoder, with the same schedule (the domain-adaptation
   base recipe: AdamW, one-cycle, ENet class weights), shorter than that
   benchmark's 1600 steps so both fit the CPU budget (about the product's
   600-step round 0).
3. **arms**: each base continues for the same number of steps with 8 day +
   4 dusk-pool frames per step, under two label settings:

   - ``source``: no dusk labels at all (unsupervised adaptation);
   - ``target5``: 5 % of the pool's pixels labeled, as random SLIC superpixels
     (fixed seed, identical for every arm) with the exact ground truth inside
     them; the labeled pool frames join the labeled set (repeated to a third
     of the frames, like the domain-adaptation upper bound) and carry their
     labels into the unlabeled target batch, as the product's round loop does.

   and these objectives: ``ce`` (cross-entropy; the pool frames only pass
   through BatchNorm, the fair control), ``consistency`` (mean teacher),
   ``contrast`` (pixel contrastive, auxiliary), ``both``; plus ``contrast_stage``
   (pixel contrastive only for half the steps, then cross-entropy).

Every stage runs in its own process (its own peak RSS and CPU time) with one
intra-op thread, results are cached per stage under var/bench/label_efficiency/,
so an interrupted run resumes where it stopped.

    python benchmarks/label_efficiency.py --quick     # smoke run, a few minutes, writes nothing to docs
    python benchmarks/label_efficiency.py             # full run, writes docs/BENCHMARKS.md
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

from benchmarks import domain_adaptation as da  # noqa: E402
from benchmarks import report  # noqa: E402

WORK = ROOT / "var" / "bench" / "label_efficiency"
OBJECTIVES = {
    "ce": ("target_batchnorm",),
    "consistency": ("consistency",),
    "contrast": ("pixel_contrastive",),
    "both": ("consistency", "pixel_contrastive"),
    "contrast_stage": ("target_batchnorm",),  # via contrastive_then_finetune: the contrastive stage, then this
    "self_training": ("self_training",),  # CBST, once per call, from the base (the domain-adaptation arm)
    "product": ("adversarial", "self_training", "consistency"),  # the Project defaults when this was written
}
OBJECTIVE_LABELS = {
    "ce": "cross-entropy only",
    "consistency": "+ consistency (mean teacher)",
    "contrast": "+ pixel contrastive",
    "both": "+ consistency + pixel contrastive",
    "contrast_stage": "pixel-contrastive stage, then cross-entropy",
    "self_training": "+ CBST self-training (no teacher)",
    "product": "+ adversarial + CBST + consistency (Project defaults)",
}
SETTINGS = {"source": "no dusk labels", "target5": "5 % of dusk pool pixels labeled"}
# Run order = priority: what the defaults hinge on first.
ARMS: tuple[tuple[str, str, str], ...] = (
    ("random", "source", "ce"), ("random", "source", "consistency"),
    ("random", "target5", "ce"), ("random", "target5", "consistency"),
    ("random", "source", "contrast"), ("random", "target5", "contrast"),
    ("random", "source", "both"), ("random", "target5", "both"),
    ("ssl", "source", "ce"), ("ssl", "target5", "ce"),
    ("ssl", "source", "both"), ("ssl", "target5", "both"),
    ("random", "target5", "contrast_stage"),
    ("random", "source", "self_training"), ("random", "source", "product"),
)


@dataclass(frozen=True)
class Plan:
    size: tuple[int, int]
    ssl_steps: int
    ssl_view: tuple[int, int]
    base_steps: int
    arm_steps: int
    target_percent: float = 5.0
    ssl_batch: int = 8
    ssl_lr: float = 1e-3
    base_lr: float = 2e-3
    arm_lr: float = 3e-4
    labeled_per_step: int = 8
    target_per_step: int = 4
    arch: str = "deeplabv3_mobilenet_v3_large"
    subset: int = 0
    threads: int = 1
    seed: int = 0

    def key(self, *fields: str) -> str:
        data = {f: getattr(self, f) for f in fields} if fields else asdict(self)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]

    @property
    def da_plan(self) -> da.Plan:
        """The domain-adaptation plan whose splits and recipes we reuse."""
        return replace(da.FULL, size=self.size, base_steps=self.base_steps, base_lr=self.base_lr,
                       arm_steps=self.arm_steps, arm_lr=self.arm_lr, seeds=1, labeled_per_step=self.labeled_per_step,
                       target_per_step=self.target_per_step, arch=self.arch, subset=self.subset, threads=self.threads)


FULL = Plan(size=(240, 320), ssl_steps=600, ssl_view=(128, 160), base_steps=400, arm_steps=100)
QUICK = Plan(size=(96, 128), ssl_steps=4, ssl_view=(64, 80), base_steps=20, arm_steps=6, subset=12, ssl_batch=4)


# --- data ------------------------------------------------------------------------------------------------


def target_labels(plan: Plan, work: Path) -> dict[str, "object"]:
    """Region labels on the dusk pool: random SLIC superpixels until ``target_percent`` of the pool's pixels.

    Computed once (seeded) and cached, so every arm sees the very same labels.
    """
    import numpy as np

    from learning.data import CACHE
    from learning.labels import IGNORE_INDEX
    from learning.selection import slic_regions

    path = work / f"target-labels-{plan.key('target_percent', 'subset', 'seed')}.npz"
    if path.exists():
        with np.load(path) as stored:
            return {k: stored[k] for k in stored.files}
    pool = da.splits(plan.da_plan)["dusk_pool"]
    regions, truths, units = {}, {}, []
    for sample in pool:
        image = CACHE.get_or_load("image", sample.image, None)
        regions[sample.key] = slic_regions(image)
        truths[sample.key] = CACHE.get_or_load("mask", sample.mask, None)
        counts = np.bincount(regions[sample.key].ravel())
        units += [(sample.key, r, int(c)) for r, c in enumerate(counts)]
    total = sum(t.size for t in truths.values())
    order = np.random.default_rng(plan.seed).permutation(len(units))
    chosen: dict[str, list[int]] = {}
    covered = 0
    for i in order:
        if covered >= plan.target_percent / 100 * total:
            break
        key, region, count = units[i]
        chosen.setdefault(key, []).append(region)
        covered += count
    labels = {}
    for key, truth in truths.items():
        inside = np.isin(regions[key], chosen.get(key, []))
        labels[key] = np.where(inside, truth, IGNORE_INDEX).astype(np.uint8)
    work.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **labels)
    return labels


def arm_data(plan: Plan, setting: str, work: Path) -> tuple[list, list]:
    """(labeled, unlabeled) samples of one label setting."""
    from learning.data import Sample
    from learning.labels import IGNORE_INDEX

    data = da.splits(plan.da_plan)
    labeled = list(data["day_train"])
    if setting == "source":
        return labeled, da.unlabeled(data["dusk_pool"])
    labels = target_labels(plan, work)
    pool = [Sample(image=s.image, mask=labels[s.key], key=s.key) for s in data["dusk_pool"]]
    with_labels = [s for s in pool if (s.mask != IGNORE_INDEX).any()]
    repeats = max(1, round(0.5 * len(labeled) / max(len(with_labels), 1)))
    return labeled + with_labels * repeats, [s if (s.mask != IGNORE_INDEX).any() else
                                             Sample(image=s.image, key=s.key) for s in pool]


# --- stages (in child processes) ------------------------------------------------------------------------


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _evaluate(model, plan: Plan) -> dict:
    from learning.inference import evaluate

    data = da.splits(plan.da_plan)
    return {name: evaluate(model, data[name], 11, size=plan.size, batch_size=8).to_dict()
            for name in ("dusk_val", "day_val")}


def run_ssl(plan: Plan, work: Path) -> dict:
    from learning.pretrain import PretrainConfig, pretrain_encoder

    data = da.splits(plan.da_plan)
    images = da.unlabeled(data["day_train"]) + da.unlabeled(data["dusk_pool"])
    config = PretrainConfig(arch=plan.arch, load_size=plan.size, view_size=plan.ssl_view, batch_size=plan.ssl_batch,
                            steps=plan.ssl_steps, lr=plan.ssl_lr, warmup_steps=max(1, plan.ssl_steps // 12),
                            seed=plan.seed, save_every=max(1, min(100, plan.ssl_steps // 4)),
                            checkpoint_dir=str(ssl_dir(plan, work)))
    result = pretrain_encoder(images, config, progress=da._printer("ssl"))
    return {"stage": "ssl", "steps": result.steps, "images": len(images), "train_seconds": result.total_seconds,
            "seconds_per_step": result.total_seconds / max(result.steps, 1), "resumed_from": result.resumed_from,
            "history": result.history, "encoder": str(result.encoder_path)}


def ssl_dir(plan: Plan, work: Path) -> Path:
    return work / f"ssl-{plan.key('arch', 'size', 'ssl_steps', 'ssl_view', 'ssl_batch', 'ssl_lr', 'subset', 'seed')}"


def base_dir(plan: Plan, work: Path, init: str) -> Path:
    key = plan.key('arch', 'size', 'base_steps', 'base_lr', 'labeled_per_step', 'subset', 'ssl_steps', 'ssl_view',
                   'ssl_batch', 'ssl_lr', 'seed')
    return work / f"base-{init}-{key}"


def run_base(plan: Plan, work: Path, init: str) -> dict:
    import shutil

    from learning.checkpoint import save_checkpoint
    from learning.models import build_model
    from learning.train import checkpoint_meta, train

    config = da.base_config(plan.da_plan)
    if init == "ssl":
        config = replace(config, backbone_checkpoint=str(ssl_dir(plan, work) / "encoder" / "weights.pt"))
    out = base_dir(plan, work, init)
    if out.exists():  # saved, but killed before the result file was written
        shutil.rmtree(out)
    data = da.splits(plan.da_plan)
    result = train(config, labeled=data["day_train"], progress=da._printer(f"base-{init}"))
    model = build_model(plan.arch, 11)
    model.load_state_dict(result.state_dict)
    metrics = _evaluate(model, plan)
    save_checkpoint(out, state_dict=result.state_dict,
                    meta=checkpoint_meta(result, classes=da.class_names(), benchmark_metrics=metrics, init=init))
    return {"stage": f"base-{init}", "metrics": metrics, "train_seconds": result.train_seconds,
            "seconds_per_step": result.seconds_per_step, "steps": result.steps, "history": result.history}


def arm_config(plan: Plan, objective: str, seed: int = 0):
    # 8 day + 4 pool frames, poly, warm-up; ``seed`` = continuation order, augmentation, heads
    config = da.arm_config(plan.da_plan, "target_bn", plan.seed + seed)
    return replace(config, objectives=OBJECTIVES[objective])


def run_arm(plan: Plan, work: Path, init: str, setting: str, objective: str, seed: int = 0) -> dict:
    from learning.adaptation.pixel_contrastive import contrastive_then_finetune
    from learning.checkpoint import load_checkpoint
    from learning.models import build_model
    from learning.train import train

    init_state, _ = load_checkpoint(base_dir(plan, work, init), expected_classes=da.class_names())
    labeled, pool = arm_data(plan, setting, work)
    config = arm_config(plan, objective, seed)
    progress = da._printer(f"{init}/{setting}/{objective}/s{seed}")
    if objective == "contrast_stage":
        stage_one, result = contrastive_then_finetune(config, labeled=labeled, unlabeled=pool, init_state=init_state,
                                                      progress=progress)
        train_seconds = stage_one.train_seconds + result.train_seconds
    else:
        result = train(config, labeled=labeled, unlabeled=pool, init_state=init_state, progress=progress)
        train_seconds = result.train_seconds
    model = build_model(plan.arch, 11)
    model.load_state_dict(result.state_dict)
    record = {"stage": "arm", "init": init, "setting": setting, "objective": objective, "seed": seed,
              "metrics": _evaluate(model, plan), "train_seconds": train_seconds,
              "seconds_per_step": train_seconds / max(plan.arm_steps, 1), "steps": plan.arm_steps,
              "history": result.history, "objectives": result.objective_summaries,
              "labeled_target_fraction": labeled_target_fraction(plan, setting, work)}
    consistency = result.objective_states.get("consistency", {})
    if consistency.get("teacher") is not None:  # the mean teacher is often the better model: measure it as well
        model.load_state_dict(consistency["teacher"])
        record["teacher_metrics"] = _evaluate(model, plan)
        record["pseudo_labels"] = pseudo_label_quality(model, plan, consistency["thresholds"])
    return record


def pseudo_label_quality(teacher, plan: Plan, thresholds) -> dict:
    """Precision and coverage of the final teacher's pseudo-labels on the dusk pool, against its withheld labels."""
    import torch

    from learning.adaptation.consistency import DEFAULTS
    from learning.data import CACHE, resize_mask
    from learning.labels import IGNORE_INDEX
    from learning.inference import predict

    cap = DEFAULTS["cap"]
    thresholds = torch.where(torch.isnan(thresholds), torch.full_like(thresholds, cap), thresholds.clamp(max=cap))
    thresholds = thresholds.numpy()
    pool = da.splits(plan.da_plan)["dusk_pool"]
    kept = correct = valid = 0
    for sample, prediction in zip(pool, predict(teacher, da.unlabeled(pool), size=plan.size, batch_size=8)):
        truth = resize_mask(CACHE.get_or_load("mask", sample.mask, None), plan.size)
        label = prediction.label
        keep = (prediction.confidence >= thresholds[label]) & (truth != IGNORE_INDEX)
        kept += int(keep.sum())
        correct += int((keep & (label == truth)).sum())
        valid += int((truth != IGNORE_INDEX).sum())
    return {"precision": correct / max(kept, 1), "coverage": kept / max(valid, 1),
            "thresholds": [round(float(t), 3) for t in thresholds]}


def labeled_target_fraction(plan: Plan, setting: str, work: Path) -> float:
    if setting == "source":
        return 0.0
    labels = target_labels(plan, work)
    return float(sum((m != 255).sum() for m in labels.values()) / sum(m.size for m in labels.values()))


def child_main(args: argparse.Namespace) -> int:
    import torch

    plan = _plan_from_json(args.plan)
    torch.set_num_threads(plan.threads)
    work = Path(args.work)
    started = time.monotonic()
    if args.child == "ssl":
        result = run_ssl(plan, work)
    elif args.child.startswith("base-"):
        result = run_base(plan, work, args.child.split("-", 1)[1])
    else:
        init, setting, objective, *seed = args.child.split("/")  # ".../sK" for continuation seed K > 0
        result = run_arm(plan, work, init, setting, objective, int(seed[0][1:]) if seed else 0)
    result["wall_seconds"] = time.monotonic() - started
    result["cpu_seconds"] = _cpu_seconds()
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(args.result).write_text(json.dumps(result, indent=1))
    return 0


def _plan_from_json(text: str) -> Plan:
    data = json.loads(text)
    for name in ("size", "ssl_view"):
        data[name] = tuple(data[name])
    return Plan(**data)


def spawn(plan: Plan, child: str, work: Path, *, run: bool = True) -> dict | None:
    """The cached result of ``child``, else run it (``run=False``: else None)."""
    result = work / (child.replace("/", "-") + f"-{plan.key()}.json")
    if result.exists():
        return json.loads(result.read_text())
    if not run:
        return None
    env = dict(os.environ, OMP_NUM_THREADS=str(plan.threads), OMP_WAIT_POLICY="PASSIVE", PYTHONUNBUFFERED="1")
    command = [sys.executable, str(Path(__file__).resolve()), "--child", child, "--plan", json.dumps(asdict(plan)),
               "--work", str(work), "--result", str(result)]
    print(f"--- {child}", flush=True)
    started = time.monotonic()
    completed = subprocess.run(command, env=env, cwd=ROOT)
    if completed.returncode != 0:
        print(f"--- {child} FAILED (exit {completed.returncode}); continuing", flush=True)
        return None
    print(f"--- {child} done in {time.monotonic() - started:.0f} s", flush=True)
    return json.loads(result.read_text())


# --- report ----------------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _minutes(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds / 60:.1f}"


def _mean_std(values: list[float]) -> tuple[float, float]:
    import numpy as np

    return float(np.mean(values)), float(np.std(values)) if len(values) > 1 else 0.0


def _fmt(values: list[float]) -> str:
    if not values:
        return "–"
    mean, std = _mean_std(values)
    return f"{100 * mean:.1f} ± {100 * std:.1f}" if len(values) > 1 else f"{100 * mean:.1f}"


def group_arms(arms: list[dict]) -> dict[tuple[str, str, str], list[dict]]:
    """Records by (init, setting, objective), in the order they first appear."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for record in arms:
        groups.setdefault((record["init"], record["setting"], record["objective"]), []).append(record)
    return groups


def _dusk(records: list[dict], key: str = "metrics") -> list[float]:
    return [r[key]["dusk_val"]["miou"] for r in records if key in r]


def paired_deltas(a: list[dict], b: list[dict], key: str = "metrics", b_key: str = "metrics") -> list[float]:
    """Dusk-val mIoU differences a - b, per continuation seed both have (same seed = same data order).

    Continuation seeds alone move dusk mIoU by several points here, and two arms
    with one seed share their order of frames, so the per-seed difference is
    the less noisy comparison.
    """
    by_seed = {r.get("seed", 0): r[b_key]["dusk_val"]["miou"] for r in b if b_key in r}
    return [r[key]["dusk_val"]["miou"] - by_seed[r.get("seed", 0)] for r in a
            if key in r and r.get("seed", 0) in by_seed]


def _fmt_delta(deltas: list[float]) -> str:
    if not deltas:
        return "–"
    mean, std = _mean_std(deltas)
    return f"{100 * mean:+.1f} ± {100 * std:.1f}" if len(deltas) > 1 else f"{100 * mean:+.1f}"


def _stage_table(plan: Plan, stages: dict[str, dict]) -> str:
    rows = []
    ssl = stages.get("ssl")
    if ssl:
        final = ssl["history"][-1] if ssl.get("history") else {}
        rows.append(["self-supervised pretraining (no labels)",
                     f"{ssl['steps']} × {plan.ssl_batch} images × 2 views {plan.ssl_view[0]}×{plan.ssl_view[1]}",
                     f"{ssl['seconds_per_step']:.2f}", _minutes(ssl["train_seconds"]), _minutes(ssl["cpu_seconds"]),
                     "–", "–", f"final loss {final.get('loss', float('nan')):.2f} (global "
                     f"{final.get('global', float('nan')):.2f}, dense {final.get('dense', float('nan')):.2f})"])
    for init in ("random", "ssl"):
        base = stages.get(f"base-{init}")
        if base:
            rows.append([f"source-only base from {init} init", f"{base['steps']} × {plan.labeled_per_step} day frames",
                         f"{base['seconds_per_step']:.2f}", _minutes(base["train_seconds"]),
                         _minutes(base["cpu_seconds"]), _pct(base["metrics"]["dusk_val"]["miou"]),
                         _pct(base["metrics"]["day_val"]["miou"]), ""])
    return report.markdown_table(
        ["stage", "steps × batch", "s / step", "train min", "CPU min", "dusk val mIoU %", "day val mIoU %", "notes"],
        rows)


def _arm_table(groups: dict[tuple[str, str, str], list[dict]]) -> str:
    import numpy as np

    rows = []
    for (init, setting, objective), records in groups.items():
        reference = groups.get((init, setting, "ce"))
        delta = _fmt_delta(paired_deltas(records, reference)) if reference and objective != "ce" else "–"
        quality = [r["pseudo_labels"] for r in records if "pseudo_labels" in r]
        pseudo = "–" if not quality else (f"{100 * np.mean([q['precision'] for q in quality]):.0f} % / "
                                          f"{100 * np.mean([q['coverage'] for q in quality]):.0f} %")
        rows.append([init, SETTINGS[setting], OBJECTIVE_LABELS[objective], len(records), _fmt(_dusk(records)), delta,
                     _fmt(_dusk(records, "teacher_metrics")),
                     _fmt([r["metrics"]["day_val"]["miou"] for r in records]), pseudo,
                     f"{np.mean([r['seconds_per_step'] for r in records]):.2f}",
                     _minutes(float(np.mean([r["cpu_seconds"] for r in records])))])
    return report.markdown_table(
        ["init", "dusk labels", "objectives", "seeds", "dusk val mIoU %", "Δ vs CE", "teacher dusk mIoU %",
         "day val mIoU %", "teacher pseudo-labels on pool: precision / coverage", "s / step", "CPU min / run"], rows)


def _per_class_table(groups: dict[tuple[str, str, str], list[dict]]) -> str:
    import numpy as np

    rows = []
    for (init, setting, objective), records in groups.items():
        cells = []
        for c in range(len(da.class_names())):
            values = [r["metrics"]["dusk_val"]["per_class_iou"][c] for r in records]
            values = [v for v in values if v is not None]
            cells.append(f"{100 * np.mean(values):.1f}" if values else "n/a")
        rows.append([f"{init} / {setting} / {objective}", *cells])
    return report.markdown_table(["arm", *da.class_names()], rows)


def verdict(stages: dict[str, dict], groups: dict[tuple[str, str, str], list[dict]]) -> list[str]:
    """Plain sentences: what is ahead of what, by how much, and how much that can be trusted."""
    import numpy as np

    def compare(label: str, a: list[dict], b: list[dict], key: str = "metrics",
                b_key: str = "metrics") -> str | None:
        deltas = [100 * d for d in paired_deltas(a, b, key, b_key)]
        if not deltas:
            return None
        mean = float(np.mean(deltas))
        if len(deltas) < 2:
            return f"{label}: {mean:+.1f} (1 seed: a hint only)."
        wins = sum(d > 0 for d in deltas)
        word = "ahead" if wins == len(deltas) else ("behind" if wins == 0 else "not distinguishable")
        per_seed = ", ".join(f"{d:+.1f}" for d in deltas)
        return f"{label}: **{word}**, {mean:+.1f} (paired over {len(deltas)} seeds: {per_seed})."

    lines = []
    for init in ("random", "ssl"):
        for setting in SETTINGS:
            ce = groups.get((init, setting, "ce"))
            if not ce:
                continue
            for objective in ("consistency", "contrast", "both", "contrast_stage", "self_training", "product"):
                records = groups.get((init, setting, objective))
                if records:
                    line = compare(f"{init} init, {SETTINGS[setting]}: {OBJECTIVE_LABELS[objective]} vs cross-entropy",
                                   records, ce)
                    lines.append(line)
    for setting in SETTINGS:
        for objective in ("self_training", "product", "both"):
            a, b = groups.get(("random", setting, objective)), groups.get(("random", setting, "consistency"))
            if a and b:
                lines.append(compare(f"random init, {SETTINGS[setting]}: {OBJECTIVE_LABELS[objective]} vs "
                                     "consistency alone", a, b))
    teacher = [100 * d for records in groups.values() for d in paired_deltas(records, records, "teacher_metrics")]
    if teacher:
        lines.append(f"EMA teacher vs its own student, over all {len(teacher)} consistency runs: "
                     f"{np.mean(teacher):+.1f} on average (from {min(teacher):+.1f} to {max(teacher):+.1f}).")
    if stages.get("base-random") and stages.get("base-ssl"):
        lines.append(compare("SSL-initialised base vs random-init base (same schedule)", [stages["base-ssl"]],
                             [stages["base-random"]]))
    for setting in SETTINGS:
        for objective in ("ce", "both"):
            a, b = groups.get(("ssl", setting, objective)), groups.get(("random", setting, objective))
            if a and b:
                lines.append(compare(f"SSL vs random init, {SETTINGS[setting]}, {OBJECTIVE_LABELS[objective]}", a, b))
    return [line for line in lines if line]


def render(plan: Plan, stages: dict[str, dict], arms: list[dict], wall_seconds: float, quick: bool) -> str:
    groups = group_arms(arms)
    target_fraction = next((a["labeled_target_fraction"] for a in arms if a["setting"] == "target5"), None)
    seeds = max((len(records) for records in groups.values()), default=0)
    runs = [*stages.values(), *arms]
    lines = [
        "## Label-efficient learning: SSL init, pixel contrast, consistency (CamVid day → dusk)"
        + (" (QUICK SMOKE RUN: not a result)" if quick else ""),
        "",
        f"- Command: `{report.command_line()}`",
        f"- Machine: {report.machine_description()}. Other engineers' benchmarks shared the 2 cores "
        "during the run: times are noisy and inflated.",
        f"- Compute: {len(runs)} processes, {sum(r.get('wall_seconds', 0.0) for r in runs) / 60:.0f} min wall and "
        f"{sum(r.get('cpu_seconds', 0.0) for r in runs) / 60:.0f} min CPU in all (this invocation: "
        f"{wall_seconds / 60:.0f} min; stages computed earlier are cached). Date: {time.strftime('%Y-%m-%d %H:%M')}. "
        + ("**One seed per arm** (the CPU budget): differences of a point or two are within noise."
           if seeds <= 1 else "Arms with several seeds share their base; ± is the spread over continuation seeds."),
        f"- Model `{plan.arch}`, trained at {plan.size[0]}×{plan.size[1]}, metrics at the labels' full 360×480. "
        "Splits as in the domain-adaptation section (dusk pool = first 46 dusk frames, dusk val = last 16).",
        f"- SSL: learning/pretrain.py on day-train + dusk-pool images (no labels; dusk val never seen), SimCLR "
        f"global + dense-correspondence InfoNCE, temperature 0.1, AdamW {plan.ssl_lr}, cosine. "
        "No ImageNet weights exist on this machine (none may be downloaded), so there is no ImageNet-init row.",
        f"- Bases: {plan.base_steps} steps × {plan.labeled_per_step} day frames (the domain-adaptation base "
        f"recipe with fewer steps; the product's round 0 is 600 steps). Arms: {plan.arm_steps} steps from a base, "
        f"{plan.labeled_per_step} labeled + {plan.target_per_step} dusk-pool frames per step, AdamW poly "
        f"from {plan.arm_lr}.",
        f"- Dusk labels: {'%.2f' % (100 * target_fraction) if target_fraction is not None else '–'} % of the "
        "pool's pixels (random SLIC superpixels covering 5 % of the pixels, void excluded), exact ground truth "
        "inside; the same labels for every arm.",
        "- Consistency: EMA teacher (0.99) on the weak view; per-class confidence percentile (top 50 %) capped at "
        "0.97; RIPU negatives (< 0.05) elsewhere; student on colour-jitter/grayscale/blur + CutMix. Pixel "
        "contrastive: supervised InfoNCE on decoder features, 1×1-conv head + L2, τ 0.07, 64 class-balanced "
        "pixels per image, weight 0.1.",
        "- Δ vs CE: against the cross-entropy arm with the same init and labels. Teacher: the EMA model of a "
        "consistency arm, evaluated the same way (the product ships the student); its pseudo-labels on the dusk "
        "pool (final class thresholds) scored against the pool's withheld ground truth.",
        "",
        "Stages:",
        "",
        _stage_table(plan, stages),
        "",
        "Arms (continuations of the bases):",
        "",
        _arm_table(groups),
        "",
        "Per-class IoU % on dusk val (mean over seeds):",
        "",
        _per_class_table(groups),
        "",
    ]
    findings = verdict(stages, groups)
    if findings:
        lines += ["Findings (computed from the table; Δ = dusk val mIoU points):", "",
                  *[f"- {line}" for line in findings], ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (minutes); does not write docs")
    parser.add_argument("--only", nargs="+", help="arms to run, as init/setting/objective")
    parser.add_argument("--seeds", type=int, default=1, help="continuation seeds per arm (the bases are shared)")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: report every arm and seed already computed (up to --seeds 10)")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--plan", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args)
    if not da.DATASET.exists():
        print(f"dataset not found: {da.DATASET}")
        return 1
    plan = QUICK if args.quick else FULL
    work = WORK / ("quick" if args.quick else "full")
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    arms_to_run = [tuple(a.split("/")) for a in args.only] if args.only else list(ARMS)

    # Stages run lazily in the arms' order, so the random-init arms (the defaults hinge on
    # them) are done before the SSL pretraining starts.
    stages: dict[str, dict | None] = {}

    def stage(name: str) -> dict | None:
        if name not in stages:
            needs = {"base-ssl": "ssl"}.get(name)
            stages[name] = spawn(plan, name, work, run=not args.report_only) \
                if needs is None or stage(needs) else None
        return stages[name]

    arms = []
    for seed in range(10 if args.report_only else args.seeds):
        for init, setting, objective in arms_to_run:
            if stage(f"base-{init}") is None:
                continue
            record = spawn(plan, f"{init}/{setting}/{objective}" + (f"/s{seed}" if seed else ""), work,
                           run=not args.report_only)
            if record is not None:
                arms.append(record)

    markdown = render(plan, {k: v for k, v in stages.items() if v}, arms, time.monotonic() - started, args.quick)
    print(markdown)
    (work / "report.md").write_text(markdown)
    if not args.quick and not args.no_write:
        print(f"wrote {report.write_section('label_efficiency', markdown)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
