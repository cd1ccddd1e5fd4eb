"""Run every arm and seed (resuming finished ones from the records), then publish the table, plot and docs."""
from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import report
from benchmarks.campaign.base_model import base_state, model_from_state
from benchmarks.campaign.config import REFERENCES, RUN_ORDER, CampaignConfig, default_arms, regime_title
from benchmarks.campaign.data import CampaignData, camvid_data, synthetic_data
from benchmarks.campaign.records import RoundRecord, config_key, load_done, save, state_fingerprint
from benchmarks.campaign.render import plot, render
from benchmarks.campaign.simulation import evaluate_val, run_arm, run_reference
from benchmarks.campaign.throughput import scoring_throughput


def run_campaign(config: CampaignConfig, *, data: CampaignData | None = None,
                 log: Callable[[str], None] = print) -> tuple[list[RoundRecord], str]:
    """Run every arm and seed; returns the per-round records and the markdown report (also written to work/)."""
    import torch

    from learning.suggestions import background_classes_of

    torch.set_num_threads(config.threads)
    wall, cpu = time.perf_counter(), time.process_time()
    data = data or (synthetic_data(config) if config.quick else camvid_data(config))
    all_arms = default_arms(config.region_percent, config.images_per_round)
    run_order = tuple(config.arms or RUN_ORDER)
    arms = {n: arm for n, arm in all_arms.items() if n in run_order}  # table and plot order
    work = Path(config.work)
    work.mkdir(parents=True, exist_ok=True)
    base, base_source = base_state(config, data, log)
    log(f"round 0 model: {base_source}")
    base_eval = evaluate_val(config, data, model_from_state(config, data.num_classes, base))
    log(f"round 0 dusk val mIoU {100 * base_eval.miou:.1f}")
    background = background_classes_of(data.training_masks({}), data.num_classes)
    info = {"base": base_source, "base_miou": base_eval.miou, "command": report.command_line(),
            "machine": report.machine_description(), "background": [data.class_names[c] for c in background]}
    measured = work / "throughput.json"
    if config.throughput:
        info["throughput"] = scoring_throughput(config, data, base)
        measured.write_text(json.dumps(info["throughput"]))
        log(f"scoring throughput: {info['throughput']}")
    elif config.report_only and measured.exists():
        info["throughput"] = json.loads(measured.read_text())

    records: list[RoundRecord] = []
    results_path = Path(config.records) if config.records else work / "records.jsonl"
    results_path.parent.mkdir(parents=True, exist_ok=True)
    key = config_key(config, state_fingerprint(base))
    done = load_done(results_path, key)
    resumed = sum(r.cpu_seconds for recs in done.values() for r in recs)

    def publish() -> str:
        """Table, plot and docs from what has finished so far: a stopped run still leaves real numbers."""
        info["wall_seconds"] = time.perf_counter() - wall
        info["cpu_seconds"] = time.process_time() - cpu + resumed  # resumed campaigns count their recorded CPU
        title = ("Synthetic smoke run" if config.quick else f"CamVid day→dusk{regime_title(config)}") + \
            ": mIoU vs labeled pixels (mean ± std over seeds)"
        plot(records, arms, Path(config.png), title)
        markdown = render(config, data, arms, records, info)
        (work / "report.md").write_text(markdown)
        if config.write_docs:
            report.write_section(config.section, markdown)
        return markdown

    with tempfile.TemporaryDirectory(dir=work) as cache_root:
        for seed in range(config.seeds):
            # The references are needed for the main verdicts: first in seed 0, last in later seeds.
            references = [n for n in config.references if n in REFERENCES]
            jobs = references + list(run_order) if seed == 0 else list(run_order) + references
            for name in jobs:
                if config.report_only and (name, seed) not in done:
                    continue
                if name in REFERENCES:
                    records += done.get((name, seed)) or save(
                        results_path, key, run_reference(config, data, name, seed, base, base_eval, log))
                else:
                    records += done.get((name, seed)) or save(
                        results_path, key, run_arm(config, data, arms[name], seed, base, base_eval,
                                                   Path(cache_root), log))
                if not config.quick:
                    publish()
    return records, publish()
