"""Scale: the round step on pools of 1,000 to 100,000 images (memory, selection time, store size, workers).

The script writes a synthetic pool of small PNG files (48×64 smooth scenes,
so that the forward pass is not what is measured; 1% of the images partly
labeled and 1% with pixels already asked for) and runs the app's own round
step, ``learning.round_step.propose_round``, with the app's default
selection settings (adaptive strategy, region queries, 1% of the pool's
pixels per round) on its first 1k, 10k and 100k images. Each run is a
fresh subprocess so its peak RSS (``getrusage``) is its own:

- run 1 scores the pool into an empty selection store (the forward pass, streamed);
- later runs find the store complete (the same model version and labels);
  selection is timed in every run (median in the table).

Phases are timed from ``propose_round``'s own progress reports: *score*
(streamed forward pass + per-image summaries + shard writes), *select*
(merging the shards, candidates, shortlist, diversity, query masks; no
forward pass) and *suggest* (the queried images scored again for their
suggestions). Regions are the grid fallback (9 cells a 48×64 image). The model has random weights
whose batch norms saw 32 synthetic scenes (``model_of``): untouched, their activations fade to zero
in float16 and every region descriptor would be the same point for the diversity step.

Workers: N processes each score every N-th shard of the first 2,048 images
with ``learning.selection.streaming.score_shard`` (what a Celery scoring
task runs), 1 and 2 processes, 1 thread each; throughput = images / wall
time of the slowest. A real-size case scores 480×640 images at 240×320
with SLIC superpixels to show the forward pass's share of scoring.

    python benchmarks/scale.py                      # 1k, 10k, 100k; 3 runs; workers; real size; writes docs
    python benchmarks/scale.py --pools 1000 --runs 2 --no-write
    python benchmarks/scale.py --report-only        # re-render docs/BENCHMARKS.md from the records

Records are appended to benchmarks/results/scale.jsonl (tracked).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import report  # noqa: E402

RECORDS = Path(os.environ.get("MASKLOOP_SCALE_RECORDS", ROOT / "benchmarks" / "results" / "scale.jsonl"))
DATA = Path(os.environ.get("MASKLOOP_SCALE_DATA", Path(tempfile.gettempdir()) / "maskloop-scale"))
SMALL = (48, 64)
REAL = (480, 640)
REAL_SCORING = (240, 320)
NUM_CLASSES = 8
ARCH = "lraspp_mobilenet_v3_large"  # the small pools: the cheapest of the app's architectures
REAL_ARCH = "deeplabv3_mobilenet_v3_large"  # the app's default, for the real-size case
WORKER_IMAGES = 2048
SECTION = "scale"


def image_path(root: Path, index: int) -> Path:
    return root / f"{index // 1000:03d}" / f"{index:06d}.png"


def scene(index: int, size: tuple[int, int]):
    """A smooth synthetic scene: a colour gradient with a few rectangles (compresses like a photo, decodes fast)."""
    import numpy as np

    rng = np.random.default_rng(index)
    h, w = size
    base = np.linspace(rng.integers(0, 120, 3), rng.integers(120, 255, 3), w).astype(np.uint8)
    image = np.broadcast_to(base[None], (h, w, 3)).copy()
    for _ in range(3):
        top, left = int(rng.integers(0, h - 4)), int(rng.integers(0, w - 4))
        image[top:top + int(rng.integers(4, h // 2)), left:left + int(rng.integers(4, w // 2))] = rng.integers(0, 255, 3)
    return image


def ensure_images(root: Path, count: int, size: tuple[int, int]) -> None:
    from PIL import Image

    for index in range(count):
        path = image_path(root, index)
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        Image.fromarray(scene(index, size)).save(tmp, format="PNG")
        os.replace(tmp, path)


def pool_entries(root: Path, count: int, size: tuple[int, int]):
    """PoolImages with paths; 1% partly labeled (top rows), 1% with a left band already asked for."""
    import numpy as np

    from learning.round_step import PoolImage

    entries = []
    for index in range(count):
        labels = queried = None
        if index % 100 == 7:
            labels = np.full(size, 255, np.uint8)
            labels[: size[0] // 2] = index % NUM_CLASSES
        if index % 100 == 53:
            queried = np.zeros(size, bool)
            queried[:, : size[1] // 3] = True
        entries.append(PoolImage(key=f"image-{index}", image=str(image_path(root, index)), labels=labels,
                                 queried=queried))
    return entries


def model_of(arch: str, size: tuple[int, int] = SMALL):
    """Random weights, the same in every process (one "model version"), with batch-norm statistics of real inputs.

    Freshly initialised batch norms (mean 0, variance 1) let the activations
    of a random MobileNet fade to ~1e-10, which the float16 feature maps
    round to zero: every descriptor would be the same and the diversity step
    would see one point. One pass in training mode over 32 synthetic scenes
    gives the activations the scale a trained model's have.
    """
    import torch

    from learning.data import normalize, to_tensor
    from learning.models import build_model

    torch.manual_seed(0)
    model = build_model(arch, NUM_CLASSES)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # a cumulative average: one pass sets the statistics
    with torch.no_grad():
        model.train()(normalize(torch.stack([to_tensor(scene(10**6 + i, size)) for i in range(32)])))
    return model.eval()


def settings_of(size: tuple[int, int]):
    from learning.round_step import SelectionSettings
    from learning.selection import Budget

    # The app's defaults (annotator.models.Project): adaptive, region queries, 1% of the pool's pixels.
    return SelectionSettings(strategy="adaptive", unit="region", budget=Budget(1.0, "percent"),
                             num_classes=NUM_CLASSES, size=size, batch_size=32)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- subprocess entry points ------------------------------------------------------------------------------


def run_case(count: int, cache_root: Path, repeats: int = 1) -> dict:
    """``repeats`` propose_rounds on the first ``count`` images in one process, timed by their own progress reports.

    The first call scores what the store lacks; every call selects (the
    store complete by then), so one process gives ``repeats`` selection
    times: repeats in a process damp what other work on the machine does to
    one measurement.
    """
    import torch

    from learning.round_step import Calibration, propose_round
    from learning.selection import ScoreCache

    torch.set_num_threads(1)
    entries = pool_entries(DATA / "small", count, SMALL)
    model = model_of(ARCH)
    import sklearn.cluster  # noqa: F401 - a worker imports it once, not per round: keep it out of the timing

    from learning.round_step import summary_spec
    from learning.selection.store import pool_shards
    from learning.selection.streaming import missing_shards

    cache = ScoreCache(cache_root, "scale-benchmark")
    settings = settings_of(SMALL)
    store = cache.summaries(summary_spec(settings, count))
    missing = missing_shards(entries, store)
    to_score = sum(len(pool_shards(count, store.spec.shard_size)[i]) for i in missing)
    calls = []
    for _ in range(max(1, repeats)):
        marks: dict[str, tuple[float, float]] = {}

        def progress(phase, step, total, loss=None):
            now = time.perf_counter(), cpu_seconds()
            marks.setdefault(f"first {phase}", now)
            marks[f"last {phase}"] = now

        start, cpu = time.perf_counter(), cpu_seconds()
        proposal = propose_round(model, entries, calibration=Calibration([], []), settings=settings,
                                 round_index=1, val_miou=0.3, cache=cache, device="cpu", progress=progress)
        end = time.perf_counter()
        (scored, scored_cpu), (selected, selected_cpu) = marks["first superpixels"], marks["first suggest"]
        calls.append({"score_s": scored - start, "select_s": selected - scored, "select_cpu_s": selected_cpu - scored_cpu,
                      "suggest_s": end - selected, "total_s": end - start, "cpu_s": cpu_seconds() - cpu,
                      "queries": len(proposal.queries), "query_pixels": proposal.query_pixels})
    first = calls[0]
    return {"pool": count, "images_scored": to_score, **first,
            "select_runs_s": [c["select_s"] for c in calls], "select_cpu_runs_s": [c["select_cpu_s"] for c in calls],
            "cpu_s": sum(c["cpu_s"] for c in calls), "peak_rss_mb": peak_rss_mb(),
            "store_mb": store.bytes_on_disk() / 2**20}


def run_worker(count: int, worker: int, workers: int, cache_root: Path) -> dict:
    """Score every ``workers``-th shard of the first ``count`` images, as one Celery scoring worker would."""
    import torch

    from learning.round_step import SelectionSettings  # noqa: F401 - the same imports a worker has
    from learning.selection import ScoreCache
    from learning.selection.store import SummarySpec, pool_shards
    from learning.selection.streaming import score_shard

    torch.set_num_threads(1)
    entries = pool_entries(DATA / "small", count, SMALL)
    model = model_of(ARCH)
    settings = settings_of(SMALL)
    spec = SummarySpec(measure=settings.measure, size=settings.size, unit="region", num_classes=NUM_CLASSES,
                       batch_size=settings.batch_size, keep_features=SummarySpec.keep_for_pool(count, 100_000))
    store = ScoreCache(cache_root, f"workers-{workers}").summaries(spec)
    mine = [i for i in range(len(pool_shards(count, spec.shard_size))) if i % workers == worker]
    start = time.perf_counter()
    images = sum(len(pool_shards(count, spec.shard_size)[i]) for i in mine if score_shard(model, entries, i, store,
                                                                                          device="cpu"))
    return {"worker": worker, "images": images, "wall_s": time.perf_counter() - start, "cpu_s": cpu_seconds()}


def run_real(count: int) -> dict:
    """Real-size images with SLIC superpixels: the forward pass's share of streamed scoring."""
    import numpy as np
    import torch

    from learning.data import load_image, normalize, resize_image, to_tensor
    from learning.models import model_forward
    from learning.selection import score_pool, slic_regions
    from learning.selection.store import SummarySpec, SummaryStore
    from learning.selection.streaming import score_into_store

    torch.set_num_threads(1)
    entries = pool_entries(DATA / "real", count, REAL)
    model = model_of(REAL_ARCH, REAL_SCORING)
    regions = {e.key: slic_regions(load_image(e.image)) for e in entries}
    spec = SummarySpec(measure="entropy", size=REAL_SCORING, unit="region", num_classes=NUM_CLASSES, batch_size=8,
                       keep_features=SummarySpec.keep_for_pool(100_000, 100_000))
    with tempfile.TemporaryDirectory() as directory:
        store = SummaryStore(directory, spec)
        start = time.perf_counter()
        score_into_store(model, entries, store, regions=regions.__getitem__, device="cpu")
        scoring = time.perf_counter() - start
        store_bytes = store.bytes_on_disk()
    with torch.inference_mode():
        start = time.perf_counter()
        for first in range(0, count, 8):
            batch = torch.stack([to_tensor(resize_image(load_image(e.image), REAL_SCORING))
                                 for e in entries[first:first + 8]])
            model_forward(model, normalize(batch))
        forward = time.perf_counter() - start
    record = score_pool(model, [entries[0].image], size=REAL_SCORING, device="cpu")[0]
    full = sum(np.asarray(a).nbytes for a in (record.pred, record.confidence, record.uncertainty, record.feature_map))
    return {"images": count, "score_s": scoring, "forward_s": forward, "store_kb_per_image": store_bytes / count / 1024,
            "full_record_kb": full / 1024, "peak_rss_mb": peak_rss_mb()}


# --- the driver ---------------------------------------------------------------------------------------------


def child(args: list[str], *, env_threads: int = 1, timeout: float = 7200) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(env_threads), "MKL_NUM_THREADS": str(env_threads),
           "MASKLOOP_SCALE_DATA": str(DATA)}
    return subprocess.Popen([sys.executable, __file__, *args], env=env, stdout=subprocess.PIPE, text=True)


def result_of(process: subprocess.Popen) -> dict:
    out, _ = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"benchmark child failed ({process.returncode})")
    return json.loads(out.strip().splitlines()[-1])


def load_average() -> float:
    return os.getloadavg()[0]


def append(record: dict) -> None:
    RECORDS.parent.mkdir(parents=True, exist_ok=True)
    with RECORDS.open("a") as stream:
        stream.write(json.dumps(record) + "\n")


def measure(args) -> None:
    import shutil

    meta = {"machine": report.machine_description(), "command": report.command_line(), "cpus": os.cpu_count()}
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    if args.pools or args.workers:
        ensure_images(DATA / "small", max([*args.pools, WORKER_IMAGES if args.workers else 0]), SMALL)
    for count in args.pools:
        cache_root = DATA / f"cache-{count}"
        if not args.resume:
            shutil.rmtree(cache_root, ignore_errors=True)
        for run in range(args.runs if count < 100_000 else min(args.runs, args.runs_100k)):
            load = load_average()
            result = result_of(child(["_case", str(count), str(cache_root), str(args.repeats)]))
            record = {**meta, "kind": "pool", "started": started, "run": run, "load_before": load,
                      "load_after": load_average(), **result}
            append(record)
            print(f"pool {count:>7}: run {run} scored {result['images_scored']} in {result['score_s']:.1f}s "
                  f"select {result['select_s']:.2f}s ({result['select_cpu_s']:.2f} CPU s) "
                  f"suggest {result['suggest_s']:.1f}s rss {result['peak_rss_mb']:.0f} MB "
                  f"store {result['store_mb']:.1f} MB load {load:.1f}", flush=True)
        shutil.rmtree(cache_root, ignore_errors=True)
    for workers in args.workers:
        for run in range(args.runs):
            cache_root = DATA / "cache-workers"
            shutil.rmtree(cache_root, ignore_errors=True)
            load = load_average()
            start = time.perf_counter()
            procs = [child(["_worker", str(WORKER_IMAGES), str(w), str(workers), str(cache_root)])
                     for w in range(workers)]
            results = [result_of(p) for p in procs]
            wall = time.perf_counter() - start
            images = sum(r["images"] for r in results)
            slowest = max(r["wall_s"] for r in results)
            record = {**meta, "kind": "workers", "started": started, "run": run, "workers": workers,
                      "images": images, "scoring_wall_s": slowest, "process_wall_s": wall,
                      "throughput": images / slowest, "cpu_s": sum(r["cpu_s"] for r in results),
                      "load_before": load, "load_after": load_average()}
            append(record)
            print(f"workers {workers}: run {run} {images} images in {slowest:.1f}s = {images / slowest:.1f} img/s "
                  f"load {load:.1f}", flush=True)
            shutil.rmtree(cache_root, ignore_errors=True)
    if args.real:
        ensure_images(DATA / "real", args.real, REAL)
        load = load_average()
        result = result_of(child(["_real", str(args.real)]))
        append({**meta, "kind": "real", "started": started, "load_before": load, "load_after": load_average(),
                **result})
        print(f"real size: {result}", flush=True)


def latest(records: list[dict]) -> list[dict]:
    """The newest campaign (``started``) of each kind: pools, workers, real."""
    out = []
    for kind in ("pool", "workers", "real"):
        mine = [r for r in records if r.get("kind") == kind]
        if mine:
            newest = max(r["started"] for r in mine)
            out += [r for r in mine if r["started"] == newest]
    return out


def selection_times(runs: list[dict], name: str = "select") -> list[float]:
    """Every selection time of the runs: each run's repeats (``<name>_runs_s``), or its one time in older records."""
    return [t for r in runs for t in r.get(f"{name}_runs_s", [r[f"{name}_s"]])]


def growth_exponent(sizes: list[int], times: list[float]) -> float:
    """The least-squares slope of log(time) on log(pool size): 1 is linear growth, above 1 faster than linear."""
    import numpy as np

    return float(np.polyfit(np.log(sizes), np.log(times), 1)[0])


def _elsewhere(campaign: list[dict], machine: str) -> str:
    """Where a campaign other than the pools' ran, when it was another machine or command: said beside its table."""
    first = campaign[0]
    if first.get("machine") == machine:
        return ""
    return f" (measured {first['started'][:10]} on {first.get('machine', 'another machine')}: `{first.get('command', '')}`)"


def render(records: list[dict]) -> str:
    pools = [r for r in records if r["kind"] == "pool"]
    workers = [r for r in records if r["kind"] == "workers"]
    real = [r for r in records if r["kind"] == "real"]
    machine = next((r["machine"] for r in records), report.machine_description())
    command = next((r["command"] for r in records), "python benchmarks/scale.py")
    rows = []
    sizes = sorted({r["pool"] for r in pools})
    # Median selection time (wall, CPU) of each pool size, over every round step of its runs.
    by = {n: [statistics.median(selection_times([r for r in pools if r["pool"] == n], name))
              for name in ("select", "select_cpu")] for n in sizes}
    for count in sizes:
        runs = sorted((r for r in pools if r["pool"] == count), key=lambda r: r["run"])
        first = runs[0]
        rate = (f"{first['images_scored']:,} in {first['score_s']:.0f} s "
                f"({first['images_scored'] / first['score_s']:.0f} img/s)") if first["images_scored"] else "–"
        rows.append([f"{count:,}", f"{by[count][0]:.2f}", f"{by[count][1]:.2f}",
                     f"{max(r['peak_rss_mb'] for r in runs):.0f}", f"{first['store_mb']:.1f}", rate,
                     f"{statistics.median(r['suggest_s'] for r in runs):.1f}",
                     f"{first['queries']:,}", f"{sum(r['cpu_s'] for r in runs) / 60:.1f}",
                     f"{statistics.median(r['load_before'] for r in runs):.1f}", len(runs)])
    lines = [
        "## Scale: pools of 1,000 to 100,000 images (`benchmarks/scale.py`)",
        "",
        f"Machine: {machine}; shared with other work (load average before each run in the table).",
        f"Command: `{command}`; each run a fresh process, 1 thread (`OMP_NUM_THREADS=1`), `nice -n 5`.",
        "",
        f"The app's round step (`learning.round_step.propose_round`) with the app's default selection "
        f"(adaptive, region queries, 1% of the pool's pixels) on synthetic {SMALL[0]}×{SMALL[1]} PNGs "
        f"({ARCH}, {NUM_CLASSES} classes, grid regions: 9 a image; 1% of images partly labeled, 1% partly asked "
        "already). Run 1 streams the pool through the forward pass into an empty selection store; later runs find "
        "the store complete (*select*, median over every round step of all runs, each run repeating the round step "
        "in its process: merge the shards, candidates, shortlist, diversity "
        "in groups, query masks; no forward pass, imports done before; wall and CPU time of the phase). A run "
        "resumed from an interrupted one scores only the shards missing (*scored* says how many images). *Suggest* scores the queried images again "
        "for their suggestions. Peak RSS: `getrusage` of the run's process (the largest over its runs).",
        "",
        report.markdown_table(["pool", "select s", "select CPU s", "peak RSS MB", "store MB", "scored (run 1)",
                               "suggest s", "queries", "CPU min (all runs)", "load", "runs"], rows),
    ]
    if len(rows) >= 2:
        growth = [f"{a:,} → {b:,} images ({b // a}×): {by[b][0] / by[a][0]:.1f}× by wall time, "
                  f"{by[b][1] / by[a][1]:.1f}× by CPU time" for a, b in zip(sizes, sizes[1:])]
        slope = [growth_exponent(sizes, [by[n][i] for n in sizes]) for i in (0, 1)]
        lines += ["", "Selection time grows " + "; ".join(growth) + ". Over all pools it grows as pool size to the "
                  f"power **{slope[0]:.2f}** by wall time, **{slope[1]:.2f}** by CPU time (least-squares slope of "
                  "log time on log size; 1 = linear)."]
    if workers:
        wrows = []
        for count in sorted({r["workers"] for r in workers}):
            runs = [r for r in workers if r["workers"] == count]
            wrows.append([count, runs[0]["images"], f"{statistics.median(r['throughput'] for r in runs):.1f}",
                          f"{statistics.median(r['scoring_wall_s'] for r in runs):.1f}",
                          f"{statistics.median(r['load_before'] for r in runs):.1f}", len(runs)])
        one = next((float(r[2]) for r in wrows if r[0] == 1), None)
        two = next((float(r[2]) for r in wrows if r[0] == 2), None)
        lines += ["", f"Scoring workers{_elsewhere(workers, machine)}: N processes (1 thread each) each run `learning.selection.streaming."
                      f"score_shard` (what the Celery `learning.score_shard` task runs) on every N-th 256-image "
                      f"shard of the first {WORKER_IMAGES:,} images; throughput = images / wall time of the slowest "
                      "(median of runs).", "",
                  report.markdown_table(["workers", "images", "img/s", "wall s", "load", "runs"], wrows)]
        if one and two:
            lines += ["", f"2 workers: **{two / one:.2f}×** the throughput of 1 (on 2 cores shared with other work)."]
    if real:
        r = real[-1]
        lines += ["", f"Real size{_elsewhere(real, machine)}: {r['images']} images of {REAL[1]}×{REAL[0]} scored at {REAL_SCORING[1]}×"
                      f"{REAL_SCORING[0]} ({REAL_ARCH}, SLIC superpixels): streamed scoring {r['score_s']:.1f} s, "
                      f"of which the bare forward pass {r['forward_s']:.1f} s "
                      f"(**{100 * r['forward_s'] / r['score_s']:.0f}%**); the store keeps "
                      f"{r['store_kb_per_image']:.1f} KB an image where the full score record is "
                      f"{r['full_record_kb']:.0f} KB."]
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1].startswith("_"):
        kind, rest = sys.argv[1], sys.argv[2:]
        if kind == "_case":
            result = run_case(int(rest[0]), Path(rest[1]), int(rest[2]) if len(rest) > 2 else 1)
        elif kind == "_worker":
            result = run_worker(int(rest[0]), int(rest[1]), int(rest[2]), Path(rest[3]))
        else:
            result = run_real(int(rest[0]))
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pools", type=int, nargs="*", default=[1000, 10000, 100000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--runs-100k", type=int, default=2, help="runs of pools of 100,000 and more")
    parser.add_argument("--repeats", type=int, default=3, help="round steps per run (one process): selection times")
    parser.add_argument("--resume", action="store_true",
                        help="keep a store left by an interrupted run (its first run then scores only what is missing)")
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--real", type=int, default=32, help="real-size images to score (0: skip)")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    if not args.report_only:
        measure(args)
    records = [json.loads(line) for line in RECORDS.read_text().splitlines()] if RECORDS.exists() else []
    markdown = render(latest(records))
    print(markdown)
    if not args.no_write:
        report.write_section(SECTION, markdown)


if __name__ == "__main__":
    main()
