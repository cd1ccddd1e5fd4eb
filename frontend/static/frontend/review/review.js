// The review page: the submitted mask over the image, the suggestion it started
// from, and the reviewer's three answers (accept, fix, reject with a comment).
// The mask, rendering, tools, PNG and server modules are the labeling page's,
// imported as they are; this module only wires them to the review's controls.
import { ApiError, getPng, postJson, postPng } from "../label/api.js";
import { UNLABELED } from "../label/algorithms.js";
import { MaskDocument } from "../label/document.js";
import { encodeIndexPng } from "../label/png.js";
import { OverlayRenderer, drawRegion } from "../label/render.js";
import { BrushTool, FillTool } from "../label/tools.js";
import { Viewport } from "../label/view.js";

const review = JSON.parse(document.getElementById("review-data").textContent);
const $ = (id) => document.getElementById(id);
const { width, height } = review.image;

function toast(message, { error = false } = {}) {
  const box = $("toast");
  box.textContent = message;
  box.classList.toggle("error", error);
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.hidden = true; }, 4000);
}

function status(message, { error = false } = {}) {
  const box = $("decision-status");
  if (!box) return;
  box.textContent = message;
  box.classList.toggle("error", error);
}

const colors = [];
for (const c of review.classes) colors[c.index] = c.color;

const app = {
  doc: null, classIndex: review.classes.length ? review.classes[0].index : 0, brushRadius: 3,
  notify: (message) => toast(message),
};
const marks = [];
let mode = "view";
let layer = "mask";
let renderer = null;
let shownDoc = null;
const readOnly = {};  // layer name → MaskDocument shown without editing

function show(name) {
  layer = name;
  const canvas = $("mask-layer");
  const suggestion = $("suggestion-layer");
  suggestion.hidden = name !== "suggestion";
  canvas.hidden = name === "none" || name === "suggestion";
  shownDoc = name === "mask" ? app.doc : readOnly[name] || null;
  if (shownDoc && !canvas.hidden) {
    renderer = new OverlayRenderer(canvas, shownDoc, colors);
    renderer.renderAll();
  }
}

function drawMarks() {
  const svg = $("marks-layer");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const r = Math.max(6, Math.round(Math.max(width, height) / 60));
  svg.innerHTML = marks.map(([x, y]) => `<circle cx="${x + 0.5}" cy="${y + 0.5}" r="${r}"></circle>`).join("");
  const info = $("marks-info");
  if (info) info.textContent = marks.length ? `${marks.length} spot${marks.length > 1 ? "s" : ""} marked (click a mark again to remove it)` : "";
}

function setMode(next) {
  mode = mode === next ? "view" : next;
  document.querySelectorAll("[data-mode]").forEach((b) => b.classList.toggle("active", b.dataset.mode === mode));
  $("mode-name").textContent = mode;
  if (mode !== "view" && mode !== "mark" && layer !== "mask") {
    document.querySelector('input[name="layer"][value="mask"]').checked = true;
    show("mask");
  }
}

function buildClasses() {
  const box = $("classes");
  if (!box) return;
  for (const c of review.classes) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "class";
    button.dataset.index = c.index;
    button.innerHTML = `<span class="swatch" style="background:${c.color}"></span><span class="name"></span>${c.hotkey ? `<kbd>${c.hotkey}</kbd>` : ""}`;
    button.querySelector(".name").textContent = c.name;
    button.addEventListener("click", () => selectClass(c.index));
    box.append(button);
  }
  selectClass(app.classIndex);
}

function selectClass(index) {
  app.classIndex = index;
  document.querySelectorAll("#classes .class").forEach((b) => b.classList.toggle("active", Number(b.dataset.index) === index));
}

function nextPage() {
  window.location.assign(`${review.urls.queue_page}next/`);
}

function describe(error) {
  if (error instanceof ApiError && error.status === 409) {
    return `${error.message} Nothing was overwritten; your changes stay on this page until you leave it.`;
  }
  return error.message || String(error);
}

async function decide(kind) {
  const comment = $("comment").value.trim();
  const buttons = document.querySelectorAll(".actions.decide button");
  buttons.forEach((b) => { b.disabled = true; });
  try {
    if (kind === "reject") {
      if (!comment) {
        status("Write what is wrong before rejecting: the annotator reads it.", { error: true });
        $("comment").focus();
        return;
      }
      await postJson(review.urls.reject, { comment, marks });
      status("Rejected: the query went back to its annotator.");
    } else if (kind === "accept") {
      await postJson(review.urls.accept, { comment });
      status("Accepted.");
    } else {
      const blob = await encodeIndexPng(app.doc.labels, width, height);
      await postPng(review.urls.fix, blob, { base_version: review.base_version, comment });
      status("Your fix was saved as a new version.");
    }
    $("review-state").textContent = kind === "fix" ? "Fixed by the reviewer" : kind === "accept" ? "Accepted" : "Rejected";
    setTimeout(nextPage, 700);
  } catch (error) {
    status(describe(error), { error: true });
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
    $("save-fix").disabled = !app.doc || app.doc.revision === 0;
  }
}

function wire(viewport) {
  const view = $("viewport");
  const brush = new BrushTool(app), eraser = new BrushTool(app, { erase: true }), fill = new FillTool(app);
  const tools = { brush, eraser, fill };
  let active = null, pan = null;
  const point = (event) => {
    const p = viewport.toImage(event.clientX, event.clientY);
    return { x: Math.floor(p.x), y: Math.floor(p.y) };
  };
  view.addEventListener("pointerdown", (event) => {
    view.focus();
    const p = point(event);
    if (tools[mode] && layer === "mask") {
      active = tools[mode];
      view.setPointerCapture(event.pointerId);
      active.down(p);
    } else if (mode === "mark") {
      if (p.x < 0 || p.y < 0 || p.x >= width || p.y >= height) return;
      const r = Math.max(6, Math.round(Math.max(width, height) / 60));
      const hit = marks.findIndex(([x, y]) => Math.hypot(x - p.x, y - p.y) <= r);
      if (hit >= 0) marks.splice(hit, 1); else marks.push([p.x, p.y]);
      drawMarks();
    } else {
      pan = { x: event.clientX, y: event.clientY };
      view.setPointerCapture(event.pointerId);
    }
  });
  view.addEventListener("pointermove", (event) => {
    const p = point(event);
    if (p.x >= 0 && p.y >= 0 && p.x < width && p.y < height) {
      const value = (shownDoc || app.doc).labels[p.y * width + p.x];
      const cls = review.classes.find((c) => c.index === value);
      $("under-cursor").textContent = `${p.x}, ${p.y} · ${value === UNLABELED ? "empty" : cls ? cls.name : value}`;
    }
    if (active) active.move([p]);
    else if (pan) { viewport.panBy(event.clientX - pan.x, event.clientY - pan.y); pan = { x: event.clientX, y: event.clientY }; }
  });
  const end = () => {
    if (active) { active.up(); active = null; }
    pan = null;
  };
  view.addEventListener("pointerup", end);
  view.addEventListener("pointercancel", end);
  view.addEventListener("wheel", (event) => {
    event.preventDefault();
    viewport.zoomAt(event.clientX, event.clientY, event.deltaY < 0 ? 1.15 : 1 / 1.15);
  }, { passive: false });
  window.addEventListener("resize", () => viewport.fit());
  document.querySelectorAll("[data-mode]").forEach((b) => b.addEventListener("click", () => setMode(b.dataset.mode)));
  document.querySelectorAll('input[name="layer"]').forEach((input) => input.addEventListener("change", () => show(input.value)));
  const opacity = $("opacity");
  const applyOpacity = () => {
    for (const id of ["mask-layer", "suggestion-layer"]) $(id).style.opacity = opacity.value / 100;
    $("opacity-value").textContent = `${opacity.value} %`;
  };
  opacity.addEventListener("input", applyOpacity);
  applyOpacity();
  const size = $("brush-size");
  if (size) {
    const applySize = () => { app.brushRadius = Number(size.value) / 2; $("brush-value").textContent = `${size.value} px`; };
    size.addEventListener("input", applySize);
    applySize();
  }
  $("undo")?.addEventListener("click", () => app.doc.undo());
  $("accept")?.addEventListener("click", () => decide("accept"));
  $("reject")?.addEventListener("click", () => decide("reject"));
  $("save-fix")?.addEventListener("click", () => decide("fix"));
  document.addEventListener("keydown", (event) => {
    if (event.target.closest("textarea, input[type=text]")) return;  // typing a comment
    const key = event.key.toLowerCase();
    if ((event.ctrlKey || event.metaKey) && key === "z") { event.preventDefault(); app.doc.undo(); return; }
    const modes = { b: "brush", e: "eraser", g: "fill", m: "mark" };
    if (modes[key] && $("classes")) { setMode(modes[key]); return; }
    const cls = review.classes.find((c) => c.hotkey && c.hotkey.toLowerCase() === key);
    if (cls) selectClass(cls.index);
  });
}

function frame() {
  if (app.doc && app.doc.dirty) {
    const rect = app.doc.takeDirty();
    if (renderer && shownDoc === app.doc) renderer.render(rect);
  }
  requestAnimationFrame(frame);
}

async function start() {
  const photo = $("photo");
  photo.src = review.image.url;
  const [mask, suggestion, region, ...pair] = await Promise.all([
    getPng(review.annotation.mask_url, [width, height]),
    review.suggestion ? getPng(review.suggestion.mask_url, [width, height]) : null,
    review.region ? getPng(review.region.mask_url, [width, height]) : null,
    ...(review.agreement ? review.annotators.map((a) => getPng(a.mask_url, [width, height])) : []),
    photo.decode().catch(() => null),
  ]);
  app.doc = new MaskDocument({ width, height, labels: Uint8Array.from(mask.data) });
  app.doc.onChange(() => { $("save-fix").disabled = app.doc.revision === 0; });
  if (suggestion) {
    const doc = new MaskDocument({ width, height, pending: Uint8Array.from(suggestion.data) });
    new OverlayRenderer($("suggestion-layer"), doc, colors).renderAll();
  }
  pair.filter(Boolean).slice(0, review.annotators.length).forEach((png, i) => {
    readOnly[`annotator-${i}`] = new MaskDocument({ width, height, labels: Uint8Array.from(png.data) });
  });
  const regionCanvas = $("region-layer");
  if (region) drawRegion(regionCanvas, Uint8Array.from(region.data, (v) => (v > 0 ? 1 : 0)), width, height);
  else regionCanvas.hidden = true;
  const viewport = new Viewport($("viewport"), $("stage"), width, height);
  viewport.fit();
  marks.push(...(review.marks || []));
  drawMarks();
  buildClasses();
  show("mask");
  wire(viewport);
  $("loading").hidden = true;
  document.body.dataset.ready = "1";
  window.reviewer = { app, view: viewport, marks };  // for tests and the console
  requestAnimationFrame(frame);
}

start().catch((error) => {
  $("loading").textContent = `The review could not be loaded: ${error.message}`;
});
