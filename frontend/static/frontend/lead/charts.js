// The dashboard's charts: small interactive SVG charts drawn from the page's chart-data block
// (frontend/lead_chart_data.py writes it with json_script; the CSP allows no inline script).
//
// Hover a chart, or focus it and use the arrow keys, to read every series' value at a round;
// click a legend entry (a button below the plot, so it never covers data) to hide or show its
// series. The pure functions (ticks, domains, what the hover lists) are exported for tests.

const SVG = "http://www.w3.org/2000/svg";
const HEIGHT = 300;
const MARGIN = { top: 16, right: 18, bottom: 46, left: 56 };
const DASHES = { solid: "", dashed: "6 4", dotted: "2 3" };

// --- pure functions -------------------------------------------------------------------------------

/** A round step (1, 2, 2.5 or 5 × 10^k) that cuts ``span`` into about ``count`` parts. */
export function niceStep(span, count = 5) {
  const raw = span / Math.max(1, count);
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / magnitude;
  return (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10) * magnitude;
}

/** Tick values at a nice step from ``min`` to ``max`` (both inclusive when they fall on the step). */
export function niceTicks(min, max, count = 5) {
  if (!(max > min)) return [min];
  const step = niceStep(max - min, count);
  const ticks = [];
  for (let k = Math.ceil(min / step - 1e-9); k * step <= max + step * 1e-9; k++) ticks.push(Number((k * step).toPrecision(12)));
  return ticks;
}

export function visibleSeries(spec, hidden) {
  return spec.series.filter((s) => !hidden.has(s.name));
}

/** [low, high] of the y axis: the spec's bounds where it sets them, else the visible data's, rounded out to a tick. */
export function yDomain(spec, hidden) {
  const values = visibleSeries(spec, hidden).flatMap((s) => s.points.map((p) => p.y));
  const low = spec.y.min ?? (values.length ? Math.min(...values) : 0);
  let high = spec.y.max ?? (values.length ? Math.max(...values) * 1.15 : 1);
  if (!(high > low)) high = low + 1;
  if (spec.y.max == null) high = Math.ceil(high / niceStep(high - low)) * niceStep(high - low);
  return [low, high];
}

/** [low, high] of the x axis, from every series (hiding one never moves the others). */
export function xDomain(spec) {
  const values = [...(spec.x.ticks || []).map(([v]) => v), ...spec.series.filter((s) => s.kind !== "rule").flatMap((s) => s.points.map((p) => p.x))];
  if (!values.length) return [0, 1];
  const bars = spec.series.some((s) => s.kind === "bar");
  let low = Math.min(...values), high = Math.max(...values);
  if (spec.x.ticks) {
    const pad = bars || high === low ? 0.5 : Math.max(0.25, (high - low) * 0.05);
    return [low - pad, high + pad];
  }
  low = spec.x.min ?? low;
  high = spec.x.max ?? high + Math.max((high - low) * 0.1, 1e-6);
  return [low, high > low ? high : low + 1];
}

/** The x values the hover stops at: every visible point's, sorted, once each. */
export function hoverStops(spec, hidden) {
  const xs = visibleSeries(spec, hidden).filter((s) => s.kind !== "rule").flatMap((s) => s.points.map((p) => p.x));
  return [...new Set(xs)].sort((a, b) => a - b);
}

export function nearest(values, x) {
  let best = -1;
  values.forEach((v, i) => { if (best < 0 || Math.abs(v - x) < Math.abs(values[best] - x)) best = i; });
  return best;
}

/** A value as the hover and the axis write it: "52.0 %". */
export function formatValue(value, axis, decimals = axis.decimals) {
  return `${value.toFixed(decimals)}${axis.unit ? ` ${axis.unit}` : ""}`;
}

/** What the hover lists at ``x``: {title, rows: [{name, color, value, note}]} for the visible series. */
export function hoverAt(spec, hidden, x) {
  let title = "";
  const rows = [];
  for (const s of visibleSeries(spec, hidden)) {
    const point = s.kind === "rule" ? s.points[0] : s.points.find((p) => p.x === x);
    if (!point) continue;
    if (!title && s.kind !== "rule") title = point.label;
    rows.push({ name: s.name, color: s.color, value: formatValue(point.y, spec.y), note: point.note || "" });
  }
  return { title, rows };
}

// --- drawing ----------------------------------------------------------------------------------------

function el(name, attributes = {}, parent = null) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (parent) parent.appendChild(node);
  return node;
}

function marker(shape, x, y, size, color, parent) {
  if (shape === "none") return null;
  if (shape === "square") return el("rect", { x: x - size, y: y - size, width: 2 * size, height: 2 * size, fill: color }, parent);
  if (shape === "triangle") {
    const h = size * 1.2;
    return el("path", { d: `M${x},${y - h}L${x + h},${y + h * 0.8}L${x - h},${y + h * 0.8}Z`, fill: color }, parent);
  }
  return el("circle", { cx: x, cy: y, r: size, fill: color }, parent);
}

/** One chart in its <figure>: the plot, the legend under it, and the hover. */
export class Chart {
  constructor(figure, spec) {
    this.figure = figure;
    this.spec = spec;
    this.hidden = new Set();
    this.stop = -1;  // index into hoverStops while the hover shows
    this.body = figure.querySelector(".chart-body");
    this.body.replaceChildren();
    this.plot = document.createElement("div");
    this.plot.className = "chart-plot";
    this.tip = document.createElement("div");
    this.tip.className = "chart-tip";
    this.tip.hidden = true;
    this.tip.setAttribute("role", "status");
    this.legend = document.createElement("div");
    this.legend.className = "chart-legend";
    this.body.append(this.plot, this.tip, this.legend);
    this.buildLegend();
    this.width = 0;
    new ResizeObserver(() => {
      const width = Math.round(this.plot.clientWidth);
      if (width && width !== this.width) this.draw();
    }).observe(this.plot);
    this.draw();
  }

  buildLegend() {
    const { spec } = this;
    if (spec.series.length < 2) return;  // one series: its name is the axis title, nothing to toggle
    this.legend.replaceChildren(...spec.series.map((s) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "legend-item";
      button.dataset.series = s.name;
      button.setAttribute("aria-pressed", "true");
      button.title = `Hide or show “${s.name}”`;
      const swatch = el("svg", { width: 22, height: 12, "aria-hidden": "true" });
      if (s.kind === "bar") el("rect", { x: 5, y: 1, width: 12, height: 10, fill: s.color }, swatch);
      else {
        el("line", { x1: 1, y1: 6, x2: 21, y2: 6, stroke: s.color, "stroke-width": 2, "stroke-dasharray": DASHES[s.style] || "" }, swatch);
        marker(s.marker, 11, 6, 3, s.color, swatch);
      }
      const name = document.createElement("span");
      name.textContent = s.name;
      button.append(swatch, name);
      button.addEventListener("click", () => this.toggle(s.name));
      return button;
    }));
  }

  toggle(name) {
    if (this.hidden.has(name)) this.hidden.delete(name);
    else this.hidden.add(name);
    this.legend.querySelector(`[data-series="${CSS.escape(name)}"]`).setAttribute("aria-pressed", String(!this.hidden.has(name)));
    this.draw();
  }

  draw() {
    const { spec, hidden } = this;
    const width = Math.max(280, Math.round(this.plot.clientWidth || 560));
    this.width = width;
    const svg = el("svg", { width, height: HEIGHT, viewBox: `0 0 ${width} ${HEIGHT}`, class: "chart-svg", role: "img", "aria-label": spec.title });
    this.plot.replaceChildren(svg);
    if (!spec.series.some((s) => s.points.length)) {
      el("text", { x: width / 2, y: HEIGHT / 2, "text-anchor": "middle", class: "chart-empty" }, svg).textContent = spec.empty;
      return;
    }
    const left = MARGIN.left, right = width - MARGIN.right, top = MARGIN.top, bottom = HEIGHT - MARGIN.bottom;
    const [x0, x1] = xDomain(spec), [y0, y1] = yDomain(spec, hidden);
    const sx = (x) => left + ((x - x0) / (x1 - x0)) * (right - left);
    const sy = (y) => bottom - ((Math.min(Math.max(y, y0), y1) - y0) / (y1 - y0)) * (bottom - top);
    this.scale = { sx, sy, x0, x1, left, right, top, bottom };

    // Grid and axes.
    const grid = el("g", { class: "chart-grid" }, svg);
    for (const t of niceTicks(y0, y1)) {
      el("line", { x1: left, x2: right, y1: sy(t), y2: sy(t) }, grid);
      el("text", { x: left - 6, y: sy(t) + 4, "text-anchor": "end", class: "chart-tick" }, svg).textContent = String(Number(t.toFixed(4)));
    }
    const xTicks = spec.x.ticks || niceTicks(x0, x1, Math.max(2, Math.floor((right - left) / 80))).map((t) => [t, String(Number(t.toFixed(4)))]);
    for (const [value, text] of xTicks) {
      el("text", { x: sx(value), y: bottom + 16, "text-anchor": "middle", class: "chart-tick" }, svg).textContent = text;
    }
    el("line", { x1: left, x2: right, y1: bottom, y2: bottom, class: "chart-axis" }, svg);
    el("line", { x1: left, x2: left, y1: top, y2: bottom, class: "chart-axis" }, svg);
    if (spec.x.label) el("text", { x: (left + right) / 2, y: HEIGHT - 8, "text-anchor": "middle", class: "chart-label" }, svg).textContent = spec.x.label;
    el("text", { x: 14, y: (top + bottom) / 2, "text-anchor": "middle", class: "chart-label", transform: `rotate(-90 14 ${(top + bottom) / 2})` }, svg).textContent = spec.y.label;

    // Series, in spec order (bars first in the group of their category).
    const shown = visibleSeries(spec, hidden);
    const bars = shown.filter((s) => s.kind === "bar");
    const band = ((right - left) / (x1 - x0)) * 0.72;
    for (const s of shown) {
      const g = el("g", { class: "chart-series", "data-series": s.name }, svg);
      if (s.kind === "rule") {
        el("line", { x1: left, x2: right, y1: sy(s.points[0].y), y2: sy(s.points[0].y), stroke: s.color, "stroke-width": 1.5, "stroke-dasharray": DASHES[s.style] || "" }, g);
      } else if (s.kind === "bar") {
        const slot = band / bars.length, index = bars.indexOf(s);
        for (const p of s.points) {
          const x = sx(p.x) - band / 2 + slot * index;
          el("rect", { x: x + 1, y: sy(p.y), width: Math.max(1, slot - 2), height: Math.max(0, bottom - sy(p.y)), fill: s.color }, g);
        }
      } else {
        const points = s.points.map((p) => `${sx(p.x).toFixed(2)},${sy(p.y).toFixed(2)}`).join(" ");
        el("polyline", { points, fill: "none", stroke: s.color, "stroke-width": s.style === "solid" ? 2.2 : 1.6, "stroke-dasharray": DASHES[s.style] || "", "stroke-linejoin": "round" }, g);
        for (const p of s.points) marker(s.marker, sx(p.x), sy(p.y), 3.5, s.color, g);
        // The same small labels as the PNG: each value, or each point's round ("R2").
        for (const p of s.annotate ? s.points : []) {
          const text = s.annotate === "value" ? p.y.toFixed(1) : p.label.replace("round ", "R");
          el("text", { x: sx(p.x), y: sy(p.y) - 9, "text-anchor": "middle", class: `chart-annotation ${s.annotate}` }, g).textContent = text;
        }
      }
    }

    // The hover: a guide line, rings on the points, and the list in the tooltip.
    this.guide = el("g", { class: "chart-hover" }, svg);
    const catcher = el("rect", { x: left, y: top, width: right - left, height: bottom - top, fill: "transparent", class: "chart-catcher" }, svg);
    catcher.addEventListener("pointermove", (event) => {
      const box = svg.getBoundingClientRect();
      const x = x0 + ((event.clientX - box.left - left) / (right - left)) * (x1 - x0);
      this.show(nearest(hoverStops(spec, hidden), x));
    });
    catcher.addEventListener("pointerleave", () => this.hide());
    svg.setAttribute("tabindex", "0");
    svg.addEventListener("keydown", (event) => this.key(event));
    svg.addEventListener("focus", () => this.show(this.stop >= 0 ? this.stop : 0));
    svg.addEventListener("blur", () => this.hide());
    if (this.stop >= 0) this.show(Math.min(this.stop, hoverStops(spec, hidden).length - 1));
  }

  key(event) {
    const stops = hoverStops(this.spec, this.hidden);
    const moves = { ArrowRight: this.stop + 1, ArrowLeft: this.stop - 1, Home: 0, End: stops.length - 1 };
    if (event.key === "Escape") { this.hide(); return; }
    if (!(event.key in moves)) return;
    event.preventDefault();
    this.show(Math.min(stops.length - 1, Math.max(0, moves[event.key])));
  }

  show(index) {
    const { spec, hidden, scale } = this;
    const stops = hoverStops(spec, hidden);
    if (index < 0 || index >= stops.length) { this.hide(); return; }
    this.stop = index;
    const x = stops[index];
    const { title, rows } = hoverAt(spec, hidden, x);
    this.guide.replaceChildren();
    el("line", { x1: scale.sx(x), x2: scale.sx(x), y1: scale.top, y2: scale.bottom, class: "chart-guide" }, this.guide);
    for (const s of visibleSeries(spec, hidden)) {
      const p = s.kind === "line" && s.points.find((q) => q.x === x);
      if (p) el("circle", { cx: scale.sx(p.x), cy: scale.sy(p.y), r: 6, fill: "none", stroke: s.color, "stroke-width": 2 }, this.guide);
    }
    const head = document.createElement("div");
    head.className = "chart-tip-title";
    head.textContent = title;
    this.tip.replaceChildren(head, ...rows.map((row) => {
      const line = document.createElement("div");
      line.className = "chart-tip-row";
      const swatch = document.createElement("span");
      swatch.className = "chart-tip-swatch";
      swatch.style.background = row.color;
      const name = document.createElement("span");
      name.textContent = row.name;
      const value = document.createElement("b");
      value.textContent = row.value;
      line.append(swatch, name, value);
      if (row.note) {
        const note = document.createElement("span");
        note.className = "muted";
        note.textContent = row.note;
        line.append(note);
      }
      return line;
    }));
    this.tip.hidden = false;
    // Beside the guide line, on whichever side has room.
    const px = scale.sx(x), width = this.tip.offsetWidth;
    this.tip.style.left = `${px + 14 + width > this.width ? Math.max(0, px - 14 - width) : px + 14}px`;
    this.tip.style.top = `${MARGIN.top}px`;
  }

  hide() {
    this.stop = -1;
    this.tip.hidden = true;
    if (this.guide) this.guide.replaceChildren();
  }
}

/** Draw every chart of the page (figures with ``data-chart`` and the ``chart-data`` block). */
export function drawCharts(root = document) {
  const data = root.getElementById ? root.getElementById("chart-data") : null;
  if (!data) return [];
  const specs = new Map(JSON.parse(data.textContent).map((spec) => [spec.name, spec]));
  return [...root.querySelectorAll("figure[data-chart]")].filter((f) => specs.has(f.dataset.chart))
    .map((figure) => (figure.chart = new Chart(figure, specs.get(figure.dataset.chart))));
}

drawCharts();
