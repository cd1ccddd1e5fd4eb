// The lead pages' one door to the REST API: reads only (every change is a form POST with Django's CSRF token).

export async function getJSON(url) {
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

export function jobsURL({ project, kind, active } = {}) {
  const params = new URLSearchParams({ page_size: "50" });
  if (project) params.set("project", project);
  if (kind) params.set("kind", kind);
  if (active !== undefined) params.set("active", active ? "true" : "false");
  return `/api/jobs/?${params}`;
}
