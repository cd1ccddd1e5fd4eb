"""One round's measurements and the JSON-lines store of finished (arm, seed) campaigns.

Each finished campaign is one line ``{"config": key, "records": [...]}``,
keyed by the settings that change what a run measures plus a fingerprint of
the round-0 weights: a rerun resumes, parallel processes with different
``--arms`` share the file, and ``--report-only`` renders from it.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmarks.campaign.config import CampaignConfig

# What to run and where to write, not what a run measures: left out of the key.
RUN_ONLY = ("seeds", "arms", "work", "write_docs", "png", "section", "records", "throughput", "threads",
            "references", "base", "report_only")


@dataclass
class RoundRecord:
    arm: str
    seed: int
    round: int  # 0 = the base model, before any dusk label
    labeled_pixels: int
    labeled_percent: float
    miou: float
    queries: int = 0
    regions: int = 0
    weight: float | None = None  # uncertainty weight used by the selection that led here
    suggestion_precision: float | None = None  # of this round's suggestions (made before training)
    suggestion_coverage: float | None = None
    select_seconds: float = 0.0
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    cpu_seconds: float = 0.0  # process CPU time of this round (all threads)
    per_class_iou: list = field(default_factory=list)


def state_fingerprint(state: dict) -> str:
    """A short hash of the weights: the same base, rebuilt deterministically, gets the same one."""
    import hashlib

    digest = hashlib.sha1()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def config_key(config: CampaignConfig, base_id: str) -> str:
    keep = {k: v for k, v in asdict(config).items() if k not in RUN_ONLY}
    return json.dumps({**keep, "base_weights": base_id}, sort_keys=True)


def load_done(path: Path, key: str) -> dict[tuple[str, int], list[RoundRecord]]:
    """Finished (arm, seed) campaigns of an earlier run with the same settings: an interrupted run resumes."""
    done: dict[tuple[str, int], list[RoundRecord]] = {}
    if not path.exists():
        return done
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        if entry["config"] == key:
            records = [RoundRecord(**r) for r in entry["records"]]
            done[(records[0].arm, records[0].seed)] = records
    return done


def save(path: Path, key: str, records: list[RoundRecord]) -> list[RoundRecord]:
    """Append one finished campaign; returns its records."""
    with path.open("a") as stream:
        stream.write(json.dumps({"config": key, "records": [asdict(r) for r in records]}) + "\n")
    return records
