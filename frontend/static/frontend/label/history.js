// Undo/redo by copy-on-write tiles. An edit snapshots each 256×256 tile the
// first time it touches it; at commit the snapshots of tiles that really
// changed are run-length coded (masks compress 100-1000×), so a brush stroke
// costs a few kB and even "fill everything" on a 12 MP image stays small.
// Undo swaps the tile contents with the stored ones, which turns the entry
// into its own redo.
import { rleDecode, rleEncode } from "./algorithms.js";

export class TileHistory {
  /** ``layers``: Uint8Arrays of ``width * height`` that edits change together. */
  constructor(layers, width, height, { tile = 256, maxSteps = 500, minSteps = 100, maxBytes = 192 * 2 ** 20 } = {}) {
    Object.assign(this, { layers, width, height, tile, maxSteps, minSteps, maxBytes });
    this.cols = Math.ceil(width / tile);
    this.undoStack = [];
    this.redoStack = [];
    this.bytes = 0;
    this.open = null;
  }

  get canUndo() { return this.undoStack.length > 0; }
  get canRedo() { return this.redoStack.length > 0; }

  begin(label) {
    if (this.open) this.commit();
    this.open = { label, tiles: new Map() };
  }

  _tileRect(t) {
    const tx = t % this.cols, ty = Math.floor(t / this.cols);
    const x0 = tx * this.tile, y0 = ty * this.tile;
    return { x0, y0, x1: Math.min(this.width, x0 + this.tile), y1: Math.min(this.height, y0 + this.tile) };
  }

  _read(layer, r) {
    const w = r.x1 - r.x0, out = new Uint8Array(w * (r.y1 - r.y0));
    for (let y = r.y0; y < r.y1; y++) out.set(layer.subarray(y * this.width + r.x0, y * this.width + r.x1), (y - r.y0) * w);
    return out;
  }

  _write(layer, r, data) {
    const w = r.x1 - r.x0;
    for (let y = r.y0; y < r.y1; y++) layer.set(data.subarray((y - r.y0) * w, (y - r.y0 + 1) * w), y * this.width + r.x0);
  }

  /** Call before changing pixels inside ``rect`` ({x0, y0, x1, y1}, exclusive ends). */
  touch(rect) {
    if (!this.open) throw new Error("touch() outside begin()/commit()");
    if (!rect) return;
    const tx0 = Math.max(0, Math.floor(rect.x0 / this.tile)), tx1 = Math.min(this.cols - 1, Math.floor((rect.x1 - 1) / this.tile));
    const rows = Math.ceil(this.height / this.tile);
    const ty0 = Math.max(0, Math.floor(rect.y0 / this.tile)), ty1 = Math.min(rows - 1, Math.floor((rect.y1 - 1) / this.tile));
    for (let ty = ty0; ty <= ty1; ty++) {
      for (let tx = tx0; tx <= tx1; tx++) {
        const t = ty * this.cols + tx;
        if (this.open.tiles.has(t)) continue;
        const r = this._tileRect(t);
        this.open.tiles.set(t, this.layers.map((layer) => this._read(layer, r)));
      }
    }
  }

  /** Close the open edit; returns the rectangle that changed, or null when nothing did (no step is stored). */
  commit() {
    const open = this.open;
    this.open = null;
    if (!open) return null;
    const tiles = [];
    let rect = null, bytes = 0;
    for (const [t, before] of open.tiles) {
      const r = this._tileRect(t);
      const changed = this.layers.some((layer, k) => {
        const now = this._read(layer, r), old = before[k];
        for (let i = 0; i < now.length; i++) if (now[i] !== old[i]) return true;
        return false;
      });
      if (!changed) continue;
      const data = before.map(rleEncode);
      bytes += data.reduce((sum, runs) => sum + runs.byteLength, 0);
      tiles.push({ t, data });
      rect = rect ? { x0: Math.min(rect.x0, r.x0), y0: Math.min(rect.y0, r.y0), x1: Math.max(rect.x1, r.x1), y1: Math.max(rect.y1, r.y1) } : r;
    }
    if (!tiles.length) return null;
    this.undoStack.push({ label: open.label, tiles, bytes });
    this.bytes += bytes;
    for (const entry of this.redoStack) this.bytes -= entry.bytes;
    this.redoStack = [];
    this._trim();
    return rect;
  }

  /** Put back what the open edit changed and forget it (an aborted operation). */
  cancel() {
    const open = this.open;
    this.open = null;
    if (!open) return null;
    let rect = null;
    for (const [t, before] of open.tiles) {
      const r = this._tileRect(t);
      this.layers.forEach((layer, k) => this._write(layer, r, before[k]));
      rect = rect ? { x0: Math.min(rect.x0, r.x0), y0: Math.min(rect.y0, r.y0), x1: Math.max(rect.x1, r.x1), y1: Math.max(rect.y1, r.y1) } : r;
    }
    return rect;
  }

  _trim() {
    while (this.undoStack.length > this.maxSteps) this.bytes -= this.undoStack.shift().bytes;
    while (this.bytes > this.maxBytes && this.undoStack.length > this.minSteps) this.bytes -= this.undoStack.shift().bytes;
  }

  _swap(entry) {
    let rect = null, bytes = 0;
    for (const tile of entry.tiles) {
      const r = this._tileRect(tile.t);
      const current = this.layers.map((layer) => rleEncode(this._read(layer, r)));
      this.layers.forEach((layer, k) => {
        const data = rleDecode(tile.data[k], new Uint8Array((r.x1 - r.x0) * (r.y1 - r.y0)));
        this._write(layer, r, data);
      });
      tile.data = current;
      bytes += current.reduce((sum, runs) => sum + runs.byteLength, 0);
      rect = rect ? { x0: Math.min(rect.x0, r.x0), y0: Math.min(rect.y0, r.y0), x1: Math.max(rect.x1, r.x1), y1: Math.max(rect.y1, r.y1) } : r;
    }
    this.bytes += bytes - entry.bytes;
    entry.bytes = bytes;
    return rect;
  }

  /** Undo the last step; returns the rectangle to redraw, or null when there is nothing to undo. */
  undo() {
    if (this.open) this.commit();
    const entry = this.undoStack.pop();
    if (!entry) return null;
    const rect = this._swap(entry);
    this.redoStack.push(entry);
    return rect;
  }

  redo() {
    if (this.open) this.commit();
    const entry = this.redoStack.pop();
    if (!entry) return null;
    const rect = this._swap(entry);
    this.undoStack.push(entry);
    return rect;
  }
}
