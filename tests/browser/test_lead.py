"""A lead in Chromium: create a project, set its budget, and read the dashboard after a (simulated) round.

``MASKLOOP_SCREENSHOTS=DIR`` also photographs every lead page of a longer
simulated campaign into DIR (factories, no training: quick, for checking the
layout; the numbers are made up). The pictures in docs/screenshots come from
a real campaign instead: ``tests/browser/demo_screenshots.py``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from annotator.models import Image, Project
from tests.app.simulated_campaign import build_campaign

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def test_lead_creates_a_project_sets_the_budget_and_sees_the_dashboard(page, live_server, login, users,
                                                                       create_project):
    failed_requests: list[str] = []
    page.on("response", lambda r: failed_requests.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico") else None)
    login(page, "lead", "pw-lead")
    create_project(page, "Dusk streets", "road\ncar #dc143c\nsky")
    assert "Created Dusk streets" in page.inner_text(".messages")

    page.select_option("select[name=query_unit]", "image")
    page.select_option("select[name=budget_unit]", "images")
    page.fill("input[name=budget_per_round]", "6")
    page.fill("input[name=rounds_total]", "3")
    page.select_option("select[name=strategy]", "entropy_diversity")
    page.fill("input[name=diversity_weight]", "0.3")
    page.select_option("select[name=target_statistics]", "off")
    assert "6 images per round" in page.inner_text("#budget-preview")
    page.click("form.settings button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "Settings saved." in page.inner_text(".messages")
    project = Project.objects.get(name="Dusk streets")
    assert (project.budget_unit, project.budget_per_round, project.rounds_total, project.strategy,
            project.target_statistics) == ("images", 6, 3, "entropy_diversity", "off")
    if os.environ.get("MASKLOOP_SCREENSHOTS"):
        page.screenshot(path=str(Path(os.environ["MASKLOOP_SCREENSHOTS"]) / "lead-settings.png"), full_page=True)

    build_campaign(project, annotator=users["annotator"], lead=users["lead"])  # what one round leaves behind
    page.click("nav.tabs >> text=Dashboard")
    page.wait_for_load_state("networkidle")
    chart = page.locator("figure[data-chart=miou] svg.chart-svg")  # drawn by lead/charts.js
    chart.wait_for()
    assert chart.evaluate("svg => svg.getBoundingClientRect().width") >= 500
    tiles = page.inner_text(".tiles")
    assert "41.0 %" in tiles and "52.0 %" in tiles and "+11.0 pts vs baseline" in tiles
    assert "66.0 %" in page.inner_text("table.rounds")  # median suggestion Dice of round 0
    errors = [m for m in page.console_messages
              if m.startswith("pageerror") or (m.startswith("error") and "Failed to load resource" not in m)]
    assert errors == [] and failed_requests == []


def test_live_job_progress_updates_without_a_reload(page, live_server, login, users, project):
    from annotator.models import Job
    from tests.factories import make_job

    job = make_job(project, kind=Job.Kind.IMPORT, state=Job.State.RUNNING, phase="import", progress=10,
                   message="imported 1 / 10")
    login(page, "lead", "pw-lead")
    page.goto(f"{live_server.url}/projects/{project.pk}/dashboard/")
    row = page.locator(f"#live [data-job-id='{job.pk}']")
    assert row.locator("progress").get_attribute("value") == "10"
    Job.objects.filter(pk=job.pk).update(progress=70, message="imported 7 / 10")
    page.wait_for_function(
        f"document.querySelector(\"#live [data-job-id='{job.pk}'] progress\").value === 70", timeout=10_000)
    assert "imported 7 / 10" in row.inner_text()


# --- Screenshots ----------------------------------------------------------------------------------------------


def _long_campaign(users):
    """Five rounds with CamVid-like classes, two annotators: what a month of a real campaign could look like."""
    from datetime import timedelta

    from django.utils import timezone

    from annotator.models import Job, Membership, Query, Round
    from annotator.services.projects import ClassSpec, membership_set, project_create
    from tests.factories import (
        make_annotation, make_image, make_job, make_model_version, make_query, make_round, make_suggestion,
    )

    names = ["sky", "building", "pole", "road", "sidewalk", "tree", "sign", "fence", "car", "pedestrian", "bicyclist"]
    colors = ["#808080", "#800000", "#c0c080", "#804080", "#3c28de", "#808000", "#c08080", "#404080", "#400080",
              "#404000", "#0080c0"]
    project = project_create(
        name="CamVid day → dusk", description="Screenshot data simulated by test factories (no training).",
        classes=[ClassSpec(i, n, c, str((i + 1) % 10) if i < 10 else "") for i, (n, c) in enumerate(zip(names, colors))],
        created_by=users["lead"], budget_per_round=1.5, rounds_total=5,
    )
    membership_set(project=project, user=users["annotator"], role=Membership.Role.ANNOTATOR)
    second = type(users["annotator"]).objects.create_user("maria", password="pw-maria")
    membership_set(project=project, user=second, role=Membership.Role.ANNOTATOR)
    size = (48, 36)
    rng = np.random.default_rng(3)
    for i in range(6):
        make_image(project, name=f"0001TP_{i:06d}.png", size=size, domain=Image.Domain.SOURCE,
                   split=Image.Split.TRAIN, gt=rng.integers(0, 11, size[::-1]).astype(np.uint8))
    pool = [make_image(project, name=f"Seq05VD_f{i:05d}.png", size=size) for i in range(30)]
    for i in range(4):
        make_image(project, name=f"Seq05VD_f{90 + i:05d}.png", size=size, split=Image.Split.VAL,
                   gt=rng.integers(0, 11, size[::-1]).astype(np.uint8))
    miou = [0.318, 0.402, 0.455, 0.487, 0.509, 0.521]
    base_iou = np.array([0.86, 0.62, 0.08, 0.83, 0.41, 0.58, 0.10, 0.12, 0.37, 0.09, 0.05])
    pool_pixels = 30 * size[0] * size[1]
    start = timezone.now() - timedelta(days=6)
    previous, labeled = None, 0
    for number, value in enumerate(miou):
        last = number == len(miou) - 1
        round_ = make_round(project, number=number, state=Round.State.LABELING if last else Round.State.CLOSED,
                            stats={"strategy": "adaptive", "diversity_weight": round(0.8 - 0.15 * number, 2),
                                   "suggestion_precision": round(0.88 + 0.015 * number, 3),
                                   "suggestion_coverage": round(0.35 + 0.09 * number, 3)})
        per_class = np.clip(base_iou + (value - miou[0]) * np.linspace(0.6, 1.6, 11), 0, 1)
        metrics = {"miou": value, "pixel_accuracy": 0.62 + value * 0.5,
                   "per_class_iou": {n: (None if n == "bicyclist" and number < 2 else round(float(v), 3))
                                     for n, v in zip(names, per_class)},
                   "labeled_target_fraction": labeled / pool_pixels, "labeled_target_pixels": labeled,
                   "val_images": 4, "train_seconds": 310.0 if number == 0 else 95.0}
        model = make_model_version(project, round_=round_, parent=previous, metrics=metrics,
                                   labeled_target_pixels=labeled)
        round_.model_version, previous = model, model
        for q in range(5):
            image = pool[(number * 5 + q) % 30]
            region = np.zeros(size[::-1], bool)
            region[q * 6:q * 6 + 10, 4 + q * 7:20 + q * 7] = True
            done = not last or q < 2
            who = users["annotator"] if q % 2 == 0 else second
            seconds = float(rng.normal(48 - 5 * number, 9) if who == second else rng.normal(62 - 6 * number, 12))
            query = make_query(round_, image, region=region, assignee=who if done else None,
                               status=Query.Status.SUBMITTED if done else Query.Status.PENDING,
                               time_spent_seconds=max(seconds, 8.0) if done else 0.0,
                               submitted_at=start + timedelta(days=number, minutes=q) if done else None)
            if done:
                labeled += query.pixels
                mask = np.where(region, 3, 255).astype(np.uint8)
                make_suggestion(query, mask, np.full(size[::-1], 0.9, np.float32))
                annotation = make_annotation(query, mask, author=who, time_spent=query.time_spent_seconds)
                annotation.suggestion_dice = float(np.clip(rng.normal(0.55 + 0.07 * number, 0.05), 0, 1))
                annotation.save()
        round_.budget_planned_pixels = sum(round_.queries.values_list("pixels", flat=True))
        round_.save()
        began = start + timedelta(days=number)
        make_job(project, round=round_, progress=100, message=f"round {number}: labeling open",
                 started_at=began, finished_at=began + timedelta(seconds=metrics["train_seconds"] + 40),
                 log=f"[09:{number:02d}:00] trained {600 if number == 0 else 200} steps\n[09:{number:02d}:40] "
                     f"val mIoU {value:.3f}\n[09:{number:02d}:55] selected 5 regions, suggestions written\n")
    make_job(project, kind=Job.Kind.EXPORT, progress=100, message="masks: exported 33 labeled images",
             started_at=timezone.now(), finished_at=timezone.now() + timedelta(seconds=3))
    project.state = Project.State.ACTIVE
    project.save()
    return project


@pytest.mark.skipif(not os.environ.get("MASKLOOP_SCREENSHOTS"), reason="set MASKLOOP_SCREENSHOTS=DIR to take them")
def test_screenshots(page, live_server, login, users):
    from django.utils import timezone

    target = os.environ["MASKLOOP_SCREENSHOTS"]
    out = ARTIFACTS if target == "1" else Path(target)
    out.mkdir(parents=True, exist_ok=True)
    project = _long_campaign(users)
    login(page, "lead", "pw-lead")
    page.set_viewport_size({"width": 1400, "height": 900})
    base = f"{live_server.url}/projects/{project.pk}"
    page.goto(f"{live_server.url}/projects/new/")
    page.screenshot(path=str(out / "lead_create.png"), full_page=True)
    for name, url in [("settings", "settings"), ("classes", "classes"), ("images", "images/?split=val"),
                      ("members", "members")]:
        page.goto(f"{base}/{url}/" if "?" not in url else f"{base}/{url}")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(out / f"lead_{name}.png"), full_page=True)
    page.goto(f"{base}/dashboard/")
    page.wait_for_function(
        "() => [...document.querySelectorAll('figure[data-chart]')].every(f => f.querySelector('svg.chart-svg'))")
    page.screenshot(path=str(out / "dashboard.png"), full_page=True)

    # A project being set up: what still stops it from starting (project_readiness), and an import
    # running (a job row from the factory: docs/screenshots/lead_start.png is this picture).
    from annotator.models import Job
    from annotator.services.projects import ClassSpec, project_create
    from tests.factories import make_job

    draft = project_create(name="Harbour (set-up)", created_by=users["lead"],
                           classes=[ClassSpec(0, "water", "#1f77b4", "1"), ClassSpec(1, "boat", "#d62728", "2")])
    make_job(draft, kind=Job.Kind.IMPORT, state=Job.State.RUNNING, phase="import", progress=45,
             message="imported 207 / 460", started_at=timezone.now())
    page.goto(f"{live_server.url}/projects/{draft.pk}/dashboard/")
    page.wait_for_load_state("networkidle")
    page.locator(".lead").screenshot(path=str(out / "lead_start.png"))
