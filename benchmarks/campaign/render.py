"""The campaign's docs section (markdown) and its plot, from the records and what the run measured."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from benchmarks import report
from benchmarks.campaign.config import REFERENCES, ROOT, Arm, CampaignConfig, regime_title
from benchmarks.campaign.data import CampaignData
from benchmarks.campaign.records import RoundRecord
from benchmarks.campaign.verdicts import BUDGET_PERCENT, curve, round0_miou, round_means, target_verdicts


def plot(records: list[RoundRecord], arms: dict[str, Arm], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 5.2), dpi=110)
    for name, arm in arms.items():
        xs, ys, sd = curve(records, name)
        if not len(xs):
            continue
        ours = arm.strategy in ("region", "adaptive") and arm.uncertainty_weight in (None, 0.5)
        line, = ax.plot(xs, 100 * ys, marker="o", ms=3.5, lw=2.4 if ours else 1.3,
                        ls="-" if arm.unit == "region" else "--", label=arm.label)
        ax.fill_between(xs, 100 * (ys - sd), 100 * (ys + sd), color=line.get_color(), alpha=0.12)
    full = [r.miou for r in records if r.arm == "full" and r.round == max(x.round for x in records)]
    if full:
        ax.axhline(100 * np.mean(full), color="black", lw=1.2, label=f"full dusk supervision ({100 * np.mean(full):.1f})")
        ax.axhline(90 * np.mean(full), color="black", lw=0.8, ls=":", label="90 % of full supervision")
    # The references round by round, drawn where the region arms stand after as many rounds: the ceiling and
    # the no-label floor each round's selection works between (every arm trains the same steps per round).
    region_x = {n: float(np.mean([r.labeled_percent for r in records if r.round == n and r.arm in arms
                                  and arms[r.arm].unit == "region"]))
                for n in sorted({r.round for r in records if r.arm in arms and arms[r.arm].unit == "region"})}
    for name, style, text in (("full", "--", "full dusk supervision"), ("frames_only", "-.", "dusk frames, no labels")):
        per_round = {0: round0_miou(records), **round_means(records, name)}
        rounds = [n for n in sorted(per_round) if n in region_x]
        if len(rounds) > 1:
            ax.plot([region_x[n] for n in rounds], [100 * per_round[n] for n in rounds], color="black", lw=0.9,
                    ls=style, marker="x", ms=4, label=f"{text} after as many rounds")
    if max((r.labeled_percent for r in records if r.arm in arms), default=0.0) > BUDGET_PERCENT / 2:
        ax.axvline(BUDGET_PERCENT, color="grey", lw=0.6, ls=":")  # the target budget
    ax.set_xlabel("% of dusk pool pixels labeled")
    ax.set_ylabel("mIoU on dusk val (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # a partial run may have nothing to plot yet
        ax.legend(fontsize=7.5, loc="center left", bbox_to_anchor=(1.01, 0.5))  # outside: lines run everywhere
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def _budget(arm: Arm) -> str:
    if arm.budget_unit == "percent":
        return f"{arm.unit}, {arm.budget_amount:g} % of pixels"
    return f"{arm.unit}, {arm.budget_amount:g} {arm.budget_unit}"


def results_table(config: CampaignConfig, arms: dict[str, Arm], records: list[RoundRecord]) -> str:
    """mean ± std mIoU @ mean % labeled, per arm (then the references that ran) and round."""
    rounds = range(config.rounds + 1)
    rows = []
    present = [(n, None) for n in REFERENCES if any(r.arm == n for r in records)]
    for name, arm in list(arms.items()) + present:
        cells = []
        for n in rounds:
            here = [r for r in records if r.arm == name and r.round == n]
            if not here:
                cells.append("–")
                continue
            mean, std = np.mean([r.miou for r in here]), np.std([r.miou for r in here])
            cells.append(f"{report.percent(mean)} ± {report.percent(std)} @ "
                         f"{np.mean([r.labeled_percent for r in here]):.1f}%")
        label, budget = (arm.label, _budget(arm)) if arm else (REFERENCES[name].label, REFERENCES[name].budget)
        seeds = len({r.seed for r in records if r.arm == name})
        rows.append([label, budget, seeds, *cells])
    return report.markdown_table(["arm", "unit / budget per round", "seeds"] + [f"round {n}" for n in rounds], rows)


def suggestion_table(config: CampaignConfig, arms: dict[str, Arm], records: list[RoundRecord]) -> str:
    """Suggestion precision / coverage (%) per arm and round, mean over seeds."""
    rounds = range(1, config.rounds + 1)
    rows = []
    for name, arm in arms.items():
        cells = []
        for n in rounds:
            here = [r for r in records if r.arm == name and r.round == n and r.suggestion_precision is not None]
            cells.append(f"{report.percent(np.mean([r.suggestion_precision for r in here]))} / "
                         f"{report.percent(np.mean([r.suggestion_coverage for r in here]))}" if here else "–")
        rows.append([arm.label, *cells])
    return report.markdown_table(["arm"] + [f"round {n}: P / C %" for n in rounds], rows)


def _time_line(config: CampaignConfig, records: list[RoundRecord], info: dict) -> str:
    if config.report_only:
        summed = sum(r.select_seconds + r.train_seconds + r.eval_seconds for r in records)
        wall = ("- Rendered from finished campaigns (possibly run as parallel processes with different `--arms`): "
                f"{summed / 60:.0f} min of select + train + evaluate wall time summed over them")
    else:
        wall = f"- Wall time {info['wall_seconds'] / 60:.0f} min"
    return (wall + f", CPU time {info['cpu_seconds'] / 60:.0f} min (processes, all threads). "
            f"Date: {time.strftime('%Y-%m-%d %H:%M')}.")


def _throughput_lines(config: CampaignConfig, t: dict) -> list[str]:
    return [
        f"Scoring throughput on the {t['images']} pool images at {config.size[0]}×{config.size[1]} "
        f"(batch {config.batch_size}, median of {t.get('repeats', 3)} interleaved runs, images in memory; "
        f"benchmarks/scoring.py measures it alone): bare forward pass {t['bare']:.1f} img/s; "
        f"score_pool {t['score_pool']:.1f} img/s (**{t['score_pool'] / t['bare']:.2f}×** the bare pass by wall time, "
        f"{t['cpu_ratio']:.2f}× by CPU time; goal ≥ 0.8); "
        f"with flip-TTA {t['score_pool_tta']:.1f} img/s; from the on-disk cache {t['cached']:.0f} img/s.",
        "",
    ]


def render(config: CampaignConfig, data: CampaignData, arms: dict[str, Arm], records: list[RoundRecord],
           info: dict) -> str:
    from learning.suggestions import BACKGROUND_FALLBACK, FOREGROUND_FALLBACK

    adaptive = [r for r in records if r.arm == "adaptive" and r.seed == 0 and r.weight is not None]
    oracle = ("the GT pixels of each queried pixel, void stays void" if config.oracle == "exact"
              else "each queried superpixel gets its majority GT class")
    image_arms = ""
    if any(arm.unit == "image" for arm in arms.values()):
        image_arms = (f" Image arms: {config.images_per_round} whole image(s) per round"
                      + (f" for {config.image_rounds} rounds" if config.image_rounds else "") + ".")
    lines = [
        f"## Active-learning campaign{regime_title(config)}: CamVid day → dusk" if not config.quick else
        "## Active-learning campaign (QUICK SMOKE RUN on synthetic data: not a result)",
        "",
        f"- Command: `{info['command']}`",
        f"- Machine: {info['machine']}.",
        _time_line(config, records, info),
        f"- Data: {data.description}. Working size {config.size[0]}×{config.size[1]}: superpixels, labels and "
        "pixel budgets live there; mIoU is computed at the val labels' own resolution.",
        f"- Round 0 model: {info['base']} (round-0 dusk val mIoU {report.percent(info['base_miou'])}). Model "
        f"`{config.arch}` from random initialisation (no pretrained weights exist here).",
        "- Each round: the app's round step (`learning.round_step.propose_round`: score, calibrate, select, suggest) "
        f"→ oracle labels ({config.oracle}: {oracle}) → fine-tune {config.steps_per_round} steps × "
        f"{config.batch_size} frames from the previous round's weights (AdamW, poly LR from {config.lr}, ENet class "
        f"weights, augmentation) on day frames plus all dusk labels so far: dusk frames repeated to "
        f"~{100 * config.target_share:.0f} % of the frames and day masks thinned at random to the dusk labels' "
        "density, so dusk pixels weigh about half the loss whether they come as whole images or as scattered "
        "regions (RIPU averages the two losses separately) → evaluate.",
        f"- Region arms: SLIC superpixels ({'about 150' if config.segments is None else config.segments} per image), "
        f"{config.region_percent:g} % of the pool's pixels per round, respected to the pixel.{image_arms} "
        f"{config.rounds} rounds, {config.seeds} seed(s) planned (seed = selection randomness and training "
        "order; the round-0 model is shared). Cells: mean ± std mIoU (%) @ mean % of pool pixels labeled.",
        f"- Uncertainty: {config.measure}; score_pool on the pool each round (one batched no-grad pass).",
        ("- Adaptive uncertainty weight per round (seed 0): " + ", ".join(f"{r.weight:.2f}" for r in adaptive) + "."
         if adaptive else ""),
        "",
        results_table(config, arms, records),
        "",
        f"![mIoU vs % labeled]({os.path.relpath(config.png, ROOT / 'docs')})",
        "",
        "Suggestions shown to the annotator for each round's queries (thresholds calibrated per class on the dusk "
        f"val split for {100 * config.target_precision:.0f} % precision, fallback {FOREGROUND_FALLBACK:g} / "
        f"{BACKGROUND_FALLBACK:g} for background classes, by the app's rule on the day masks: "
        f"{', '.join(info['background']) or 'none'}): precision against the ground truth / coverage = share of "
        "queried labeled pixels pre-filled, i.e. the painting they would save. Mean over seeds.",
        "",
        suggestion_table(config, arms, records),
        "",
    ]
    if info.get("throughput"):
        lines += _throughput_lines(config, info["throughput"])
    verdicts = target_verdicts(records, arms, config.rounds)
    if verdicts:
        lines += ["Against the issue's targets:", ""] + [f"- {v}" for v in verdicts] + [""]
    return "\n".join(lines)
