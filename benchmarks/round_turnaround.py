"""Round turnaround on the CamVid day → dusk project: how long annotators wait between rounds.

Builds a real maskloop project in a throw-away database (SQLite under
var/bench/turnaround/), imports CamVid day (source, labeled) and dusk (target:
first 46 frames the pool, last 16 frozen validation), and runs the round loop's
own services in this process, timing each phase:

1. round 0: the project's first model (warm-started from ``--init``, a
   checkpoint such as the domain-adaptation benchmark's source-only base, or
   trained from scratch without it), then scoring, selection and suggestions;
2. an oracle annotator submits every query of round 0 from the ground truth,
   through the same ``annotation_save`` service the browser calls;
3. round 1: **the turnaround** — fine-tune on source + the new dusk labels with
   domain adaptation, evaluate on dusk validation, score the pool, select,
   write suggestions, open the round. Goal: ≤ 10 minutes on the 2-core CPU.

    python benchmarks/round_turnaround.py --init var/bench/domain_adaptation/full/base-XXXX
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATASET = ROOT.parent / "shared" / "datasets" / "camvid-daydusk"
WORK = ROOT / "var" / "bench" / "turnaround"


def setup_django(work: Path) -> None:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    os.environ.update(MASKLOOP_VAR_DIR=str(work), DJANGO_SETTINGS_MODULE="config.settings")
    for name in ("DATABASE_URL", "MEDIA_ROOT", "MODELS_STORE_ROOT"):
        os.environ.pop(name, None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def create_project(args):
    import numpy as np

    from annotator.models import Project
    from annotator.services.imports import dataset_import
    from annotator.services.projects import project_create
    from django.contrib.auth import get_user_model

    users = get_user_model().objects
    lead = users.create_user("lead", password="x")
    annotator = users.create_user("oracle", password="x")
    project = project_create(
        name="CamVid day → dusk", created_by=lead, architecture=args.arch,
        train_height=args.size[0], train_width=args.size[1],
        train_steps_initial=args.steps_initial, train_steps_per_round=args.steps,
        query_unit=Project.QueryUnit.REGION, budget_unit=Project.BudgetUnit.PIXEL_PERCENT,
        budget_per_round=args.budget, rounds_total=3, init_checkpoint=str(args.init or ""),
    )
    from annotator.services.projects import membership_set

    membership_set(project=project, user=annotator, role="annotator")
    for domain, val in (("source", 0), ("target", 16)):
        report = dataset_import(project=project, path=DATASET / domain, domain=domain, val_count=val)
        print(f"import {domain}: {report.summary()}", flush=True)
    oracle = {}
    from learning.data import load_mask

    for image in project.images.filter(domain="target", split="pool"):
        oracle[image.pk] = np.array(load_mask(image.gt_mask.path))
        image.gt_mask.delete(save=True)  # pool labels come from annotators, not the import
    return project, annotator, oracle


def run_round(project, number: int) -> dict[str, float]:
    """Run the round's job through the loop's services in this process; seconds per step."""
    from annotator.models import Job, Round
    from annotator.services.round_jobs import round_select_run, round_train_run

    round_ = Round.objects.get(project=project, number=number)
    job = Job.objects.filter(round=round_).latest("created_at")
    times = {}
    started = time.perf_counter()
    outcome = round_train_run(job_id=job.pk, worker="bench")
    times["train + evaluate + store"] = time.perf_counter() - started
    if outcome != "trained":
        job.refresh_from_db()
        raise SystemExit(f"round {number} training ended with {outcome}: {job.message}\n{job.error}")
    started = time.perf_counter()
    outcome = round_select_run(job_id=job.pk, worker="bench")
    times["score + select + suggest + open"] = time.perf_counter() - started
    job.refresh_from_db()
    if outcome not in ("opened", "finished"):
        raise SystemExit(f"round {number} selection ended with {outcome}: {job.message}\n{job.error}")
    times["round total"] = sum(times.values())
    return times


def label_round(project, annotator, oracle, number: int) -> int:
    """An oracle submits every open query of round ``number`` through ``annotation_save``; how many."""
    import numpy as np
    from PIL import Image as PILImage

    from annotator.imaging import encode_png
    from annotator.models import Round
    from annotator.services.labeling import annotation_save, query_next

    submitted = 0
    round_ = Round.objects.get(project=project, number=number)
    while (query := query_next(project=project, user=annotator)) is not None and query.round_id == round_.pk:
        region = np.asarray(PILImage.open(query.region_mask.path)) > 0 if query.region_mask else None
        latest = query.image.annotations.order_by("-version").first()
        base = latest.version if latest else 0
        truth = oracle[query.image_id]
        mask = truth  # a whole-image query: the whole truth
        if region is not None:  # a region: the truth inside it, the image's earlier labels (or void) outside
            previous = np.asarray(PILImage.open(latest.mask.path)) if latest else np.full(region.shape, 255, np.uint8)
            mask = np.where(region, truth, previous).astype(np.uint8)
        annotation_save(query=query, user=annotator, mask_png=encode_png(mask), base_version=base, submit=True,
                        time_spent=0.0)
        submitted += 1
    return submitted


def percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--init", type=Path, help="checkpoint directory to start round 0 from (else from scratch)")
    parser.add_argument("--arch", default="deeplabv3_mobilenet_v3_large")
    parser.add_argument("--size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"))
    parser.add_argument("--steps", type=int, default=200, help="fine-tuning steps per round")
    parser.add_argument("--steps-initial", type=int, default=600, help="round 0 steps when there is no --init")
    parser.add_argument("--budget", type=float, default=1.0, help="%% of target pool pixels per round")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    parser.add_argument("--train-minutes", type=float,
                        help="MASKLOOP_ROUND_TRAIN_MINUTES for this run (default: the setting's default; 0 = no limit)")
    parser.add_argument("--write", action="store_true", help="write docs/BENCHMARKS.md")
    args = parser.parse_args(argv)
    if not DATASET.exists():
        print(f"{DATASET} is absent: nothing to measure")
        return 0
    import torch

    torch.set_num_threads(args.threads)
    if args.train_minutes is not None:
        os.environ["MASKLOOP_ROUND_TRAIN_MINUTES"] = str(args.train_minutes)
    setup_django(WORK)
    from django.conf import settings

    budget = settings.MASKLOOP_ROUND_TRAIN_MINUTES
    from benchmarks import report

    project, annotator, oracle = create_project(args)
    from annotator.services.rounds import project_start
    from django.db import transaction

    with transaction.atomic():
        project_start(project=project)  # the queued message has no worker here: this process runs the job
    rounds = {0: run_round(project, 0)}
    submitted = label_round(project, annotator, oracle, 0)
    print(f"round 0: oracle submitted {submitted} queries", flush=True)
    rounds[1] = run_round(project, 1)

    from models_store.models import ModelVersion
    from annotator.models import Round

    rows = []
    for number, times in rounds.items():
        round_ = Round.objects.get(project=project, number=number)
        model = ModelVersion.objects.get(round=round_)
        steps = model.metrics.get("train_steps")
        planned = model.metrics.get("train_steps_planned")
        rows.append([number, f"{steps} / {planned}" if steps is not None else "–",
                     f"{times['train + evaluate + store']:.0f}", f"{times['score + select + suggest + open']:.0f}",
                     f"**{times['round total'] / 60:.1f} min**", f"{100 * (model.miou or 0):.1f}",
                     f"{100 * model.metrics.get('labeled_target_fraction', 0):.2f} %", round_.stats.get("queries"),
                     percent(round_.stats.get("suggestion_precision")), percent(round_.stats.get("suggestion_coverage"))])
    table = report.markdown_table(
        ["round", "steps run / planned", "train+eval s", "score+select+suggest s", "turnaround", "dusk val mIoU",
         "target labeled", "queries", "suggestion precision (val)", "coverage (val)"], rows)
    text = (
        f"## Round turnaround (CamVid day → dusk project{'' if budget > 0 else ', no training time limit'})\n\n"
        f"Machine: {report.machine_description()}. Command: `{report.command_line()}`.\n\n"
        f"A real project (SQLite) with 577 day + 62 dusk images; {args.arch} at {args.size[0]}×{args.size[1]}, "
        f"{args.steps} fine-tuning steps per round planned, "
        + (f"fine-tuning limited to {budget:g} min (`MASKLOOP_ROUND_TRAIN_MINUTES`; fewer steps when the pace is slower), "
           if budget > 0 else "no training time limit (`MASKLOOP_ROUND_TRAIN_MINUTES=0`), ")
        + f"region queries, {args.budget} % of pool pixels per round; "
        f"round 0 {'warm-starts from ' + str(args.init) if args.init else f'trains from scratch for {args.steps_initial} steps'}; "
        f"training runs {args.threads} intra-op thread(s); an oracle submits "
        "round 0's queries from the ground truth; round 1 is the turnaround annotators wait for (goal ≤ 10 min). "
        "The loop's services run in this process (the same code a worker runs).\n\n" + table + "\n"
    )
    print(text)
    if args.write:
        report.write_section("round_turnaround" if budget > 0 else "round_turnaround_no_limit", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
