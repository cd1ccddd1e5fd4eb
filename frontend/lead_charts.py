"""Dashboard charts: matplotlib (Agg) figures of a ProjectMetrics, returned as PNG bytes.

Pure functions of the metrics record: no request, no database. ``Figure`` is
used directly (not pyplot), so concurrent requests never share global state.
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

BLUE, ORANGE, GREEN, GREY, RED = "#2563eb", "#ea580c", "#16a34a", "#6b7280", "#dc2626"
SIZE = (6.4, 3.3)


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
    axes.text(0.5, 0.5, text, ha="center", va="center", color=GREY, transform=axes.transAxes, fontsize=11)
    axes.set_xticks([])
    axes.set_yticks([])
    axes.spines[:].set_visible(False)


def miou_chart(metrics: ProjectMetrics) -> bytes:
    """mIoU of every round's model on the frozen validation images, round 0 as the baseline."""
    figure, axes = _figure()
    points = [(r.number, r.miou * 100) for r in metrics.rounds if r.miou is not None]
    axes.set_title("Validation mIoU per round", loc="left", fontsize=11)
    if not points:
        _empty(axes, "No evaluated model yet: it appears once a model is trained\nand validation images are labeled.")
        return _png(figure)
    x, y = zip(*points)
    axes.plot(x, y, marker="o", color=BLUE, linewidth=2, label="mIoU")
    accuracy = [(r.number, r.pixel_accuracy * 100) for r in metrics.rounds if r.pixel_accuracy is not None]
    if accuracy:
        axes.plot(*zip(*accuracy), marker=".", linestyle=":", color=GREY, label="pixel accuracy")
    if metrics.baseline_miou is not None:
        axes.axhline(metrics.baseline_miou * 100, color=ORANGE, linestyle="--", linewidth=1.2,
                     label="round 0 baseline (no target labels)")
    for xi, yi in points:
        axes.annotate(f"{yi:.1f}", (xi, yi), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=8)
    axes.set_xticks(list(x))
    axes.set_xlabel("round (model trained at its start)")
    axes.set_ylabel("%")
    axes.set_ylim(0, max(100 if accuracy else max(y) * 1.25, 10))
    axes.legend(fontsize=8, loc="lower right", frameon=False)
    return _png(figure)


def efficiency_chart(metrics: ProjectMetrics) -> bytes:
    """Label efficiency: mIoU against the share of target pixels humans have labeled."""
    figure, axes = _figure()
    axes.set_title("Label efficiency", loc="left", fontsize=11)
    points = [(r.labeled_target_fraction * 100, r.miou * 100, r.number) for r in metrics.rounds
              if r.miou is not None and r.labeled_target_fraction is not None]
    if not points:
        _empty(axes, "Appears once a model has been evaluated.")
        return _png(figure)
    x, y, labels = zip(*points)
    axes.plot(x, y, marker="o", color=GREEN, linewidth=2)
    for xi, yi, label in points:
        axes.annotate(f"R{label}", (xi, yi), textcoords="offset points", xytext=(5, -11), fontsize=8, color=GREY)
    axes.set_xlabel("target pool pixels labeled by annotators (%)")
    axes.set_ylabel("mIoU (%)")
    axes.set_xlim(left=0, right=max(max(x) * 1.15, 1.0))
    axes.set_ylim(0, max(max(y) * 1.25, 10))
    return _png(figure)


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


def budget_chart(metrics: ProjectMetrics) -> bytes:
    """Per round: pixels planned (the selected queries) against pixels submitted, in % of the target pool."""
    figure, axes = _figure()
    axes.set_title("Budget per round: planned vs labeled", loc="left", fontsize=11)
    rows = [r for r in metrics.rounds if r.budget_planned_pixels or r.budget_spent_pixels]
    if not rows:
        _empty(axes, "No queries selected yet.")
        return _png(figure)
    pool = metrics.target_pool_pixels
    scale, unit = (100 / pool, "% of target pool pixels") if pool else (1e-6, "megapixels")
    x = np.arange(len(rows))
    axes.bar(x - 0.18, [r.budget_planned_pixels * scale for r in rows], width=0.36, color="#bfdbfe",
             label="planned")
    axes.bar(x + 0.18, [r.budget_spent_pixels * scale for r in rows], width=0.36, color=BLUE, label="labeled")
    axes.set_xticks(x, [f"round {r.number}" for r in rows])
    axes.set_ylabel(unit)
    axes.legend(fontsize=8, frameon=False)
    return _png(figure)


def suggestion_chart(metrics: ProjectMetrics) -> bytes:
    """How good the pre-filled suggestions are: precision, coverage, and Dice against the submitted masks."""
    figure, axes = _figure()
    axes.set_title("Suggestions per round", loc="left", fontsize=11)
    series = [
        ("median Dice (suggestion vs submitted)", "suggestion_dice_median", GREEN, "o"),
        ("precision", "suggestion_precision", BLUE, "s"),
        ("coverage (share pre-filled)", "suggestion_coverage", ORANGE, "^"),
    ]
    drawn = False
    for label, attribute, color, marker in series:
        points = [(r.number, getattr(r, attribute) * 100) for r in metrics.rounds
                  if getattr(r, attribute) is not None]
        if points:
            axes.plot(*zip(*points), marker=marker, color=color, linewidth=1.8, label=label)
            drawn = True
    if not drawn:
        _empty(axes, "No suggestions yet.")
        return _png(figure)
    axes.set_xticks([r.number for r in metrics.rounds])
    axes.set_xlabel("round")
    axes.set_ylabel("%")
    axes.set_ylim(0, 105)
    axes.legend(fontsize=8, loc="lower right", frameon=False)
    return _png(figure)


CHARTS: dict[str, Callable[[ProjectMetrics], bytes]] = {
    "miou": miou_chart,
    "efficiency": efficiency_chart,
    "per-class": per_class_chart,
    "budget": budget_chart,
    "suggestions": suggestion_chart,
}
