// Live job progress: polls /api/jobs/ for a project's queued and running jobs and updates their rows in place.
// When a job that was running ends, the page reloads once so charts and tables show its results.
import { getJSON, jobsURL } from "./api.js";

const FAST_MS = 1500;   // while something runs
const SLOW_MS = 8000;   // idle: notice new jobs (e.g. the next round, started by the last submit)

function rowFor(panel, job) {
  let row = panel.querySelector(`[data-job-id="${job.id}"]`);
  if (!row) {
    row = document.createElement("div");
    row.dataset.jobId = String(job.id);
    row.innerHTML = `<div class="job-head"><strong class="job-title"></strong> <span class="badge job-state"></span>
      <span class="job-phase muted"></span></div><progress max="100"></progress><div class="job-message small"></div>
      <div class="job-wait small"></div><div class="job-timing small muted"></div>`;
    panel.prepend(row);
  }
  return row;
}

function render(row, job) {
  row.className = `job job-${job.state}`;
  row.dataset.jobFinal = job.is_final ? "1" : "0";
  const title = row.querySelector(".job-title");
  if (title) title.textContent = `${job.kind_label || job.kind}${job.round_number !== null ? ` · round ${job.round_number}` : ""}`;
  const badge = row.querySelector(".job-state");
  badge.textContent = job.state_label || job.state;  // "Queued" for a queued job, never "Running"
  badge.className = `badge job-state job-state-${job.badge_state || job.state}`;
  row.querySelector(".job-phase").textContent = job.phase === "warnings" ? "" : job.phase || "";
  const bar = row.querySelector("progress");
  bar.value = job.progress;
  bar.setAttribute("aria-label", `Progress of job ${job.id}`);
  row.querySelector(".job-message").textContent = job.message || "";
  // Why a queued job waits (its queue, the jobs ahead of it) and "ran … · waited …": from the API.
  for (const [selector, text] of [[".job-wait", job.wait_note], [".job-timing", job.timing]]) {
    const element = row.querySelector(selector);
    if (element) element.textContent = text || "";
  }
}

function watch(panel) {
  const project = panel.dataset.jobsProject;
  const kind = panel.dataset.jobsKind || undefined;
  const watching = new Set([...panel.querySelectorAll('[data-job-final="0"]')].map((el) => el.dataset.jobId));
  let timer = null;

  async function tick() {
    let active = [];
    try {
      active = (await getJSON(jobsURL({ project, kind, active: true }))).results;
    } catch (error) {
      console.warn("job poll failed", error);  // keep polling: the server may be restarting
    }
    const stillActive = new Set(active.map((job) => String(job.id)));
    for (const job of active) {
      render(rowFor(panel, job), job);
      watching.add(String(job.id));
    }
    const ended = [...watching].filter((id) => !stillActive.has(id));
    for (const id of ended) {
      watching.delete(id);
      try {
        render(rowFor(panel, { id }), await getJSON(`/api/jobs/${id}/`));
      } catch (error) {
        console.warn("job fetch failed", error);
      }
    }
    panel.classList.toggle("idle", watching.size === 0);
    if (ended.length && panel.dataset.reloadOnFinish) {
      setTimeout(() => window.location.reload(), 1200);
      return;
    }
    timer = setTimeout(tick, watching.size ? FAST_MS : SLOW_MS);
  }

  document.addEventListener("visibilitychange", () => {
    clearTimeout(timer);
    if (document.visibilityState === "visible") tick();
  });
  panel.classList.toggle("idle", watching.size === 0);
  timer = setTimeout(tick, watching.size ? FAST_MS : SLOW_MS);
}

document.querySelectorAll("[data-jobs-project]").forEach(watch);
