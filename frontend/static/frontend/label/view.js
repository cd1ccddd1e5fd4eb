// Zoom and pan: one CSS transform on the stack of full-resolution layers.
export class Viewport {
  constructor(viewport, stage, width, height, { onChange = () => {} } = {}) {
    Object.assign(this, { viewport, stage, width, height, onChange });
    this.scale = 1;
    this.tx = 0;
    this.ty = 0;
    this.minScale = 0.02;
    this.maxScale = 32;
    stage.style.width = `${width}px`;
    stage.style.height = `${height}px`;
  }

  apply() {
    this.stage.style.transform = `translate(${this.tx}px, ${this.ty}px) scale(${this.scale})`;
    // Crisp pixels once they are big enough to see; a smooth photo below that.
    this.stage.classList.toggle("pixelated", this.scale >= 2);
    this.onChange(this);
  }

  /** Fit the whole image into the viewport, centred. */
  fit() {
    const box = this.viewport.getBoundingClientRect();
    const margin = 16;
    this.scale = Math.max(this.minScale, Math.min((box.width - margin) / this.width, (box.height - margin) / this.height));
    this.tx = (box.width - this.width * this.scale) / 2;
    this.ty = (box.height - this.height * this.scale) / 2;
    this.apply();
  }

  /**
   * Show the rectangle [x0, y0, x1, y1] (image pixels) as large as fits, centred on it
   * but slid back inside the image, so no screen space is spent past the image's edge.
   */
  zoomToRect([x0, y0, x1, y1]) {
    const box = this.viewport.getBoundingClientRect();
    const w = Math.max(1, x1 - x0), h = Math.max(1, y1 - y0);
    this.scale = Math.max(this.minScale, Math.min(this.maxScale, Math.min(box.width / w, box.height / h)));
    const inside = (centre, visible, size) => (visible >= size ? size / 2 : Math.min(Math.max(centre, visible / 2), size - visible / 2));
    const cx = inside((x0 + x1) / 2, box.width / this.scale, this.width);
    const cy = inside((y0 + y1) / 2, box.height / this.scale, this.height);
    this.tx = box.width / 2 - cx * this.scale;
    this.ty = box.height / 2 - cy * this.scale;
    this.apply();
  }

  /** Image coordinates (float pixels) under a client (screen) point. */
  toImage(clientX, clientY) {
    const box = this.viewport.getBoundingClientRect();
    return { x: (clientX - box.left - this.tx) / this.scale, y: (clientY - box.top - this.ty) / this.scale };
  }

  toClient(x, y) {
    const box = this.viewport.getBoundingClientRect();
    return { x: box.left + this.tx + x * this.scale, y: box.top + this.ty + y * this.scale };
  }

  /** Zoom by ``factor`` keeping the image point under the client point fixed. */
  zoomAt(clientX, clientY, factor) {
    const box = this.viewport.getBoundingClientRect();
    const next = Math.min(this.maxScale, Math.max(this.minScale, this.scale * factor));
    const px = clientX - box.left, py = clientY - box.top;
    this.tx = px - (px - this.tx) * (next / this.scale);
    this.ty = py - (py - this.ty) * (next / this.scale);
    this.scale = next;
    this.apply();
  }

  zoomCentre(factor) {
    const box = this.viewport.getBoundingClientRect();
    this.zoomAt(box.left + box.width / 2, box.top + box.height / 2, factor);
  }

  panBy(dx, dy) {
    this.tx += dx;
    this.ty += dy;
    this.apply();
  }
}
