"""Fine-tuning objectives: what one fine-tuning round does to the model it starts from.

From a dataset's round-0 model (the suite's, cached under var/bench/suite/),
one fine-tuning round runs exactly as the app runs it
(``learning.round_step.train_round_model`` via the suite's ``Simulation``:
the recipe, the warm start, the app's steps and time budget) with either
**no target labels** (the labeled source and the unlabeled pool only) or
**every pool label** (the ceiling's labels), under recipe variants that
change only the fine-tuning: mean-teacher consistency on or off, output-space
adversarial adaptation on or off, the fine-tuning learning rate, training the
head alone. Each round's
model is scored on the target validation split against the round-0 model it
started from (keep-best is not applied: the candidate itself is scored).

A recipe that drops the model with no new labels, or cannot lift it with every
label, is what the suite's fine-tuning rounds then inherit.

    python benchmarks/finetune.py --datasets polyp --variants default consistency --labels none full
    python benchmarks/finetune.py --report-only     # re-render docs/BENCHMARKS.md from the records

Finished runs are appended to benchmarks/results/finetune.jsonl (tracked).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import datasets, report  # noqa: E402

RECORDS = ROOT / "benchmarks" / "results" / "finetune.jsonl"
VARIANTS = {  # name: (RecipeSettings fields of the fine-tuning round, label)
    "default": ({}, "the app's recipe (no consistency, adversarial on, lr 3e-4)"),
    "consistency": ({"consistency": True}, "+ mean-teacher consistency (the default before)"),
    "no_adversarial": ({"adversarial": False}, "no adversarial adaptation"),
    "consistency_no_adversarial": ({"consistency": True, "adversarial": False},
                                   "+ consistency, no adversarial adaptation"),
    "lr1e4": ({"finetune_lr": 1e-4}, "fine-tuning learning rate 1e-4"),
    "warmup": ({"finetune_warmup": 0.1}, "learning rate warmed up over the first 10 % of steps"),
    "head_only": ({"finetune_head_only": True}, "head only (backbone and its BatchNorm frozen)"),
    "head_only_more": ({"finetune_head_only": True, "steps_per_round": 600},
                       "head only, 600 planned steps (within the round budget)"),
    # Over the round's budget on purpose: does a round that ran twice as long learn more?
    "steps400": ({"steps_per_round": 400, "round_minutes": 0.0}, "400 steps, no time budget (the app's default since the suite's steps400 runs, 200 before)"),
    "steps400_lr1e3": ({"steps_per_round": 400, "round_minutes": 0.0, "finetune_lr": 1e-3},
                       "400 steps, no time budget, learning rate 1e-3"),
}
LABELS = {"none": "none (source only)", "full": "every pool label"}


@dataclass
class FinetuneRecord:
    dataset: str
    seed: int
    variant: str
    labels: str  # "none" | "full"
    steps_initial: int
    train_pixels: int
    base_steps: int
    base_miou: float
    base_iou: list
    miou: float
    iou: list
    precision: list
    steps: int
    train_seconds: float
    cpu_seconds: float
    machine: str
    # mIoU of the candidate on the pool images it was given every label of ("full"): how well the round fits its
    # own training labels (far below 100: the round underfits, more or better steps would pay). None: not measured.
    pool_miou: float | None = None


def run(sim, name: str, seed: int, variant: str, labels: str, steps_initial: int) -> FinetuneRecord:
    base = sim.base(seed)  # with the suite's recipe: only the fine-tuning changes
    before = sim.evaluate(sim.model(base.result.state_dict, base.config), base.config)
    cpu, started = time.process_time(), time.perf_counter()
    trained = sim.train(dict(sim.truth) if labels == "full" else {}, round_index=1, seed=seed,
                        init_state=base.result.state_dict, current_state=base.result.state_dict,
                        recipe=replace(sim.recipe, **VARIANTS[variant][0]))
    cpu_seconds, seconds = time.process_time() - cpu, time.perf_counter() - started
    after_model = sim.model(trained.result.state_dict, trained.config)
    after = sim.evaluate(after_model, trained.config)
    pool_miou = sim.evaluate_pool(after_model, trained.config) if labels == "full" else None
    return FinetuneRecord(
        name, seed, variant, labels, steps_initial, sim.recipe.max_train_pixels, base.result.steps, before[0],
        list(before[1]), after[0], list(after[1]), [p if p is None else float(p) for p in after[3]],
        trained.result.steps, round(seconds, 1), round(cpu_seconds, 1), report.machine_description(), pool_miou)


def load_records(path: Path) -> list[FinetuneRecord]:
    return report.read_records(path, FinetuneRecord)


def render(records: list[FinetuneRecord]) -> str:
    machines = sorted({r.machine for r in records})
    lines = [
        "## Fine-tuning objectives: one round from the round-0 model",
        "",
        f"Machine: {'; '.join(machines) or report.machine_description()}. Command: `python benchmarks/finetune.py` "
        "(records in benchmarks/results/finetune.jsonl; `--report-only` re-renders).",
        "",
        "From the suite's round-0 model of each seed (the app's round 0, cached), one fine-tuning round as the app "
        "runs it (`learning.round_step.train_round_model`: warm start, the app's steps and budget), changing only the "
        "fine-tuning recipe, with no target labels or with every label of the target pool. The candidate itself is "
        "scored on the target validation split (keep-best would refuse a worse one). Δ: after − before, mIoU points. "
        "Rows that say *no time budget* run past the app's round budget on purpose, to ask whether a longer round "
        "would learn more. *Pool mIoU after*: the candidate scored on the very pool images whose every label it "
        "trained on (far below 100: the round underfits its labels). *Runs*: seed × machine (round 0 is not "
        "bit-identical across CPUs, so another machine's run of a seed is another sample).",
    ]
    for name in datasets.NAMES:
        rows = [r for r in records if r.dataset == name]
        if not rows:
            continue
        classes = datasets.load(name).class_names if datasets.available(name) else []
        rare = report.lowest_mean_class([r.base_iou for r in rows])  # the rarest class by round 0's IoU
        rare_name = classes[rare] if rare < len(classes) else str(rare)
        table = []
        for variant in VARIANTS:
            for labels in LABELS:
                group = [r for r in rows if r.variant == variant and r.labels == labels]
                if not group:
                    continue
                delta = [100 * (r.miou - r.base_miou) for r in group]
                spread = f" ± {np.std(delta):.1f}" if len(group) > 1 else ""
                precision = [r.precision[rare] for r in group if r.precision[rare] is not None]
                fits = [r.pool_miou for r in group if r.pool_miou is not None]
                table.append([
                    VARIANTS[variant][1], LABELS[labels], len(group),
                    f"{100 * np.mean([r.base_miou for r in group]):.1f}", f"{100 * np.mean([r.miou for r in group]):.1f}",
                    f"{np.mean(delta):+.1f}{spread}",
                    f"{100 * np.mean([r.base_iou[rare] for r in group]):.1f} → "
                    f"{100 * np.mean([r.iou[rare] or 0.0 for r in group]):.1f}",
                    report.percent(float(np.mean(precision)) if precision else None),
                    f"{100 * np.mean(fits):.1f}" if fits else "–",
                    "/".join(sorted({str(r.steps) for r in group})),
                    f"{np.mean([r.cpu_seconds for r in group]) / 60:.1f}",
                ])
        base_steps = "/".join(str(n) for n in sorted({r.base_steps for r in rows}))
        runs = "; ".join(f"seed {seed} on {machine.split(',')[0]}" for seed, machine in sorted({(r.seed, r.machine)
                                                                                              for r in rows}))
        lines += ["", f"### {name}: from the round-0 model of {base_steps} steps (runs: {runs})", "",
                  report.markdown_table(
                      ["fine-tuning recipe", "target labels", "runs", "round-0 mIoU", "after the round", "Δ",
                       f"{rare_name} IoU before → after", f"{rare_name} precision after",
                       "pool mIoU after (fit to its labels)", "steps", "CPU min"], table)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", choices=datasets.NAMES, default=["polyp"])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--labels", nargs="+", choices=list(LABELS), default=list(LABELS))
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--steps-initial", type=int, default=600, help="round 0's steps (the suite's round-0 cache)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--records", default=str(RECORDS))
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="do not rewrite docs/BENCHMARKS.md")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    path = Path(args.records)
    if not args.report_only:
        from benchmarks.suite import Simulation, SuiteSettings, current_promotion_rule
        from learning.recipe import default_max_train_pixels

        settings = SuiteSettings(rounds=1, steps_initial=args.steps_initial, promotion=current_promotion_rule(),
                                 train_pixels=default_max_train_pixels(), consistency=False)
        machine = report.machine_description()
        for name in args.datasets:
            if not datasets.available(name):
                print(f"{name}: dataset not found, skipped")
                continue
            sim = None
            # Round 0 is not bit-identical across CPUs: another machine's seed is another sample, run again here.
            done = {(r.seed, r.variant, r.labels) for r in load_records(path) if r.dataset == name
                    and r.steps_initial == args.steps_initial and r.train_pixels == settings.train_pixels
                    and r.machine == machine}
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                for variant in args.variants:
                    for labels in args.labels:
                        if (seed, variant, labels) in done:
                            continue
                        sim = sim or Simulation(name, settings)
                        record = run(sim, name, seed, variant, labels, args.steps_initial)
                        report.append_record(path, asdict(record))
                        print(f"{name} seed {seed} {variant} labels {labels}: mIoU {100 * record.base_miou:.1f} → "
                              f"{100 * record.miou:.1f}, "
                              f"IoU {[None if v is None else round(100 * v, 1) for v in record.iou]}, "
                              f"{record.steps} steps, {record.train_seconds:.0f} s", flush=True)
    markdown = render(load_records(path))
    print(markdown)
    if not args.no_write:
        report.write_section("finetune", markdown)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    raise SystemExit(main())
