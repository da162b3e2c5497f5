// Small DOM helpers. Text always goes in as text (textContent), never as HTML.

import { KIND_TITLES } from "./api.js";

/** el("a", {href: "/x", class: "y"}, "text", child…) */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

/** An error box: the kind as a title, the gateway's message, its code. */
export function errorBox(err) {
  const kind = err.kind || "other";
  const box = el("div", { class: `error kind-${kind}`, role: "alert", "data-kind": kind },
    el("strong", {}, KIND_TITLES[kind] || KIND_TITLES.other),
    el("span", { class: "message" }, err.message));
  if (err.code) box.append(" ", el("span", { class: "code" }, `(${err.code})`));
  return box;
}

/** Put `err` in a container (replacing what was there), or hide it for null. */
export function showError(container, err) {
  container.replaceChildren(...(err ? [...errorBox(err).childNodes] : []));
  container.hidden = !err;
  if (err) container.dataset.kind = err.kind || "other";
}

/** The shared confirmation dialog; resolves true when the user confirms. */
export function confirmDialog(text, action = "Delete") {
  const dialog = document.getElementById("confirm");
  const yes = document.getElementById("confirm-yes");
  const no = document.getElementById("confirm-no");
  document.getElementById("confirm-text").textContent = text;
  yes.textContent = action;
  return new Promise((resolve) => {
    const done = (answer) => {
      yes.removeEventListener("click", onYes);
      no.removeEventListener("click", onNo);
      dialog.removeEventListener("cancel", onNo);
      dialog.close();
      resolve(answer);
    };
    const onYes = () => done(true);
    const onNo = () => done(false);
    yes.addEventListener("click", onYes);
    no.addEventListener("click", onNo);
    dialog.addEventListener("cancel", onNo);
    dialog.showModal();
    no.focus();
  });
}

export function formatTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleString();
}
