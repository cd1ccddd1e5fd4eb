"""The dashboard: per-round mIoU against the round-0 baseline, per-class IoU, budget, suggestions, people, jobs."""
import io

import numpy as np
import pytest
from django.urls import reverse
from PIL import Image as PILImage

from annotator.models import Job, Round
from frontend.lead_charts import CHARTS
from tests.app.simulated_campaign import build_campaign
from tests.factories import make_job, make_round

pytestmark = pytest.mark.django_db


@pytest.fixture
def campaign(project, users):
    return build_campaign(project, annotator=users["annotator"], lead=users["lead"])


@pytest.fixture
def lead_client(client, users):
    client.force_login(users["lead"])
    return client


def test_dashboard_shows_rounds_against_the_baseline(campaign, lead_client):
    html = lead_client.get(reverse("project-dashboard", args=[campaign.project.pk])).content.decode()
    assert "41.0 %" in html and "52.0 %" in html  # baseline and latest mIoU
    assert "+11.0 pts" in html  # round 1 against round 0
    assert "(baseline)" in html
    assert "Close round early" in html  # round 1 is labeling
    assert "66.0 %" in html  # round 0: median Dice of the suggestion against the submitted mask
    assert "36.67 %" in html  # share of target pixels labeled when round 1's model was trained (1,408 of 3,840)


def test_per_class_table_keeps_not_applicable_apart_from_zero(campaign, lead_client):
    html = lead_client.get(reverse("project-dashboard", args=[campaign.project.pk])).content.decode()
    table = html[html.index("Per-class IoU"):]
    assert "n/a" in table and "18 %" in table


def test_annotator_throughput_and_model_and_job_lists(campaign, lead_client):
    stale = make_job(campaign.project, round=campaign.rounds[1], state=Job.State.FAILED, message="disk full")
    training = make_round(campaign.project, number=2, state=Round.State.TRAINING)
    failed = make_job(campaign.project, round=training, state=Job.State.FAILED,
                      message="CUDA out of memory", error="Traceback ...\nRuntimeError: CUDA out of memory")
    html = lead_client.get(reverse("project-dashboard", args=[campaign.project.pk])).content.decode()
    annotators = html[html.index("<h2>Annotators"):html.index("<h2>Model versions")]
    assert "annotator" in annotators and "40 s" in annotators  # median of 40, 55, 30 s
    assert "86.4" in annotators  # 3 queries in 125 s of active time = 86.4 per hour
    for model in campaign.models:
        assert reverse("modelversion-download", args=[model.pk]) in html
    assert "CUDA out of memory" in html and "Traceback" not in html  # the traceback is for staff
    # A failed round job offers a retry only while its round still waits for it (round 1 is labeling already).
    assert reverse("job-action", args=[campaign.project.pk, failed.pk, "retry"]) in html
    assert reverse("job-action", args=[campaign.project.pk, stale.pk, "retry"]) not in html


@pytest.mark.parametrize("name", list(CHARTS))
def test_every_chart_is_a_png_for_leads_only(campaign, client, users, name):
    url = reverse("project-chart", args=[campaign.project.pk, name])
    client.force_login(users["annotator"])
    assert client.get(url).status_code == 403
    client.force_login(users["lead"])
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    image = PILImage.open(io.BytesIO(response.content))
    assert image.width >= 600 and image.height >= 200
    colours = np.unique(np.asarray(image.convert("RGB")).reshape(-1, 3), axis=0)
    assert len(colours) > 20  # drawn, not a blank canvas


def test_charts_of_a_new_project_say_there_is_nothing_yet(project, lead_client):
    for name in CHARTS:
        response = lead_client.get(reverse("project-chart", args=[project.pk, name]))
        assert response.status_code == 200
    html = lead_client.get(reverse("project-dashboard", args=[project.pk])).content.decode()
    assert "Getting started" in html and "data-chart=" not in html  # no empty charts before round 0


def test_every_dashboard_chart_has_a_png_and_per_class_iou_is_a_download_only():
    from frontend.lead_chart_data import CHART_NAMES

    assert set(CHARTS) == {*CHART_NAMES, "per-class"}
    assert "per-class" not in CHART_NAMES  # shown once on the page: the table


def test_unknown_chart_is_404(project, lead_client):
    assert lead_client.get(f"/projects/{project.pk}/dashboard/charts/pie.png").status_code == 404


def test_chart_address_changes_when_the_metrics_do(campaign, lead_client):
    url = reverse("project-dashboard", args=[campaign.project.pk])
    before = lead_client.get(url).context["charts_key"]
    model = campaign.models[1]
    model.metrics = {**model.metrics, "miou": 0.6}
    model.save()
    assert lead_client.get(url).context["charts_key"] != before


def test_job_tracebacks_are_for_staff_and_others_read_the_one_line_message(campaign, client, users):
    make_job(campaign.project, state=Job.State.FAILED, message="RuntimeError: CUDA out of memory",
             error='Traceback (most recent call last):\n  File "/srv/maskloop/learning/train.py", line 9\n'
                   "RuntimeError: CUDA out of memory")
    url = reverse("project-dashboard", args=[campaign.project.pk])
    client.force_login(users["lead"])
    html = client.get(url).content.decode()
    assert "RuntimeError: CUDA out of memory" in html and "/srv/maskloop" not in html
    client.force_login(users["admin"])
    assert "/srv/maskloop/learning/train.py" in client.get(url).content.decode()


def test_a_class_name_with_dollar_signs_is_drawn_as_plain_text(campaign, lead_client):
    from annotator.services.projects import ClassSpec, project_set_classes

    classes = [ClassSpec(c.index, c.name, c.color, c.hotkey) for c in campaign.project.classes.order_by("index")]
    classes[0] = ClassSpec(0, r"cost $\x$", classes[0].color, classes[0].hotkey)  # mathtext would fail on \x
    project_set_classes(project=campaign.project, classes=classes)
    response = lead_client.get(reverse("project-chart", args=[campaign.project.pk, "per-class"]))
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
