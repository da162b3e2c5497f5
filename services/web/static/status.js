// The status page: GET /api/v1/health as a panel, refreshed every few seconds.

import { json } from "./api.js";
import { el, formatTime, showError } from "./ui.js";

const REFRESH_MS = 3000;

const gib = (bytes) => `${(bytes / 2 ** 30).toFixed(1)} GiB`;

function row(term, ...value) {
  return [el("dt", {}, term), el("dd", {}, ...value)];
}

function card(component, ...details) {
  return el("li", { class: "card", "data-component": component.name },
    el("h4", {}, el("span", {}, component.name),
      el("span", { class: `badge ${component.status}` }, component.status)),
    el("dl", {},
      ...(component.detail ? row("detail", component.detail) : []),
      ...row("latency", `${component.latency_ms} ms`),
      ...(component.critical ? row("critical", "yes") : []),
      ...details.flat()));
}

function workerCard(component) {
  const w = component.worker || {};
  const loaded = (w.loaded_models || []).map((m) =>
    `${m.name}: ${gib(m.size_vram_bytes)} VRAM of ${gib(m.size_bytes)}` +
    (m.context_length ? `, ctx ${m.context_length}` : ""));
  return card(component,
    row("provider", w.provider || ""),
    w.version ? row("version", w.version) : [],
    row("pulled", (w.pulled_models || []).join(", ") || "none"),
    (w.missing_models || []).length ? row("not pulled", w.missing_models.join(", ")) : [],
    row("loaded", loaded.length ? loaded.join("; ") : "none"),
    row("GPU memory", gib(w.vram_used_bytes || 0)),
    row("in flight", String(w.in_flight || 0)),
    row("queued", String(w.queued || 0)),
    w.skipped ? row("skipped", "yes, after failures") : []);
}

/** One batch with its progress (lines done of all lines). */
function batchItem(batch) {
  const counts = batch.request_counts || { total: 0, completed: 0, failed: 0 };
  const done = counts.completed + counts.failed;
  return el("li", { class: "card", "data-batch": batch.id },
    el("h4", {}, el("span", {}, batch.id),
      el("span", { class: `badge ${batch.status}` }, batch.status)),
    el("progress", { max: String(counts.total || 1), value: String(done) }),
    el("p", { class: "muted" },
      `${done} of ${counts.total} lines (${counts.failed} failed) · ` +
      `created ${formatTime(new Date(batch.created_at * 1000).toISOString())}`));
}

export async function mount(root, connection) {
  const $ = (id) => root.querySelector(`#${id}`);

  async function refresh() {
    let report;
    try {
      report = await json("/api/v1/health");
    } catch (err) {
      if (err.body && err.body.status) {
        report = err.body; // 503: the gateway is down, and the report says why
      } else {
        connection.report(err);
        showError($("status-error"), err);
        return;
      }
    }
    showError($("status-error"), null);
    const overall = $("overall");
    overall.textContent = report.status;
    overall.className = `badge ${report.status}`;
    $("checked-at").textContent =
      `version ${report.version} · checked ${formatTime(report.checked_at)}` +
      (report.hint ? ` · ${report.hint}` : "");
    const components = report.components || [];
    $("services").replaceChildren(
      ...components.filter((c) => c.kind !== "llm_worker").map((c) => card(c)));
    $("workers").replaceChildren(
      ...components.filter((c) => c.kind === "llm_worker").map(workerCard));
    await refreshBatches(report.batches || {});
  }

  async function refreshBatches(summary) {
    $("batch-summary").textContent =
      `${summary.active || 0} not finished · ${summary.running_lines || 0} lines running`;
    try {
      const { data } = await json("/api/v1/batches?limit=20");
      $("batches").replaceChildren(...data.map(batchItem));
      $("batches-empty").hidden = data.length > 0;
    } catch (err) {
      showError($("status-error"), err); // e.g. a token without the chat scope
    }
  }

  await refresh();
  // A hidden tab does not poll; it catches up as soon as it is shown again.
  setInterval(() => document.hidden || refresh(), REFRESH_MS);
  document.addEventListener("visibilitychange", () => document.hidden || refresh());
}
