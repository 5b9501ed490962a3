// Handover to the server session: on render we POST {baseUrl}replay/api/sessions {kernel_id}; the answer
// goes to the kernel ({type: "attach"}); once the kernel confirms (trait `attached` == session id) the view
// follows the session there (also views that did not create it: a page reload, a second view).
import { api } from "./server.js";

export class Attacher {
  /** `follow(sessionId)`: switch the view to the server session. */
  constructor(model, entry, follow, onDeclined) {
    this.model = model;
    this.entry = entry;
    this.follow = follow;
    this.cfg = null;
    this.onAttached = () => this.check();
    this.onCustom = (msg) => {
      if (msg && msg.type === "attach_result" && !msg.ok) { entry.attachDeclined = msg.message || "declined"; onDeclined(); }
    };
    model.on("change:attached", this.onAttached);
    model.on("msg:custom", this.onCustom);
  }

  /** The kernel confirmed it is a client of the server session: follow it. */
  check() {
    const a = this.model.get("attached");
    const entry = this.entry;
    if (!a || !this.cfg || (entry.sessionId && entry.sessionId !== a)) return;
    entry.sessionId = a;
    this.follow(a);
  }

  /** The page's server config (null outside a Jupyter page: the view stays on the kernel). */
  configure(cfg) {
    this.cfg = cfg;
    this.check();  // already attached (page reload, another view): straight to the server
  }

  /** Create (or find) the kernel's server session and hand it to the kernel. */
  async attach() {
    const cfg = this.cfg;
    const kernelId = this.model.get("kernel_id");
    const entry = this.entry;
    if (!cfg || !kernelId || typeof fetch !== "function" || entry.transport === "ws") return;
    try {
      let r = await api(cfg, "POST", "sessions", { kernel_id: kernelId });
      if (r.status === 409) r = await api(cfg, "GET", "sessions/" + encodeURIComponent(kernelId));
      if (r.status < 200 || r.status >= 300 || !r.data) return;  // no extension (404) or not allowed
      const d = r.data;
      const sid = d.id || (d.session && d.session.id) || kernelId;
      if (!d.client_token) return;
      entry.sessionId = sid;
      if (entry.closed) return;
      this.model.send({ type: "attach", session: sid, client_token: d.client_token, server_url: d.server_url || "" });
      this.check();
    } catch (e) {
      // network error: keep the local path
    }
  }

  close() {
    this.model.off("change:attached", this.onAttached);
    this.model.off("msg:custom", this.onCustom);
  }
}
