// The Jupyter server of the page: its config (base URL, token), XSRF cookie and the extension's REST API.

/** The page's `jupyter-config-data` (baseUrl, token), or null outside a Jupyter page. */
export function pageConfig() {
  const el = document.getElementById("jupyter-config-data");
  if (!el) return null;
  try { return JSON.parse(el.textContent || "{}"); } catch { return null; }
}

export function cookie(name) {
  const m = document.cookie.match("\\b" + name + "=([^;]*)\\b");
  return m ? decodeURIComponent(m[1]) : null;
}

function apiHeaders(cfg) {
  const h = { "Content-Type": "application/json" };
  if (cfg.token) h.Authorization = "token " + cfg.token;
  const xsrf = cookie("_xsrf");
  if (xsrf) h["X-XSRFToken"] = xsrf;
  return h;
}

export function apiUrl(cfg, path) {
  const base = new URL(cfg.baseUrl || "/", window.location.href);
  return new URL("replay/api/" + path, base).toString();
}

/** One REST call: {status, data} (data: the JSON body, or null). */
export async function api(cfg, method, path, body) {
  const resp = await fetch(apiUrl(cfg, path), {
    method, headers: apiHeaders(cfg), credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await resp.json(); } catch { data = null; }
  return { status: resp.status, data };
}

/** The session's WebSocket URL with auth (token, _xsrf) and the given query parameters. */
export function socketUrl(cfg, sessionId, params) {
  const u = new URL(apiUrl(cfg, "sessions/" + encodeURIComponent(sessionId) + "/ws"));
  u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, String(v));
  if (cfg.token) u.searchParams.set("token", cfg.token);
  const xsrf = cookie("_xsrf");
  if (xsrf) u.searchParams.set("_xsrf", xsrf);
  return u.toString();
}
