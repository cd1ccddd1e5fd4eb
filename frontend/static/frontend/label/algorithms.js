// Pure raster algorithms over typed arrays: no DOM, no state, unit-tested in Chromium
// (tests/browser/test_label_algorithms.py).
//
// Shapes are returned as *spans*: an Int32Array of (y, xStart, xEnd) triples,
// xEnd inclusive, clipped to the image. Tools apply spans to the mask layers;
// that keeps one code path for "which pixels" and one for "what to write".
// A pixel (x, y) belongs to a shape when its centre (x + 0.5, y + 0.5) does.

export const UNLABELED = 255;

/** Bounding rectangle {x0, y0, x1, y1} (x1/y1 exclusive) of spans, or null when empty. */
export function spansRect(spans) {
  if (!spans || spans.length === 0) return null;
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (let k = 0; k < spans.length; k += 3) {
    const y = spans[k];
    if (y < y0) y0 = y;
    if (y + 1 > y1) y1 = y + 1;
    if (spans[k + 1] < x0) x0 = spans[k + 1];
    if (spans[k + 2] + 1 > x1) x1 = spans[k + 2] + 1;
  }
  return { x0, y0, x1, y1 };
}

export function unionRect(a, b) {
  if (!a) return b ? { ...b } : null;
  if (!b) return { ...a };
  return { x0: Math.min(a.x0, b.x0), y0: Math.min(a.y0, b.y0), x1: Math.max(a.x1, b.x1), y1: Math.max(a.y1, b.y1) };
}

function segmentDistance2(px, py, ax, ay, bx, by) {
  const dx = bx - ax, dy = by - ay;
  const len2 = dx * dx + dy * dy;
  let t = len2 > 0 ? ((px - ax) * dx + (py - ay) * dy) / len2 : 0;
  t = t < 0 ? 0 : t > 1 ? 1 : t;
  const qx = ax + t * dx - px, qy = ay + t * dy - py;
  return qx * qx + qy * qy;
}

/** True when pixel (x, y)'s centre lies within ``radius`` of the segment: the brush's definition. */
export function inCapsule(x, y, ax, ay, bx, by, radius) {
  return segmentDistance2(x + 0.5, y + 0.5, ax, ay, bx, by) <= radius * radius;
}

/**
 * Pixels of a brush dab dragged from (ax, ay) to (bx, by): a capsule of ``radius``
 * (image pixels, float coordinates). A click is a segment of length 0, i.e. a disc.
 * Rows are solved analytically (the capsule is convex, so each row is one interval)
 * and the ends then nudged with the exact per-pixel test, so the result equals
 * ``inCapsule`` pixel by pixel at a cost per row, not per pixel.
 */
export function capsuleSpans(ax, ay, bx, by, radius, width, height) {
  const r = Math.max(radius, 0.5);
  const yStart = Math.max(0, Math.floor(Math.min(ay, by) - r - 0.5));
  const yEnd = Math.min(height - 1, Math.ceil(Math.max(ay, by) + r - 0.5));
  const out = [];
  const dx = bx - ax, dy = by - ay;
  const len = Math.hypot(dx, dy);
  for (let y = yStart; y <= yEnd; y++) {
    const cy = y + 0.5;
    let lo = Infinity, hi = -Infinity;
    for (const [px, py] of [[ax, ay], [bx, by]]) {  // the end discs
      const h = r * r - (cy - py) * (cy - py);
      if (h >= 0) {
        const w = Math.sqrt(h);
        lo = Math.min(lo, px - w);
        hi = Math.max(hi, px + w);
      }
    }
    if (len > 0) {  // the band: 0 <= t <= 1 and |perpendicular| <= r, each linear in x
      let a = -Infinity, b = Infinity;
      const clip = (k, c, min, max) => {  // min <= k*x + c <= max
        if (Math.abs(k) < 1e-12) {
          if (c < min || c > max) { a = Infinity; b = -Infinity; }
          return;
        }
        let u = (min - c) / k, v = (max - c) / k;
        if (u > v) [u, v] = [v, u];
        a = Math.max(a, u);
        b = Math.min(b, v);
      };
      clip(dx / len, ((cy - ay) * dy - ax * dx) / len, 0, len);  // projection along the segment
      clip(dy / len, (-(cy - ay) * dx - ax * dy) / len, -r, r);  // signed distance across it
      if (a <= b) {
        lo = Math.min(lo, a);
        hi = Math.max(hi, b);
      }
    }
    if (!(lo <= hi)) continue;
    let xs = Math.max(0, Math.ceil(lo - 0.5) - 1);
    let xe = Math.min(width - 1, Math.floor(hi - 0.5) + 1);
    while (xs <= xe && !inCapsule(xs, y, ax, ay, bx, by, r)) xs++;
    while (xe >= xs && !inCapsule(xe, y, ax, ay, bx, by, r)) xe--;
    while (xs > 0 && inCapsule(xs - 1, y, ax, ay, bx, by, r)) xs--;
    while (xe < width - 1 && inCapsule(xe + 1, y, ax, ay, bx, by, r)) xe++;
    if (xs <= xe) out.push(y, xs, xe);
  }
  return Int32Array.from(out);
}

/**
 * Even-odd scanline fill of a polygon given as [[x, y], ...] in image coordinates
 * (closed implicitly). Pixels whose centres fall inside are returned.
 */
export function polygonSpans(points, width, height) {
  const n = points.length;
  if (n < 3) return new Int32Array(0);
  let minY = Infinity, maxY = -Infinity;
  for (const [, y] of points) { minY = Math.min(minY, y); maxY = Math.max(maxY, y); }
  const yStart = Math.max(0, Math.ceil(minY - 0.5));
  const yEnd = Math.min(height - 1, Math.floor(maxY - 0.5));
  const out = [];
  const xs = [];
  for (let y = yStart; y <= yEnd; y++) {
    const cy = y + 0.5;
    xs.length = 0;
    for (let i = 0, j = n - 1; i < n; j = i++) {
      const [xi, yi] = points[i], [xj, yj] = points[j];
      if ((yi > cy) !== (yj > cy)) xs.push(xi + ((cy - yi) / (yj - yi)) * (xj - xi));
    }
    xs.sort((p, q) => p - q);
    for (let k = 0; k + 1 < xs.length; k += 2) {
      const s = Math.max(0, Math.ceil(xs[k] - 0.5));
      const e = Math.min(width - 1, Math.ceil(xs[k + 1] - 0.5) - 1);
      if (s <= e) out.push(y, s, e);
    }
  }
  return Int32Array.from(out);
}

/**
 * 4-connected flood fill from (x, y) over pixels whose ``keys`` equal the seed's.
 * ``limit`` (optional Uint8Array, 1 = allowed) bounds the fill: pixels outside it
 * are walls. Scanline algorithm with an explicit stack; returns spans.
 */
export function floodFillSpans(keys, width, height, x, y, limit = null) {
  x = Math.floor(x); y = Math.floor(y);
  if (x < 0 || y < 0 || x >= width || y >= height) return new Int32Array(0);
  const seed = y * width + x;
  if (limit && !limit[seed]) return new Int32Array(0);
  const target = keys[seed];
  const seen = new Uint8Array(width * height);
  const ok = (i) => !seen[i] && keys[i] === target && (!limit || limit[i]);
  const out = [];
  const stack = [x, y];
  while (stack.length) {
    const sy = stack.pop(), sx = stack.pop();
    let i = sy * width + sx;
    if (!ok(i)) continue;
    let xs = sx, xe = sx;
    const row = sy * width;
    while (xs > 0 && ok(row + xs - 1)) xs--;
    while (xe < width - 1 && ok(row + xe + 1)) xe++;
    seen.fill(1, row + xs, row + xe + 1);
    out.push(sy, xs, xe);
    for (const ny of [sy - 1, sy + 1]) {
      if (ny < 0 || ny >= height) continue;
      const nrow = ny * width;
      let inRun = false;
      for (let nx = xs; nx <= xe; nx++) {
        const fits = ok(nrow + nx);
        if (fits && !inRun) stack.push(nx, ny);
        inRun = fits;
      }
    }
  }
  return Int32Array.from(out);
}

/** Spans of every pixel (inside ``limit`` when given) for which ``predicate(index)`` holds. */
export function selectSpans(width, height, predicate, limit = null, rect = null) {
  const r = rect || { x0: 0, y0: 0, x1: width, y1: height };
  const out = [];
  for (let y = r.y0; y < r.y1; y++) {
    const row = y * width;
    let start = -1;
    for (let x = r.x0; x <= r.x1; x++) {
      const i = row + x;
      const hit = x < r.x1 && (!limit || limit[i]) && predicate(i);
      if (hit && start < 0) start = x;
      else if (!hit && start >= 0) { out.push(y, start, x - 1); start = -1; }
    }
  }
  return Int32Array.from(out);
}

/** Bounding boxes of every label of a label map: Int32Array [x0, y0, x1, y1] per id (exclusive ends). */
export function labelBoxes(ids, width, height) {
  let max = 0;
  for (let i = 0; i < ids.length; i++) if (ids[i] > max) max = ids[i];
  const boxes = new Int32Array((max + 1) * 4);
  for (let k = 0; k <= max; k++) { boxes[4 * k] = width; boxes[4 * k + 1] = height; }
  for (let y = 0; y < height; y++) {
    const row = y * width;
    for (let x = 0; x < width; x++) {
      const b = 4 * ids[row + x];
      if (x < boxes[b]) boxes[b] = x;
      if (y < boxes[b + 1]) boxes[b + 1] = y;
      if (x + 1 > boxes[b + 2]) boxes[b + 2] = x + 1;
      if (y + 1 > boxes[b + 3]) boxes[b + 3] = y + 1;
    }
  }
  return boxes;
}

/** Spans of the pixels carrying label ``id`` (searched within its box from ``labelBoxes``). */
export function labelSpans(ids, width, height, id, boxes) {
  const b = 4 * id;
  if (b + 3 >= boxes.length || boxes[b + 2] <= boxes[b]) return new Int32Array(0);
  const rect = { x0: boxes[b], y0: boxes[b + 1], x1: boxes[b + 2], y1: boxes[b + 3] };
  return selectSpans(width, height, (i) => ids[i] === id, null, rect);
}

/** 1 where a pixel's right or lower neighbour has another label: thin outlines of a label map. */
export function labelEdges(ids, width, height) {
  const edges = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    const row = y * width;
    for (let x = 0; x < width; x++) {
      const i = row + x;
      if ((x + 1 < width && ids[i + 1] !== ids[i]) || (y + 1 < height && ids[i + width] !== ids[i])) edges[i] = 1;
    }
  }
  return edges;
}

/**
 * Outline of a region (``inside`` 1/0): the pixels outside it within ``thickness``
 * pixels (Chebyshev distance) of an inside pixel, so the outline never hides region pixels.
 */
export function regionOutline(inside, width, height, thickness = 1) {
  const out = new Uint8Array(width * height);
  const t = Math.max(1, Math.round(thickness));
  // Horizontal then vertical dilation (a square structuring element is separable).
  const horizontal = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    const row = y * width;
    let last = -Infinity;
    for (let x = 0; x < width; x++) { if (inside[row + x]) last = x; if (x - last <= t) horizontal[row + x] = 1; }
    last = Infinity;
    for (let x = width - 1; x >= 0; x--) { if (inside[row + x]) last = x; if (last - x <= t) horizontal[row + x] = 1; }
  }
  for (let x = 0; x < width; x++) {
    let last = -Infinity;
    for (let y = 0; y < height; y++) { if (horizontal[y * width + x]) last = y; if (y - last <= t) out[y * width + x] = 1; }
    last = Infinity;
    for (let y = height - 1; y >= 0; y--) { if (horizontal[y * width + x]) last = y; if (last - y <= t) out[y * width + x] = 1; }
  }
  for (let i = 0; i < out.length; i++) if (inside[i]) out[i] = 0;
  return out;
}

/** Run-length code of a byte array: Uint32Array of (value, count) pairs. Masks shrink 100-1000x. */
export function rleEncode(bytes) {
  const runs = [];
  let i = 0;
  const n = bytes.length;
  while (i < n) {
    const v = bytes[i];
    let j = i + 1;
    while (j < n && bytes[j] === v) j++;
    runs.push(v, j - i);
    i = j;
  }
  return Uint32Array.from(runs);
}

export function rleDecode(runs, out) {
  let i = 0;
  for (let k = 0; k < runs.length; k += 2) {
    out.fill(runs[k], i, i + runs[k + 1]);
    i += runs[k + 1];
  }
  if (i !== out.length) throw new Error(`run-length code covers ${i} bytes, expected ${out.length}`);
  return out;
}

/**
 * Three-way merge of masks: ``mine`` wins where I changed ``base``, ``theirs`` elsewhere.
 * ``conflicts`` counts pixels both sides changed to different values; with
 * ``prefer = "theirs"`` those take their value instead of mine.
 */
export function mergeMasks(base, mine, theirs, prefer = "mine") {
  const merged = new Uint8Array(theirs.length);
  let conflicts = 0, mineChanged = 0;
  for (let i = 0; i < merged.length; i++) {
    const b = base[i], m = mine[i], t = theirs[i];
    if (m !== b) {
      mineChanged++;
      if (t !== b && t !== m) {
        conflicts++;
        merged[i] = prefer === "theirs" ? t : m;
      } else merged[i] = m;
    } else merged[i] = t;
  }
  return { merged, conflicts, mineChanged };
}
