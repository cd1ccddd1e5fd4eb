// Never lose work: active-time tracking, autosave with version checks, and a
// copy of unsaved work in this browser (IndexedDB) that survives a crash, a
// closed tab or a lost network.
import { postPng, getPng } from "./api.js";
import { UNLABELED, mergeMasks } from "./algorithms.js";
import { encodeIndexPng } from "./png.js";
import { versionOf } from "./versions.js";

/** Seconds of *active* work: the tab visible and some input within the last ``idleMs``. */
export class ActiveTimer {
  constructor({ idleMs = 60_000 } = {}) {
    this.idleMs = idleMs;
    this.unbooked = 0;  // ms not yet sent with a save
    this.total = 0;  // ms on this page
    this.last = performance.now();
    this.lastInput = this.last;
    setInterval(() => this.tick(), 1000);
  }

  mark() {
    this.tick();
    this.lastInput = performance.now();
  }

  tick() {
    const now = performance.now();
    const active = document.visibilityState === "visible" && now - this.lastInput < this.idleMs;
    if (active) {
      this.unbooked += now - this.last;
      this.total += now - this.last;
    }
    this.last = now;
  }

  /** Seconds to book with the next save (they are given back if that save fails). */
  take() {
    this.tick();
    const seconds = this.unbooked / 1000;
    this.unbooked = 0;
    return seconds;
  }

  giveBack(seconds) { this.unbooked += seconds * 1000; }
}

/** The latest unsaved mask of each query, kept in IndexedDB until the server has it. */
export class LocalBackup {
  constructor(key) {
    this.key = key;
    this.db = new Promise((resolve) => {
      if (!window.indexedDB) return resolve(null);
      const open = indexedDB.open("maskloop-labeling", 1);
      open.onupgradeneeded = () => open.result.createObjectStore("drafts");
      open.onsuccess = () => resolve(open.result);
      open.onerror = () => resolve(null);
    });
  }

  async _run(mode, action) {
    const db = await this.db;
    if (!db) return null;
    return new Promise((resolve) => {
      const tx = db.transaction("drafts", mode);
      const request = action(tx.objectStore("drafts"));
      tx.oncomplete = () => resolve(request ? request.result : null);
      tx.onerror = () => resolve(null);
    });
  }

  put(record) { return this._run("readwrite", (store) => store.put({ ...record, savedAt: Date.now() }, this.key)); }
  get() { return this._run("readonly", (store) => store.get(this.key)); }
  clear() { return this._run("readwrite", (store) => store.delete(this.key)); }
}

/**
 * Where the annotator erased the model's suggestion, kept in this browser.
 *
 * Saved versions hold only confirmed labels, so without this a reload would
 * bring back, hatched, every suggestion the annotator had wiped as wrong. The
 * pixels are stored as run lengths (alternating kept / dismissed) and applied
 * to the suggestion before the document is built; they are forgotten when the
 * query is submitted. Another browser still shows the suggestion there.
 */
export class DismissedSuggestions {
  constructor(key, suggestion) {
    this.store = new LocalBackup(key);
    this.suggestion = suggestion;  // the model's suggestion as loaded (255 = none)
    this.timer = null;
  }

  /** Clear ``pending`` where a stored dismissal lies on a pixel with no label; returns how many. */
  async restore(labels, pending) {
    const record = await this.store.get();
    if (!record || record.size !== pending.length) return 0;
    let i = 0, cleared = 0;
    record.runs.forEach((run, k) => {
      if (k % 2 === 1) {
        for (let j = i; j < i + run; j++) {
          if ((!labels || labels[j] === UNLABELED) && pending[j] !== UNLABELED) { pending[j] = UNLABELED; cleared++; }
        }
      }
      i += run;
    });
    return cleared;
  }

  /** Record the document's dismissals shortly after the last change (one pass over the image). */
  schedule(doc) {
    this.doc = doc;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.flush(), 500);
  }

  /**
   * Record them now: before a save, when the tab is hidden or the page goes away. A write the debounce
   * started mid-stroke holds only part of the erasure; IndexedDB runs writes to one store in order, so
   * this one, the latest, wins.
   */
  flush() {
    clearTimeout(this.timer);
    this.timer = null;
    return this.doc ? this.save() : Promise.resolve(null);
  }

  save() {
    const { suggestion } = this, { labels, pending } = this.doc;
    const runs = [];
    let state = false, run = 0;
    for (let i = 0; i < suggestion.length; i++) {
      const dismissed = suggestion[i] !== UNLABELED && pending[i] === UNLABELED && labels[i] === UNLABELED;
      if (dismissed !== state) { runs.push(run); run = 0; state = dismissed; }
      run++;
    }
    runs.push(run);
    return runs.length > 1 ? this.store.put({ size: suggestion.length, runs: Uint32Array.from(runs) }) : this.store.clear();
  }

  /** The query is submitted: drop the record, and let no later flush (the page leaving) write it again. */
  forget() {
    clearTimeout(this.timer);
    this.doc = null;
    return this.store.clear();
  }
}

/**
 * Saves the document's confirmed labels as versions of the image's mask.
 *
 * ``version`` is the page's one record of the server version the labels stand
 * on (versions.js describes it); ``baseLabels`` its content, kept for three-way
 * merges. A 409 (someone saved in between) is resolved by merging: my changes
 * since the base win, theirs fill the rest; when both changed the same pixels
 * ``resolveConflict`` asks the annotator. ``status`` is what saving is doing;
 * ``onStatus(status, version)`` hears every change of either.
 */
export class Saver {
  constructor({ doc, detail, timer, backup, onStatus, resolveConflict, onBlocked }) {
    Object.assign(this, { doc, detail, timer, backup, onStatus, resolveConflict, onBlocked });
    const opened = detail.annotation;
    this.version = versionOf(opened, { mine: Boolean(opened && opened.author && opened.author === detail.assignee) });
    this.status = { kind: "saved" };
    this.baseLabels = doc.labels.slice();
    this.savedRevision = doc.revision;
    this.inflight = null;
    this.blocked = null;  // a reason saving stopped (the lock was taken, the query closed)
    this.encoded = null;  // {revision, blob}: the latest encoding, reused on page exit
    this.failures = 0;
    this.stats = { roundTripMs: [] };
  }

  get dirty() { return this.doc.revision !== this.savedRevision; }

  /** The version number the labels stand on (0: none), sent as ``base_version``. */
  get baseVersion() { return this.version.number; }

  setStatus(kind, extra = {}) {
    this.status = { kind, ...extra };
    this.onStatus(this.status, this.version);
  }

  async encode() {
    const revision = this.doc.revision;
    if (this.encoded && this.encoded.revision === revision) return this.encoded;
    const labels = this.doc.labels.slice();
    const blob = await encodeIndexPng(labels, this.doc.width, this.doc.height);
    this.encoded = { revision, blob, labels };
    return this.encoded;
  }

  /** Keep a copy of unsaved work in this browser. */
  async backUp() {
    if (!this.dirty) return;
    const { revision, blob } = await this.encode();
    await this.backup.put({ baseVersion: this.baseVersion, revision, png: blob });
  }

  /** Save now (a draft, or the submission). Resolves to the server's answer; throws ApiError when refused. */
  async save({ submit = false } = {}) {
    while (this.inflight) await this.inflight.catch(() => {});
    if (this.blocked) throw this.blocked;
    if (!submit && !this.dirty) return null;
    const run = this._save(submit, 3);
    this.inflight = run;
    try {
      return await run;
    } finally {
      this.inflight = null;
    }
  }

  /** ``merges``: how many more times a 409 may be merged and retried (others may keep saving meanwhile). */
  async _save(submit, merges) {
    const started = performance.now();
    const { revision, blob, labels } = await this.encode();
    const seconds = this.timer.take();
    this.setStatus("saving", { submit });
    try {
      const { body } = await postPng(submit ? this.detail.urls.submit : this.detail.urls.save, blob, {
        base_version: this.baseVersion, time_spent: seconds.toFixed(2),
      });
      // Usually my new version; an identical draft is not stored again and the answer is the latest one, maybe theirs.
      this.version = versionOf(body.annotation, { mine: body.annotation.author === this.detail.assignee });
      this.baseLabels = labels;
      this.savedRevision = revision;
      this.failures = 0;
      this.stats.roundTripMs.push(performance.now() - started);
      if (!this.dirty) this.backup.clear();
      this.setStatus(this.dirty ? "dirty" : "saved");
      return body;
    } catch (error) {
      this.timer.giveBack(seconds);
      if (error.status === 409 && error.code === "stale_version" && merges > 0 && error.body.latest) {
        const how = await this.mergeWith(error.body.latest, { sameUser: Boolean(error.body.same_user) });
        if (how === "reload") return null;  // the annotator looks at their version before saving anything
        return this._save(submit, merges - 1);
      }
      if (error.status === 409 || error.status === 403) {
        this.blocked = error;
        this.onBlocked(error);
      } else {
        this.failures++;
        this.setStatus("error", { message: error.message });
        this.backUp();
      }
      throw error;
    }
  }

  /**
   * Bring the labels up to the server's ``latest`` version without losing my changes.
   * ``sameUser``: the 409 says this user saved it (another tab or window).
   */
  async mergeWith(latest, { sameUser = false } = {}) {
    // A tile query edits only its tile of the whole-image version.
    const url = this.detail.tile ? `${latest.mask_url}?box=${this.detail.tile.box.join(",")}` : latest.mask_url;
    const theirs = (await getPng(url, [this.doc.width, this.doc.height])).data;
    const mine = this.doc.labels;
    const version = versionOf(latest, { mine: sameUser });
    let { merged, conflicts, mineChanged } = mergeMasks(this.baseLabels, mine, theirs);
    let how = "merged";
    if (conflicts > 0) {
      how = await this.resolveConflict({ latest: version, conflicts, mineChanged });
      if (how === "theirs") merged = mergeMasks(this.baseLabels, mine, theirs, "theirs").merged;
      if (how === "reload") merged = theirs;
    }
    this.doc.replaceLabels(merged, how === "reload" ? "reload" : "merge");
    this.version = version;
    this.baseLabels = theirs;
    this.encoded = null;
    if (how === "reload") this.savedRevision = this.doc.revision;
    this.setStatus("merged", { how, conflicts });
    return how;
  }

  /** On leaving the page: a last save if it is small enough for a keepalive request, else the local copy. */
  flushOnExit() {
    if (!this.dirty || this.blocked) return;
    const encoded = this.encoded;
    if (encoded && encoded.revision === this.doc.revision && encoded.blob.size < 60_000) {
      postPng(this.detail.urls.save, encoded.blob, {
        base_version: this.baseVersion, time_spent: this.timer.take().toFixed(2),
      }, { keepalive: true }).catch(() => {});
    }
  }
}
