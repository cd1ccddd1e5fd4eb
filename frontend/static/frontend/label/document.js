// The mask being edited: two layers and the rules that change them.
//
//   labels   what the annotator confirmed or painted: the mask that is saved (255 = none)
//   pending  the model's suggestion not accepted yet (255 = none); shown hatched, never saved
//   limit    1 where edits are allowed (a region query's region), or null for the whole image
//
// One class per pixel: painting overwrites labels, whatever was there. The
// eraser clears both layers (the suggestion there was wrong); accepting copies
// pending into labels where nothing is confirmed yet. Every change goes through
// begin() ... commit(), so undo/redo and autosave see all of them.
import { UNLABELED, selectSpans, spansRect, unionRect } from "./algorithms.js";
import { TileHistory } from "./history.js";

export class MaskDocument {
  constructor({ width, height, labels = null, pending = null, limit = null, historyOptions = {} }) {
    this.width = width;
    this.height = height;
    this.labels = labels || new Uint8Array(width * height).fill(UNLABELED);
    this.pending = pending || new Uint8Array(width * height).fill(UNLABELED);
    this.limit = limit;
    this.history = new TileHistory([this.labels, this.pending], width, height, historyOptions);
    this.revision = 0;  // bumps on every committed change, undo and redo
    this.dirty = null;  // rectangle waiting to be redrawn
    this.listeners = new Set();
  }

  onChange(listener) { this.listeners.add(listener); }

  _emit(kind) { for (const listener of this.listeners) listener(kind, this); }

  markDirty(rect) { if (rect) this.dirty = unionRect(this.dirty, rect); }

  takeDirty() { const rect = this.dirty; this.dirty = null; return rect; }

  begin(label) { this.history.begin(label); }

  commit() {
    const rect = this.history.commit();
    if (rect) { this.revision++; this._emit("edit"); }
    return rect !== null;
  }

  cancel() {
    this.markDirty(this.history.cancel());
  }

  undo() {
    const rect = this.history.undo();
    if (!rect) return false;
    this.markDirty(rect);
    this.revision++;
    this._emit("undo");
    return true;
  }

  redo() {
    const rect = this.history.redo();
    if (!rect) return false;
    this.markDirty(rect);
    this.revision++;
    this._emit("redo");
    return true;
  }

  _apply(spans, write) {
    const rect = spansRect(spans);
    if (!rect) return null;
    this.history.touch(rect);
    const { width, limit } = this;
    for (let k = 0; k < spans.length; k += 3) {
      const row = spans[k] * width;
      for (let i = row + spans[k + 1], end = row + spans[k + 2]; i <= end; i++) if (!limit || limit[i]) write(i);
    }
    this.markDirty(rect);
    return rect;
  }

  /** Write class ``value`` into ``spans`` (inside the limit). Call between begin() and commit(). */
  paint(spans, value) {
    const { labels, limit } = this;
    if (!limit) {  // the brush's hot path: whole runs at once
      const rect = spansRect(spans);
      if (!rect) return null;
      this.history.touch(rect);
      for (let k = 0; k < spans.length; k += 3) {
        const row = spans[k] * this.width;
        labels.fill(value, row + spans[k + 1], row + spans[k + 2] + 1);
      }
      this.markDirty(rect);
      return rect;
    }
    return this._apply(spans, (i) => { labels[i] = value; });
  }

  /** Clear labels and the suggestion in ``spans``: the pixels become empty. */
  erase(spans) {
    const { labels, pending } = this;
    return this._apply(spans, (i) => { labels[i] = UNLABELED; pending[i] = UNLABELED; });
  }

  /** Accept the suggestion in ``spans`` where nothing is confirmed yet. */
  accept(spans) {
    const { labels, pending } = this;
    return this._apply(spans, (i) => { if (labels[i] === UNLABELED && pending[i] !== UNLABELED) labels[i] = pending[i]; });
  }

  /** Spans of the pixels (inside the limit) that ``predicate(index)`` selects. */
  select(predicate) {
    return selectSpans(this.width, this.height, predicate, this.limit);
  }

  /** Spans where a suggestion waits to be accepted. */
  pendingSpans() {
    const { labels, pending } = this;
    return this.select((i) => labels[i] === UNLABELED && pending[i] !== UNLABELED);
  }

  /** Spans of empty pixels: no confirmed label and no suggestion. */
  emptySpans() {
    const { labels, pending } = this;
    return this.select((i) => labels[i] === UNLABELED && pending[i] === UNLABELED);
  }

  /**
   * What each pixel shows, as one key per pixel for flood fills: the class when
   * confirmed, 256 + class when only suggested, 511 when empty. Confirmed and
   * suggested areas of one class are different regions, so a fill never spills
   * from a confirmed area into an unchecked suggestion.
   */
  displayKeys() {
    const keys = new Uint16Array(this.labels.length);
    const { labels, pending } = this;
    for (let i = 0; i < keys.length; i++) keys[i] = labels[i] !== UNLABELED ? labels[i] : 256 + pending[i];
    return keys;
  }

  /** Replace the confirmed labels with ``values`` as one undoable step (reload, merge, restore). */
  replaceLabels(values, label) {
    this.begin(label);
    this.history.touch({ x0: 0, y0: 0, x1: this.width, y1: this.height });
    this.labels.set(values);
    this.markDirty({ x0: 0, y0: 0, x1: this.width, y1: this.height });
    return this.commit();
  }

  /** How the required pixels (inside the limit) stand: confirmed, only suggested, empty. */
  census() {
    const { labels, pending, limit } = this;
    let confirmed = 0, suggested = 0, empty = 0;
    for (let i = 0; i < labels.length; i++) {
      if (limit && !limit[i]) continue;
      if (labels[i] !== UNLABELED) confirmed++;
      else if (pending[i] !== UNLABELED) suggested++;
      else empty++;
    }
    return { confirmed, suggested, empty, total: confirmed + suggested + empty };
  }
}
