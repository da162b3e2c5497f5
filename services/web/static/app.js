// Console entry: take the token from `/?token=…`, show the connection state, mount the page.

import { captureToken, forgetToken, getToken, json, setToken } from "./api.js";

captureToken(); // first: the token leaves the address bar before anything else runs

const PAGES = { "/": "chat", "/chat": "chat", "/agents": "agents", "/status": "status" };
const page = PAGES[window.location.pathname] || "chat";

const banner = document.getElementById("connection");
const help = document.getElementById("token-help");
const logout = document.getElementById("logout");

/** What every page reports its API results to: the header shows the connection. */
export const connection = {
  ok() {
    banner.textContent = "connected";
    banner.className = "connection ok";
    help.hidden = true;
    logout.hidden = false;
  },
  /** Auth and reachability failures disconnect the console; others are the page's. */
  report(err) {
    if (err.kind === "auth") {
      // 1008 is the close code browsers know for "policy violation" (a refused token).
      banner.textContent = `disconnected (1008): ${err.message}`;
      banner.className = "connection down";
      help.hidden = false;
      logout.hidden = !getToken();
    } else if (err.kind === "unreachable") {
      banner.textContent = `disconnected: ${err.message}`;
      banner.className = "connection down";
    }
  },
};

for (const link of document.querySelectorAll("nav a[data-page]")) {
  if (link.dataset.page === page) link.setAttribute("aria-current", "page");
}
logout.addEventListener("click", () => {
  forgetToken();
  window.location.reload();
});
document.getElementById("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  setToken(document.getElementById("token-input").value);
  window.location.reload();
});

async function checkToken() {
  try {
    await json("/api/v1/sessions?page_size=1");
    connection.ok();
  } catch (err) {
    connection.report(err);
  }
}

const root = document.getElementById("app");
root.replaceChildren(document.getElementById(`page-${page}`).content.cloneNode(true));
checkToken();
const module = await import(`./${page}.js`);
module.mount(root, connection);
