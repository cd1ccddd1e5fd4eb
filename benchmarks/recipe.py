"""Training recipe: which loss and class weighting make round 0 useful on every dataset?

For each dataset (benchmarks/datasets.py) and each recipe arm, round 0 is
trained exactly as the app trains it: ``learning.recipe.round_train_config``
with the app's defaults (architecture, steps, learning rate, size from the
images, output-space adversarial adaptation on the unlabeled target pool),
changing only the loss: plain cross-entropy, ENet or square-root class
weights, or cross-entropy + soft Dice (the default); and optionally the
training resolution within a fixed time budget. Each model is scored on
the dataset's target validation split: mIoU, every class's IoU, and every
class's *precision* (of the pixels predicted as the class, the share that
is that class) next to how much of the image it paints against the truth:
a class that floods the image shows a low precision and a painted share far
above the true one.

    python benchmarks/recipe.py --datasets polyp demo --threads 1
    python benchmarks/recipe.py --datasets polyp --arms ce_dice --minutes 20 --steps 5000 \
        --max-train-pixels 76800 27648      # resolution against steps within the same 20 minutes
    python benchmarks/recipe.py --report-only          # re-render docs/BENCHMARKS.md from the records

Finished runs are appended to benchmarks/results/recipe.jsonl (tracked).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import datasets, report  # noqa: E402

RECORDS = ROOT / "benchmarks" / "results" / "recipe.jsonl"
ARMS = {  # name: (class_weighting, dice_weight, label)
    "ce": ("none", 0.0, "cross-entropy"),
    "ce_enet": ("enet", 0.0, "cross-entropy, ENet class weights"),
    "ce_sqrt": ("sqrt", 0.0, "cross-entropy, square-root class weights (cap 5)"),
    "ce_dice": ("none", 1.0, "cross-entropy + soft Dice (default)"),
}


@dataclass
class RecipeRecord:
    dataset: str
    arm: str
    seed: int
    steps: int
    size: list
    miou: float
    per_class_iou: list
    per_class_precision: list
    painted_share: list  # share of validation pixels predicted as each class
    true_share: list  # share of validation pixels that are each class
    train_seconds: float
    cpu_seconds: float
    max_train_pixels: int = 240 * 320  # the size cap round 0 trained under (learning.recipe.auto_train_size)
    minutes: float = 0.0  # round 0's time budget (0: every planned step)
    machine: str = ""  # report.machine_description() of the machine that ran it
    train_overrides: dict = field(default_factory=dict)  # TrainConfig fields set by --train (none: the app's)


def confusion(model, val, size, num_classes: int) -> np.ndarray:
    from learning.promotion import image_confusions
    from learning.round_step import validation_predictions

    calibration = validation_predictions(model, val, size=size)
    return image_confusions([p for p, _ in calibration.predictions], calibration.truths, num_classes).sum(0)


def parse_train_overrides(items: list[str]) -> dict:
    """``NAME=VALUE`` pairs naming TrainConfig fields (learning/train.py) of a plain type, typed as the field is."""
    from learning.train import TrainConfig

    return report.typed_overrides(TrainConfig, [item.partition("=")[::2] for item in items], "--train")


def run(name: str, arm: str, *, seed: int, steps: int | None, max_train_pixels: int | None = None,
        minutes: float = 0.0, train_overrides: dict | None = None) -> RecipeRecord:
    from learning.data import load_image
    from learning.models import build_model
    from learning.promotion import class_iou, miou_of
    from learning.recipe import RecipeSettings, round_train_config
    from learning.train import train

    data = datasets.load(name)
    weighting, dice, _ = ARMS[arm]
    settings = RecipeSettings(arch="deeplabv3_mobilenet_v3_large", num_classes=data.num_classes,
                              class_weighting=weighting, dice_weight=dice)
    if steps:
        settings = replace(settings, steps_initial=steps)
    if max_train_pixels:
        settings = replace(settings, max_train_pixels=max_train_pixels)
    settings = replace(settings, initial_minutes=minutes)
    sizes = [load_image(s.image).shape[:2] for s in data.pool[:50]]
    config = replace(round_train_config(settings, round_index=seed, warm_start=False, image_sizes=sizes),
                     **(train_overrides or {}))
    unlabeled = [replace(s, mask=None) for s in data.pool]
    cpu, started = time.process_time(), time.perf_counter()
    result = train(config, labeled=data.source, unlabeled=unlabeled)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    model = build_model(config.arch, config.num_classes)
    model.load_state_dict(result.state_dict)
    matrix = confusion(model.eval(), data.val, config.size, data.num_classes).astype(np.float64)
    tp, predicted, truth, total = np.diag(matrix), matrix.sum(0), matrix.sum(1), matrix.sum()
    return RecipeRecord(
        name, arm, seed, result.steps, list(config.size), miou_of(matrix), class_iou(matrix),
        [float(t / p) if p else None for t, p in zip(tp, predicted)], list(predicted / total), list(truth / total),
        round(seconds, 1), round(cpu_seconds, 1), settings.max_train_pixels, minutes, report.machine_description(),
        dict(train_overrides or {}))


def load_records(path: Path) -> list[RecipeRecord]:
    return report.read_records(path, RecipeRecord)


def render(records: list[RecipeRecord]) -> str:
    lines = [
        "## Training recipe (round 0 on every dataset)",
        "",
        f"Machines: {'; '.join(sorted({r.machine for r in records if r.machine}) or [report.machine_description()])} "
        "(each row says which; runs with a time budget compare only with rows of the same machine). "
        "Command: `python benchmarks/recipe.py` "
        "(records in benchmarks/results/recipe.jsonl; `--report-only` re-renders).",
        "",
        "Round 0 trained as the app trains it (`learning.recipe.round_train_config`: DeepLabV3-MobileNetV3 from "
        "random initialisation, the app's step count and learning rate, size from the images, output-space "
        "adversarial adaptation on the unlabeled target pool); the loss differs, and where a row says so the "
        "training size (`--max-train-pixels`: lower resolution, more steps a minute) and round 0's time budget "
        "(`--minutes`: the steps that fit, the schedule rescaled to them), or a TrainConfig field named in the "
        "recipe column (`--train`, e.g. adversarial = False). Scored on each dataset's "
        "target validation split. *Precision* of a class: of the pixels predicted as it, the share that are it; "
        "*painted / true*: its share of the predicted pixels against its share of the truth (far above 1: the "
        "class floods the image).",
    ]
    for name in datasets.NAMES:
        rows = [r for r in records if r.dataset == name]
        if not rows:
            continue
        data_classes = datasets.load(name).class_names if datasets.available(name) else []
        lines += ["", f"### {name}", "",
                  report.markdown_table(
                      ["recipe", "train size", "budget", "seeds", "mIoU", "worst class IoU", "lowest precision (class)",
                       "most flooded class (painted / true)", "steps", "CPU min / run", "machine"],
                      [_row(variant, group, data_classes) for variant, group in variants(rows).items()])]
    return "\n".join(lines)


def variant_of(record: RecipeRecord) -> tuple:
    """What a run compares: the loss arm, the training size, and its budget (minutes, or planned steps)."""
    return (record.arm, tuple(record.size), record.minutes, None if record.minutes else record.steps, record.machine,
            tuple(sorted(record.train_overrides.items())))


def variants(rows: list[RecipeRecord]) -> dict[tuple, list[RecipeRecord]]:
    order = list(ARMS)
    out: dict[tuple, list[RecipeRecord]] = {}
    for record in sorted(rows, key=lambda r: (order.index(r.arm), -r.size[0] * r.size[1], r.minutes,
                                              sorted(r.train_overrides.items()))):
        out.setdefault(variant_of(record), []).append(record)
    return out


def _row(variant: tuple, runs: list[RecipeRecord], classes: list[str]) -> list:
    def name(i: int) -> str:
        return classes[i] if i < len(classes) else str(i)

    miou = [r.miou for r in runs]
    iou = np.array([[v if v is not None else np.nan for v in r.per_class_iou] for r in runs]).mean(0)
    precision = np.array([[v if v is not None else np.nan for v in r.per_class_precision] for r in runs]).mean(0)
    ratio = np.array([[p / t if t else np.nan for p, t in zip(r.painted_share, r.true_share)] for r in runs]).mean(0)
    worst, low, flood = int(np.nanargmin(iou)), int(np.nanargmin(precision)), int(np.nanargmax(ratio))
    spread = f" ± {np.std(miou):.1f}" if len(miou) > 1 else ""
    arm, size, minutes, _, machine, overrides = variant
    steps = [r.steps for r in runs]
    changed = "".join(f", {k} = {v}" for k, v in overrides)
    return [ARMS[arm][2] + changed, f"{size[0]}×{size[1]}", f"{minutes:g} min" if minutes else "every step", len(runs),
            f"{100 * np.mean(miou):.1f}{spread}", f"{100 * iou[worst]:.1f} ({name(worst)})",
            f"{100 * precision[low]:.1f} ({name(low)})", f"{ratio[flood]:.2f} ({name(flood)})",
            steps[0] if len(set(steps)) == 1 else f"{min(steps)}–{max(steps)}",
            f"{np.mean([r.cpu_seconds for r in runs]) / 60:.1f}", machine.split(",")[0] or "–"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", choices=datasets.NAMES, default=list(datasets.NAMES))
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS))
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--steps", type=int, help="round-0 steps (default: the app's)")
    parser.add_argument("--max-train-pixels", type=int, nargs="+", default=[0], metavar="PIXELS",
                        help="round 0's training-size caps to compare (learning.recipe.auto_train_size; 0: the app's for "
                             "this machine's device)")
    parser.add_argument("--minutes", type=float, default=0.0,
                        help="round 0's time budget (the recipe's initial_minutes; 0: every planned step); with it, "
                             "give --steps large enough that the budget, not the count, ends training")
    parser.add_argument("--train", nargs="*", default=[], metavar="NAME=VALUE",
                        help="TrainConfig overrides of round 0 (learning/train.py), e.g. lr=0.002 adversarial=false")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--records", default=str(RECORDS))
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="do not rewrite docs/BENCHMARKS.md")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    path = Path(args.records)
    if not args.report_only:
        from learning.recipe import default_max_train_pixels

        overrides = parse_train_overrides(args.train)
        machine = report.machine_description()
        # A run with a time budget repeats on another machine: its steps, and so its result, depend on the machine.
        done = {(r.dataset, r.arm, r.seed, r.steps, r.max_train_pixels, r.minutes, tuple(sorted(r.train_overrides.items())))
                for r in load_records(path) if not r.minutes or r.machine == machine}
        for name in args.datasets:
            if not datasets.available(name):
                print(f"{name}: dataset not found, skipped")
                continue
            for seed in range(args.seeds):
                for arm, pixels in [(a, p or default_max_train_pixels()) for p in args.max_train_pixels for a in args.arms]:
                    if any(d[:3] == (name, arm, seed) and d[4:] == (pixels, args.minutes, tuple(sorted(overrides.items())))
                           and (args.steps is None or args.minutes or d[3] == args.steps) for d in done):
                        continue
                    record = run(name, arm, seed=seed, steps=args.steps, max_train_pixels=pixels,
                                 minutes=args.minutes, train_overrides=overrides)
                    report.append_record(path, asdict(record))
                    print(f"{name} {arm} seed {seed}: mIoU {100 * record.miou:.1f}, IoU "
                          f"{[round(100 * v, 1) if v is not None else None for v in record.per_class_iou]}, "
                          f"precision {[round(100 * v, 1) if v is not None else None for v in record.per_class_precision]}, "
                          f"{record.train_seconds:.0f} s", flush=True)
    markdown = render(load_records(path))
    print(markdown)
    if not args.no_write:
        report.write_section("recipe", markdown)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    raise SystemExit(main())
