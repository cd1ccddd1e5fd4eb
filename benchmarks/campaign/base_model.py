"""Round 0's model and the training settings every round shares.

Round 0 starts from benchmarks/domain_adaptation.py's cached source-only
base when one with our architecture and size exists
(var/bench/domain_adaptation/full/base-*/), else from our own (trained once,
cached under the work folder).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from benchmarks.campaign.config import DA_WORK, ROOT, CampaignConfig
from benchmarks.campaign.data import CampaignData

MIN_DA_BASE_STEPS = 1000  # shorter bases there are smoke runs, not a usable round-0 model


def train_config(config: CampaignConfig, num_classes: int, *, steps: int, lr: float, seed: int, base: bool):
    """The learning core's TrainConfig: one-cycle for the base, warm-started poly fine-tuning for a round."""
    from learning.train import TrainConfig

    return TrainConfig(
        arch=config.arch, num_classes=num_classes, size=config.size, batch_size=config.batch_size, steps=steps,
        lr=lr, optimizer="adamw", weight_decay=1e-2, schedule="onecycle" if base else "poly",
        warmup_steps=0 if base else max(1, steps // 15), class_weighting="enet", seed=seed, log_every=50,
    )


def model_from_state(config: CampaignConfig, num_classes: int, state: dict):
    """The network with ``state`` loaded, in eval mode."""
    from learning.models import build_model

    model = build_model(config.arch, num_classes)
    model.load_state_dict(state)
    return model.eval()


def find_da_base(config: CampaignConfig, class_names: list[str]) -> Path | None:
    """The longest-trained source-only base of benchmarks/domain_adaptation.py with our architecture and size."""
    from learning.checkpoint import read_meta

    best, best_steps = None, -1
    for meta_path in sorted(DA_WORK.glob("base-*/meta.json")):
        try:
            meta = read_meta(meta_path.parent)
        except Exception:  # noqa: BLE001 - half-written or foreign folder: skip it
            continue
        training = meta.get("training_config", {})
        if (meta.get("architecture") == config.arch and list(meta.get("input_size", [])) == list(config.size)
                and meta.get("classes") == class_names and int(training.get("steps", 0)) > best_steps
                and int(training.get("steps", 0)) >= MIN_DA_BASE_STEPS):
            best, best_steps = meta_path.parent, int(training.get("steps", 0))
    return best


def base_state(config: CampaignConfig, data: CampaignData, log: Callable[[str], None]) -> tuple[dict, str]:
    """Round 0's weights and where they came from."""
    from learning.checkpoint import load_checkpoint, save_checkpoint
    from learning.train import checkpoint_meta, train

    if config.base:
        state, _ = load_checkpoint(config.base, expected_classes=data.class_names)
        return state, f"given checkpoint {config.base}"
    if not config.quick:
        found = find_da_base(config, data.class_names)
        if found is not None:
            state, meta = load_checkpoint(found, expected_classes=data.class_names)
            steps = meta.get("training_config", {}).get("steps")
            return state, f"benchmarks/domain_adaptation.py's source-only base ({found.relative_to(ROOT)}, {steps} steps)"
    own = Path(config.work) / f"base-{config.arch}-{config.size[0]}x{config.size[1]}-{config.base_steps}"
    if (own / "meta.json").exists():
        state, _ = load_checkpoint(own, expected_classes=data.class_names)
        return state, f"own source-only base ({config.base_steps} steps, cached)"
    log(f"training our own source-only base: {config.base_steps} steps")
    result = train(train_config(config, data.num_classes, steps=config.base_steps, lr=config.base_lr, seed=0,
                                base=True), labeled=data.source)
    if not own.exists():
        save_checkpoint(own, state_dict=result.state_dict, meta=checkpoint_meta(result, classes=data.class_names))
    return result.state_dict, f"own source-only base ({config.base_steps} steps)"
