"""One definition of "pixels labeled" (annotator.selectors_labeled), and every figure of it agrees."""
import re

import numpy as np
import pytest
from django.urls import reverse

from annotator.models import Image, Query, Round
from annotator.selectors import project_metrics
from annotator.selectors_labeled import labeled_pixels
from annotator.services.round_data import round_data
from frontend.templatetags.lead_format import pixels as pixels_text
from tests.app.simulated_campaign import SIZE, build_campaign
from tests.factories import make_annotation, make_image, make_query, make_round

pytestmark = pytest.mark.django_db
W, H = SIZE


@pytest.fixture
def campaign(project, users):
    return build_campaign(project, annotator=users["annotator"], lead=users["lead"])


def add_later_versions(campaign, users):
    """A region labeled in round 1 on an image round 0 labeled, a draft, a validation label: only the first counts."""
    image = campaign.pool[1]  # round 0 left its top 4 rows void
    query = make_query(campaign.rounds[1], image, region=np.ones((H, W), bool), status=Query.Status.SUBMITTED)
    full = np.zeros((H, W), np.uint8)
    make_annotation(query, full, author=users["lead"])  # the 4 void rows are labeled now: +4·W
    draft_query = campaign.rounds[1].queries.get(image=campaign.pool[4])
    make_annotation(draft_query, full, author=users["annotator"], submitted=False)
    validation = make_query(campaign.rounds[1], campaign.val[0], kind=Query.Kind.VALIDATION,
                            status=Query.Status.SUBMITTED)
    make_annotation(validation, full, author=users["annotator"])


def test_pixels_labeled_are_the_latest_versions_and_the_rounds_add_up_to_them(campaign, users):
    add_later_versions(campaign, users)
    counted = labeled_pixels(project=campaign.project)
    latest = W * H + W * H + W * H  # pool 0, 1 (now whole) and 2; not the draft, not the validation image
    assert counted.total == latest == round_data(campaign.project).labeled_target_pixels
    assert counted.by_round == {0: W * H + W * (H - 4), 1: W * H + 4 * W}
    assert counted.by_author == {"annotator": 2 * W * H + W * (H - 4), "lead": 4 * W}
    assert counted.before(1) == W * H + W * (H - 4) and counted.pool_pixels == 5 * W * H


def test_a_version_made_outside_a_query_counts_in_the_round_open_then(campaign, users):
    image = campaign.pool[3]
    query = campaign.rounds[1].queries.get(image=image)
    annotation = make_annotation(query, np.zeros((H, W), np.uint8), author=users["lead"])
    annotation.query = None  # e.g. its query was deleted
    annotation.save(update_fields=["query"])
    assert labeled_pixels(project=campaign.project).by_round[1] == 2 * W * H


def test_the_card_the_round_rows_the_charts_and_the_api_agree(campaign, users, client):
    add_later_versions(campaign, users)
    make_round(campaign.project, number=2, state=Round.State.TRAINING)
    client.force_login(users["lead"])
    metrics = project_metrics(project=campaign.project)
    truth = round_data(campaign.project).labeled_target_pixels
    # The metrics record: the total, the rounds, the people.
    assert metrics.labeled_pixels_total == truth == sum(r.labeled_pixels for r in metrics.rounds)
    assert metrics.labeled_fraction == pytest.approx(truth / metrics.target_pool_pixels)
    assert [r.labeled_target_pixels for r in metrics.rounds] == [0, metrics.rounds[0].labeled_pixels, truth]
    assert metrics.rounds[2].labeled_target_fraction == pytest.approx(metrics.labeled_fraction)
    # The API says the same.
    api = client.get(f"/api/projects/{campaign.project.pk}/metrics/").json()
    assert api["labeled_pixels_total"] == truth and api["labeled_fraction"] == pytest.approx(metrics.labeled_fraction)
    assert [r["labeled_pixels"] for r in api["rounds"]] == [r.labeled_pixels for r in metrics.rounds]
    # The dashboard: the top card and every round row.
    html = client.get(reverse("project-dashboard", args=[campaign.project.pk])).content.decode()
    card = html[html.index("Target pixels labeled"):html.index('id="labeled-pixels"') + 200]
    assert f"{100 * metrics.labeled_fraction:.2f} %" in card and f"{pixels_text(truth)} px labeled" in card
    rows = [int(v) for v in re.findall(r'data-labeled-pixels="(\d+)"', html)]
    assert rows == [r.labeled_pixels for r in metrics.rounds] and sum(rows) == truth
    # The budget chart (its data, which the page and the PNG both draw) shows the same pixels, in % of the pool.
    from frontend.lead_chart_data import budget_chart

    labeled_bars = next(series for series in budget_chart(metrics).series if series.name == "labeled")
    drawn = metrics.rounds[:2]  # round 2 has neither a plan nor labels yet: no bar
    assert [point.note for point in labeled_bars.points] == [f"{r.labeled_pixels:,} px" for r in drawn]
    assert sum(point.y for point in labeled_bars.points) == pytest.approx(100 * metrics.labeled_fraction)


def test_the_annotator_table_counts_the_same_pixels(campaign, users):
    add_later_versions(campaign, users)
    people = {row.username: row.labeled_pixels for row in project_metrics(project=campaign.project).annotators}
    assert people["annotator"] == labeled_pixels(project=campaign.project).by_author["annotator"]


def test_a_project_without_labels_says_zero_not_the_size_of_the_queries(project, users):
    round_ = make_round(project, number=0)
    image = make_image(project, size=(W, H), split=Image.Split.POOL)
    make_query(round_, image, status=Query.Status.SUBMITTED)  # answered, but its version left everything void
    make_annotation(round_.queries.get(), np.full((H, W), 255, np.uint8), author=users["annotator"])
    metrics = project_metrics(project=project)
    assert metrics.labeled_pixels_total == 0 and metrics.rounds[0].labeled_pixels == 0
