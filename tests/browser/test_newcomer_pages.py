"""What a newcomer meets in Chromium: jobs that say why they wait, a cancel that asks first and a round that
then says nothing runs, training progress for annotators, styled error pages, honest import reports.

``MASKLOOP_SCREENSHOTS=DIR`` also saves each page these tests look at into DIR (docs/screenshots has them).
"""
from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from django.utils import timezone

from annotator.models import Job, Round
from tests.factories import make_image, make_job, make_model_version, make_query, make_round, make_suggestion

pytestmark = pytest.mark.django_db(transaction=True)


def shoot(page, name: str, *, full_page: bool = True) -> None:
    folder = os.environ.get("MASKLOOP_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=full_page)


def training_round(project, *, minutes: int = 12) -> tuple[Round, Job]:
    round_ = make_round(project, number=0, state=Round.State.TRAINING)
    job = make_job(project, round=round_, state=Job.State.RUNNING, phase="train", progress=31,
                   started_at=timezone.now() - timedelta(minutes=minutes),
                   message="train 150/300, loss 0.512, 11 min 40 s elapsed, about 11 min 40 s left")
    Job.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(minutes=minutes, seconds=20))
    return round_, job


def test_cancelling_training_asks_first_and_then_the_round_says_nothing_runs(page, live_server, login, project):
    from annotator.services.jobs import job_mark_cancelled

    _, job = training_round(project)
    login(page, "lead", "pw-lead")
    page.goto(f"{live_server.url}/projects/{project.pk}/dashboard/")
    live = page.locator(f"#live [data-job-id='{job.pk}']")
    assert "about 11 min 40 s left" in live.inner_text() and "ran 12 min" in live.inner_text()
    questions: list[str] = []

    def answer(dialog, accept: bool):
        questions.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    cancel = page.locator(f"form[action$='/jobs/{job.pk}/cancel/'] button")
    page.once("dialog", lambda dialog: answer(dialog, False))
    cancel.click()
    assert questions[0].startswith("Cancel round 0's job? It has run 12 min")
    assert not Job.objects.get(pk=job.pk).cancel_requested  # dismissed: nothing was sent
    page.once("dialog", lambda dialog: answer(dialog, True))
    cancel.click()
    page.wait_for_load_state("networkidle")
    assert Job.objects.get(pk=job.pk).cancel_requested
    job_mark_cancelled(job_id=job.pk)  # what the worker does at its next progress report
    page.goto(f"{live_server.url}/projects/{project.pk}/dashboard/")
    assert page.text_content("#round-status") == "Training stopped"
    assert f"Nothing runs for round 0: job {job.pk} was cancelled" in page.inner_text(".tiles")
    assert page.locator("button:has-text('Retry round 0')").is_visible()
    shoot(page, "dashboard_training_stopped", full_page=False)


def test_a_queued_job_says_queued_and_why_it_waits_while_the_page_polls(page, live_server, login, project):
    training_round(project, minutes=4)
    export = make_job(project, kind=Job.Kind.EXPORT, state=Job.State.QUEUED, message="export coco: queued")
    selection = make_job(project, kind=Job.Kind.IMPORT, state=Job.State.RUNNING, started_at=timezone.now(),
                         message="import 3/40", progress=8)
    Job.objects.filter(pk=export.pk).update(created_at=timezone.now() + timedelta(seconds=1))
    login(page, "lead", "pw-lead")
    page.goto(f"{live_server.url}/projects/{project.pk}/dashboard/")
    row = page.locator(f"#live [data-job-id='{export.pk}']")
    Job.objects.filter(pk=selection.pk).update(progress=20, message="import 8/40")
    page.wait_for_function(f"document.querySelector(\"#live [data-job-id='{selection.pk}'] progress\").value === 20",
                           timeout=10_000)  # jobs.js has polled and redrawn every row
    assert row.locator(".job-state").text_content() == "Queued"
    assert "job-state-queued" in row.locator(".job-state").get_attribute("class")
    assert row.locator(".job-wait").inner_text() == (
        "waiting for a free worker on the 'default' queue; 1 job ahead (1 running)")
    assert row.locator(".job-timing").inner_text().startswith("not started yet · waited")
    shoot(page, "dashboard_jobs_waiting", full_page=False)


def test_annotators_see_training_progress_with_elapsed_time_and_eta(page, live_server, login, project):
    training_round(project)
    login(page, "annotator", "pw-annotator")
    page.goto(f"{live_server.url}/projects/{project.pk}/queue/")
    assert page.text_content("#round-status") == "training"
    detail = page.inner_text("#round-detail")
    assert "about 11 min 40 s left" in detail and "running for 12 min" in detail
    shoot(page, "queue_training_progress")


def test_a_refused_page_is_styled_with_a_way_back(page, live_server, login, project):
    login(page, "annotator", "pw-annotator")
    response = page.goto(f"{live_server.url}/projects/{project.pk}/dashboard/")
    assert response.status == 403
    assert "Only the project's leads can open this page." in page.inner_text("main")
    page.click("text=Back to my projects")
    page.wait_for_url(f"{live_server.url}/")
    page.goto(f"{live_server.url}/projects/{project.pk}/dashboard/")
    shoot(page, "error_403", full_page=False)
    icon = page.evaluate("document.querySelector('link[rel=icon]').href")
    assert page.request.get(icon).status == 200


def test_an_empty_suggestion_is_called_no_suggestion_on_the_labeling_page(page, live_server, login, project):
    round_ = make_round(project, number=0, model_version=make_model_version(project))
    image = make_image(project, size=(120, 90))
    region = np.zeros((90, 120), bool)
    region[20:60, 30:90] = True
    query = make_query(round_, image, region=region)
    make_suggestion(query, np.full((90, 120), 255, np.uint8), np.zeros((90, 120)))
    login(page, "annotator", "pw-annotator")
    page.goto(f"{live_server.url}/projects/{project.pk}/label/{query.pk}/")
    page.wait_for_selector("body[data-ready='1']", timeout=30000)
    text = page.inner_text("#suggestion-info")
    assert text == "No suggestion for this region: model v1 was not confident about any of its pixels."
    assert "pre-filled" not in text
    shoot(page, "labeling_empty_suggestion", full_page=False)


def test_a_failed_import_is_red_and_names_every_file(page, live_server, login, project):
    job = make_job(project, kind=Job.Kind.IMPORT, state=Job.State.FAILED,
                   started_at=timezone.now() - timedelta(seconds=3), finished_at=timezone.now(),
                   message="imported 0, skipped 1, rejected 2: every image was rejected (the reasons are in the "
                           "report)",
                   log="[10:00:00] imported 0, skipped 1, rejected 2\nskipped  notes.txt: not part of the import "
                       "layout (images/, masks/, classes.json), so it was not imported\nrejected a.jpg: not a "
                       "readable image: no known image format (PNG, JPEG, TIFF, BMP, WebP, GIF)\nrejected b.jpg: "
                       "mask b.png: mask is 10×10 but the image is 64×48\n")
    login(page, "lead", "pw-lead")
    page.goto(f"{live_server.url}/projects/{project.pk}/images/")
    row = page.locator(f"[data-job-id='{job.pk}']")
    assert row.locator(".job-state").text_content() == "Failed"
    color = row.locator(".job-state").evaluate("el => getComputedStyle(el).backgroundColor")
    assert color == "rgb(254, 226, 226)"  # red, not the green of a success
    row.locator("summary").click()
    assert "skipped  notes.txt" in row.inner_text()
    row.scroll_into_view_if_needed()
    shoot(page, "lead_import_report")


def test_the_strategy_dropdown_shows_its_whole_text(page, live_server, login, project):
    login(page, "lead", "pw-lead")
    page.goto(f"{live_server.url}/projects/{project.pk}/settings/")
    for name in ("strategy", "architecture", "pretrained", "budget_unit"):
        select = page.locator(f"select[name={name}]")
        needed, shown = select.evaluate("""(el) => {
            const style = getComputedStyle(el);
            const context = document.createElement("canvas").getContext("2d");
            context.font = `${style.fontSize} ${style.fontFamily}`;
            const text = Math.max(...[...el.options].map((o) => context.measureText(o.text).width));
            return [text + parseFloat(style.paddingLeft) + parseFloat(style.paddingRight) + 20, el.clientWidth];
        }""")
        assert shown >= needed, f"{name}: {shown} px shown, {needed:.0f} px needed"
    assert page.locator("#draft-hint a").get_attribute("href") == f"/projects/{project.pk}/dashboard/"
    shoot(page, "lead_settings")


def test_a_lead_archives_a_project_after_a_question_and_finds_it_apart(page, live_server, login, project):
    login(page, "lead", "pw-lead")
    page.goto(f"{live_server.url}/projects/{project.pk}/settings/")
    questions: list[str] = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    page.click("button:has-text('Archive the project')")
    page.wait_for_load_state("networkidle")
    assert questions[0].startswith("Archive Streets? It becomes read-only")
    assert "This project is archived" in page.inner_text("#archived-note")
    page.goto(f"{live_server.url}/")
    page.click("summary:has-text('Archived projects (1)')")
    assert "Unarchive or delete" in page.inner_text(".archived-projects")
    shoot(page, "home_archived_projects", full_page=False)


def test_the_dashboard_shows_one_figure_of_labeled_pixels(page, live_server, login, project, users):
    from annotator.selectors_labeled import labeled_pixels
    from tests.app.simulated_campaign import build_campaign

    campaign = build_campaign(project, annotator=users["annotator"], lead=users["lead"])
    counted = labeled_pixels(project=campaign.project)
    login(page, "lead", "pw-lead")
    page.goto(f"{live_server.url}/projects/{project.pk}/dashboard/")
    card = page.inner_text("#labeled-pixels")
    assert card == f"{counted.total / 1000:.1f} k px labeled of {counted.pool_pixels / 1000:.1f} k"
    rows = page.locator("[data-labeled-pixels]")
    assert [int(rows.nth(i).get_attribute("data-labeled-pixels")) for i in range(rows.count())] == [
        counted.by_round.get(0, 0), counted.by_round.get(1, 0)]
    page.locator("table.rounds").scroll_into_view_if_needed()
    shoot(page, "dashboard_labeled_pixels", full_page=True)
