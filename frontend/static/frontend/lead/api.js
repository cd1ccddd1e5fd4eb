// The lead pages' one door to the REST API: JSON reads, image bytes, and the uploads' multipart POSTs
// (every other change is a form POST with Django's CSRF token).

export async function getJSON(url) {
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

export async function getBytes(url) {
  const response = await fetch(url, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.arrayBuffer();
}

export function jobsURL({ project, kind, active } = {}) {
  const params = new URLSearchParams({ page_size: "50" });
  if (project) params.set("project", project);
  if (kind) params.set("kind", kind);
  if (active !== undefined) params.set("active", active ? "true" : "false");
  return `/api/jobs/?${params}`;
}

export function csrfToken() {
  const field = document.querySelector("input[name=csrfmiddlewaretoken]");
  if (field && field.value) return field.value;
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

/**
 * POST a FormData; resolves to {status, body} for any HTTP answer and rejects only when no answer came
 * (network down, timeout). XMLHttpRequest, not fetch: only it reports upload progress, as onProgress(sent, total).
 */
export function postForm(url, form, { onProgress = null, timeoutMs = 300000 } = {}) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", url);
    request.setRequestHeader("X-CSRFToken", csrfToken());
    request.setRequestHeader("Accept", "application/json");
    request.timeout = timeoutMs;
    if (onProgress) request.upload.addEventListener("progress", (e) => { if (e.lengthComputable) onProgress(e.loaded, e.total); });
    request.addEventListener("load", () => {
      let body = null;
      try { body = JSON.parse(request.responseText); } catch { body = null; }
      resolve({ status: request.status, body });
    });
    request.addEventListener("error", () => reject(new Error("the server cannot be reached")));
    request.addEventListener("timeout", () => reject(new Error("the server did not answer in time")));
    request.send(form);
  });
}
