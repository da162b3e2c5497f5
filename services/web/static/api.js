// The gateway's REST API as the console uses it: the remembered token, errors as ApiError.

const TOKEN_KEY = "clawgate.token";

/** `/?token=…` (once): remember the token and take it out of the address bar. */
export function captureToken() {
  const url = new URL(window.location.href);
  if (!url.searchParams.has("token")) return;
  const token = (url.searchParams.get("token") || "").trim();
  if (token) localStorage.setItem(TOKEN_KEY, token);
  url.searchParams.delete("token");
  history.replaceState(history.state, "", url.pathname + url.search + url.hash);
}

export const getToken = () => localStorage.getItem(TOKEN_KEY) || "";
export const setToken = (token) => localStorage.setItem(TOKEN_KEY, token.trim());
export const forgetToken = () => localStorage.removeItem(TOKEN_KEY);

// The four common failures (bad token, gateway down, model unavailable, out of GPU memory
// or context) are told apart; anything else is "other".
const MODEL_CODES = new Set([
  "model_not_found", "model_not_pulled", "upstream_unreachable", "upstream_busy",
  "upstream_timeout", "upstream_error", "upstream_incomplete", "upstream_bad_path",
]);
const MEMORY_CODES = new Set([
  "insufficient_gpu_memory", "model_load_failed", "context_length_exceeded",
]);
export const KIND_TITLES = {
  auth: "Not authorized",
  unreachable: "Gateway not reachable",
  model: "Model unavailable",
  memory: "Out of GPU memory or context",
  conflict: "Not saved",
  other: "Request failed",
};

export class ApiError extends Error {
  /** status 0 means no HTTP answer at all (gateway not running, network down). */
  constructor(status, error) {
    super(error.message || `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.code = error.code || "";
    this.type = error.type || "";
    this.param = error.param || null;
    this.kind = classify(status, this.code);
  }
}

function classify(status, code) {
  if (status === 0) return "unreachable";
  if (status === 401) return "auth";
  if (status === 412) return "conflict";
  if (MEMORY_CODES.has(code)) return "memory";
  if (MODEL_CODES.has(code)) return "model";
  return "other";
}

async function errorFrom(response) {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    if (body && body.error) return new ApiError(response.status, body.error);
    const err = new ApiError(response.status, { message: `HTTP ${response.status}` });
    err.body = body; // e.g. the health report that comes with a 503
    return err;
  } catch {
    // not JSON: Envoy or a proxy answered; keep its text
  }
  return new ApiError(response.status, { message: text.trim() || response.statusText });
}

/** fetch() with the token; resolves to the Response, throws ApiError for non-2xx. */
export async function request(path, { method = "GET", body, headers = {}, signal } = {}) {
  const all = { Accept: "application/json", ...headers };
  const token = getToken();
  if (token) all.Authorization = `Bearer ${token}`;
  if (body !== undefined) all["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method, headers: all, signal,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, {
      message: "no answer from the gateway: is Clawgate running? (`make up` or `clawgate onboard`)",
      code: "gateway_unreachable",
    });
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

export async function json(path, options) {
  const response = await request(path, options);
  return response.status === 204 ? null : response.json();
}

export const sessionPath = (id) => `/api/v1/sessions/${encodeURIComponent(id)}`;
