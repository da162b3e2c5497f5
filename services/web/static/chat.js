// The chat page: a session's history, a model picker, answers streamed over SSE.

import { ApiError, json, request, sessionPath } from "./api.js";
import { renderMarkdown } from "./markdown.js";
import { sseEvents } from "./sse.js";
import { confirmDialog, el, errorBox } from "./ui.js";

const SESSION_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const MODEL_KEY = "clawgate.model";

/** One assistant answer on screen; updated as chunks arrive. */
class AnswerView {
  constructor(model) {
    this.reasoningText = el("div", { class: "text" });
    this.reasoning = el("details", { class: "reasoning", hidden: true },
      el("summary", {}, "Reasoning"), this.reasoningText);
    this.content = el("div", { class: "content" });
    this.cache = el("span", { class: "cache" });
    this.cacheStatus = "";
    this.status = el("span", { class: "finish" });
    this.meta = el("div", { class: "meta" }, el("span", { class: "model" }, model), this.cache,
      this.status);
    this.node = el("article", { class: "msg assistant", "aria-label": "Answer" },
      this.reasoning, this.content, this.meta);
    this.frame = 0;
    this.text = "";
    this.thinking = "";
  }

  /** Show the text so far (at most once per animation frame). */
  update(text, thinking) {
    this.text = text;
    this.thinking = thinking;
    if (!this.frame) this.frame = requestAnimationFrame(() => this.paint());
  }

  paint() {
    this.frame = 0;
    this.content.replaceChildren(renderMarkdown(this.text));
    if (this.thinking) {
      this.reasoning.hidden = false;
      this.reasoningText.textContent = this.thinking;
    }
  }

  setCache(value) {
    this.cacheStatus = value;
    this.cache.textContent = value ? `x-cache: ${value}` : "";
    this.cache.classList.toggle("hit", value === "HIT");
  }

  finish(reason) {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.paint();
    this.node.classList.remove("streaming");
    if (reason === "cancelled") this.status.textContent = "stopped";
    else if (reason === "length") this.status.textContent = "cut at max tokens";
  }
}

function userView(text) {
  return el("article", { class: "msg user", "aria-label": "You" }, text);
}

export async function mount(root, connection) {
  const params = new URLSearchParams(window.location.search);
  const sessionId = params.get("session") || "main";
  const $ = (id) => root.querySelector(`#${id}`);
  const messages = $("messages");
  const prompt = $("prompt");
  const sendButton = $("send");
  const stopButton = $("stop");
  const modelSelect = $("model");
  let history = []; // what the model sees: {role, content}
  let controller = null;

  $("session-title").textContent = `Session ${sessionId}`;
  document.title = `${sessionId} · Clawgate chat`;

  const fail = (err) => {
    connection.report(err);
    if (err.kind === "auth" && !controller) return; // the header says it, with the fix
    messages.append(errorBox(err));
    messages.scrollTop = messages.scrollHeight;
  };
  const scroll = () => {
    messages.scrollTop = messages.scrollHeight;
  };

  if (!SESSION_ID.test(sessionId)) {
    fail(new ApiError(400, {
      message: "a session name is 1 to 64 letters, digits, '.', '_' or '-'; e.g. /chat?session=main",
      code: "invalid_session_name",
    }));
    return;
  }

  function showHistory(saved) {
    history = [];
    const nodes = [];
    for (const m of saved) {
      if (m.role === "user") nodes.push(userView(m.content));
      else if (m.role === "assistant") {
        const view = new AnswerView(m.model || "");
        view.text = m.content;
        view.thinking = m.reasoning || "";
        view.setCache(m.cache_status || "");
        view.finish(m.finish_reason);
        nodes.push(view.node);
      }
      if (m.role !== "assistant" || m.content) history.push({ role: m.role, content: m.content });
    }
    messages.replaceChildren(...nodes);
    scroll();
  }

  async function loadHistory() {
    try {
      const session = await json(sessionPath(sessionId));
      showHistory(session.messages || []);
    } catch (err) {
      if (err.code === "session_not_found") showHistory([]);
      else fail(err);
    }
  }

  async function loadSessions() {
    const list = $("session-list");
    try {
      const page = await json("/api/v1/sessions?page_size=200");
      const names = page.sessions.map((s) => ({
        id: s.name.replace(/^sessions\//, ""), count: s.message_count,
      }));
      if (!names.some((s) => s.id === sessionId)) names.unshift({ id: sessionId, count: 0 });
      list.replaceChildren(...names.map(({ id, count }) => el("li", {},
        el("a", {
          href: `/chat?session=${encodeURIComponent(id)}`,
          "aria-current": id === sessionId ? "page" : null,
        }, id, " ", el("span", { class: "count" }, `(${count})`)))));
    } catch (err) {
      connection.report(err);
    }
  }

  async function loadModels() {
    try {
      const { data } = await json("/api/v1/models");
      const models = data.filter((m) => !m.id.startsWith("agent:"));
      const agents = data.filter((m) => m.id.startsWith("agent:"));
      const option = (m) => el("option", { value: m.id },
        m.name && m.name !== m.id ? `${m.name} (${m.id})` : m.id,
        m.available === false && !m.agent_model ? " — not available" : "");
      modelSelect.replaceChildren(
        el("optgroup", { label: "Models" }, ...models.map(option)),
        ...(agents.length ? [el("optgroup", { label: "Agents" }, ...agents.map(option))] : []),
      );
      const wanted = params.get("model") || localStorage.getItem(MODEL_KEY);
      const firstAvailable = models.find((m) => m.available !== false) || data[0];
      if (wanted && data.some((m) => m.id === wanted)) modelSelect.value = wanted;
      else if (firstAvailable) modelSelect.value = firstAvailable.id;
    } catch (err) {
      fail(err);
    }
  }

  function setBusy(busy) {
    sendButton.disabled = busy;
    stopButton.disabled = !busy;
  }

  async function save(message) {
    await json(`${sessionPath(sessionId)}/messages`, {
      method: "POST", body: { messages: [message] },
    });
  }

  async function send() {
    const text = prompt.value;
    if (!text.trim() || controller) return;
    const model = modelSelect.value;
    if (!model) return;
    localStorage.setItem(MODEL_KEY, model);
    controller = new AbortController();
    setBusy(true);
    prompt.value = "";
    const question = userView(text);
    messages.append(question);
    scroll();
    const view = new AnswerView(model);
    let finish = "";
    let failed = false;
    let saved = false;
    try {
      await save({ role: "user", content: text });
      saved = true;
      history.push({ role: "user", content: text });
      view.node.classList.add("streaming");
      messages.append(view.node);
      const body = { model, messages: history, stream: true };
      const temperature = parseFloat($("temperature").value);
      const maxTokens = parseInt($("max-tokens").value, 10);
      if (!Number.isNaN(temperature)) body.temperature = temperature;
      if (!Number.isNaN(maxTokens)) body.max_tokens = maxTokens;
      const response = await request("/api/v1/chat/completions", {
        method: "POST", body, signal: controller.signal,
        headers: { Accept: "text/event-stream" },
      });
      connection.ok();
      view.setCache(response.headers.get("x-cache") || "");
      let content = "";
      let reasoning = "";
      for await (const chunk of sseEvents(response)) {
        if (chunk.error) throw new ApiError(502, chunk.error);
        const choice = (chunk.choices || [])[0];
        if (!choice) continue;
        content += choice.delta?.content || "";
        reasoning += choice.delta?.reasoning || "";
        finish = choice.finish_reason || finish;
        view.update(content, reasoning);
        scroll();
      }
    } catch (err) {
      if (err.name === "AbortError") finish = "cancelled";
      else {
        failed = true;
        fail(err);
      }
    } finally {
      controller = null;
      view.finish(finish);
      setBusy(false);
      scroll();
    }
    // A stopped answer is kept as far as it got; a failed one is not part of the history.
    if (!failed && (view.text || view.thinking)) {
      const answer = {
        role: "assistant", content: view.text, reasoning: view.thinking, model,
        finish_reason: finish || "stop", cache_status: view.cacheStatus,
      };
      try {
        await save(answer);
        history.push({ role: "assistant", content: view.text });
        loadSessions();
      } catch (err) {
        fail(err);
      }
    } else if (!view.text && !view.thinking) {
      view.node.remove();
    }
    if (!saved) {
      // Not even the question was stored: give it back to edit or resend, lose nothing.
      question.remove();
      if (!prompt.value) prompt.value = text;
    }
    prompt.focus();
  }

  function stop() {
    if (controller) controller.abort();
  }

  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
  stopButton.addEventListener("click", stop);
  prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && controller) {
      event.preventDefault();
      stop();
    }
  });
  $("new-session").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = $("new-session-name").value.trim();
    if (SESSION_ID.test(name)) window.location.assign(`/chat?session=${encodeURIComponent(name)}`);
  });
  $("delete-session").addEventListener("click", async () => {
    if (!(await confirmDialog(`Delete session “${sessionId}” and all its messages?`))) return;
    try {
      await json(sessionPath(sessionId), { method: "DELETE" });
    } catch (err) {
      if (err.code !== "session_not_found") return fail(err);
    }
    showHistory([]);
    loadSessions();
  });
  if (window.matchMedia("(max-width: 720px)").matches) $("sessions-panel").open = false;

  await Promise.all([loadModels(), loadHistory(), loadSessions()]);
  prompt.focus();
}
