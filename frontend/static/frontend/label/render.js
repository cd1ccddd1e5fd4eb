// Drawing the layers. Each layer is a canvas at the image's full resolution
// stacked over the photo; zoom and pan are a CSS transform of the stack, so
// the browser composites them on the GPU and a brush stroke only has to
// rewrite the pixels of its dirty rectangle (putImageData of that rectangle).
import { UNLABELED, labelEdges, regionOutline } from "./algorithms.js";

export function parseColor(hex) {
  const value = parseInt(String(hex || "#888888").slice(1), 16);
  return [(value >> 16) & 255, (value >> 8) & 255, value & 255];
}

// ImageData is RGBA bytes; viewed as Uint32 on a little-endian machine that is ABGR.
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
export function pack(r, g, b, a) {
  return LITTLE_ENDIAN ? ((a << 24) | (b << 16) | (g << 8) | r) >>> 0 : ((r << 24) | (g << 16) | (b << 8) | a) >>> 0;
}

function sizeCanvas(canvas, width, height) {
  if (canvas.width !== width) canvas.width = width;
  if (canvas.height !== height) canvas.height = height;
  return canvas.getContext("2d", { willReadFrequently: false });
}

/**
 * The label overlay: confirmed pixels in solid class colours, the pending
 * suggestion hatched (diagonal stripes over a faint tint of its class colour)
 * so the annotator always sees what is checked and what is only proposed.
 */
export class OverlayRenderer {
  constructor(canvas, doc, colors) {
    this.canvas = canvas;
    this.doc = doc;
    this.ctx = sizeCanvas(canvas, doc.width, doc.height);
    this.solid = new Uint32Array(256);
    this.stripe = new Uint32Array(256);
    this.faint = new Uint32Array(256);
    colors.forEach((hex, index) => {
      const [r, g, b] = parseColor(hex);
      const light = (v) => Math.round(v + (255 - v) * 0.35);
      this.solid[index] = pack(r, g, b, 255);
      this.stripe[index] = pack(light(r), light(g), light(b), 235);
      this.faint[index] = pack(r, g, b, 60);
    });
    // Stripes about 12 screen pixels apart when the image fits the screen.
    this.period = Math.max(6, Math.round(Math.max(doc.width, doc.height) / 110));
    this.stripeWidth = Math.max(2, Math.round(this.period * 0.35));
    this.lastRenderMs = 0;
  }

  render(rect) {
    if (!rect) return;
    const started = performance.now();
    const x0 = Math.max(0, rect.x0), y0 = Math.max(0, rect.y0);
    const x1 = Math.min(this.doc.width, rect.x1), y1 = Math.min(this.doc.height, rect.y1);
    const w = x1 - x0, h = y1 - y0;
    if (w <= 0 || h <= 0) return;
    const image = this.ctx.createImageData(w, h);
    const out = new Uint32Array(image.data.buffer);
    const { labels, pending, width } = this.doc;
    const { solid, stripe, faint, period, stripeWidth } = this;
    for (let y = y0; y < y1; y++) {
      let src = y * width + x0, dst = (y - y0) * w;
      let phase = (x0 + y) % period;
      for (let x = x0; x < x1; x++, src++, dst++) {
        const label = labels[src];
        if (label !== UNLABELED) out[dst] = solid[label];
        else {
          const suggested = pending[src];
          if (suggested !== UNLABELED) out[dst] = phase < stripeWidth ? stripe[suggested] : faint[suggested];
        }
        if (++phase === period) phase = 0;
      }
    }
    this.ctx.putImageData(image, x0, y0);
    this.lastRenderMs = performance.now() - started;
  }

  renderAll() {
    this.render({ x0: 0, y0: 0, x1: this.doc.width, y1: this.doc.height });
  }
}

function fillCanvas(canvas, width, height, colorOf) {
  const ctx = sizeCanvas(canvas, width, height);
  const image = ctx.createImageData(width, height);
  const out = new Uint32Array(image.data.buffer);
  for (let i = 0; i < out.length; i++) out[i] = colorOf(i);
  ctx.putImageData(image, 0, 0);
}

/** Dim everything outside a region query's region and outline it (outside, so no region pixel is hidden). */
export function drawRegion(canvas, limit, width, height) {
  const thickness = Math.max(1, Math.round(Math.max(width, height) / 500));
  const outline = regionOutline(limit, width, height, thickness);
  const dim = pack(8, 10, 14, 150), line = pack(255, 214, 0, 255);
  fillCanvas(canvas, width, height, (i) => (outline[i] ? line : limit[i] ? 0 : dim));
}

/**
 * Heat map of the model's confidence (max class probability × 255): transparent
 * where sure, yellow to red where unsure, never opaque so the image stays readable.
 */
export function drawConfidence(canvas, confidence, width, height) {
  const ramp = new Uint32Array(256);
  for (let c = 0; c < 256; c++) {
    const unsure = 1 - c / 255;
    const g = Math.round(220 * (1 - unsure) + 30 * unsure);
    ramp[c] = pack(240, g, 20, Math.round(165 * Math.min(1, unsure * 1.25)));
  }
  fillCanvas(canvas, width, height, (i) => ramp[confidence[i]]);
}

/** Thin outlines of the superpixels, shown while the superpixel tool is active. */
export function drawSuperpixelEdges(canvas, ids, width, height) {
  const edges = labelEdges(ids, width, height);
  const line = pack(255, 255, 255, 150);
  fillCanvas(canvas, width, height, (i) => (edges[i] ? line : 0));
}
