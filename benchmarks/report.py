"""Shared plumbing for benchmark scripts: machine description, formatting and docs/BENCHMARKS.md sections.

Every benchmark owns one section of docs/BENCHMARKS.md between
``<!-- BEGIN name -->`` and ``<!-- END name -->`` markers and rewrites only
that section, so scripts can run in any order without clobbering each other.
"""
from __future__ import annotations

import json
import math
import os
import platform
import re
import shlex
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS_MD = ROOT / "docs" / "BENCHMARKS.md"
HEADER = (
    "# maskloop benchmarks\n\n"
    "Every section below is written by the script it names; rerun the command to refresh it.\n"
)


def machine_description() -> str:
    """One line naming the CPU, core count, memory and the torch build that produced the numbers."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    try:
        import torch

        torch_info = f", torch {torch.__version__} ({torch.get_num_threads()} threads)"
    except ImportError:
        torch_info = ""
    return f"{cpu}, {os.cpu_count()} cores{memory}, Python {platform.python_version()}{torch_info}"


def git_commit() -> str:
    """The short commit the benchmark ran at ("" outside a git checkout)."""
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).resolve().parent,
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def command_line() -> str:
    """The exact command that ran, for the report (a package run with ``-m`` is shown as one)."""
    script = Path(sys.argv[0]).resolve()
    if script.name == "__main__.py" and ROOT in script.parents:
        package = ".".join(script.parent.relative_to(ROOT).parts)
        return " ".join(shlex.quote(a) for a in [Path(sys.executable).name, "-m", package, *sys.argv[1:]])
    return " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv])


def lowest_mean_class(per_class: list[list[float | None]]) -> int:
    """The class whose mean over ``per_class`` rows (one per-class list each, e.g. IoUs) is lowest; None or NaN
    entries do not count, and a class with no value in any row (absent from the split) is never chosen."""
    values = np.array([[np.nan if v is None else v for v in row] for row in per_class], dtype=float)
    present = ~np.isnan(values)
    means = np.where(present.any(0), np.nansum(values, 0) / np.maximum(present.sum(0), 1), np.inf)
    return int(np.argmin(means))


def percent(value: float | None, digits: int = 1, unit: str = "") -> str:
    """A share (0–1) as a percentage with ``digits`` decimals; "–" for a missing or NaN value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * value:.{digits}f}{unit}"


def markdown_table(headers: list[str], rows: list[list[object]]) -> str:
    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def typed_overrides(settings_type, pairs, option: str) -> dict:
    """``(name, value)`` string pairs as the fields of the dataclass ``settings_type`` they name, each value cast to
    its field's plain type (int, float, str, bool, optionally ``| None``). Anything else exits naming ``option``."""
    from dataclasses import fields

    types = {f.name: (f.type if isinstance(f.type, str) else f.type.__name__).removesuffix(" | None")
             for f in fields(settings_type)}
    casts = {"int": int, "float": float, "str": str, "bool": lambda v: v.lower() in ("1", "true", "yes")}
    out = {}
    for name, value in pairs:
        if types.get(name) not in casts:
            plain = sorted(n for n, t in types.items() if t in casts)
            raise SystemExit(f"{option} {name}: not a {settings_type.__name__} field of a plain type ({plain})")
        try:
            out[name] = casts[types[name]](value)
        except ValueError:
            raise SystemExit(f"{option} {name}={value}: not a {types[name]}") from None
    return out


def read_records(path: Path, record_type=None) -> list:
    """The records of a tracked JSON-lines file (benchmarks/results/), each as ``record_type(**fields)`` when given."""
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return rows if record_type is None else [record_type(**row) for row in rows]


def append_record(path: Path, record: dict) -> None:
    """Append one finished run to a tracked JSON-lines file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")


def write_section(name: str, markdown: str, *, path: Path = BENCHMARKS_MD) -> Path:
    """Replace (or append) the section ``name`` of docs/BENCHMARKS.md with ``markdown``."""
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    text = path.read_text() if path.exists() else HEADER
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path
