"""Start from nothing, in Chromium: a folder of plain images becomes a project with a model in the loop.

A lead creates a project with three classes, uploads 30 unlabeled images
through the Images page, and starts. Round 0 opens without a model: a diverse
first set of whole images and the validation images set aside, no
suggestions. The annotator labels a validation image in the page (fill and
polygon tools) and the rest through the page's own API calls; a real Celery
worker trains the first model; round 1 opens with suggestions and the
dashboard shows the validation mIoU.

``MASKLOOP_SCREENSHOTS=DIR`` also photographs the new pages into DIR (the
pictures in docs/screenshots come from ``MASKLOOP_SCREENSHOTS=docs/screenshots``).
"""
from __future__ import annotations

import base64
import io
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from annotator.imaging import encode_png
from annotator.models import Image, Project, Query, Round, Suggestion
from annotator.services.projects import membership_set, project_update
from annotator.services.round_data import MIN_VALIDATION_LABELS
from models_store.models import ModelVersion
from tests.app.test_round_loop import SIZE, failed_job_report, round_done, scene
from tests.browser.test_labeling import client_point
from tests.conftest import png_bytes, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

IMAGES = 30
SKY, ROAD, CAR = 0, 1, 2
SHOTS = Path(os.environ["MASKLOOP_SCREENSHOTS"]) if os.environ.get("MASKLOOP_SCREENSHOTS") else None


def photograph(page, name: str, *, full_page: bool = True, charts: bool = False) -> None:
    """With MASKLOOP_SCREENSHOTS only; ``charts``: wait for the dashboard's charts first (they take a while)."""
    if SHOTS is None:
        return
    if charts:
        page.wait_for_function(
            "() => [...document.querySelectorAll('figure[data-chart]')].every(f => f.querySelector('svg.chart-svg'))",
            timeout=60_000)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)


def stored_mask(query: Query) -> np.ndarray:
    annotation = query.image.annotations.filter(is_submitted=True).order_by("-version").first()
    with annotation.mask.open("rb") as handle:
        return np.asarray(PILImage.open(io.BytesIO(handle.read())))


def polygon(page, points: list[tuple[float, float]]) -> None:
    for x, y in points:
        page.mouse.click(*client_point(page, x, y))
    page.keyboard.press("Enter")


def label_in_the_page(page, truth: np.ndarray) -> None:
    """Road everywhere (fill every empty pixel), then sky above the horizon and the car, as polygons."""
    rows = np.nonzero((truth == SKY).all(axis=1))[0]
    horizon = int(rows.max()) + 1
    ys, xs = np.nonzero(truth == CAR)
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
    page.keyboard.press("2")
    page.keyboard.press("u")
    page.keyboard.press("1")
    page.keyboard.press("l")
    w = SIZE[0]
    right = w - 0.05  # vertices on the image: a click beside it may land on the panel
    polygon(page, [(0, 0), (right, 0), (right, horizon), (0, horizon)])
    page.keyboard.press("3")
    polygon(page, [(x0, y0), (x1, y0), (x1, y1), (x0, y1)])


# Submits every query (or ``limit`` queries) the annotator is given, with the ground truth of its image (inside
# its region), through the labeling page's own endpoints: "next", then a raw PNG to the query's submit URL.
LABEL_THE_REST = """async ({ truths, next, limit = Infinity }) => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const headers = { "X-CSRFToken": csrf, Accept: "application/json" };
  let done = 0;
  while (done < limit) {
    const answer = await (await fetch(next, { method: "POST", headers, credentials: "same-origin" })).json();
    if (!answer.query) return done;
    const query = answer.query;
    const png = Uint8Array.from(atob(truths[query.image.name]), (c) => c.charCodeAt(0));
    const saved = await fetch(`${query.urls.submit}?base_version=${query.base_version}`, {
      method: "POST", body: new Blob([png], { type: "image/png" }), credentials: "same-origin",
      headers: { ...headers, "Content-Type": "image/png" },
    });
    if (!saved.ok) throw new Error(`${query.id}: ${saved.status} ${await saved.text()}`);
    done++;
  }
  return done;
}"""


def test_a_lead_starts_from_plain_images_and_round_1_opens_with_suggestions(
    page, browser, live_server, login, create_project, users, start_worker
):
    started = time.monotonic()
    worker = start_worker("cold")  # a worker takes seconds to import torch: it starts while the lead works
    rng = np.random.default_rng(7)
    files, truths = [], {}
    for index in range(IMAGES):
        pixels, truth = scene(rng, dark=bool(index % 3 == 0))
        name = f"street_{index:02d}.png"
        files.append({"name": name, "mimeType": "image/png", "buffer": png_bytes(pixels)})
        truths[name] = truth

    # The lead creates the project with three classes.
    login(page, "lead", "pw-lead")
    create_project(page, "Street scenes", "sky #87ceeb\nroad #555555\ncar #dc143c")
    project = Project.objects.get(name="Street scenes")
    # Tiny training for a 2-core test machine (the settings page sets the same fields).
    project_update(project=project, architecture=Project.Architecture.LRASPP_MOBILENET, train_height=48,
                   train_width=64, train_steps_initial=40, train_steps_per_round=3, rounds_total=3,
                   budget_per_round=20.0, validation_images=MIN_VALIDATION_LABELS, adversarial_adaptation=False)
    membership_set(project=project, user=users["annotator"], role="annotator")

    # 30 plain images through the Images page's upload; a broken file and a copy are answered and cost nothing.
    page.click("nav.tabs >> text=Images")
    page.wait_for_function("() => window.uploader")  # the page's module listens for the files
    broken = {"name": "broken.png", "mimeType": "image/png", "buffer": b"not a png"}
    copy = {**files[0], "name": "street_00 copy.png"}
    page.set_input_files("#upload-images", [files[0], broken, copy, *files[1:]])
    assert "32 image(s), 0 mask(s) chosen" in page.inner_text("#upload-summary")
    page.click("#upload-start")
    page.wait_for_selector("[data-upload][data-state=done]", timeout=60_000)
    assert page.locator("#upload-files li[data-state=imported]").count() == IMAGES
    assert "not a readable image" in page.inner_text("#upload-files li[data-name='broken.png']")
    assert "already imported (same content)" in page.inner_text("#upload-files li[data-name='street_00 copy.png']")
    assert "30 imported, 1 skipped, 1 rejected" in page.inner_text("#upload-summary")
    photograph(page, "lead_upload")
    assert project.images.filter(domain=Image.Domain.TARGET, split=Image.Split.POOL, gt_mask="").count() == IMAGES

    # Start: no labels anywhere, so round 0 picks a diverse first set without a model.
    page.click("nav.tabs >> text=Dashboard")
    page.click("text=Start the project")
    page.wait_for_load_state("networkidle")
    assert "picking a diverse first set" in page.inner_text(".messages")
    wait_for(lambda: round_done(project, 0), timeout=240, what="round 0 to open", log_path=worker.log_path)
    round0 = Round.objects.get(project=project, number=0)
    assert round0.state == Round.State.LABELING, failed_job_report(project)
    assert round0.stats["cold_start"] and round0.model_version is None
    picked = round0.queries.filter(kind=Query.Kind.LABEL)
    validation = round0.queries.filter(kind=Query.Kind.VALIDATION)
    # 20 % of the 25 pool images' pixels buys 5 whole images; the default cold-start minimum asks for 10
    assert picked.count() == 10 and validation.count() == MIN_VALIDATION_LABELS
    assert not Suggestion.objects.exists() and not ModelVersion.objects.exists()
    page.reload()
    assert "mIoU appears once 5 validation images are labeled (0 of 5 labeled)" in page.inner_text(".tiles")
    photograph(page, "dashboard_validation_wait", full_page=False, charts=True)
    page.goto(f"{live_server.url}/projects/{project.pk}/images/browse/")
    assert page.locator(".thumb[data-status=queried]").count() == 10
    assert page.locator(".thumb[data-status=validation]").count() == 5
    page.wait_for_function("() => [...document.querySelectorAll('.thumb img')].every(i => i.naturalWidth)")
    photograph(page, "lead_browse")

    # The annotator labels a validation image in the page, the rest through the page's API calls.
    annotator = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    login(annotator, "annotator", "pw-annotator")
    first = validation.order_by("priority").first()
    annotator.goto(f"{live_server.url}/projects/{project.pk}/label/{first.pk}/")
    annotator.wait_for_selector("body[data-ready='1']", timeout=30_000)
    banner = annotator.locator("#validation-banner")
    assert banner.is_visible()
    assert "label every pixel; it measures the model and never trains it" in banner.inner_text()
    label_in_the_page(annotator, truths[first.image.original_name])
    annotator.wait_for_function("() => document.querySelector('#census').textContent.includes('100% labeled')")
    photograph(annotator, "labeling_validation", full_page=False)
    annotator.keyboard.press("Control+Enter")  # every pixel is labeled: no question
    annotator.wait_for_url(lambda url: "/label/" in url and not url.endswith(f"/label/{first.pk}/"), timeout=15_000)
    first.refresh_from_db()
    assert first.status == Query.Status.SUBMITTED
    assert (stored_mask(first) == truths[first.image.original_name]).mean() > 0.95
    annotator.wait_for_selector("body[data-ready='1']", timeout=30_000)
    encoded = {name: base64.b64encode(encode_png(mask)).decode() for name, mask in truths.items()}
    rest = annotator.evaluate(LABEL_THE_REST, {"truths": encoded,
                                               "next": f"/api/labeling/projects/{project.pk}/next/"})
    assert rest == 10 + MIN_VALIDATION_LABELS - 1
    assert Round.objects.get(pk=round0.pk).state == Round.State.CLOSED

    # The first model trains on those labels; round 1 opens with suggestions.
    wait_for(lambda: round_done(project, 1), timeout=300, what="round 1 to open", log_path=worker.log_path)
    round1 = Round.objects.get(project=project, number=1)
    assert round1.state == Round.State.LABELING, failed_job_report(project)
    model = ModelVersion.objects.get(project=project)
    assert model.round_id == round1.pk and model.metrics["val_images"] == MIN_VALIDATION_LABELS
    queries = round1.queries.all()
    assert queries.exists() and Suggestion.objects.filter(query__round=round1).count() == queries.count()
    assert round1.stats["suggestion_coverage"] > 0  # pre-filled, at the project's target precision
    assert not queries.filter(image__split=Image.Split.VAL).exists()
    page.goto(f"{live_server.url}/projects/{project.pk}/dashboard/")
    latest = page.locator(".tile", has_text="Latest mIoU").locator(".value").inner_text()
    assert re.fullmatch(r"\d+\.\d %", latest), latest
    assert f"{model.miou * 100:.1f} %" == latest
    assert page.locator("#validation-wait").count() == 0
    photograph(page, "dashboard_cold_start", charts=True)

    # A round-1 query opens pre-filled; once labeled, its image shows the mask and the suggestion read-only.
    annotator.goto(f"{live_server.url}/projects/{project.pk}/queue/")
    annotator.keyboard.press("Enter")
    annotator.wait_for_selector("body[data-ready='1']", timeout=30_000)
    assert "Suggestion by model v1" in annotator.inner_text("#suggestion-info")
    opened = Query.objects.get(round=round1, status=Query.Status.PENDING, assignee=users["annotator"])
    region = np.asarray(PILImage.open(opened.region_mask.path)) > 0 if opened.region_mask else True
    truth = np.where(region, truths[opened.image.original_name], 255).astype(np.uint8)
    assert annotator.evaluate(LABEL_THE_REST, {
        "truths": {opened.image.original_name: base64.b64encode(encode_png(truth)).decode()},
        "next": f"/api/labeling/projects/{project.pk}/next/", "limit": 1}) == 1
    page.goto(f"{live_server.url}/projects/{project.pk}/images/{opened.image_id}/")
    page.wait_for_selector("body[data-ready='1']", timeout=15_000)
    page.check("#show-suggestion")
    assert "version 1 by annotator" in page.inner_text(".image-info")
    assert "model v1 in round 1" in page.inner_text(".image-info")
    painted = page.evaluate("""() => ['#viewer-mask', '#viewer-suggestion'].map((id) => {
        const c = document.querySelector(id);
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
        return n; })""")
    suggested = np.asarray(PILImage.open(opened.suggestions.get().mask.path))
    assert painted == [(truth != 255).sum(), (suggested != 255).sum()]
    photograph(page, "lead_image")
    assert not [m for m in page.console_messages if m.startswith("pageerror")]
    print(f"\nstart from nothing: {time.monotonic() - started:.1f} s")
