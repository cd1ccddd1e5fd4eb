// Brightness, contrast and gamma of the photo on this screen only.
//
// A CSS filter on the <img>: the browser applies it when compositing, so the
// image file, the decoded pixels and the masks are never touched, and the label
// overlay above keeps its true class colours. Settings are kept per user in
// localStorage. The pure functions say what the filter does to one value, so a
// test can check the pixels on screen against them.

export const DISPLAY_DEFAULTS = Object.freeze({ brightness: 1, contrast: 1, gamma: 1 });
const LIMITS = { brightness: [0.2, 3], contrast: [0.2, 3], gamma: [0.2, 4] };

/** Settings with every field a finite number inside its range (defaults for anything else). */
export function cleanDisplay(settings) {
  const clean = {};
  for (const [name, [low, high]] of Object.entries(LIMITS)) {
    const raw = settings ? settings[name] : undefined;
    const value = raw === null || raw === undefined || raw === "" ? NaN : Number(raw);
    clean[name] = Number.isFinite(value) ? Math.min(high, Math.max(low, value)) : DISPLAY_DEFAULTS[name];
  }
  return clean;
}

export function isDefaultDisplay(settings) {
  return Object.keys(DISPLAY_DEFAULTS).every((name) => Math.abs(settings[name] - DISPLAY_DEFAULTS[name]) < 1e-9);
}

/** The CSS ``filter`` for ``settings``: gamma first (an SVG filter, ``#filterId``), then brightness, then contrast. */
export function cssFilter(settings, filterId = "display-gamma") {
  if (isDefaultDisplay(settings)) return "none";
  const parts = [];
  if (settings.gamma !== 1) parts.push(`url(#${filterId})`);
  if (settings.brightness !== 1) parts.push(`brightness(${settings.brightness})`);
  if (settings.contrast !== 1) parts.push(`contrast(${settings.contrast})`);
  return parts.join(" ");
}

/** Exponent of the SVG gamma transfer function: gamma 2 lifts the mid-tones (0.25 → 0.5). */
export function gammaExponent(gamma) {
  return 1 / gamma;
}

const clamp01 = (v) => Math.min(1, Math.max(0, v));

/** What the filter makes of one colour channel value ``v`` in [0, 1] (each step clamps, as the filters do). */
export function displayedValue(v, settings) {
  const lifted = clamp01(Math.pow(clamp01(v), gammaExponent(settings.gamma)));
  const bright = clamp01(lifted * settings.brightness);
  return clamp01((bright - 0.5) * settings.contrast + 0.5);
}

/** The settings of one user, in this browser. */
export class DisplayStore {
  constructor(key, storage = window.localStorage) {
    this.key = key;
    this.storage = storage;
  }

  load() {
    try {
      return cleanDisplay({ ...DISPLAY_DEFAULTS, ...JSON.parse(this.storage.getItem(this.key) || "{}") });
    } catch {
      return { ...DISPLAY_DEFAULTS };  // storage blocked or a damaged entry: start from the defaults
    }
  }

  save(settings) {
    try {
      if (isDefaultDisplay(settings)) this.storage.removeItem(this.key);
      else this.storage.setItem(this.key, JSON.stringify(settings));
    } catch {
      // storage full or disabled: the settings still apply until the page is left
    }
  }
}

/**
 * The panel's three sliders and reset button, wired to the photo's filter. ``root`` is the
 * <details id="display"> block of the labeling page; it opens by itself when settings are restored.
 */
export class DisplayControls {
  constructor({ root, photo, gammaFilter, store }) {
    Object.assign(this, { root, photo, gammaFilter, store });
    this.inputs = {
      brightness: root.querySelector("#display-brightness"),
      contrast: root.querySelector("#display-contrast"),
      gamma: root.querySelector("#display-gamma-input"),
    };
    this.settings = store.load();
    // Sliders show brightness and contrast in percent, gamma as is.
    const fromInput = { brightness: (v) => v / 100, contrast: (v) => v / 100, gamma: (v) => v };
    for (const [name, input] of Object.entries(this.inputs)) {
      input.addEventListener("input", () => this.set({ ...this.settings, [name]: fromInput[name](Number(input.value)) }));
    }
    root.querySelector("#display-reset").addEventListener("click", () => this.set({ ...DISPLAY_DEFAULTS }));
    if (!isDefaultDisplay(this.settings)) root.open = true;
    this.apply();
  }

  set(settings) {
    this.settings = cleanDisplay(settings);
    this.store.save(this.settings);
    this.apply();
  }

  apply() {
    const { settings, inputs } = this;
    const exponent = String(gammaExponent(settings.gamma));
    this.gammaFilter.querySelectorAll("feFuncR, feFuncG, feFuncB").forEach((f) => f.setAttribute("exponent", exponent));
    this.photo.style.filter = cssFilter(settings, this.gammaFilter.id);
    inputs.brightness.value = Math.round(settings.brightness * 100);
    inputs.contrast.value = Math.round(settings.contrast * 100);
    inputs.gamma.value = settings.gamma;
    this.root.querySelector("#display-brightness-value").textContent = `${Math.round(settings.brightness * 100)} %`;
    this.root.querySelector("#display-contrast-value").textContent = `${Math.round(settings.contrast * 100)} %`;
    this.root.querySelector("#display-gamma-value").textContent = settings.gamma.toFixed(2);
    this.root.querySelector("#display-state").textContent = isDefaultDisplay(settings) ? "" : "(adjusted)";
  }
}
