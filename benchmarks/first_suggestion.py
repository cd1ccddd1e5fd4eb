"""Start from nothing: time from "Start" to the first pre-filled suggestion.

A new user's project: plain target images uploaded through the browser upload
service (no masks, no source domain, no model), the project's default settings.
By default the images are 100 CVC-ClinicDB frames (384×288, evenly spaced over
the pool sequences 1–17 of ``../shared/datasets/polyp-kvasir-clinicdb``); the
ground-truth masks are used only by the oracle annotator.

Each run, in a throw-away SQLite project under var/bench/first_suggestion/:
1. ``project_start``: validation images are set aside and round 0's cold-start
   job picks the most diverse whole images (no model);
2. an oracle submits round 0's label and validation queries through
   ``annotation_save`` (the service the browser calls) — instantly, so the
   measured time is the machine's, not an annotator's;
3. round 1: the first model trains (round 0's time budget,
   ``MASKLOOP_ROUND0_TRAIN_MINUTES``), is evaluated on the labeled validation
   images, scores the pool and writes the first suggestions.

The loop's services run in this process (the same functions a worker runs).
Reported: median of ``--runs`` of each phase and of the total.

    python benchmarks/first_suggestion.py --runs 3 --write
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATASET = ROOT.parent / "shared" / "datasets" / "polyp-kvasir-clinicdb"
WORK = ROOT / "var" / "bench" / "first_suggestion"
RECORDS = ROOT / "benchmarks" / "results" / "first_suggestion.jsonl"


def pool_frames(count: int) -> list[Path]:
    """``count`` target frames spread evenly over the pool sequences (1–17)."""
    frames = sorted(p for p in (DATASET / "target" / "images").glob("*.jpg") if int(p.stem[1:3]) <= 17)
    step = len(frames) / count
    return [frames[int(i * step)] for i in range(count)]


def create_project(frames: list[Path]):
    import numpy as np
    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import SimpleUploadedFile

    from annotator.services.projects import ClassSpec, membership_set, project_create
    from annotator.services.uploads import UPLOAD_MAX_FILES, upload_batch
    from learning.data import load_mask

    users = get_user_model().objects
    lead = users.create_user("lead", password="x")
    annotator = users.create_user("oracle", password="x")
    project = project_create(
        name="Polyps from nothing", created_by=lead,
        classes=[ClassSpec(0, "background", "#000000", "1"), ClassSpec(1, "polyp", "#ff0000", "2")],
    )
    membership_set(project=project, user=annotator, role="annotator")
    results = []
    for start in range(0, len(frames), UPLOAD_MAX_FILES):  # in requests of the size the upload page sends
        files = [SimpleUploadedFile(path.name, path.read_bytes(), content_type="image/jpeg")
                 for path in frames[start:start + UPLOAD_MAX_FILES]]
        results += upload_batch(project=project, files=files, domain="target")
    rejected = [r for r in results if r.state != "imported"]
    if rejected:
        raise SystemExit(f"upload rejected {len(rejected)} files: {rejected[:3]}")
    truth = {}
    for result, path in zip(results, frames):
        truth[result.image_id] = np.asarray(load_mask(DATASET / "target" / "masks" / f"{path.stem}.png"))
    return project, annotator, truth


def one_run(frames: list[Path], run: int) -> dict:
    from benchmarks.round_turnaround import label_round, setup_django

    setup_django(WORK / f"run{run}")
    from django.db import transaction

    from annotator.models import Job, Query, Round, Suggestion
    from annotator.services.round_jobs import round_select_run, round_train_run
    from annotator.services.rounds import project_start
    from models_store.models import ModelVersion

    project, annotator, truth = create_project(frames)
    load = os.getloadavg()[0]
    cpu0, started = time.process_time(), time.perf_counter()
    with transaction.atomic():
        round0 = project_start(project=project)
    job = Job.objects.get(round=round0)
    if (outcome := round_select_run(job_id=job.pk, worker="bench")) != "opened":
        raise SystemExit(f"round 0 selection ended with {outcome}")
    phases = {"start + cold-start selection": time.perf_counter() - started}
    label_round(project, annotator, truth, 0)  # the oracle answers round 0's label and validation queries
    label_counts = {kind: Query.objects.filter(round=round0, kind=kind).count() for kind in Query.Kind.values}
    round1 = Round.objects.get(project=project, number=1)
    job = Job.objects.get(round=round1)
    mark = time.perf_counter()
    if (outcome := round_train_run(job_id=job.pk, worker="bench")) != "trained":
        raise SystemExit(f"first model training ended with {outcome}: {Job.objects.get(pk=job.pk).error}")
    phases["first model: train + evaluate + store"] = time.perf_counter() - mark
    mark = time.perf_counter()
    if (outcome := round_select_run(job_id=job.pk, worker="bench")) != "opened":
        raise SystemExit(f"round 1 selection ended with {outcome}")
    phases["score + select + suggest"] = time.perf_counter() - mark
    phases["total (machine time)"] = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    model = ModelVersion.objects.get(round=round1)
    size = re.search(r"steps at \((\d+), (\d+)\)", Job.objects.get(pk=job.pk).log)
    round1.refresh_from_db()
    suggestions = Suggestion.objects.filter(query__round=round1).count()
    return {
        "run": run, "images": len(frames), "phases_s": phases, "cpu_s": cpu, "load_at_start": load,
        "round0_queries": label_counts, "suggestions": suggestions,
        "train_steps": model.metrics.get("train_steps"), "train_steps_planned": model.metrics.get("train_steps_planned"),
        "train_size": f"{size[1]}×{size[2]}" if size else None, "val_miou": model.miou,
        "val_images": model.metrics.get("val_images"), "pretrained": (model.metrics.get("pretrained") or {}).get("kind"),
        "suggestion_precision": round1.stats.get("suggestion_precision"),
        "adversarial": bool((model.train_config or {}).get("adversarial")),
    }


def latest_batch(path: Path) -> list[dict]:
    """The records of the newest batch of runs (records before batches existed form one batch of their own)."""
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    newest = records[-1].get("batch") if records else None
    return [r for r in records if r.get("batch") == newest]


def render(records: list[dict], threads: int) -> str:
    from benchmarks import report

    phases = list(records[0]["phases_s"])
    rows = [[name, *(f"{r['phases_s'][name] / 60:.1f}" for r in records),
             f"**{statistics.median(r['phases_s'][name] for r in records) / 60:.1f}**"] for name in phases]
    rows.append(["CPU minutes (process)", *(f"{r['cpu_s'] / 60:.1f}" for r in records),
                 f"{statistics.median(r['cpu_s'] for r in records) / 60:.1f}"])
    table = report.markdown_table(["phase (minutes)", *(f"run {r['run']}" for r in records), "median"], rows)
    first = records[0]
    details = report.markdown_table(
        ["run", "round-0 queries (label / validation)", "first model steps run / planned", "train size",
         "pretrained", "val mIoU (labeled val images)", "suggestions written"],
        [[r["run"], f"{r['round0_queries'].get('label')} / {r['round0_queries'].get('validation')}",
          f"{r['train_steps']} / {r['train_steps_planned']}", r["train_size"], r["pretrained"],
          report.percent(r["val_miou"]), r["suggestions"]] for r in records])
    return (
        "## Start from nothing: time to the first suggestion\n\n"
        f"Machine: {report.machine_description()}. Command: `python benchmarks/first_suggestion.py "
        f"--runs {len(records)} --threads {threads} --write`"
        + (f" at commit `{first['commit']}`" if first.get("commit") else "") + ".\n\n"
        f"A project of {first['images']} plain 384×288 CVC-ClinicDB frames uploaded through the upload service "
        "(no masks, no source, no model; default settings: 2 classes, region queries, 1 % of pool pixels per "
        "round, 10 validation images labeled in the app, a cold-start minimum of 10 images). Start → round 0 "
        "picks diverse whole images without a model → an oracle labels them and the validation images instantly (annotator time is not counted) → "
        "the first model trains within round 0's time budget (`MASKLOOP_ROUND0_TRAIN_MINUTES`), is evaluated, "
        f"scores the pool and writes the first suggestions. Training ran {threads} intra-op thread(s); the "
        "1-minute load average when each run started: "
        + ", ".join(f"{r.get('load_at_start', float('nan')):.1f}" for r in records)
        + " (2 cores: above ~1 other work took CPU from training, which then ran fewer steps in its budget)."
        "\n\n" + table + "\n\n" + details + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    parser.add_argument("--records", type=Path, default=RECORDS)
    parser.add_argument("--report-only", action="store_true", help="re-render from the records")
    parser.add_argument("--write", action="store_true", help="write docs/BENCHMARKS.md")
    parser.add_argument("--one-run", type=int, help=argparse.SUPPRESS)  # a child process: one run, JSON out
    args = parser.parse_args(argv)
    if args.one_run is not None:
        import torch

        torch.set_num_threads(args.threads)
        print("RECORD " + json.dumps(one_run(pool_frames(args.images), args.one_run)), flush=True)
        return 0
    records = []
    if args.report_only:
        records = latest_batch(args.records)
    else:
        if not DATASET.exists():
            print(f"{DATASET} is absent: nothing to measure")
            return 0
        from benchmarks import report

        batch = {"batch": time.strftime("%Y-%m-%dT%H:%M:%S"), "commit": report.git_commit(),
                 "threads": args.threads}
        for run in range(1, args.runs + 1):  # one process per run: Django is set up once per process
            child = subprocess.run(
                [sys.executable, __file__, "--one-run", str(run), "--images", str(args.images),
                 "--threads", str(args.threads)], capture_output=True, text=True)
            sys.stderr.write(child.stderr[-4000:])
            lines = [line for line in child.stdout.splitlines() if line.startswith("RECORD ")]
            if child.returncode or not lines:
                raise SystemExit(f"run {run} failed:\n{child.stdout[-4000:]}")
            records.append({**json.loads(lines[-1][len("RECORD "):]), **batch})
            print(json.dumps(records[-1]), flush=True)
            args.records.parent.mkdir(parents=True, exist_ok=True)
            with args.records.open("a") as out:  # every run is kept; the report renders the newest batch
                out.write(json.dumps(records[-1]) + "\n")
    threads = records[0].get("threads", args.threads) if records else args.threads
    import torch

    torch.set_num_threads(threads)  # the machine line states the runs' threads
    text = render(records, threads)
    print(text)
    if args.write:
        from benchmarks import report

        report.write_section("first_suggestion", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
