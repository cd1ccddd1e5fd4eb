"""Jobs say which queue they wait in and why, show the wait apart from the run, and a stopped round says so."""
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from annotator.models import Job, Round
from annotator.selectors_jobs import job_badge, job_cancel_question, job_queue, job_timing_text, job_wait_note
from annotator.services.jobs import job_cancel_request
from tests.factories import make_job, make_round

pytestmark = pytest.mark.django_db


def ago(**delta):
    return timezone.now() - timedelta(**delta)


def test_each_job_waits_in_the_queue_its_task_is_routed_to(project):
    training = make_round(project, number=0, state=Round.State.TRAINING)
    round_job = make_job(project, round=training, state=Job.State.QUEUED)
    assert job_queue(job=round_job) == "training"
    training.state = Round.State.SELECTING  # the same job goes on in the selection queue
    training.save()
    assert job_queue(job=round_job) == "default"
    for kind in (Job.Kind.IMPORT, Job.Kind.EXPORT):
        assert job_queue(job=make_job(project, kind=kind, state=Job.State.QUEUED)) == "default"


def test_a_short_job_does_not_wait_behind_training_and_says_what_it_waits_for(project):
    training = make_round(project, number=0, state=Round.State.TRAINING)
    make_job(project, round=training, state=Job.State.RUNNING, started_at=ago(minutes=3))
    export = make_job(project, kind=Job.Kind.EXPORT, state=Job.State.QUEUED)
    note = job_wait_note(job=export)
    assert note.startswith("waiting for a worker on the 'default' queue to pick it up; nothing is ahead of it")
    imports = [make_job(project, kind=Job.Kind.IMPORT, state=Job.State.QUEUED) for _ in range(2)]
    Job.objects.filter(pk=imports[0].pk).update(state=Job.State.RUNNING, started_at=timezone.now())
    later = make_job(project, kind=Job.Kind.EXPORT, state=Job.State.QUEUED)
    assert job_wait_note(job=Job.objects.get(pk=later.pk)) == (
        "waiting for a free worker on the 'default' queue; 3 jobs ahead (1 running)")  # not the training job
    assert job_wait_note(job=Job.objects.get(pk=imports[0].pk)) == ""  # running: it waits for nothing


def test_the_time_in_the_queue_is_shown_apart_from_the_run(project):
    job = make_job(project, kind=Job.Kind.IMPORT, state=Job.State.SUCCEEDED)
    Job.objects.filter(pk=job.pk).update(created_at=ago(minutes=5), started_at=ago(minutes=0, seconds=30),
                                         finished_at=ago(seconds=18))
    job.refresh_from_db()
    assert job_timing_text(job=job) == "ran 12 s · waited 4 min 30 s"
    queued = make_job(project, kind=Job.Kind.EXPORT, state=Job.State.QUEUED)
    Job.objects.filter(pk=queued.pk).update(created_at=ago(seconds=65))
    queued.refresh_from_db()
    assert job_timing_text(job=queued) == "not started yet · waited 1 min 05 s"


def test_a_queued_job_wears_a_queued_badge_everywhere(project, client, users):
    queued = make_job(project, kind=Job.Kind.EXPORT, state=Job.State.QUEUED)
    assert job_badge(job=queued) == ("Queued", "queued")
    client.force_login(users["lead"])
    html = client.get(reverse("project-dashboard", args=[project.pk])).content.decode()
    live = html[html.index('id="live"'):html.index("Nothing is running")]
    assert 'job-state-queued">Queued</span>' in live and "Running<" not in live
    history = html[html.index("Job history"):]
    assert 'job-state-queued">Queued</span>' in history and "waiting for a worker on the &#x27;default&#x27;" in history
    body = client.get(f"/api/jobs/{queued.pk}/").json()
    assert (body["state"], body["state_label"], body["badge_state"], body["queue"]) == (
        "queued", "Queued", "queued", "default")
    assert body["wait_note"].startswith("waiting for a worker on the 'default' queue")


def test_cancelling_a_running_round_job_asks_first_and_says_what_is_lost(project, client, users):
    training = make_round(project, number=0, state=Round.State.TRAINING)
    job = make_job(project, round=training, state=Job.State.RUNNING, started_at=ago(minutes=12))
    export = make_job(project, kind=Job.Kind.EXPORT, state=Job.State.RUNNING, started_at=ago(seconds=3))
    assert job_cancel_question(job=job).startswith("Cancel round 0's job? It has run 12 min 00 s; the training")
    assert job_cancel_question(job=export) == ""  # a short job stops without a question
    client.force_login(users["lead"])
    html = client.get(reverse("project-dashboard", args=[project.pk])).content.decode()
    cancel = reverse("job-action", args=[project.pk, job.pk, "cancel"])
    form = html[html.index(f'action="{cancel}"'):][:400]
    assert 'data-confirm="Cancel round 0&#x27;s job? It has run 12 min' in form


def test_after_a_cancel_the_round_says_nothing_runs_to_the_lead_the_annotator_and_the_api(project, client, users):
    training = make_round(project, number=0, state=Round.State.TRAINING)
    job = make_job(project, round=training, state=Job.State.QUEUED)
    job_cancel_request(job=job)
    client.force_login(users["lead"])
    html = client.get(reverse("project-dashboard", args=[project.pk])).content.decode()
    assert 'id="round-status">Training stopped</span>' in html
    assert f"Nothing runs for round 0: job {job.pk} was cancelled" in html
    assert reverse("job-action", args=[project.pk, job.pk, "retry"]) in html and "Retry round 0" in html
    client.force_login(users["annotator"])
    queue = client.get(reverse("labeling-queue-page", args=[project.pk])).content.decode()
    assert 'id="round-status">training stopped</strong>' in queue and "The lead has to start it again" in queue
    rounds = client.get("/api/rounds/", {"project": project.pk}).json()["results"]
    assert (rounds[0]["state"], rounds[0]["status"]) == ("training", "Training stopped")


def test_round_zero_progress_with_elapsed_time_and_eta_reaches_annotators_and_leads(project, client, users):
    training = make_round(project, number=0, state=Round.State.TRAINING)
    make_job(project, round=training, state=Job.State.RUNNING, started_at=ago(minutes=2), progress=31, phase="train",
             message="train 15/300, loss 0.512, 1 min 10 s elapsed, about 4 min 30 s left")
    for who, page in (("annotator", "labeling-queue-page"), ("lead", "project-dashboard")):
        client.force_login(users[who])
        html = client.get(reverse(page, args=[project.pk])).content.decode()
        assert "train 15/300, loss 0.512, 1 min 10 s elapsed, about 4 min 30 s left" in html, who
        # the page measures the time itself: a slow (busy) test machine may be a few seconds past two minutes
        assert re.search(r"running for 2 min 0\d s", html), who
    client.force_login(users["annotator"])
    rounds = client.get("/api/rounds/", {"project": project.pk}).json()["results"]
    assert "about 4 min 30 s left" in rounds[0]["status_detail"]


def test_a_lead_on_the_queue_page_of_a_draft_project_gets_the_link_to_start_it(project, client, users):
    client.force_login(users["lead"])
    html = client.get(reverse("labeling-queue-page", args=[project.pk])).content.decode()
    assert f'<a href="{reverse("project-dashboard", args=[project.pk])}">start it from the dashboard</a>' in html
    client.force_login(users["annotator"])
    assert "The lead starts it when the data is imported." in client.get(
        reverse("labeling-queue-page", args=[project.pk])).content.decode()
