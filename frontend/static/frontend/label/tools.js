// Painting tools. Each turns pointer gestures (image coordinates) into spans and
// hands them to the document between begin() and commit(), so one gesture is
// one undo step. ``app`` gives the document, the current class, the brush size
// and the view; tools never touch the DOM except the polygon's preview.
import { capsuleSpans, floodFillSpans, labelSpans, polygonSpans } from "./algorithms.js";
import { drawSketch, sketchGeometry } from "./sketch.js";

export class BrushTool {
  constructor(app, { erase = false } = {}) {
    this.app = app;
    this.erase = erase;
    this.name = erase ? "eraser" : "brush";
    this.cursor = "none";
    this.last = null;
  }

  dab(a, b) {
    const { doc } = this.app;
    const spans = capsuleSpans(a.x, a.y, b.x, b.y, this.app.brushRadius, doc.width, doc.height);
    return this.erase ? doc.erase(spans) : doc.paint(spans, this.app.classIndex);
  }

  down(p) {
    this.app.doc.begin(this.name);
    this.last = p;
    this.dab(p, p);
  }

  move(points) {
    if (!this.last) return;
    for (const p of points) {
      this.dab(this.last, p);
      this.last = p;
    }
  }

  up() {
    if (!this.last) return;
    this.last = null;
    this.app.doc.commit();
  }
}

/** Paint bucket over what the overlay shows: the connected area of the same class (or empty) under the click. */
export class FillTool {
  constructor(app) { this.app = app; this.name = "fill"; this.cursor = "crosshair"; }

  down(p) {
    const { doc } = this.app;
    const spans = floodFillSpans(doc.displayKeys(), doc.width, doc.height, p.x, p.y, doc.limit);
    if (!spans.length) return this.app.notify("Click inside the region to fill.");
    doc.begin("fill");
    doc.paint(spans, this.app.classIndex);
    doc.commit();
  }

  move() {}
  up() {}
}

/** Accept the suggestion: the connected suggested area under the pointer (drag over several). */
export class AcceptTool {
  constructor(app) { this.app = app; this.name = "accept"; this.cursor = "copy"; this.keys = null; }

  acceptAt(p) {
    const { doc } = this.app;
    const x = Math.floor(p.x), y = Math.floor(p.y);
    if (x < 0 || y < 0 || x >= doc.width || y >= doc.height) return 0;
    const i = y * doc.width + x;
    if (doc.labels[i] !== 255 || doc.pending[i] === 255) return 0;
    const spans = floodFillSpans(this.keys, doc.width, doc.height, x, y, doc.limit);
    doc.accept(spans);
    return spans.length;
  }

  /** The keyboard's "A": accept under the cursor in one step. */
  once(p) {
    this.keys = this.app.doc.displayKeys();
    this.app.doc.begin("accept");
    const found = this.acceptAt(p);
    this.app.doc.commit();
    this.keys = null;
    if (!found) this.app.notify("No suggestion waiting under the cursor.");
  }

  down(p) {
    this.keys = this.app.doc.displayKeys();  // what the annotator sees when the gesture starts
    this.app.doc.begin("accept");
    this.acceptAt(p);
  }

  move(points) {
    if (!this.keys) return;
    for (const p of points) this.acceptAt(p);
  }

  up() {
    if (!this.keys) return;
    this.keys = null;
    this.app.doc.commit();
  }
}

/** One click paints a whole superpixel; dragging paints every superpixel it crosses. */
export class SuperpixelTool {
  constructor(app) { this.app = app; this.name = "superpixel"; this.cursor = "cell"; this.active = false; this.lastId = -1; }

  paintAt(p) {
    const { doc } = this.app;
    const sp = this.app.superpixels;
    const x = Math.floor(p.x), y = Math.floor(p.y);
    if (!sp || x < 0 || y < 0 || x >= doc.width || y >= doc.height) return;
    const id = sp.ids[y * doc.width + x];
    if (id === this.lastId) return;
    this.lastId = id;
    doc.paint(labelSpans(sp.ids, doc.width, doc.height, id, sp.boxes), this.app.classIndex);
  }

  down(p) {
    if (!this.app.superpixels) return this.app.notify("Superpixels are still loading…");
    this.active = true;
    this.lastId = -1;
    this.app.doc.begin("superpixel");
    this.paintAt(p);
  }

  move(points) {
    if (!this.active) return;
    for (const p of points) this.paintAt(p);
  }

  up() {
    if (!this.active) return;
    this.active = false;
    this.app.doc.commit();
  }
}

/**
 * Polygon and lasso fill. Click to place vertices and close with Enter, a
 * double click or a click on the first vertex; or hold the button and draw a
 * freehand lasso that fills when released. Esc cancels, Backspace removes a vertex.
 */
export class PolygonTool {
  constructor(app, sketch) {
    this.app = app;
    this.sketch = sketch;  // an <svg> over the viewport, in screen pixels (sketch.js)
    this.name = "polygon";
    this.cursor = "crosshair";
    this.points = [];
    this.dragging = false;
    this.dragPoints = 0;
    this.hover = null;
  }

  get drawing() { return this.points.length > 0; }

  _near(a, b, screenPixels) {
    const s = this.app.view.scale;
    return Math.hypot((a.x - b.x) * s, (a.y - b.y) * s) <= screenPixels;
  }

  down(p, event) {
    if (this.points.length >= 3 && (this._near(p, this.points[0], 8) || (event && event.detail >= 2))) {
      this.close();
      return;
    }
    this.points.push(p);
    this.dragging = true;
    this.dragPoints = 0;
    this.preview();
  }

  move(points) {
    if (!this.dragging) return;
    for (const p of points) {
      if (!this._near(p, this.points[this.points.length - 1], 3)) {
        this.points.push(p);
        this.dragPoints++;
      }
    }
    this.preview();
  }

  up() {
    this.dragging = false;
    if (this.dragPoints >= 3) this.close();  // a freehand lasso fills on release
  }

  hoverAt(p) {
    this.hover = p;
    if (this.drawing) this.preview();
  }

  removeLast() {
    this.points.pop();
    this.preview();
  }

  cancel() {
    this.points = [];
    this.dragging = false;
    this.preview();
  }

  close() {
    const { doc } = this.app;
    const points = this.points.map((p) => [p.x, p.y]);
    this.cancel();
    if (points.length < 3) return;
    doc.begin("polygon");
    doc.paint(polygonSpans(points, doc.width, doc.height), this.app.classIndex);
    doc.commit();
  }

  /** Redraw the preview: after every change of the vertices, the pointer, or the zoom and pan. */
  preview() {
    const { scale, tx, ty } = this.app.view;
    drawSketch(this.sketch, sketchGeometry(this.points, this.hover, { scale, tx, ty }, { dragging: this.dragging }));
  }
}
