"""What a fine-tuning round's options give per minute: the dataset suite's ``ours`` arm under each option.

Each option is one run of ``benchmarks/suite.py`` (the app's round step, from
the same cached round-0 model, the same seeds) with one change to the
round's recipe; this script then compares them from the suite's records:
the mIoU each option's rounds add over round 0, the CPU minutes a round
costs, and the gain per CPU minute.

    python benchmarks/round_options.py --dataset demo --seeds 3 --rounds 5 --steps-per-round 60
    python benchmarks/round_options.py --dataset demo --seeds 3 --rounds 5 --steps-per-round 60 --report-only
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import report, suite  # noqa: E402


def options(steps: int) -> dict[str, list[str]]:
    """Option name → the suite arguments that make it (each changes fine-tuning only, never round 0)."""
    # Measured while consistency was on by default: "--consistency on" keys these runs as they ran.
    on = ["--consistency", "on"]
    return {
        f"consistency on ({steps} steps)": ["--steps-per-round", str(steps), *on],
        f"no consistency ({steps} steps, the default now)": ["--steps-per-round", str(steps), *on, "--recipe",
                                                            "consistency=false"],
        f"half the steps ({steps // 2}, consistency on)": ["--steps-per-round", str(steps // 2), *on],
        f"twice the steps ({steps * 2}, consistency on)": ["--steps-per-round", str(steps * 2), *on],
    }


def suite_args(args: argparse.Namespace, extra: list[str]) -> list[str]:
    return ["--datasets", args.dataset, "--arms", "ours", "--seeds", str(args.seeds), "--rounds", str(args.rounds),
            "--steps-initial", str(args.steps_initial), "--round-minutes", "0", "--threads", str(args.threads),
            "--records", str(args.records), "--no-write", "--promotion", args.promotion, "--train-pixels", str(args.train_pixels), *extra]


def settings_key(args: argparse.Namespace, extra: list[str]) -> str:
    """The suite's record key of an option: from the very arguments the suite runs with."""
    return suite.settings_of(suite.parse_args(suite_args(args, extra) + ["--report-only"])).key(args.dataset)


def summary(records: list) -> dict[str, float] | None:
    """Per seed: the serving model's mIoU after the last round minus round 0's, and CPU seconds per round."""
    seeds = sorted({r.seed for r in records})
    if not seeds:
        return None
    gains, cpu, last = [], [], max(r.round for r in records)
    for seed in seeds:
        rows = {r.round: r for r in records if r.seed == seed}
        if 0 not in rows or last not in rows:
            continue
        gains.append(rows[last].miou - rows[0].miou)
        cpu += [r.cpu_seconds for r in rows.values() if r.round > 0]
    if not gains:
        return None
    cpu_per_round = float(np.mean(cpu)) / 60
    return {"seeds": len(gains), "rounds": last, "gain": float(np.mean(gains)), "gain_sd": float(np.std(gains)),
            "cpu_min": cpu_per_round, "per_minute": float(np.mean(gains)) / (cpu_per_round * last)}


def render(args: argparse.Namespace, table: dict[str, dict | None]) -> str:
    rows = [[name, s["seeds"], f"{100 * s['gain']:+.1f} ± {100 * s['gain_sd']:.1f}", f"{s['cpu_min']:.2f}",
             f"{100 * s['per_minute']:+.2f}"] for name, s in table.items() if s]
    return "\n".join([
        f"## Round options per CPU minute: {args.dataset}", "",
        f"Machine: {report.machine_description()}. Command: `python benchmarks/round_options.py --dataset "
        f"{args.dataset} --seeds {args.seeds} --rounds {args.rounds} --steps-per-round {args.steps_per_round} "
        f"--steps-initial {args.steps_initial}`. Each option runs the suite's `ours` arm (the app's round step, 1 % of "
        f"the pool's pixels a round) for {args.rounds} rounds from the same cached round-0 model and seeds, changing "
        "only how a round fine-tunes; records in benchmarks/results/suite.jsonl.", "",
        report.markdown_table(["option", "seeds", f"mIoU added over round 0 after {args.rounds} rounds (mean ± std)",
                               "CPU min / round", "mIoU points per CPU minute"], rows),
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=[n for n in suite.datasets.NAMES], default="demo")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps-initial", type=int, default=300)
    parser.add_argument("--steps-per-round", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--records", type=Path, default=suite.RECORDS)
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--promotion", default=suite.current_promotion_rule(),
                        choices=(suite.current_promotion_rule(), suite.LEGACY_PROMOTION),
                        help="the keep-best rule whose records to render (see benchmarks/suite.py --promotion)")
    parser.add_argument("--train-pixels", type=int, default=0,
                        help="training-size cap (see benchmarks/suite.py --train-pixels; 0: the app's default)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)  # what the report's machine line states
    choices = options(args.steps_per_round)
    if not args.report_only:
        for extra in choices.values():
            suite.main(suite_args(args, extra))
    records = suite.load_records(args.records)
    table = {name: summary([r for r in records if r.key == settings_key(args, extra) and r.arm == "ours"])
             for name, extra in choices.items()}
    text = render(args, table)
    print(text)
    if not args.no_write:
        report.write_section(f"round_options_{args.dataset}", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
