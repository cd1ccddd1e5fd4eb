"""The dashboard's charts in Chromium: drawn by the app's own script under its CSP, values on hover and
from the keyboard, series toggled from a legend that sits outside the plot, a PNG for reports."""
from __future__ import annotations

import pytest

from tests.app.simulated_campaign import build_campaign

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def dashboard(page, live_server, login, users, project):
    build_campaign(project, annotator=users["annotator"], lead=users["lead"])
    login(page, "lead", "pw-lead")
    page.goto(f"{live_server.url}/projects/{project.pk}/dashboard/")
    page.wait_for_selector("figure[data-chart=suggestions] svg.chart-svg")
    return page


def tip(page, chart: str) -> str:
    return page.locator(f"figure[data-chart={chart}] .chart-tip").inner_text()


def hover_round(page, chart: str, x: float) -> None:
    """Move the mouse over the plot at data x (a round number, or a category position)."""
    svg = page.locator(f"figure[data-chart={chart}] svg.chart-svg")
    svg.scroll_into_view_if_needed()
    box = svg.bounding_box()
    at = svg.evaluate("(svg, x) => svg.closest('figure').chart.scale.sx(x)", x)
    page.mouse.move(box["x"] + at, box["y"] + box["height"] / 2)


def test_charts_are_drawn_with_values_on_hover_and_toggled_from_the_legend(dashboard):
    page = dashboard
    names = page.eval_on_selector_all("figure[data-chart]", "(fs) => fs.map((f) => f.dataset.chart)")
    assert names == ["miou", "efficiency", "budget", "suggestions"]
    for name in names:
        assert page.locator(f"figure[data-chart={name}] svg.chart-svg").count() == 1
    assert page.locator("img[data-chart]").count() == 0  # no static pictures any more

    # Hover round 1 of the mIoU chart: every series' value there, the baseline too.
    hover_round(page, "miou", 1)
    text = tip(page, "miou")
    assert "round 1" in text and "52.0 %" in text and "82.0 %" in text and "41.0 %" in text
    assert page.locator("figure[data-chart=miou] .chart-guide").count() == 1
    hover_round(page, "miou", 0.1)  # the nearest round
    assert "round 0" in tip(page, "miou") and "41.0 %" in tip(page, "miou")
    page.mouse.move(1, 1)
    assert page.locator("figure[data-chart=miou] .chart-tip").is_hidden()

    # The legend: under the plot, never over it; a click hides a series, another brings it back.
    legend = page.locator("figure[data-chart=miou] .chart-legend").bounding_box()
    plot = page.locator("figure[data-chart=miou] svg.chart-svg").bounding_box()
    assert legend["y"] >= plot["y"] + plot["height"]
    accuracy = page.locator("figure[data-chart=miou] .legend-item[data-series='pixel accuracy']")
    assert accuracy.get_attribute("aria-pressed") == "true"
    accuracy.click()
    assert accuracy.get_attribute("aria-pressed") == "false"
    assert page.locator("figure[data-chart=miou] g.chart-series[data-series='pixel accuracy']").count() == 0
    hover_round(page, "miou", 1)
    assert "82.0 %" not in tip(page, "miou") and "52.0 %" in tip(page, "miou")
    accuracy.click()
    assert page.locator("figure[data-chart=miou] g.chart-series[data-series='pixel accuracy']").count() == 1

    # Bars: the hover names the pixel counts behind the percentages.
    hover_round(page, "budget", 0)
    assert "round 0" in tip(page, "budget") and " px" in tip(page, "budget")
    # One series (label efficiency): nothing to toggle, no legend.
    assert page.locator("figure[data-chart=efficiency] .legend-item").count() == 0

    errors = [m for m in page.console_messages if m.startswith(("error", "pageerror"))]
    assert errors == []  # a CSP violation (inline script or style) would show up here


def test_chart_values_can_be_read_with_the_keyboard(dashboard):
    page = dashboard
    page.locator("figure[data-chart=suggestions] svg.chart-svg").focus()
    assert "round 0" in tip(page, "suggestions")
    page.keyboard.press("ArrowRight")
    text = tip(page, "suggestions")
    assert "round 1" in text and "precision" in text
    page.keyboard.press("Escape")
    assert page.locator("figure[data-chart=suggestions] .chart-tip").is_hidden()
    page.locator("figure[data-chart=suggestions] .legend-item").first.focus()
    page.keyboard.press("Enter")  # legend entries are buttons
    assert page.locator("figure[data-chart=suggestions] .legend-item").first.get_attribute("aria-pressed") == "false"


def test_every_chart_downloads_as_a_png(dashboard):
    page = dashboard
    links = page.eval_on_selector_all("a.chart-png", "(as) => as.map((a) => [a.href, a.getAttribute('download')])")
    assert len(links) == 5  # four charts and the per-class table
    for href, filename in links:
        response = page.request.get(href)
        assert response.status == 200 and response.headers["content-type"] == "image/png", href
        assert response.body()[:8] == b"\x89PNG\r\n\x1a\n" and filename.endswith(".png")
