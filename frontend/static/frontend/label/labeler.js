// The labeling page: wires the document, the layers, the tools, the keyboard
// and the session together. Everything that computes lives in the other modules.
import { UNLABELED, labelBoxes } from "./algorithms.js";
import { ApiError, getPng, postJson } from "./api.js";
import { MaskDocument } from "./document.js";
import { DisplayControls, DisplayStore } from "./display.js";
import { decodePng } from "./png.js";
import { OverlayRenderer, drawConfidence, drawRegion, drawSuperpixelEdges } from "./render.js";
import { ActiveTimer, DismissedSuggestions, LocalBackup, Saver } from "./session.js";
import { AcceptTool, BrushTool, FillTool, PolygonTool, SuperpixelTool } from "./tools.js";
import { conflictQuestion, describeMerge, describeSave, describeVersion } from "./versions.js";
import { Viewport } from "./view.js";

const AUTOSAVE_MS = 4000;
const BACKUP_DELAY_MS = 1500;
const $ = (selector) => document.querySelector(selector);

function formatSeconds(seconds) {
  const s = Math.round(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

/** Whether the focused control handles ``key`` itself: text and sliders every key, buttons and summaries Enter and Space. */
function controlOwnsKey(target, key) {
  if (!target) return false;
  if (["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName) || target.isContentEditable) return true;
  return (key === "Enter" || key === " ") && ["BUTTON", "SUMMARY", "A"].includes(target.tagName);
}

/** A modal question with buttons; resolves to {value, text}. Enter picks the primary button, Esc cancels. */
function ask({ title, message, buttons, input = null }) {
  const dialog = $("#dialog");
  dialog.querySelector("h2").textContent = title;
  dialog.querySelector(".message").textContent = message;
  const field = dialog.querySelector(".input");
  field.hidden = !input;
  const text = field.querySelector("input");
  const options = field.querySelector("datalist");
  if (input) {
    text.value = "";
    text.placeholder = input.placeholder || "";
    options.replaceChildren(...(input.suggestions || []).map((value) => Object.assign(document.createElement("option"), { value })));
  }
  const row = dialog.querySelector(".buttons");
  row.replaceChildren(...buttons.map((b) => {
    const button = Object.assign(document.createElement("button"), { type: "submit", value: b.value, textContent: b.label });
    button.dataset.value = b.value;
    if (b.primary) button.className = "primary";
    return button;
  }));
  return new Promise((resolve) => {
    const done = () => {
      dialog.removeEventListener("close", done);
      resolve({ value: dialog.returnValue || "cancel", text: text.value.trim() });
    };
    dialog.addEventListener("close", done);
    dialog.returnValue = "";
    dialog.showModal();
    (input ? text : row.querySelector(".primary") || row.firstChild).focus();
    const form = dialog.querySelector("form");
    form.onsubmit = (event) => {
      const value = event.submitter ? event.submitter.value : (buttons.find((b) => b.primary) || buttons[0]).value;
      if (input && input.required && value !== "cancel" && !text.value.trim()) {
        event.preventDefault();
        text.focus();
        return;
      }
      event.preventDefault();
      dialog.close(value);
    };
  });
}

class Labeler {
  constructor(detail) {
    this.detail = detail;
    this.width = detail.image.width;
    this.height = detail.image.height;
    this.classes = detail.classes;
    this.classIndex = 0;
    this.brushRadius = Math.max(2, Math.round(Math.max(this.width, this.height) / 120));
    this.superpixels = null;
    this.hover = null;
    this.pointerDown = false;
    this.panning = null;
    this.spaceDown = false;
    this.busy = false;
    this.stats = { strokeMs: [], renderMs: [] };
    this.ready = this.load().catch((error) => this.fail(error));
  }

  notify(message, kind = "info") {
    const toast = $("#toast");
    toast.textContent = message;
    toast.className = `toast ${kind}`;
    toast.hidden = false;
    clearTimeout(this.toastTimer);
    this.toastTimer = setTimeout(() => { toast.hidden = true; }, kind === "error" ? 9000 : 4000);
  }

  fail(error) {
    console.error(error);
    $("#loading").hidden = false;
    $("#loading").textContent = `Could not open this query: ${error.message}`;
    throw error;
  }

  async load() {
    const { detail, width, height } = this;
    const size = [width, height];
    const photo = $("#photo");
    photo.src = detail.image.url;
    // Per user, like the backups: brightness, contrast and gamma of the photo on this screen.
    this.display = new DisplayControls({
      root: $("#display"), photo, gammaFilter: $("#display-gamma"), store: new DisplayStore(`maskloop-display-${detail.assignee}`),
    });
    const [labels, pending, region] = await Promise.all([
      detail.annotation ? getPng(detail.annotation.mask_url, size).then((png) => png.data) : null,
      detail.suggestion ? getPng(detail.suggestion.mask_url, size).then((png) => png.data) : null,
      detail.region ? getPng(detail.region.mask_url, size).then((png) => png.data) : null,
      photo.decode(),
    ]);
    const limit = region ? region.map((v) => (v === 255 ? 1 : 0)) : null;
    // Keyed by user, like the backup below. Applied before the document exists: it is the starting state, not an edit.
    this.dismissed = pending ? new DismissedSuggestions(`dismissed-${detail.id}-${detail.assignee}`, pending.slice()) : null;
    if (this.dismissed) await this.dismissed.restore(labels, pending);
    this.doc = new MaskDocument({ width, height, labels, pending, limit });
    if (this.dismissed) this.doc.onChange(() => this.dismissed.schedule(this.doc));
    this.renderer = new OverlayRenderer($("#overlay"), this.doc, this.classes.map((c) => c.color));
    this.renderer.renderAll();
    if (limit) drawRegion($("#region"), limit, width, height);
    this.view = new Viewport($("#viewport"), $("#stage"), width, height, { onChange: () => this.viewChanged() });
    this.tools = {
      brush: new BrushTool(this), eraser: new BrushTool(this, { erase: true }), fill: new FillTool(this),
      polygon: new PolygonTool(this, $("#sketch")), superpixel: new SuperpixelTool(this), accept: new AcceptTool(this),
    };
    this.timer = new ActiveTimer();
    this.saver = new Saver({
      // Keyed by user too: a shared computer must not hand one annotator's unsaved work to the next.
      doc: this.doc, detail, timer: this.timer, backup: new LocalBackup(`query-${detail.id}-${detail.assignee}`),
      onStatus: (status, version) => this.showSaveStatus(status, version),
      resolveConflict: (info) => this.askConflict(info),
      onBlocked: (error) => this.blocked(error),
    });
    this.buildPanel();
    this.bindPointer();
    this.bindKeys();
    this.bindSession();
    this.setTool("brush");
    this.selectClass(this.classes.length ? this.classes[0].index : 0);
    if (detail.region && detail.region.bbox) this.zoomToRegion();
    else this.view.fit();
    $("#loading").hidden = true;
    await this.restoreBackup();
    this.updateCensus();
    document.body.dataset.ready = "1";
  }

  // --- panel ---------------------------------------------------------------
  buildPanel() {
    const { detail } = this;
    const list = $("#classes");
    list.replaceChildren(...this.classes.map((c) => {
      const item = document.createElement("button");
      item.type = "button";
      item.className = "class";
      item.dataset.index = c.index;
      item.innerHTML = `<span class="swatch"></span><span class="name"></span><kbd></kbd>`;
      item.querySelector(".swatch").style.background = c.color;
      item.querySelector(".name").textContent = c.name;
      item.title = c.hotkey ? `${c.name} (key ${c.hotkey})` : c.name;
      item.querySelector("kbd").textContent = c.hotkey || "";
      item.addEventListener("click", () => { this.selectClass(c.index); $("#viewport").focus(); });
      return item;
    }));
    this.hotkeys = new Map(this.classes.filter((c) => c.hotkey).map((c) => [c.hotkey, c.index]));
    document.querySelectorAll("[data-tool]").forEach((button) => button.addEventListener("click", () => {
      this.setTool(button.dataset.tool);
      $("#viewport").focus();  // keys (Space to pan, hotkeys) go to the canvas, not to the button
    }));
    const actions = {
      undo: () => this.undo(), redo: () => this.redo(), "accept-all": () => this.acceptAll(),
      "fill-empty": () => this.fillEmpty(), fit: () => this.view.fit(), "zoom-region": () => this.zoomToRegion(),
      submit: () => this.submitAndNext(), skip: () => this.skip(), save: () => this.saveNow(), help: () => this.help(),
      "hand-back": () => this.handBack(),
    };
    document.querySelectorAll("[data-action]").forEach((button) => button.addEventListener("click", () => {
      actions[button.dataset.action]();
      $("#viewport").focus();
    }));
    const opacity = $("#opacity");
    const showOpacity = () => {
      $("#overlay").style.opacity = opacity.value / 100;
      $("#opacity-value").textContent = `${opacity.value} %`;
    };
    opacity.addEventListener("input", showOpacity);
    showOpacity();
    $("#classes").classList.toggle("two-columns", this.classes.length > 4);  // every class in view at 1280×720
    $("#show-overlay").addEventListener("change", (e) => this.toggleOverlay(e.target.checked));
    $("#show-confidence").addEventListener("change", (e) => this.toggleConfidence(e.target.checked));
    $("#show-confidence").disabled = !detail.suggestion;
    $("[data-action=zoom-region]").hidden = !detail.region;
    if (detail.tile) this.showTileContext(detail.tile);
    const info = [`${detail.image.name} · ${this.width}×${this.height}`, `round ${detail.round.number}`];
    info.push(detail.kind === "validation" ? "validation image" : detail.region ? `region query: ${detail.region.pixels.toLocaleString()} pixels` : "whole image");
    $("#query-info").textContent = info.join(" · ");
    const census = this.doc.census();
    const part = detail.region ? "of the region" : "of the image";
    const share = (100 * census.suggested) / Math.max(1, census.total);
    $("#suggestion-info").textContent = !detail.suggestion
      ? "No suggestion for this query."
      : detail.suggestion.empty
        ? `No suggestion for this ${detail.region ? "region" : "image"}: model v${detail.suggestion.model_version} was not confident about any of its pixels.`
        : `Suggestion by model v${detail.suggestion.model_version}: ${share > 0 && share < 1 ? "under 1" : Math.round(share)}% ${part} pre-filled, hatched until accepted.`;
    this.showSaveStatus(this.saver.status, this.saver.version);
    setInterval(() => {
      $("#time").textContent = formatSeconds(detail.time_spent_seconds + this.timer.total / 1000);
    }, 1000);
  }

  /** Zoom or pan changed: the cursor ring and the polygon preview are drawn in screen pixels. */
  viewChanged() {
    this.updateCursor();
    if (this.tools && this.tools.polygon.drawing) this.tools.polygon.preview();
  }

  selectClass(index) {
    this.classIndex = index;
    document.querySelectorAll("#classes .class").forEach((el) => el.classList.toggle("active", Number(el.dataset.index) === index));
    const c = this.classes.find((k) => k.index === index);
    $("#current-class").textContent = c ? c.name : "";
    // White ring (visible on any photo) lined with the class colour.
    $("#brush-cursor").style.boxShadow = `0 0 0 1px rgba(0,0,0,.75), inset 0 0 0 2px ${c ? c.color : "#000"}`;
  }

  setTool(name) {
    if (this.tool && this.tool.cancel) this.tool.cancel();
    this.tool = this.tools[name];
    document.querySelectorAll("[data-tool]").forEach((el) => el.classList.toggle("active", el.dataset.tool === name));
    $("#viewport").dataset.tool = name;
    $("#superpixels").hidden = name !== "superpixel";
    if (name === "superpixel") this.loadSuperpixels();
    this.updateCursor();
  }

  toggleOverlay(show = $("#overlay").hidden) {
    $("#overlay").hidden = !show;
    $("#show-overlay").checked = show;
  }

  async toggleConfidence(show) {
    const canvas = $("#confidence");
    if (!this.detail.suggestion) return;
    if (show && !this.confidenceLoaded) {
      this.confidenceLoaded = getPng(this.detail.suggestion.confidence_url, [this.width, this.height])
        .then((png) => drawConfidence(canvas, png.data, this.width, this.height));
    }
    if (show) await this.confidenceLoaded;
    canvas.hidden = !show;
    $("#show-confidence").checked = show;
    $("#confidence-legend").hidden = !show;
  }

  /** A tile query: the whole image at a lower resolution (the pyramid's context level), the tile outlined. */
  showTileContext(tile) {
    const [x0, y0, x1, y1] = tile.box;
    const pct = (value, whole) => `${(100 * value) / whole}%`;
    Object.assign($("#tile-outline").style, {
      left: pct(x0, tile.image_width), top: pct(y0, tile.image_height),
      width: pct(x1 - x0, tile.image_width), height: pct(y1 - y0, tile.image_height),
    });
    $("#tile-context-image").src = tile.context_url;
    $("#tile-info").textContent = `You label pixels ${x0}–${x1} × ${y0}–${y1} of the ${tile.image_width}×${tile.image_height} image; the rest is kept as it is.`;
    $("#tile-context").hidden = false;
  }

  loadSuperpixels() {
    if (!this.superpixelsLoading) {
      this.notify("Loading superpixels…");
      this.superpixelsLoading = getPng(this.detail.superpixels_url, [this.width, this.height]).then((png) => {
        this.superpixels = { ids: png.data, boxes: labelBoxes(png.data, this.width, this.height) };
        drawSuperpixelEdges($("#superpixels"), png.data, this.width, this.height);
        this.notify("Superpixels ready: click to paint one, drag to paint several.");
      }).catch((error) => {
        this.superpixelsLoading = null;
        this.notify(`Superpixels could not be loaded: ${error.message}`, "error");
      });
    }
    return this.superpixelsLoading;
  }

  zoomToRegion() {
    const bbox = this.detail.region && this.detail.region.bbox;
    if (!bbox) return this.view.fit();
    const [x0, y0, x1, y1] = bbox;
    // Context around the region: four times its size, at least 40 % of the image, at most all of it.
    const w = Math.min(this.width, Math.max((x1 - x0) * 4, this.width * 0.4));
    const h = Math.min(this.height, Math.max((y1 - y0) * 4, this.height * 0.4));
    const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
    this.view.zoomToRect([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]);
  }

  // --- editing ---------------------------------------------------------------
  /** Redraw what changed; returns nothing. Every edit path ends here. */
  flush() {
    const rect = this.doc.takeDirty();
    if (rect) {
      this.renderer.render(rect);
      this.stats.renderMs.push(this.renderer.lastRenderMs);
      if (this.stats.renderMs.length > 2000) this.stats.renderMs.splice(0, 1000);
    }
  }

  /** Run a tool step and redraw, timing the whole of it (the stroke latency of the benchmark). */
  measure(step) {
    const started = performance.now();
    step();
    this.flush();
    this.stats.strokeMs.push(performance.now() - started);
    if (this.stats.strokeMs.length > 2000) this.stats.strokeMs.splice(0, 1000);
  }

  undo() { if (this.doc.undo()) this.flush(); else this.notify("Nothing to undo."); }
  redo() { if (this.doc.redo()) this.flush(); else this.notify("Nothing to redo."); }

  acceptAll() {
    const spans = this.doc.pendingSpans();
    if (!spans.length) return this.notify("No suggestion is waiting to be accepted.");
    this.doc.begin("accept all");
    this.doc.accept(spans);
    this.doc.commit();
    this.flush();
  }

  fillEmpty() {
    const spans = this.doc.emptySpans();
    if (!spans.length) return this.notify("No empty pixels left (pixels with a suggestion are not empty).");
    this.doc.begin("fill empty");
    this.doc.paint(spans, this.classIndex);
    this.doc.commit();
    this.flush();
  }

  updateCursor() {
    const cursor = $("#brush-cursor");
    const round = this.tool && (this.tool.name === "brush" || this.tool.name === "eraser");
    cursor.hidden = !round || !this.hover || this.spaceDown;
    if (!cursor.hidden && this.view) {
      const d = 2 * this.brushRadius * this.view.scale;
      const at = this.view.toClient(this.hover.x, this.hover.y);
      const box = $("#viewport").getBoundingClientRect();
      Object.assign(cursor.style, { width: `${d}px`, height: `${d}px`, left: `${at.x - box.left - d / 2}px`, top: `${at.y - box.top - d / 2}px` });
    }
    const viewport = $("#viewport");
    viewport.style.cursor = this.spaceDown || this.panning ? (this.panning ? "grabbing" : "grab") : this.tool ? this.tool.cursor : "default";
    if (this.view) $("#zoom").textContent = `${Math.round(this.view.scale * 100)}%`;
    $("#brush-size").textContent = `${Math.round(this.brushRadius * 2)} px`;
  }

  updateStatusAt(p) {
    const x = Math.floor(p.x), y = Math.floor(p.y);
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) { $("#under-cursor").textContent = ""; return; }
    const i = y * this.width + x;
    const name = (k) => (this.classes.find((c) => c.index === k) || { name: `class ${k}` }).name;
    const label = this.doc.labels[i], pending = this.doc.pending[i];
    const what = label !== UNLABELED ? name(label) : pending !== UNLABELED ? `${name(pending)} (suggested)` : "empty";
    const outside = this.doc.limit && !this.doc.limit[i] ? " · outside the region" : "";
    $("#under-cursor").textContent = `${x}, ${y} · ${what}${outside}`;
  }

  updateCensus() {
    const c = this.doc.census();
    const pct = (n) => (c.total ? Math.round((100 * n) / c.total) : 0);
    $("#census").textContent = `${this.doc.limit ? "Region" : "Image"}: ${pct(c.confirmed)}% labeled, ${pct(c.suggested)}% suggested, ${pct(c.empty)}% empty`;
    $("[data-action=undo]").disabled = !this.doc.history.canUndo;
    $("[data-action=redo]").disabled = !this.doc.history.canRedo;
  }

  // --- input -----------------------------------------------------------------
  bindPointer() {
    const viewport = $("#viewport");
    const points = (event) => {
      const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
      return (events.length ? events : [event]).map((e) => this.view.toImage(e.clientX, e.clientY));
    };
    viewport.addEventListener("contextmenu", (event) => event.preventDefault());
    viewport.addEventListener("pointerdown", (event) => {
      viewport.focus({ preventScroll: true });
      this.timer.mark();
      if (event.button === 1 || (event.button === 0 && this.spaceDown)) {
        this.panning = { x: event.clientX, y: event.clientY };
        viewport.setPointerCapture(event.pointerId);
        this.updateCursor();
        return;
      }
      if (event.button !== 0) return;
      viewport.setPointerCapture(event.pointerId);
      this.pointerDown = true;
      const p = this.view.toImage(event.clientX, event.clientY);
      this.measure(() => this.tool.down(p, event));
    });
    viewport.addEventListener("pointermove", (event) => {
      this.hover = this.view.toImage(event.clientX, event.clientY);
      this.updateCursor();
      this.updateStatusAt(this.hover);
      if (this.panning) {
        this.view.panBy(event.clientX - this.panning.x, event.clientY - this.panning.y);
        this.panning = { x: event.clientX, y: event.clientY };
      } else if (this.pointerDown) {
        this.timer.mark();
        const moved = points(event);
        this.measure(() => this.tool.move(moved));
      } else if (this.tool.hoverAt) this.tool.hoverAt(this.hover);
    });
    const release = (event) => {
      if (this.panning) { this.panning = null; this.updateCursor(); return; }
      if (!this.pointerDown) return;
      this.pointerDown = false;
      this.measure(() => this.tool.up(this.view.toImage(event.clientX, event.clientY)));
    };
    viewport.addEventListener("pointerup", release);
    viewport.addEventListener("pointercancel", release);
    viewport.addEventListener("pointerleave", () => { this.hover = null; this.updateCursor(); });
    viewport.addEventListener("dblclick", () => { if (this.tool === this.tools.polygon) this.tools.polygon.close(); this.flush(); });
    viewport.addEventListener("wheel", (event) => {
      event.preventDefault();
      const delta = event.deltaMode === 1 ? event.deltaY * 16 : event.deltaY;
      this.view.zoomAt(event.clientX, event.clientY, Math.exp(-delta * 0.0015));
    }, { passive: false });
    window.addEventListener("resize", () => this.view.fit());
  }

  bindKeys() {
    window.addEventListener("keydown", (event) => {
      if ($("#dialog").open || $("#help").open) return;
      if (controlOwnsKey(event.target, event.key) && !(event.ctrlKey || event.metaKey)) return;
      this.timer.mark();
      const key = event.key, lower = key.length === 1 ? key.toLowerCase() : key;
      const ctrl = event.ctrlKey || event.metaKey;
      if (ctrl) {
        if (lower === "z") { event.preventDefault(); event.shiftKey ? this.redo() : this.undo(); }
        else if (lower === "y") { event.preventDefault(); this.redo(); }
        else if (lower === "s") { event.preventDefault(); this.saveNow(); }
        else if (key === "Enter") { event.preventDefault(); this.submitAndNext(); }
        this.updateCensusSoon();
        return;
      }
      if (event.altKey) return;
      if (key === " ") {
        event.preventDefault();
        if (!this.spaceDown) { this.spaceDown = true; this.updateCursor(); }
        return;
      }
      if (this.hotkeys.has(key)) { event.preventDefault(); this.selectClass(this.hotkeys.get(key)); return; }
      const polygon = this.tool === this.tools.polygon && this.tools.polygon.drawing;
      const commands = {
        b: () => this.setTool("brush"), e: () => this.setTool("eraser"), g: () => this.setTool("fill"),
        l: () => this.setTool("polygon"), s: () => this.setTool("superpixel"),
        a: () => (event.shiftKey ? this.acceptAll() : this.hover ? this.tools.accept.once(this.hover) : this.setTool("accept")),
        u: () => this.fillEmpty(), h: () => this.toggleOverlay(), c: () => this.toggleConfidence($("#confidence").hidden),
        f: () => this.view.fit(), r: () => this.zoomToRegion(), k: () => this.skip(), "?": () => this.help(),
        "[": () => this.resizeBrush(1 / 1.25), "]": () => this.resizeBrush(1.25),
        "+": () => this.view.zoomCentre(1.25), "=": () => this.view.zoomCentre(1.25), "-": () => this.view.zoomCentre(0.8),
        Escape: () => polygon && this.tools.polygon.cancel(),
        Enter: () => polygon && this.tools.polygon.close(),
        Backspace: () => polygon && this.tools.polygon.removeLast(),
      };
      const command = commands[lower];
      if (!command) return;
      event.preventDefault();
      command();
      this.flush();
      this.updateCensusSoon();
    });
    window.addEventListener("keyup", (event) => {
      if (event.key === " ") { this.spaceDown = false; this.updateCursor(); }
    });
  }

  resizeBrush(factor) {
    this.brushRadius = Math.min(Math.max(this.width, this.height) / 4, Math.max(0.5, this.brushRadius * factor));
    this.updateCursor();
  }

  updateCensusSoon() {
    clearTimeout(this.censusTimer);
    this.censusTimer = setTimeout(() => this.updateCensus(), 250);
  }

  // --- session -------------------------------------------------------------
  bindSession() {
    this.doc.onChange(() => {
      this.updateCensusSoon();
      this.saver.setStatus("dirty");
      clearTimeout(this.backupTimer);
      this.backupTimer = setTimeout(() => this.saver.backUp(), BACKUP_DELAY_MS);
    });
    setInterval(() => {
      if (this.saver.dirty && !this.saver.inflight && !this.saver.blocked && !this.pointerDown && !this.busy) {
        this.saver.save().catch(() => {});
      }
    }, AUTOSAVE_MS);
    // Keep the lock while the annotator works without changing anything (reading, zooming).
    let lastRenewal = Date.now();
    setInterval(() => {
      const idle = performance.now() - this.timer.lastInput > this.timer.idleMs;
      if (this.saver.blocked || idle || Date.now() - lastRenewal < (this.detail.lock_seconds * 1000) / 3) return;
      lastRenewal = Date.now();
      postJson(this.detail.urls.claim).catch((error) => { if (error.status === 409) this.blocked(error); });
    }, 30_000);
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState !== "hidden") return;
      if (this.dismissed) this.dismissed.flush();
      if (this.saver.dirty) this.saver.save().catch(() => {});
    });
    window.addEventListener("pagehide", () => {
      if (this.dismissed) this.dismissed.flush();
      this.saver.flushOnExit();
    });
    window.addEventListener("beforeunload", (event) => {
      if (this.saver.dirty && !this.leaving) {
        this.saver.backUp();
        event.preventDefault();
        event.returnValue = "";
      }
    });
  }

  /** Every label about the saved version is written here, from the saver's one record of it. */
  showSaveStatus(status, version) {
    const label = $("#save-status");
    label.dataset.state = status.kind;
    label.textContent = describeSave(status, version);
    $("#version-info").textContent = describeVersion(version);
    if (status.kind === "merged") this.notify(describeMerge(status, version));
    if (status.kind === "error") this.notify(`${label.textContent} Retrying…`, "error");
  }

  blocked(error) {
    const banner = $("#blocked");
    banner.querySelector(".text").textContent = `${error.message} Saving has stopped; what you painted is kept in this browser.`;
    banner.hidden = false;
    this.saver.setStatus("blocked");
  }

  async restoreBackup() {
    const record = await this.saver.backup.get();
    if (!record || !record.png) return;
    const saved = (await decodePng(await record.png.arrayBuffer())).data;
    if (saved.length !== this.doc.labels.length || saved.every((v, i) => v === this.doc.labels[i])) {
      await this.saver.backup.clear();
      return;
    }
    const when = new Date(record.savedAt).toLocaleTimeString();
    if (record.baseVersion !== this.saver.baseVersion) {
      const { value } = await ask({
        title: "Unsaved work found",
        message: `This browser kept unsaved work from ${when}, made on version ${record.baseVersion}; the server now has version ${this.saver.baseVersion}. Restore it over the server version, or discard it?`,
        buttons: [{ value: "restore", label: "Restore my work", primary: true }, { value: "discard", label: "Discard it" }],
      });
      if (value !== "restore") { await this.saver.backup.clear(); return; }
    }
    this.doc.replaceLabels(saved, "restore");
    this.flush();
    this.notify(`Restored unsaved work from ${when}; it will be saved now.`);
  }

  async askConflict(conflict) {
    const { value } = await ask(conflictQuestion(conflict));
    const how = value === "cancel" ? "mine" : value;
    this.flush();
    return how;
  }

  async saveNow() {
    try {
      if (this.dismissed) await this.dismissed.flush();
      const body = await this.saver.save();
      if (body === null && !this.saver.dirty) this.saver.setStatus("saved");
      this.flush();
    } catch (error) {
      this.flush();
    }
  }

  async goNext() {
    this.leaving = true;
    const answer = await postJson(this.detail.urls.next);
    if (answer.query) window.location.assign(answer.query.urls.page);
    else window.location.assign(`${this.detail.urls.queue_page}?done=${encodeURIComponent(answer.detail || "")}`);
  }

  async submitAndNext() {
    if (this.busy) return;
    this.busy = true;
    try {
      if (this.tool.cancel) this.tool.cancel();
      const census = this.doc.census();
      if (census.suggested || census.empty) {
        const part = this.doc.limit ? "region" : "image";
        const lines = [];
        if (census.suggested) lines.push(`${census.suggested.toLocaleString()} pixels of the ${part} are suggested but not accepted`);
        if (census.empty) lines.push(`${census.empty.toLocaleString()} pixels are empty (they stay unlabeled)`);
        if (this.detail.kind === "validation") lines.push("this validation image measures the model, so every pixel should be labeled");
        const buttons = census.suggested
          ? [{ value: "accept", label: "Accept the suggestion and submit", primary: true }, { value: "as-is", label: "Submit without them" }]
          : [{ value: "as-is", label: "Submit", primary: true }];
        const { value } = await ask({ title: "Submit this query?", message: `${lines.join("; ")}.`, buttons: [...buttons, { value: "cancel", label: "Keep labeling" }] });
        if (value === "cancel") return;
        if (value === "accept") this.acceptAll();
      }
      const body = await this.saver.save({ submit: true });
      if (body === null) return;  // reloaded after a conflict: look before submitting again
      if (this.dismissed) await this.dismissed.forget();
      this.updateCensus();
      await this.goNext();
    } catch (error) {
      if (error instanceof ApiError) this.notify(error.message, "error");
      else throw error;
    } finally {
      this.busy = false;
    }
  }

  async skip() {
    if (this.busy) return;
    const { value, text } = await ask({
      title: "Skip this query",
      message: "Tell the project lead why; the query leaves your queue.",
      input: { placeholder: "Reason", required: true, suggestions: ["Image too dark or blurry", "Unsure which class", "Region is ambiguous", "Broken image"] },
      buttons: [{ value: "skip", label: "Skip and go to the next", primary: true }, { value: "cancel", label: "Keep labeling" }],
    });
    if (value !== "skip") return;
    this.busy = true;
    try {
      if (this.saver.dirty) await this.saver.save().catch(() => {});
      await postJson(this.detail.urls.skip, { reason: text, time_spent: this.timer.take() });
      await this.saver.backup.clear();
      await this.goNext();
    } catch (error) {
      this.notify(error.message, "error");
    } finally {
      this.busy = false;
    }
  }

  /** Leave the query for someone else: the draft is saved as a version, the lock released. */
  async handBack() {
    if (this.busy) return;
    this.busy = true;
    try {
      if (this.saver.dirty) await this.saver.save();
      await postJson(this.detail.urls.release, { time_spent: this.timer.take() });
      await this.saver.backup.clear();
      window.location.assign(this.detail.urls.queue_page);
    } catch (error) {
      this.notify(error.message, "error");
    } finally {
      this.busy = false;
    }
  }

  help() {
    $("#help").showModal();
  }
}

/** Claim the query, then label it. Loading the page (a GET) changed nothing: a link elsewhere cannot assign queries. */
async function claimAndOpen() {
  const shown = JSON.parse($("#query-data").textContent);
  let detail;
  try {
    detail = await postJson(shown.urls.claim);  // the lock, and the query as it is now
  } catch (error) {
    const banner = $("#blocked");
    banner.querySelector(".text").textContent = error.message;
    banner.hidden = false;
    $("#loading").hidden = true;
    throw error;
  }
  window.labeler = new Labeler(detail);
}

claimAndOpen();
