// The agents page: list, create, edit (with the etag: a stale edit gets 412), delete.

import { ApiError, json } from "./api.js";
import { confirmDialog, el, showError } from "./ui.js";

// The fields the form edits; an emptied field is cleared (the mask names it).
const UPDATE_MASK = [
  "name", "description", "model", "system_prompt",
  "config.temperature", "config.max_tokens", "config.top_p", "tools", "shared",
].join(",");
export const CONFLICT_MESSAGE =
  "This agent was changed by someone else since you opened it. Your edit was not saved: " +
  "reload the agent to see their version, then apply your change again.";

/** The session "Chat" opens for an agent (session ids are ASCII; agent names may not be). */
function chatSession(name) {
  return `agent-${name}`.replace(/[^A-Za-z0-9._-]/g, "-").slice(0, 64);
}

export async function mount(root, connection) {
  const $ = (id) => root.querySelector(`#${id}`);
  const form = $("agent-form");
  const rows = $("agent-rows");
  const formError = $("agent-form-error");
  let editing = null; // the agent being edited: {id, etag, …}

  const report = (container, err) => {
    connection.report(err);
    showError(container, err);
  };

  async function loadModels() {
    try {
      const { data } = await json("/api/v1/models");
      form.elements.model.replaceChildren(...data
        .filter((m) => !m.id.startsWith("agent:"))
        .map((m) => el("option", { value: m.id }, m.id)));
    } catch (err) {
      report($("agents-error"), err);
    }
  }

  // Gateway tools an agent may use (GET /api/v1/tools); none when no tool is enabled.
  async function loadTools() {
    try {
      const { data } = await json("/api/v1/tools");
      form.elements.tools.replaceChildren(...data.map((t) =>
        el("option", { value: t.name, title: t.description || "" }, t.name)));
      $("agent-tools").hidden = data.length === 0;
    } catch (err) {
      report($("agents-error"), err);
    }
  }

  async function loadAgents() {
    const agents = [];
    try {
      let token = "";
      do {
        const query = new URLSearchParams({ page_size: "200", page_token: token });
        const page = await json(`/api/v1/agents?${query}`);
        agents.push(...page.agents);
        token = page.next_page_token;
      } while (token && agents.length < 2000);
      connection.ok();
      showError($("agents-error"), null);
    } catch (err) {
      report($("agents-error"), err);
      return;
    }
    $("agents-empty").hidden = agents.length > 0;
    rows.replaceChildren(...agents.map((agent) => el("tr", { "data-agent": agent.name },
      el("td", {}, agent.name),
      el("td", {}, agent.model),
      el("td", {}, agent.description || ""),
      el("td", { class: "tools" }, (agent.tools || []).join(", ")),
      el("td", { class: "actions" },
        el("button", { type: "button", class: "secondary", onclick: () => edit(agent) }, "Edit"),
        el("a", {
          href: `/chat?session=${encodeURIComponent(chatSession(agent.name))}` +
            `&model=${encodeURIComponent(`agent:${agent.name}`)}`,
        }, "Chat"),
        el("button", { type: "button", class: "danger", onclick: () => remove(agent) },
          "Delete")))));
  }

  function fill(agent) {
    const config = agent.config || {};
    const values = {
      name: agent.name, description: agent.description, model: agent.model,
      system_prompt: agent.system_prompt, temperature: config.temperature,
      max_tokens: config.max_tokens, top_p: config.top_p,
    };
    for (const [name, value] of Object.entries(values)) {
      form.elements[name].value = value === undefined || value === null ? "" : value;
    }
    const chosen = new Set(agent.tools || []);
    for (const option of form.elements.tools.options) option.selected = chosen.has(option.value);
    form.elements.shared.checked = Boolean(agent.shared);
  }

  function edit(agent) {
    editing = agent;
    fill(agent);
    $("agent-form-title").textContent = `Edit agent ${agent.name}`;
    $("agent-save").textContent = "Save";
    $("agent-cancel").hidden = false;
    showError(formError, null);
    form.elements.name.focus();
  }

  function reset() {
    editing = null;
    form.reset();
    $("agent-form-title").textContent = "New agent";
    $("agent-save").textContent = "Create";
    $("agent-cancel").hidden = true;
    showError(formError, null);
  }

  function formAgent() {
    const f = form.elements;
    const number = (field, parse) => (field.value === "" ? undefined : parse(field.value));
    const config = {
      temperature: number(f.temperature, parseFloat),
      max_tokens: number(f.max_tokens, (v) => parseInt(v, 10)),
      top_p: number(f.top_p, parseFloat),
    };
    return {
      name: f.name.value.trim(), description: f.description.value, model: f.model.value,
      system_prompt: f.system_prompt.value, config,
      tools: [...f.tools.selectedOptions].map((o) => o.value),
      shared: f.shared.checked,
    };
  }

  async function save(event) {
    event.preventDefault();
    const agent = formAgent();
    try {
      if (editing) {
        await json(
          `/api/v1/agents/${encodeURIComponent(editing.id)}?update_mask=${UPDATE_MASK}`,
          { method: "PATCH", body: agent, headers: { "If-Match": `"${editing.etag}"` } },
        );
      } else {
        await json("/api/v1/agents", { method: "POST", body: agent });
      }
    } catch (err) {
      if (err.status === 412) {
        showError(formError, new ApiError(412, { message: CONFLICT_MESSAGE, code: err.code }));
        formError.append(" ", el("button", {
          type: "button", class: "link-button", onclick: reload,
        }, "Reload agent"));
      } else report(formError, err);
      return;
    }
    reset();
    await loadAgents();
  }

  async function reload() {
    await loadAgents(); // the list holds etags too: refresh it before the form
    try {
      edit(await json(`/api/v1/agents/${encodeURIComponent(editing.id)}`));
    } catch (err) {
      report(formError, err);
    }
  }

  async function remove(agent) {
    if (!(await confirmDialog(`Delete agent “${agent.name}”?`))) return;
    try {
      await json(`/api/v1/agents/${encodeURIComponent(agent.id)}`, {
        method: "DELETE", headers: { "If-Match": `"${agent.etag}"` },
      });
    } catch (err) {
      const shown = err.status === 412
        ? new ApiError(412, { message: CONFLICT_MESSAGE, code: err.code }) : err;
      report($("agents-error"), shown);
    }
    if (editing && editing.id === agent.id) reset();
    await loadAgents();
  }

  form.addEventListener("submit", save);
  $("agent-cancel").addEventListener("click", reset);
  await Promise.all([loadModels(), loadTools()]);
  await loadAgents();
}
