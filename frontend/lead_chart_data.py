"""What the dashboard's charts show, as plain records: one definition for the page and the PNG.

The page draws each :class:`ChartSpec` as an interactive SVG (lead/charts.js,
fed by ``json_script``); :mod:`frontend.lead_charts` draws the same spec with
matplotlib for the "Download PNG" link. Pure functions of a ProjectMetrics: no
request, no database, no matplotlib (the dashboard never pays for importing it).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from annotator.selectors import ProjectMetrics

BLUE, ORANGE, GREEN, GREY, LIGHT_BLUE = "#2563eb", "#ea580c", "#16a34a", "#6b7280", "#93c5fd"


@dataclass(frozen=True)
class Point:
    x: float  # the round number, a percentage, or (bar charts) the category's position
    y: float
    label: str  # what the hover names the point: "round 2"
    note: str = ""  # more for the hover: "4,487 px"


@dataclass(frozen=True)
class Series:
    name: str
    color: str
    points: list[Point]
    kind: str = "line"  # line | rule (a horizontal reference line at points[0].y) | bar
    style: str = "solid"  # solid | dashed | dotted
    marker: str = "circle"  # circle | square | triangle | none
    annotate: str = ""  # PNG only: "value" or "label" printed by each point


@dataclass(frozen=True)
class Axis:
    label: str
    min: float | None = None  # None: from the data
    max: float | None = None
    unit: str = ""  # after each value in the hover, after a space: "%", "Mpx"
    decimals: int = 1
    ticks: list[tuple[float, str]] | None = None  # fixed ticks (rounds, categories); None: round numbers


@dataclass(frozen=True)
class ChartSpec:
    name: str
    title: str
    x: Axis
    y: Axis
    series: list[Series] = field(default_factory=list)
    empty: str = ""  # shown instead of the plot while no series has a point

    @property
    def has_data(self) -> bool:
        return any(s.points for s in self.series)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _pct(value: float) -> float:
    return round(value * 100, 4)


def miou_chart(metrics: ProjectMetrics) -> ChartSpec:
    """mIoU of every round's model on the frozen validation images, round 0 as the baseline."""
    rounds = [r for r in metrics.rounds if r.miou is not None]
    accuracy = [r for r in metrics.rounds if r.pixel_accuracy is not None]
    series = [Series("mIoU", BLUE, [Point(r.number, _pct(r.miou), f"round {r.number}") for r in rounds],
                     annotate="value")]
    if accuracy:
        series.append(Series("pixel accuracy", GREY, [Point(r.number, _pct(r.pixel_accuracy), f"round {r.number}")
                                                      for r in accuracy], style="dotted", marker="square"))
    if metrics.baseline_miou is not None and rounds:
        series.append(Series("round 0 baseline (no target labels)", ORANGE,
                             [Point(0, _pct(metrics.baseline_miou), "round 0")], kind="rule", style="dashed",
                             marker="none"))
    numbers = sorted({r.number for r in rounds} | {r.number for r in accuracy})
    return ChartSpec(
        "miou", "Validation mIoU per round",
        x=Axis("round (model trained at its start)", ticks=[(n, str(n)) for n in numbers]),
        y=Axis("%", min=0, max=100 if accuracy else None, unit="%"),
        series=series if rounds else [],
        empty="No evaluated model yet: it appears once a model is trained and validation images are labeled.",
    )


def efficiency_chart(metrics: ProjectMetrics) -> ChartSpec:
    """Label efficiency: mIoU against the share of target pixels humans had labeled when the model trained."""
    rounds = [r for r in metrics.rounds if r.miou is not None and r.labeled_target_fraction is not None]
    points = [Point(_pct(r.labeled_target_fraction), _pct(r.miou), f"round {r.number}",
                    f"{_pct(r.labeled_target_fraction):.2f} % of the target pool labeled") for r in rounds]
    return ChartSpec(
        "efficiency", "Label efficiency",
        x=Axis("target pool pixels labeled by annotators (%)", min=0, unit="%", decimals=2),
        y=Axis("mIoU (%)", min=0, unit="%"),
        series=[Series("mIoU", GREEN, points, annotate="label")] if points else [],
        empty="Appears once a model has been evaluated.",
    )


def budget_chart(metrics: ProjectMetrics) -> ChartSpec:
    """Per round: pixels planned (the selected queries) against pixels labeled, in % of the target pool."""
    rows = [r for r in metrics.rounds if r.budget_planned_pixels or r.labeled_pixels]
    pool = metrics.target_pool_pixels
    scale, unit, axis = (100 / pool, "%", "% of target pool pixels") if pool else (1e-6, "Mpx", "megapixels")

    def bars(attribute: str) -> list[Point]:
        return [Point(i, round(getattr(r, attribute) * scale, 6), f"round {r.number}",
                      f"{getattr(r, attribute):,} px") for i, r in enumerate(rows)]

    return ChartSpec(
        "budget", "Budget per round: planned vs labeled",
        x=Axis("", ticks=[(i, f"round {r.number}") for i, r in enumerate(rows)]),
        y=Axis(axis, min=0, unit=unit, decimals=2),
        series=[Series("planned", LIGHT_BLUE, bars("budget_planned_pixels"), kind="bar", marker="none"),
                Series("labeled", BLUE, bars("labeled_pixels"), kind="bar", marker="none")] if rows else [],
        empty="No queries selected yet.",
    )


def suggestion_chart(metrics: ProjectMetrics) -> ChartSpec:
    """How good the pre-filled suggestions are: precision, coverage, and Dice against the submitted masks."""
    definitions = [
        ("median Dice (suggestion vs submitted)", "suggestion_dice_median", GREEN, "circle"),
        ("precision", "suggestion_precision", BLUE, "square"),
        ("coverage (share pre-filled)", "suggestion_coverage", ORANGE, "triangle"),
    ]
    series = []
    for name, attribute, color, marker in definitions:
        points = [Point(r.number, _pct(getattr(r, attribute)), f"round {r.number}") for r in metrics.rounds
                  if getattr(r, attribute) is not None]
        if points:
            series.append(Series(name, color, points, marker=marker))
    return ChartSpec(
        "suggestions", "Suggestions per round",
        x=Axis("round", ticks=[(r.number, str(r.number)) for r in metrics.rounds]),
        y=Axis("%", min=0, max=100, unit="%"),
        series=series,
        empty="No suggestions yet.",
    )


# The dashboard's charts, in page order. Per-class IoU is not among them: the dashboard shows it once, as the
# coloured table (its PNG, frontend.lead_charts.per_class_chart, is a download for reports).
SPECS = {"miou": miou_chart, "efficiency": efficiency_chart, "budget": budget_chart, "suggestions": suggestion_chart}
CHART_NAMES = tuple(SPECS)


def chart_specs(metrics: ProjectMetrics) -> list[ChartSpec]:
    return [build(metrics) for build in SPECS.values()]
