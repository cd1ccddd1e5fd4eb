"""The datasets the benchmarks run on, each split the way its README says, as plain Samples.

- ``camvid``: CamVid day (source, labeled) → dusk (target): the 62 dusk frames by
  frame order, the first 46 the pool, the last 16 validation (the splits every
  CamVid benchmark here uses).
- ``polyp``: Kvasir-SEG stills (source, labeled) → CVC-ClinicDB video frames
  (target): pool = sequences 1–17, validation = sequences 18–23 (split by
  sequence, never by frame: neighbouring frames are near duplicates).
- ``demo``: the synthetic day → dusk street scenes the demo project draws
  itself (annotator/demo.py), the last third of the dusk frames validation.

Research-licensed data is read in place from ../shared/datasets and never
copied into the repository.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "datasets"
FOLDERS = {"camvid": SHARED / "camvid-daydusk", "polyp": SHARED / "polyp-kvasir-clinicdb"}
NAMES = ("camvid", "polyp", "demo")


@dataclass
class DatasetSplits:
    name: str
    source: list  # labeled source Samples (may be empty)
    pool: list  # target Samples with masks (the oracle's answers)
    val: list  # target validation Samples with masks
    class_names: list[str]
    description: str

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def available(name: str) -> bool:
    return name == "demo" or (FOLDERS[name] / "classes.json").exists()


def _classes(folder: Path) -> list[str]:
    return [c["name"] for c in json.loads((folder / "classes.json").read_text())["classes"]]


def load(name: str) -> DatasetSplits:
    from learning.data import folder_samples

    if name == "demo":
        return _demo()
    folder = FOLDERS[name]
    source = folder_samples(folder / "source")
    target = sorted(folder_samples(folder / "target"), key=lambda s: s.key)
    if name == "camvid":
        pool, val = target[:46], target[46:]
        text = "CamVid day → dusk: 577 day frames; dusk pool 46, dusk validation 16 (frame order)"
    elif name == "polyp":
        pool = [s for s in target if int(s.key[1:3]) <= 17]
        val = [s for s in target if int(s.key[1:3]) > 17]
        text = (f"Kvasir-SEG → CVC-ClinicDB: {len(source)} labeled stills; target pool {len(pool)} frames "
                f"(sequences 1–17), validation {len(val)} (sequences 18–23)")
    else:
        raise ValueError(f"unknown dataset {name!r}; known: {NAMES}")
    return DatasetSplits(name, source, pool, val, _classes(folder), text)


def _demo() -> DatasetSplits:
    from annotator.demo import write_demo_dataset
    from learning.data import folder_samples

    folder = Path(tempfile.gettempdir()) / "maskloop-bench-demo"
    if not (folder / "classes.json").exists():
        write_demo_dataset(folder, seed=0, source=48, target=48)
    target = sorted(folder_samples(folder / "target"), key=lambda s: s.key)
    cut = len(target) * 2 // 3
    return DatasetSplits("demo", folder_samples(folder / "source"), target[:cut], target[cut:], _classes(folder),
                         f"synthetic demo streets (annotator/demo.py): 48 day, dusk pool {cut}, "
                         f"dusk validation {len(target) - cut}")
