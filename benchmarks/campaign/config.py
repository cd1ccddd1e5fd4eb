"""What a campaign runs: the arms, the references, the settings, and where the outputs go."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATASET = ROOT.parent / "shared" / "datasets" / "camvid-daydusk"
WORK = ROOT / "var" / "bench" / "campaign"
DA_WORK = ROOT / "var" / "bench" / "domain_adaptation" / "full"
PNG = ROOT / "docs" / "campaign.png"
# Finished (arm, seed) campaigns of the CamVid runs, tracked in git: var/ does not survive a fresh checkout,
# and each record costs ~6 CPU minutes. Keyed by settings and the round-0 weights' fingerprint, so a later
# checkout that rebuilds the same base (deterministic) re-renders or extends the tables without rerunning.
RECORDS = ROOT / "benchmarks" / "results" / "campaign.jsonl"


@dataclass(frozen=True)
class Arm:
    """One simulated campaign: a strategy, the unit it queries, its per-round budget."""

    name: str
    label: str
    strategy: str
    unit: str  # "image" | "region"
    budget_amount: float
    budget_unit: str  # "images" | "percent" | ...
    uncertainty_weight: float | None = None  # fixed trade-off override (region/entropy_diversity)
    rarity_power: float = 0.0  # > 0: region scores weighted by predicted-class rarity (ClassBal)


def default_arms(region_percent: float, images_per_round: int) -> dict[str, Arm]:
    arms = [
        Arm("random_image", "random (image)", "random", "image", images_per_round, "images"),
        Arm("entropy_image", "entropy (image)", "entropy", "image", images_per_round, "images"),
        Arm("entropy_diversity_image", "entropy + diversity (image)", "entropy_diversity", "image",
            images_per_round, "images"),
        Arm("random_region", "random (region)", "random", "region", region_percent, "percent"),
        Arm("region_uncertainty", "region, uncertainty only (w=1)", "region", "region", region_percent, "percent",
            uncertainty_weight=1.0),
        Arm("region_diversity", "region, diversity-heavy (w=0)", "region", "region", region_percent, "percent",
            uncertainty_weight=0.0),
        Arm("region", "ours: region, fixed w=0.5", "region", "region", region_percent, "percent",
            uncertainty_weight=0.5),
        Arm("adaptive", "ours: region, adaptive w (default)", "adaptive", "region", region_percent, "percent"),
        Arm("adaptive_rarity", "ours: adaptive w + class rarity (power 0.5)", "adaptive", "region", region_percent,
            "percent", rarity_power=0.5),
    ]
    return {a.name: a for a in arms}


# Most telling arms first, so a run stopped early has already answered the main questions.
RUN_ORDER = ("adaptive", "random_region", "region_uncertainty", "region_diversity", "region", "adaptive_rarity",
             "random_image", "entropy_image", "entropy_diversity_image")


@dataclass(frozen=True)
class Reference:
    """A campaign without selection, same rounds and steps as the arms: the bounds they are read against."""

    label: str
    budget: str
    labeled: bool  # every pool pixel labeled (True) or none (False: the frames still reach BatchNorm)


REFERENCES = {
    "full": Reference("full dusk supervision (reference)", "all pool pixels", True),
    "frames_only": Reference("dusk frames, no dusk labels (reference)", "no labels; frames in every batch", False),
}


@dataclass
class CampaignConfig:
    # Every field not listed in records.RUN_ONLY is part of the key of the tracked records: adding one
    # changes every key, so old records would no longer match.
    quick: bool = False
    rounds: int = 5
    seeds: int = 3
    arms: tuple[str, ...] = ()  # empty = all
    arch: str = "deeplabv3_mobilenet_v3_large"
    size: tuple[int, int] = (240, 320)
    segments: int | None = None  # SLIC superpixels per image (None = 150 per 240x320)
    region_percent: float = 1.0  # region arms: % of pool pixels per round
    images_per_round: int = 1  # image arms
    image_rounds: int | None = 3  # image arms stop here (3 images = 6.5 % of the pool: past the 5 % mark)
    steps_per_round: int = 40
    batch_size: int = 8
    lr: float = 3e-4
    target_share: float = 0.5  # share of training frames drawn from dusk labels
    base_steps: int = 2400  # only when training our own base
    base_lr: float = 2e-3
    base: str | None = None  # checkpoint directory to start from (default: find or train)
    oracle: str = "exact"  # "exact" | "dominant"
    measure: str = "entropy"
    target_precision: float = 0.95
    references: tuple[str, ...] = ("full", "frames_only")  # see REFERENCES
    threads: int = 2
    work: str = str(WORK / "full")
    records: str | None = str(RECORDS)  # finished campaigns (JSON lines); None = work/records.jsonl
    write_docs: bool = True
    png: str = str(PNG)
    section: str = "campaign"  # docs/BENCHMARKS.md section (one per budget regime)
    throughput: bool = True
    report_only: bool = False  # render from finished (arm, seed) records; train nothing


def quick_config(**overrides) -> CampaignConfig:
    """Tiny synthetic campaign: runs end to end in about a minute (the unit test runs 2 rounds)."""
    base = CampaignConfig(
        quick=True, rounds=3, seeds=1, arch="lraspp_mobilenet_v3_large", size=(64, 96), segments=40,
        region_percent=3.0, images_per_round=1, image_rounds=None, steps_per_round=10, batch_size=4, lr=3e-3,
        base_steps=150, base_lr=1e-2, work=str(WORK / "quick"), records=None, write_docs=False,
        png=str(WORK / "quick" / "campaign.png"), threads=1,
    )
    return replace(base, **overrides)


# --- budget regimes: a non-default protocol gets its own docs section and plot ----------------------------


def _regime_differences(config: CampaignConfig) -> list[tuple[str, str, str]]:
    """(field, tag, words) for each protocol setting that differs from the default campaign's."""
    default = CampaignConfig()
    described = (
        ("region_percent", f"{config.region_percent:g}pct".replace(".", "_"),
         f"{config.region_percent:g} % of pixels per round"),
        ("oracle", config.oracle, f"{config.oracle} oracle"),
        ("steps_per_round", f"{config.steps_per_round}steps", f"{config.steps_per_round} steps per round"),
    )
    return [d for d in described if getattr(config, d[0]) != getattr(default, d[0])]


def regime_tag(config: CampaignConfig) -> str:
    """'' for the default protocol, else what differs (e.g. '0_2pct'): names the docs section and plot."""
    return "-".join(tag for _, tag, _ in _regime_differences(config))


def regime_title(config: CampaignConfig) -> str:
    """'' for the default protocol, else ' (budget per round, what else differs)' for headings."""
    differences = _regime_differences(config)
    if not differences:
        return ""
    words = [f"{config.region_percent:g} % of pixels per round"]
    words += [w for field_name, _, w in differences if field_name != "region_percent"]
    return " (" + ", ".join(words) + ")"


def with_regime_outputs(config: CampaignConfig) -> CampaignConfig:
    """A non-default protocol writes its own docs section and plot instead of overwriting the default's."""
    tag = regime_tag(config)
    if config.quick or not tag or config.png != str(PNG) or config.section != "campaign":
        return config
    return replace(config, section=f"campaign-{tag}", png=str(PNG.with_name(f"campaign-{tag}.png")))
