"""Pool scoring throughput: ``learning.selection.score_pool`` against a bare forward pass.

Scoring the unlabeled pool is one batched no-grad pass that also computes the
uncertainty map, prediction, confidence and pooled features of every image.
The goal is at least 0.8 of the bare forward pass's images/s on the same
images. Both run on the same in-memory images, interleaved (so drifting load
on a shared machine hits both alike); the table reports the median of
``--repeats`` runs, the ratio of medians, and the ratio of CPU times (which
other processes distort less than wall time).

Throughput does not depend on what the weights are, so the model is
``--arch`` from random initialisation unless ``--checkpoint`` is given.

    python benchmarks/scoring.py            # CamVid dusk pool (46 frames), writes docs/BENCHMARKS.md
    python benchmarks/scoring.py --no-write # print only
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import report  # noqa: E402

DATASET = ROOT.parent / "shared" / "datasets" / "camvid-daydusk"


def pool_images(size: tuple[int, int], count: int) -> list:
    """The first ``count`` dusk frames by name (the campaign's pool), decoded and resized once."""
    from learning.data import CACHE, Sample, folder_samples

    dusk = sorted(folder_samples(DATASET / "target", masks=False), key=lambda s: s.key)[:count]
    return [Sample(image=CACHE.get_or_load("image", s.image, size), key=s.key) for s in dusk]


def measure(model, samples: list, *, batch_size: int, size: tuple[int, int], repeats: int) -> dict[str, dict]:
    """Wall and CPU seconds of each variant over ``repeats`` interleaved runs."""
    import torch

    from learning.data import normalize, to_tensor
    from learning.device import numerics_for
    from learning.models import model_forward
    from learning.selection import ScoreCache, score_pool

    numerics = numerics_for(torch.device("cpu"))
    images = [s.image for s in samples]

    def bare() -> None:
        prepared = numerics.prepare_model(model).eval()
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                x = normalize(torch.stack([to_tensor(im) for im in images[start:start + batch_size]]))
                with numerics.autocast():
                    out = model_forward(prepared, numerics.prepare_input(x))
                out.logits.float().cpu()

    def scored(**options) -> Callable[[], object]:
        return lambda: score_pool(model, samples, size=size, batch_size=batch_size, device="cpu", **options)

    variants: dict[str, Callable[[], object]] = {
        "bare forward pass": bare,
        "score_pool, entropy": scored(measure="entropy"),
        "score_pool, margin": scored(measure="margin"),
        "score_pool, entropy + flip TTA": scored(measure="entropy", tta=True),
    }
    with tempfile.TemporaryDirectory() as tmp:
        cache = ScoreCache(tmp, "benchmark")
        score_pool(model, samples, size=size, batch_size=batch_size, device="cpu", cache=cache)
        variants["score_pool, from the on-disk cache"] = scored(measure="entropy", cache=cache)
        bare()  # warm-up: allocator, oneDNN primitives
        runs: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in variants}
        for _ in range(repeats):
            for name, fn in variants.items():
                wall, cpu = time.perf_counter(), time.process_time()
                fn()
                runs[name]["wall"].append(time.perf_counter() - wall)
                runs[name]["cpu"].append(time.process_time() - cpu)
    return runs


def render(runs: dict[str, dict], n: int, args) -> str:
    base_wall = statistics.median(runs["bare forward pass"]["wall"])
    base_cpu = statistics.median(runs["bare forward pass"]["cpu"])
    rows = []
    for name, r in runs.items():
        wall, cpu = statistics.median(r["wall"]), statistics.median(r["cpu"])
        rows.append([name, f"{n / wall:.1f}", f"{min(r['wall']):.2f} / {wall:.2f} / {max(r['wall']):.2f}",
                     f"**{base_wall / wall:.2f}×**", f"{base_cpu / cpu:.2f}×"])
    ratio = base_wall / statistics.median(runs["score_pool, entropy"]["wall"])
    cpu_ratio = base_cpu / statistics.median(runs["score_pool, entropy"]["cpu"])
    return "\n".join([
        "## Pool scoring throughput",
        "",
        f"- Command: `{report.command_line()}`",
        f"- Machine: {report.machine_description()}.",
        f"- {n} CamVid dusk pool frames at {args.size[0]}×{args.size[1]}, batch {args.batch_size}, images in memory; "
        f"`{args.arch}` ({'weights from ' + args.checkpoint if args.checkpoint else 'random initialisation: throughput does not depend on the weights'}). "
        f"Variants interleaved, {args.repeats} runs each; median images/s; ratios are the bare pass's median time "
        "over the variant's (higher = faster; 1.00× = free).",
        "",
        report.markdown_table(["variant", "images / s (median)", "wall s min / median / max", "vs bare (wall)",
                               "vs bare (CPU time)"], rows),
        "",
        f"score_pool (entropy) runs at **{ratio:.2f}×** the bare forward pass by wall time and {cpu_ratio:.2f}× by "
        f"CPU time → goal ≥ 0.8: {'MET' if min(ratio, cpu_ratio) >= 0.8 else 'NOT MET'}.",
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default="deeplabv3_mobilenet_v3_large")
    parser.add_argument("--checkpoint", help="checkpoint directory (default: random initialisation)")
    parser.add_argument("--size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"))
    parser.add_argument("--images", type=int, default=46)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    if not DATASET.exists():
        print(f"{DATASET} is absent: nothing to measure")
        return 0
    import torch

    from learning.checkpoint import load_model
    from learning.models import build_model

    torch.set_num_threads(args.threads)
    size = (args.size[0], args.size[1])
    names = [c["name"] for c in json.loads((DATASET / "classes.json").read_text())["classes"]]
    model = load_model(args.checkpoint, expected_classes=names)[0] if args.checkpoint else build_model(
        args.arch, len(names))
    model.eval()
    samples = pool_images(size, args.images)
    runs = measure(model, samples, batch_size=args.batch_size, size=size, repeats=args.repeats)
    markdown = render(runs, len(samples), args)
    print(markdown)
    if not args.no_write:
        print(f"wrote {report.write_section('scoring', markdown)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
