"""Dashboard charts as PNG files for reports: matplotlib (Agg) drawings of the page's chart specs.

The dashboard draws its charts in the browser (lead/charts.js) from the
records of :mod:`frontend.lead_chart_data`; the "Download PNG" link under each
one lands here and draws the *same* record, so the file and the page never
disagree. The legend goes below the plot, outside the axes, so it covers no
data. Per-class IoU, which the dashboard shows as a table, has its heatmap here.
``Figure`` is used directly (not pyplot), so concurrent requests share no state.
"""
from __future__ import annotations

import io
from collections.abc import Callable

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from annotator.selectors import ProjectMetrics  # noqa: E402

from .lead_chart_data import GREY, SPECS, ChartSpec, Series  # noqa: E402

SIZE = (6.4, 3.6)
LINESTYLES = {"solid": "-", "dashed": "--", "dotted": ":"}
MARKERS = {"circle": "o", "square": "s", "triangle": "^", "none": None}


def _plain(text: str) -> str:
    """User text (class names) as literal chart text: an unescaped ``$`` pair would start matplotlib mathtext."""
    return str(text).replace("$", r"\$")


def _figure(size=SIZE) -> tuple[Figure, object]:
    figure = Figure(figsize=size, dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.spines[["top", "right"]].set_visible(False)
    axes.grid(True, color="#e5e7eb", linewidth=0.8)
    axes.set_axisbelow(True)
    return figure, axes


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _empty(axes, text: str) -> None:
    axes.text(0.5, 0.5, text, ha="center", va="center", color=GREY, transform=axes.transAxes, fontsize=11,
              wrap=True)
    axes.set_xticks([])
    axes.set_yticks([])
    axes.spines[:].set_visible(False)


def _draw_series(axes, series: Series, *, bar_slot: tuple[int, int] | None) -> None:
    xs = [p.x for p in series.points]
    ys = [p.y for p in series.points]
    label = _plain(series.name)
    if series.kind == "rule":
        axes.axhline(ys[0], color=series.color, linestyle=LINESTYLES[series.style], linewidth=1.2, label=label)
        return
    if series.kind == "bar":
        index, count = bar_slot
        width = 0.72 / count
        axes.bar([x - 0.36 + width * (index + 0.5) for x in xs], ys, width=width, color=series.color, label=label)
        return
    axes.plot(xs, ys, color=series.color, linestyle=LINESTYLES[series.style], marker=MARKERS[series.marker],
              linewidth=2 if series.style == "solid" else 1.4, markersize=5, label=label)
    for point in series.points if series.annotate else ():
        text = f"{point.y:.1f}" if series.annotate == "value" else _plain(point.label.replace("round ", "R"))
        axes.annotate(text, (point.x, point.y), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=8,
                      color="#111827" if series.annotate == "value" else GREY)


def chart_figure(spec: ChartSpec) -> Figure:
    """The spec drawn as a figure: title, axes as the spec says, the legend below the axes (outside them)."""
    figure, axes = _figure()
    axes.set_title(_plain(spec.title), loc="left", fontsize=11)
    if not spec.has_data:
        _empty(axes, spec.empty)
        return figure
    bars = [s for s in spec.series if s.kind == "bar"]
    for series in spec.series:
        _draw_series(axes, series, bar_slot=(bars.index(series), len(bars)) if series in bars else None)
    if spec.x.ticks is not None:
        axes.set_xticks([value for value, _ in spec.x.ticks], [_plain(text) for _, text in spec.x.ticks])
    if spec.x.label:
        axes.set_xlabel(_plain(spec.x.label))
    axes.set_ylabel(_plain(spec.y.label))
    if spec.x.min is not None:
        axes.set_xlim(left=spec.x.min)
    tallest = max(p.y for s in spec.series for p in s.points)
    axes.set_ylim(spec.y.min if spec.y.min is not None else None,
                  spec.y.max if spec.y.max is not None else max(tallest * 1.2, 1e-9))
    if any(s.kind == "line" for s in spec.series) and spec.y.max is not None:
        axes.set_ylim(top=spec.y.max * 1.06)  # room for the annotations above 100 %
    if len(spec.series) > 1:
        figure.legend(loc="outside lower center", ncols=min(3, len(spec.series)), fontsize=8, frameon=False)
    return figure


def per_class_chart(metrics: ProjectMetrics) -> bytes:
    """Heatmap of per-class IoU, one row per round's model; n/a (class absent from both) in grey."""
    rows = [r for r in metrics.rounds if r.per_class_iou]
    classes = metrics.classes or sorted({c for r in rows for c in r.per_class_iou})
    height = max(2.2, 0.9 + 0.42 * len(rows))
    figure, axes = _figure((max(6.4, 0.62 * len(classes) + 1.6), height))
    axes.grid(False)
    axes.set_title("Per-class IoU on validation (%)", loc="left", fontsize=11)
    if not rows or not classes:
        _empty(axes, "No per-class IoU yet.")
        return _png(figure)
    values = np.array([[np.nan if r.per_class_iou.get(c) is None else r.per_class_iou[c] * 100 for c in classes]
                       for r in rows])
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#e5e7eb")
    image = axes.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=0, vmax=100, aspect="auto")
    for (i, j), value in np.ndenumerate(values):
        text = "n/a" if np.isnan(value) else f"{value:.0f}"
        color = GREY if np.isnan(value) else ("white" if value < 60 else "black")
        axes.text(j, i, text, ha="center", va="center", fontsize=8, color=color)
    axes.set_xticks(range(len(classes)), [_plain(c) for c in classes], rotation=35, ha="right", fontsize=8)
    axes.set_yticks(range(len(rows)), [f"round {r.number}" for r in rows], fontsize=8)
    axes.spines[:].set_visible(False)
    figure.colorbar(image, ax=axes, fraction=0.03, pad=0.01)
    return _png(figure)


def _spec_png(build: Callable[[ProjectMetrics], ChartSpec]) -> Callable[[ProjectMetrics], bytes]:
    return lambda metrics: _png(chart_figure(build(metrics)))


# Every PNG the dashboard links to: its charts (drawn from the same specs as the page) and the per-class heatmap.
CHARTS: dict[str, Callable[[ProjectMetrics], bytes]] = {
    **{name: _spec_png(build) for name, build in SPECS.items()},
    "per-class": per_class_chart,
}
