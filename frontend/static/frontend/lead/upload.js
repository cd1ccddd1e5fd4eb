// Images page: upload many images (and masks, paired by file name without extension) from this computer.
// Files go up BATCH at a time, so hundreds never make one long request; the server imports each file and answers
// per file, shown next to it. A request that gets no answer, or a 5xx/429, is sent again; one bad file never
// costs the others.
import { postForm } from "./api.js";

const BATCH = 8;
const RETRY_DELAYS_MS = [1000, 3000, 9000];
const IMAGE_SUFFIX = /\.(jpe?g|png|webp|bmp|tiff?)$/i;

/** "street_01.jpg" → "street_01": how masks find their image (as the imports pair masks/STEM.png). */
export function fileStem(name) {
  const base = String(name).split(/[\\/]/).pop();
  const dot = base.lastIndexOf(".");
  return dot > 0 ? base.slice(0, dot) : base;
}

/** Split items into groups of ``size``. */
export function batches(items, size) {
  const out = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

export function shouldRetry(status) {
  return status === 0 || status === 408 || status === 429 || status >= 500;
}

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

class Uploader {
  constructor(root) {
    this.root = root;
    this.url = root.dataset.uploadUrl;
    this.images = new Map();  // name → {file, state, detail}
    this.masks = new Map();  // stem → File
    this.busy = false;
    this.$ = (selector) => root.querySelector(selector);
    this.bind();
    this.render();
  }

  bind() {
    const pick = (input, add) => input.addEventListener("change", () => { add([...input.files]); input.value = ""; });
    pick(this.$("#upload-images"), (files) => this.addImages(files));
    pick(this.$("#upload-masks"), (files) => this.addMasks(files));
    this.root.querySelectorAll("[data-drop]").forEach((zone) => {
      zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
      zone.addEventListener("dragleave", () => zone.classList.remove("over"));
      zone.addEventListener("drop", (event) => {
        event.preventDefault();
        zone.classList.remove("over");
        const files = [...event.dataTransfer.files];
        if (zone.dataset.drop === "masks") this.addMasks(files);
        else this.addImages(files);
      });
    });
    this.$("#upload-start").addEventListener("click", () => this.upload());
    this.$("#upload-clear").addEventListener("click", () => { this.images.clear(); this.masks.clear(); this.render(); });
    window.addEventListener("beforeunload", (event) => { if (this.busy) event.preventDefault(); });
  }

  addImages(files) {
    if (this.busy) return;
    for (const file of files) {
      const known = this.images.get(file.name);
      if (known && known.state === "imported") continue;
      const image = IMAGE_SUFFIX.test(file.name);
      this.images.set(file.name, { file, state: image ? "waiting" : "rejected",
        detail: image ? "" : "not an image file (JPEG, PNG, WebP, BMP or TIFF)" });
    }
    this.render();
  }

  addMasks(files) {
    if (this.busy) return;
    for (const file of files) this.masks.set(fileStem(file.name), file);
    this.render();
  }

  maskFor(name) {
    return this.masks.get(fileStem(name)) || null;
  }

  waiting() {
    return [...this.images.entries()].filter(([, entry]) => entry.state === "waiting" || entry.state === "failed");
  }

  /** The whole list, from the entries (between uploads; while uploading rows change in place). */
  render() {
    const list = this.$("#upload-files");
    const stems = new Set([...this.images.keys()].map(fileStem));
    const rows = [...this.images.entries()].map(([name, entry]) => this.row(name, entry));
    for (const [stem, file] of this.masks) {
      if (!stems.has(stem)) {
        rows.push(this.row(file.name, { state: "rejected", detail: `no image named ${stem}.* chosen for this mask`, isMask: true }));
      }
    }
    list.replaceChildren(...rows);
    this.$("#upload-start").disabled = this.busy || this.waiting().length === 0;
    this.$("#upload-clear").disabled = this.busy || (this.images.size === 0 && this.masks.size === 0);
    if (!this.busy) this.summary();
  }

  row(name, entry) {
    const item = document.createElement("li");
    item.dataset.name = name;
    item.innerHTML = '<span class="file-name"></span> <span class="file-mask muted"></span> <span class="badge file-state"></span> <span class="file-detail"></span>';
    item.querySelector(".file-name").textContent = name;
    const mask = entry.isMask ? null : this.maskFor(name);
    item.querySelector(".file-mask").textContent = entry.isMask ? "(mask)" : mask ? `+ mask ${mask.name}` : "";
    this.show(item, entry);
    return item;
  }

  show(item, entry) {
    item.dataset.state = entry.state;
    item.querySelector(".file-state").textContent = entry.state;
    item.querySelector(".file-detail").textContent = entry.detail || "";
  }

  update(name, state, detail = "") {
    const entry = this.images.get(name);
    Object.assign(entry, { state, detail });
    const item = [...this.$("#upload-files").children].find((li) => li.dataset.name === name);
    if (item) this.show(item, entry);
  }

  summary(extra = "") {
    const counts = { imported: 0, skipped: 0, rejected: 0, failed: 0, waiting: 0 };
    for (const entry of this.images.values()) counts[entry.state] = (counts[entry.state] || 0) + 1;
    const chosen = `${this.images.size} image(s), ${this.masks.size} mask(s) chosen`;
    const done = ["imported", "skipped", "rejected", "failed"].filter((k) => counts[k]).map((k) => `${counts[k]} ${k}`);
    this.$("#upload-summary").textContent = this.images.size || this.masks.size
      ? [chosen, done.join(", "), extra].filter(Boolean).join(" · ") : "No files chosen.";
  }

  async send(form, onProgress) {
    for (let attempt = 0; ; attempt++) {
      let answer;
      try {
        answer = await postForm(this.url, form, { onProgress });
      } catch (error) {
        answer = { status: 0, body: { detail: error.message } };
      }
      if (!shouldRetry(answer.status) || attempt >= RETRY_DELAYS_MS.length) return answer;
      this.summary(`retrying a batch (${(answer.body && answer.body.detail) || `HTTP ${answer.status}`})`);
      await sleep(RETRY_DELAYS_MS[attempt]);
    }
  }

  async upload() {
    const todo = this.waiting();
    if (this.busy || !todo.length) return;
    const [domain, split] = this.$("#upload-target").value.split(":");
    this.busy = true;
    this.root.dataset.state = "uploading";
    this.render();
    const size = (name, entry) => entry.file.size + (this.maskFor(name) ? this.maskFor(name).size : 0);
    const total = todo.reduce((sum, [name, entry]) => sum + size(name, entry), 0) || 1;
    const bar = this.$("#upload-progress");
    bar.hidden = false;
    let sent = 0, filesDone = 0;
    for (const group of batches(todo, BATCH)) {
      const form = new FormData();
      form.append("domain", domain);
      form.append("split", split);
      for (const [name, entry] of group) {
        form.append("images", entry.file, name);
        const mask = this.maskFor(name);
        if (mask) form.append("masks", mask, mask.name);
        this.update(name, "uploading");
      }
      const bytes = group.reduce((sum, [name, entry]) => sum + size(name, entry), 0);
      const answer = await this.send(form, (loaded, of) => { bar.value = (sent + bytes * (loaded / of)) / total; });
      sent += bytes;
      filesDone += group.length;
      bar.value = sent / total;
      if (answer.status === 200 && answer.body && answer.body.results) {
        group.forEach(([name], index) => {
          const result = answer.body.results[index];
          this.update(name, result.state, result.state === "imported" && result.name !== name ? `stored as ${result.name}` : result.detail);
        });
      } else {
        const why = (answer.body && answer.body.detail) || `the server answered HTTP ${answer.status}`;
        const state = shouldRetry(answer.status) ? "failed" : "rejected";
        group.forEach(([name]) => this.update(name, state, why));
      }
      this.summary(`${filesDone} of ${todo.length} sent`);
    }
    this.busy = false;
    this.root.dataset.state = "done";
    this.render();
    const failed = this.waiting().length;
    this.summary(failed ? "press Upload to try the failed ones again" : "done; reload the page to update the lists");
  }
}

const root = document.querySelector("[data-upload]");
if (root) window.uploader = new Uploader(root);
