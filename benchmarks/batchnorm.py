"""Target BatchNorm statistics: a round-0 model as trained against the same weights normalised with the pool's.

A model trained on source and target batches keeps running BatchNorm
statistics of both domains, while each training batch was normalised with
its own. Re-estimated on the unlabeled target pool (AdaBN), the statistics
match how target images were normalised in training, or they do not: which
one holds differs by dataset, so the app's recipe leaves it to the target
validation labels (``TrainConfig.target_statistics = "auto"``).

For each dataset and seed, the suite's round-0 model as trained (the app's
round 0 with the statistics left as they are, cached under var/bench/suite/)
is scored on the target validation split as trained and with the pool's
statistics, both through the app's functions
(``learning.adaptation.batchnorm.with_target_statistics`` on
``statistics_images``); the "auto keeps" column is the choice the app's
``learning.train.settle_statistics`` makes for that model.

    python benchmarks/batchnorm.py --datasets camvid polyp demo
    python benchmarks/batchnorm.py --report-only     # re-render docs/BENCHMARKS.md from the records

Finished runs are appended to benchmarks/results/batchnorm.jsonl (tracked).
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

RECORDS = ROOT / "benchmarks" / "results" / "batchnorm.jsonl"
# Round 0 as the suite's main sections ran it: (steps_initial, steps_per_round, round_minutes) per dataset.
ROUND0 = {"camvid": (600, None, None), "polyp": (600, None, None), "demo": (300, 60, 0.0)}


@dataclass
class BatchNormRecord:
    dataset: str
    seed: int
    steps_initial: int
    train_pixels: int
    steps: int  # round 0's steps
    miou: float  # target validation, as trained
    iou: list
    precision: list
    target_miou: float  # the same weights with the pool's statistics
    target_iou: list
    target_precision: list
    chosen: str  # what settle_statistics ("auto") keeps
    reason: str
    images: int  # pool images the statistics came from
    seconds: float  # re-estimating the statistics
    machine: str
    # The same two models on the target pool against its full labels (images round 0 saw unlabeled, never scored
    # by the choice): whether what the validation split says holds on other target images.
    pool_miou: float | None = None
    target_pool_miou: float | None = None


def run(sim, name: str, seed: int) -> BatchNormRecord:
    import torch

    from learning.adaptation.batchnorm import statistics_images, with_target_statistics
    from learning.device import numerics_for
    from learning.train import settle_statistics

    base = sim.base(seed)
    config = base.config
    model = sim.model(base.result.state_dict, config)
    _, pool = sim.samples({})
    numerics, device = numerics_for(torch.device("cpu"), config.precision), torch.device("cpu")
    started = time.perf_counter()
    adapted = with_target_statistics(model, statistics_images(pool, seed=config.seed), size=config.size,
                                     numerics=numerics, batch_size=config.batch_size)
    seconds = time.perf_counter() - started
    _, _, choice = settle_statistics(model, replace(config, target_statistics="auto"), unlabeled=pool,
                                     val=sim.data.val, numerics=numerics, device=device)
    before, after = sim.evaluate(model, config), sim.evaluate(adapted, config)

    def floats(values):
        return [None if v is None else float(v) for v in values]

    return BatchNormRecord(name, seed, ROUND0[name][0], config.size[0] * config.size[1], int(base.result.steps),
                           float(before[0]), floats(before[1]), floats(before[3]), float(after[0]),
                           floats(after[1]), floats(after[3]), choice.chosen, choice.reason, choice.images,
                           round(seconds, 2), report.machine_description(),
                           float(sim.evaluate_pool(model, config)), float(sim.evaluate_pool(adapted, config)))


def load_records(path: Path) -> list[BatchNormRecord]:
    return report.read_records(path, BatchNormRecord)


def _lowest(values: list, names: list[str]) -> str:
    present = [(v, i) for i, v in enumerate(values) if v is not None]
    if not present:
        return "–"
    value, index = min(present)
    return f"{100 * value:.1f} ({names[index] if index < len(names) else index})"


def _pair(before: float | None, after: float | None) -> str:
    if before is None or after is None:
        return "–"
    return f"{100 * before:.1f} → {100 * after:.1f}"


def render(records: list[BatchNormRecord]) -> str:
    machines = sorted({r.machine for r in records})
    lines = [
        "## Target BatchNorm statistics (round 0 on every dataset)",
        "",
        f"Machine: {'; '.join(machines) or report.machine_description()}. Command: `python benchmarks/batchnorm.py` "
        "(records in benchmarks/results/batchnorm.jsonl; `--report-only` re-renders).",
        "",
        "The suite's round-0 model of each seed (the app's round 0 with its statistics as trained: DeepLabV3-"
        "MobileNetV3 from random initialisation, output-space adversarial adaptation on the pool), scored on the "
        "target validation split at the images' own resolution as trained and with BatchNorm statistics "
        "re-estimated on the unlabeled target pool (`learning.adaptation.batchnorm`: one pass, no augmentation, at "
        "most 256 images). *Auto keeps*: what the app's default (`TrainConfig.target_statistics = \"auto\"`, "
        "`learning.train.settle_statistics`) keeps for that model: the variant that scores higher on the target "
        "validation labels (at the training size); without such labels, the model as trained. *Lowest precision*: "
        "of the classes predicted anywhere (— a class never predicted has none). *Pool mIoU*: the same two models "
        "on the target pool against its full labels, images the choice never scored (round 0 saw them unlabeled): "
        "whether what the small validation split says holds on other target images.",
    ]
    table = []
    for name in datasets.NAMES:
        rows = [r for r in records if r.dataset == name]
        if not rows:
            continue
        classes = datasets.load(name).class_names if datasets.available(name) else []
        for r in sorted(rows, key=lambda r: (r.seed, r.machine)):
            table.append([
                name, r.seed, r.machine.split(",")[0], r.steps, f"{100 * r.miou:.1f}", f"{100 * r.target_miou:.1f}",
                f"{100 * (r.target_miou - r.miou):+.1f}", f"{_lowest(r.iou, classes)} → {_lowest(r.target_iou, classes)}",
                f"{_lowest(r.precision, classes)} → {_lowest(r.target_precision, classes)}",
                {"target": "pool's statistics", "training": "as trained"}[r.chosen], _pair(r.pool_miou, r.target_pool_miou),
                f"{r.seconds:.1f}",
            ])
        deltas = [100 * (r.target_miou - r.miou) for r in rows]
        if len(rows) > 1:
            table.append([name, "mean", "", "", f"{100 * np.mean([r.miou for r in rows]):.1f}",
                          f"{100 * np.mean([r.target_miou for r in rows]):.1f}",
                          f"{np.mean(deltas):+.1f} ± {np.std(deltas):.1f}", "", "", "", "", ""])
    lines += ["", report.markdown_table(
        ["dataset", "seed", "machine", "round-0 steps", "mIoU as trained", "with the pool's statistics", "Δ",
         "worst class IoU (as trained → pool's)", "lowest precision (as trained → pool's)", "auto keeps",
         "pool mIoU (as trained → pool's)", "re-estimation s"], table)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", choices=datasets.NAMES, default=list(datasets.NAMES))
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--first-seed", type=int, default=0)
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

        machine = report.machine_description()
        for name in args.datasets:
            if not datasets.available(name):
                print(f"{name}: dataset not found, skipped")
                continue
            steps_initial, steps_per_round, round_minutes = ROUND0[name]
            # The statistics as trained ("off"): the model the choice starts from.
            settings = SuiteSettings(rounds=1, steps_initial=steps_initial, steps_per_round=steps_per_round,
                                     round_minutes=round_minutes, promotion=current_promotion_rule(),
                                     train_pixels=default_max_train_pixels(), consistency=False,
                                     target_statistics="off")
            # Round 0 is not bit-identical across CPUs: another machine's seed is another sample, run again here.
            done = {r.seed for r in load_records(path) if r.dataset == name and r.machine == machine
                    and r.steps_initial == steps_initial}
            sim = None
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                if seed in done:
                    continue
                sim = sim or Simulation(name, settings)
                record = run(sim, name, seed)
                report.append_record(path, asdict(record))
                print(f"{name} seed {seed}: mIoU {100 * record.miou:.1f} as trained, {100 * record.target_miou:.1f} "
                      f"with the pool's statistics; auto keeps {record.chosen}", flush=True)
    markdown = render(load_records(path))
    print(markdown)
    if not args.no_write:
        report.write_section("batchnorm", markdown)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    raise SystemExit(main())
