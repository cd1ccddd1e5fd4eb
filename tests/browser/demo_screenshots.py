"""Regenerate docs/screenshots/dashboard.png, lead_*.png and labeling_demo*.png from a real demo campaign.

Not a test (it trains for minutes): a script. In a throw-away var directory it
creates the demo project, starts it, runs a real Celery worker (train →
select → suggest), and plays two oracle annotators who label each round's
queries from the demo dataset's ground truth through the labeling service (so
time on task and suggestion Dice are recorded as in real use). The last round
is left half-labeled. It then exports masks and COCO through the worker,
serves the app and photographs the lead pages in Chromium, and the labeling
page (as an annotator, at a 1280×720 laptop size) on one of the last round's
open queries with the round model's own suggestion.

    .venv/bin/python tests/browser/demo_screenshots.py [--rounds 3] [--out docs/screenshots] [--pages dashboard labeling]

About 10 minutes on 2 CPU cores (round 0 trains 300 steps, later rounds 120).
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage"]


def wait(predicate, *, timeout: float, what: str, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    raise SystemExit(f"timed out waiting for {what}\n{tail}")


def label_round(round_, *, limit: int | None, dataset: Path, seed: int) -> int:
    """Oracle annotators: copy ground truth into each query's region and submit through annotation_save."""
    import numpy as np
    from django.contrib.auth import get_user_model
    from PIL import Image as PILImage

    from annotator.imaging import encode_png
    from annotator.models import Query
    from annotator.services.labeling import annotation_save

    people = list(get_user_model().objects.filter(username__in=["annotator", "maria"]).order_by("username"))
    rng = random.Random(seed)
    queries = list(round_.queries.filter(status=Query.Status.PENDING).select_related("image"))[:limit]
    for position, query in enumerate(queries):
        image = query.image
        truth = np.asarray(PILImage.open(dataset / "target" / "masks" / f"{Path(image.original_name).stem}.png"))
        latest = image.annotations.order_by("-version").first()
        mask = np.asarray(PILImage.open(latest.mask.path)).copy() if latest else np.full(truth.shape, 255, np.uint8)
        if query.region_mask:
            region = np.asarray(PILImage.open(query.region_mask.path)) > 0
            mask[region] = truth[region]
        else:
            mask = truth.copy()
        who = people[position % len(people)]
        annotation_save(query=query, user=who, mask_png=encode_png(mask.astype(np.uint8)),
                        base_version=latest.version if latest else 0, submit=True,
                        time_spent=rng.uniform(15, 45) if who.username == "maria" else rng.uniform(25, 70))
    return len(queries)


PAGES = ("lead", "dashboard", "labeling")


def sign_in(browser, base: str, username: str, password: str, viewport: tuple[int, int]):
    page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
    page.goto(f"{base}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")
    return page


def photograph_labeling(page, base: str, out: Path, project_pk: int) -> None:
    """The labeling page on the next open query: as it opens, with the display adjusted, a polygon at 16×."""
    page.goto(f"{base}/projects/{project_pk}/queue/")
    page.keyboard.press("Enter")  # "Start labeling"
    page.wait_for_selector("body[data-ready='1']", timeout=120_000)
    page.wait_for_timeout(500)
    page.screenshot(path=str(out / "labeling_demo.png"))
    # Dusk frames are dark: brighten the view (keyboard only), never the data.
    page.locator("#display summary").focus()
    page.keyboard.press("Enter")
    page.locator("#display-gamma-input").focus()
    for _ in range(12):
        page.keyboard.press("ArrowRight")
    page.locator("#display-brightness").focus()
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    page.locator("#display-reset").scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    page.screenshot(path=str(out / "labeling_demo_display.png"))
    # A polygon in progress at high zoom: a thin, unbroken outline.
    page.locator("#viewport").focus()
    page.keyboard.press("l")
    size = page.evaluate("[window.labeler.width, window.labeler.height]")
    centre = [size[0] * 0.5, size[1] * 0.6]
    page.evaluate("([x, y]) => { const v = window.labeler.view, at = v.toClient(x, y); "
                  "v.zoomAt(at.x, at.y, 16 / v.scale); }", centre)
    for dx, dy in [(-9, -5), (8, -6), (11, 4), (-2, 9)]:
        at = page.evaluate("([x, y]) => window.labeler.view.toClient(x, y)", [centre[0] + dx, centre[1] + dy])
        page.mouse.click(at["x"], at["y"])
    at = page.evaluate("([x, y]) => window.labeler.view.toClient(x, y)", [centre[0] - 8, centre[1] + 6])
    page.mouse.move(at["x"], at["y"])
    page.wait_for_timeout(300)
    page.screenshot(path=str(out / "labeling_demo_polygon.png"))
    page.keyboard.press("Escape")  # nothing is saved: the query stays open
    (out / "labeling_demo.txt").write_text(
        "Screenshots of the labeling page on the demo project (tests/browser/demo_screenshots.py), 1280×720,\n"
        "an open query of the last round with the suggestion of that round's model (trained in the same run).\n"
        "labeling_demo.png: the page as it opens: every class in view, the finish bar below the controls\n"
        "labeling_demo_display.png: \"Image display\" opened with the keyboard, gamma and brightness raised "
        "(the view only)\n"
        "labeling_demo_polygon.png: a polygon being drawn at 1600 % zoom: a thin, connected outline\n")


def photograph(base: str, out: Path, project_pk: int, password: str, pages=PAGES) -> None:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = sign_in(browser, base, "lead", password, (1400, 900))
        if "lead" in pages:
            page.goto(f"{base}/projects/new/")
            page.screenshot(path=str(out / "lead_create.png"), full_page=True)
            for name, url in [("settings", "settings/"), ("classes", "classes/"), ("images", "images/?split=val"),
                              ("members", "members/")]:
                page.goto(f"{base}/projects/{project_pk}/{url}")
                page.wait_for_load_state("networkidle")
                page.screenshot(path=str(out / f"lead_{name}.png"), full_page=True)
        if "dashboard" in pages:
            page.goto(f"{base}/projects/{project_pk}/dashboard/")
            page.wait_for_function(  # a function, not an expression: the CSP forbids the eval Playwright polls with
                "() => [...document.querySelectorAll('figure[data-chart]')]"
                ".every(f => f.querySelector('svg.chart-svg'))")
            page.screenshot(path=str(out / "dashboard.png"), full_page=True)
            # The hover of the mIoU chart at the last round (the tooltip lists every series there).
            svg = page.locator("figure[data-chart=miou] svg.chart-svg")
            svg.scroll_into_view_if_needed()
            box = svg.bounding_box()
            at = svg.evaluate("(svg) => { const c = svg.closest('figure').chart; "
                              "return c.scale.sx(Math.max(...c.spec.series[0].points.map((p) => p.x))); }")
            page.mouse.move(box["x"] + at, box["y"] + box["height"] / 2)
            page.screenshot(path=str(out / "dashboard_chart_hover.png"),
                            clip=page.locator("figure[data-chart=miou]").bounding_box())
        if "labeling" in pages:
            photograph_labeling(sign_in(browser, base, "annotator", password, (1280, 720)), base, out, project_pk)
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="labeling rounds to play (the last one half)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--keep", action="store_true", help="keep the var directory (printed) afterwards")
    parser.add_argument("--pages", nargs="+", choices=PAGES, default=list(PAGES), help="which pictures to take")
    args = parser.parse_args()

    var = Path(tempfile.mkdtemp(prefix="maskloop-shots-"))
    password = "maskloop-demo"
    os.environ.update(MASKLOOP_VAR_DIR=str(var), DJANGO_SETTINGS_MODULE="config.settings", OMP_NUM_THREADS="1",
                      PYTHONUNBUFFERED="1")
    os.environ.pop("DATABASE_URL", None)  # always the throw-away SQLite file under var/
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from annotator.models import Job, Membership, Project, Round
    from annotator.services.exports import export_start
    from annotator.services.projects import membership_set
    from annotator.services.rounds import project_start

    call_command("migrate", "--noinput", verbosity=0)
    call_command("demo_setup", "--source", "16", "--target", "12", "--password", password)
    project = Project.objects.get()
    maria = get_user_model().objects.create_user("maria", password=password)
    membership_set(project=project, user=maria, role=Membership.Role.ANNOTATOR)

    worker_log = var / "worker.log"
    processes = []
    try:
        with open(worker_log, "w") as log:
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo", "-Q", "default,training",
                 "--without-heartbeat", "--without-gossip", "--without-mingle", "-n", f"shots-{os.getpid()}@%h"],
                cwd=ROOT, env=os.environ.copy(), stdout=log, stderr=subprocess.STDOUT))
        project_start(project=project)
        dataset = Path(settings.VAR_DIR) / "demo-dataset"
        for number in range(args.rounds + 1):
            def labeling(number=number):
                failed = Job.objects.filter(project=project, state=Job.State.FAILED).first()
                if failed:
                    raise SystemExit(f"job {failed.pk} failed: {failed.error}")
                return Round.objects.filter(project=project, number=number, state=Round.State.LABELING).first()

            round_ = wait(labeling, timeout=1800, what=f"round {number} to open", log=worker_log)
            done = label_round(round_, limit=None if number < args.rounds else 3, dataset=dataset, seed=number)
            print(f"round {number}: labeled {done} queries", flush=True)
        jobs = [export_start(project=project, fmt=fmt) for fmt in ("masks", "coco")]
        wait(lambda: all(Job.objects.get(pk=j.pk).is_final for j in jobs), timeout=300, what="the exports",
             log=worker_log)

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        processes.append(subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"], cwd=ROOT,
            env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

        def serving() -> bool:
            with socket.socket() as client:
                return client.connect_ex(("127.0.0.1", port)) == 0

        wait(serving, timeout=60, what="the web server")
        photograph(f"http://127.0.0.1:{port}", args.out, project.pk, password, pages=args.pages)
        print(f"screenshots written to {args.out}")
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        if args.keep:
            print(f"kept {var}")
        else:
            shutil.rmtree(var, ignore_errors=True)


if __name__ == "__main__":
    main()
