// The one module that talks to the server: fetch, the CSRF token, JSON and PNG bodies, errors.
import { decodePng } from "./png.js";

export class ApiError extends Error {
  constructor(status, body, url) {
    super((body && body.detail) || `HTTP ${status} from ${url}`);
    this.status = status;
    this.body = body || {};
    this.code = this.body.code || null;
  }
}

export function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  if (meta && meta.content) return meta.content;
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

function withParams(url, params) {
  if (!params) return url;
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== undefined && value !== null) query.set(key, value);
  return `${url}${url.includes("?") ? "&" : "?"}${query}`;
}

async function send(url, { method = "GET", body, headers = {}, keepalive = false } = {}) {
  let response;
  try {
    response = await fetch(url, {
      method, body, keepalive, credentials: "same-origin",
      headers: { Accept: "application/json", ...(method === "GET" ? {} : { "X-CSRFToken": csrfToken() }), ...headers },
    });
  } catch (error) {
    throw new ApiError(0, { detail: `The server cannot be reached (${error.message}). Your work stays in this browser.`, code: "offline" }, url);
  }
  const type = response.headers.get("Content-Type") || "";
  const payload = type.includes("json") ? await response.json().catch(() => null) : null;
  if (!response.ok) throw new ApiError(response.status, payload, url);
  return { status: response.status, body: payload, response };
}

export async function getJson(url) {
  return (await send(url)).body;
}

export async function postJson(url, data = {}, { keepalive = false } = {}) {
  return (await send(url, {
    method: "POST", body: JSON.stringify(data), keepalive, headers: { "Content-Type": "application/json" },
  })).body;
}

/** POST a PNG as the raw body with parameters in the query string; resolves to {status, body}. */
export async function postPng(url, blob, params, { keepalive = false } = {}) {
  const { status, body } = await send(withParams(url, params), {
    method: "POST", body: blob, keepalive, headers: { "Content-Type": "image/png" },
  });
  return { status, body };
}

/** GET a PNG and decode its raw values; ``expect`` = [width, height] is checked. */
export async function getPng(url, expect = null) {
  let response;
  try {
    response = await fetch(url, { credentials: "same-origin" });
  } catch (error) {
    throw new ApiError(0, { detail: `cannot load ${url} (${error.message})`, code: "offline" }, url);
  }
  if (!response.ok) throw new ApiError(response.status, null, url);
  const png = await decodePng(await response.arrayBuffer());
  if (expect && (png.width !== expect[0] || png.height !== expect[1])) {
    throw new Error(`${url} is ${png.width}×${png.height} but the image is ${expect[0]}×${expect[1]}`);
  }
  return png;
}
