"""The dashboard's chart records: what the page draws and what the PNG export draws are one record."""
import json
import re

import pytest
from django.urls import reverse

from frontend.lead_chart_data import CHART_NAMES, chart_specs
from frontend.lead_charts import chart_figure
from tests.app.simulated_campaign import build_campaign

pytestmark = pytest.mark.django_db


@pytest.fixture
def campaign(project, users):
    return build_campaign(project, annotator=users["annotator"], lead=users["lead"])


@pytest.fixture
def metrics(campaign):
    from annotator.selectors import project_metrics

    return project_metrics(project=campaign.project)


def by_name(spec) -> dict:
    return {s.name: s for s in spec.series}


def test_the_miou_chart_holds_every_round_and_the_baseline(metrics):
    miou = chart_specs(metrics)[0]
    series = by_name(miou)
    assert [(p.x, p.y, p.label) for p in series["mIoU"].points] == [(0, 41.0, "round 0"), (1, 52.0, "round 1")]
    baseline = series["round 0 baseline (no target labels)"]
    assert baseline.kind == "rule" and baseline.points[0].y == pytest.approx(41.0)
    assert [p.y for p in series["pixel accuracy"].points] == pytest.approx([71.0, 82.0])
    assert miou.x.ticks == [(0, "0"), (1, "1")]


def test_the_budget_chart_counts_labeled_pixels_against_the_pool(metrics):
    budget = next(spec for spec in chart_specs(metrics) if spec.name == "budget")
    planned, labeled = budget.series
    pool = metrics.target_pool_pixels
    for point, row in zip(labeled.points, metrics.rounds):
        assert point.y == pytest.approx(100 * row.labeled_pixels / pool)
        assert point.note == f"{row.labeled_pixels:,} px"
    assert [p.y for p in planned.points] == pytest.approx(
        [100 * r.budget_planned_pixels / pool for r in metrics.rounds])


def test_png_legends_sit_outside_the_plot_so_they_cover_no_data(metrics):
    drawn = 0
    for spec in chart_specs(metrics):
        figure = chart_figure(spec)
        figure.canvas.draw()
        if len(spec.series) < 2:
            assert not figure.legends
            continue
        renderer = figure.canvas.get_renderer()
        (legend,) = figure.legends
        plot = figure.axes[0].get_window_extent(renderer)
        box = legend.get_window_extent(renderer)
        assert box.y1 <= plot.y0, f"{spec.name}: the legend overlaps the plot"
        drawn += 1
    assert drawn == 3  # mIoU, budget, suggestions


def test_an_empty_project_gets_charts_that_say_so(project):
    from annotator.selectors import project_metrics

    specs = chart_specs(project_metrics(project=project))
    assert [s.name for s in specs] == list(CHART_NAMES)
    assert all(not s.has_data and s.empty for s in specs)
    chart_figure(specs[0]).canvas.draw()  # draws the sentence, no error


def test_the_dashboard_hands_the_records_to_its_script_and_shows_per_class_iou_once(campaign, metrics, client, users):
    client.force_login(users["lead"])
    html = client.get(reverse("project-dashboard", args=[campaign.project.pk])).content.decode()
    data = json.loads(re.search(r'<script id="chart-data" type="application/json">(.*?)</script>', html, re.S).group(1))
    assert data == json.loads(json.dumps([spec.to_dict() for spec in chart_specs(metrics)]))
    assert re.findall(r'data-chart="([\w-]+)"', html) == list(CHART_NAMES)
    # Per-class IoU: the table only (its heatmap is a PNG download), not a chart as well.
    assert html.count("Per-class IoU") == 1 and 'data-chart="per-class"' not in html
    for name in [*CHART_NAMES, "per-class"]:
        assert reverse("project-chart", args=[campaign.project.pk, name]) in html
    # The CSP allows no inline script: every script is a file or a data block.
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert ' src="' in tag or 'type="application/json"' in tag, tag
