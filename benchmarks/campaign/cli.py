"""Command line: flags → CampaignConfig → run_campaign; prints the markdown report."""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import benchmarks.campaign
from benchmarks.campaign.base_model import find_da_base
from benchmarks.campaign.config import DATASET, CampaignConfig, default_arms, quick_config, with_regime_outputs
from benchmarks.campaign.runner import run_campaign

BASE_POLL_SECONDS = 300


def parse_config(argv: list[str] | None = None) -> tuple[CampaignConfig, float]:
    """The campaign's settings from the flags, and how many hours to wait for the domain-adaptation base."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.campaign",
                                     description=benchmarks.campaign.__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny synthetic campaign (~1 min); writes no docs")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--seeds", type=int)
    parser.add_argument("--arms", nargs="+", choices=sorted(default_arms(1, 1)))
    parser.add_argument("--steps", type=int, dest="steps_per_round", help="fine-tuning steps per round")
    parser.add_argument("--region-percent", type=float)
    parser.add_argument("--images-per-round", type=int)
    parser.add_argument("--oracle", choices=["exact", "dominant"])
    parser.add_argument("--base", help="checkpoint directory of the round-0 model")
    parser.add_argument("--wait-for-base", type=float, default=0.0, metavar="HOURS",
                        help="poll this long for benchmarks/domain_adaptation.py's base before training our own")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--no-throughput", action="store_true")
    parser.add_argument("--no-full", action="store_true", help="skip the full dusk supervision reference")
    parser.add_argument("--no-frames-only", action="store_true",
                        help="skip the reference that trains on the dusk frames without any label")
    parser.add_argument("--work", help="folder for the cached base and report (default var/bench/campaign/…)")
    parser.add_argument("--records", help="finished campaigns, JSON lines (default benchmarks/results/campaign.jsonl, "
                                          "tracked; point experiments elsewhere)")
    parser.add_argument("--no-write", action="store_true", help="do not touch docs/")
    parser.add_argument("--report-only", action="store_true",
                        help="table, plot and docs from the finished campaigns in --work (e.g. after parallel runs "
                             "with different --arms); trains nothing")
    args = parser.parse_args(argv)
    overrides = {k: getattr(args, k) for k in ("rounds", "seeds", "steps_per_round", "region_percent",
                                                "images_per_round", "oracle", "base", "threads")
                 if getattr(args, k) is not None}
    if args.arms:
        overrides["arms"] = tuple(args.arms)
    if args.no_throughput:
        overrides["throughput"] = False
    if args.report_only:
        overrides.update(report_only=True, throughput=False)
    references = tuple(n for n, skip in (("full", args.no_full), ("frames_only", args.no_frames_only)) if not skip)
    if references != CampaignConfig.references:
        overrides["references"] = references
    if args.work:
        overrides["work"] = args.work
    if args.records:
        overrides["records"] = args.records
    config = quick_config(**overrides) if args.quick else with_regime_outputs(replace(CampaignConfig(), **overrides))
    if args.no_write:
        config = replace(config, write_docs=False, png=str(Path(config.work) / "campaign.png"))
    return config, args.wait_for_base


def wait_for_base(config: CampaignConfig, hours: float) -> None:
    """Poll for benchmarks/domain_adaptation.py's base checkpoint (it may still be training in another process)."""
    names = [c["name"] for c in json.loads((DATASET / "classes.json").read_text())["classes"]]
    deadline = time.monotonic() + 3600 * hours
    while find_da_base(config, names) is None and time.monotonic() < deadline:
        print(f"[{time.strftime('%H:%M:%S')}] waiting for the domain-adaptation base checkpoint…", flush=True)
        time.sleep(BASE_POLL_SECONDS)


def main(argv: list[str] | None = None) -> int:
    config, wait_hours = parse_config(argv)
    if not config.quick and not DATASET.exists():
        print(f"dataset not found: {DATASET}")
        return 1
    if not config.quick and not config.base and wait_hours > 0:
        wait_for_base(config, wait_hours)

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    _, markdown = run_campaign(config, log=log)
    print(markdown)
    return 0
