// Transports: the kernel comm (local path) and the session's WebSocket (attached path). Both raise the
// same messages through `emit(msg, transport)`, handled by one dispatcher (view.js):
//   hello {status?, controls?, instance?}, state {seq, status}, reset {seq, mode, reason},
//   history {rows, seq, mode} (its frame follows as a batch with history: true),
//   batch {frame: decoded wire frame | null, history}, marks {marks, history?}, merged {frames_merged, rows_dropped} (older
//   servers: dropped {count}), error {message, status}, ack {status}, closed {}.
// Each transport is one stream for wire dictionaries: a new socket starts with empty dictionaries.
import { Dictionaries, decodeFrame } from "./wire.js";
import { api, socketUrl } from "./server.js";

function decoded(buf, dicts, emit, self) {
  try { return decodeFrame(buf, dicts); } catch (e) {
    emit({ type: "error", message: "bad frame: " + e }, self);
    return null;
  }
}

/** The kernel's comm: custom messages {type: frame|history|reset|error} (+ one binary wire frame) and the
 * `status` / `controls` traits. Controls go to the kernel as {type: "control", action, ...args}. */
export class CommTransport {
  constructor(model, emit) {
    this.name = "local";
    this.model = model;
    this.emit = emit;
    this.dicts = new Dictionaries();
    this.onCustom = (msg, buffers) => this.receive(msg, buffers);
    this.onStatus = () => emit({ type: "state", status: model.get("status") }, this);
    this.onControls = () => emit({ type: "hello", controls: model.get("controls") }, this);
    model.on("msg:custom", this.onCustom);
    model.on("change:status", this.onStatus);
    model.on("change:controls", this.onControls);
  }

  /** Announce the kernel's status and control table, and ask for the rows this view missed. */
  start() {
    this.emit({ type: "hello", status: this.model.get("status"), controls: this.model.get("controls") }, this);
    this.model.send({ type: "history" });
  }

  receive(msg, buffers) {
    if (!msg || typeof msg !== "object") return;
    const buf = buffers && buffers.length ? buffers[0] : null;
    switch (msg.type) {
      case "frame":
        if (buf) this.emit({ type: "batch", frame: decoded(buf, this.dicts, this.emit, this), history: false }, this);
        return;
      case "history":
        this.emit(msg, this);
        if (buf) this.emit({ type: "batch", frame: decoded(buf, this.dicts, this.emit, this), history: true }, this);
        return;
      case "reset": case "error": case "marks":
        this.emit(msg, this);
        return;
      default:  // bokehjs, attach_result: not session messages (bokeh.js, attach.js)
    }
  }

  control(action, args = {}) { this.model.send({ type: "control", action, ...args }); }

  /** Rows went into the plot (no flow control on the comm). */
  flushed() {}

  close() {
    this.model.off("msg:custom", this.onCustom);
    this.model.off("change:status", this.onStatus);
    this.model.off("change:controls", this.onControls);
  }
}

/** The server session's WebSocket (?ms_only=1&ack=1): reconnects with backoff, resumes after the last
 * event seen (`query()` gives since/instance/tail), acknowledges frames once their rows were plotted
 * (`flushed()`, or at once when `pending()` says no flush is coming), and sends controls on the socket
 * (REST actions while it reconnects). */
export class SocketTransport {
  constructor(cfg, sessionId, emit, { query, pending, entry }) {
    this.name = "ws";
    this.cfg = cfg;
    this.sessionId = sessionId;
    this.emit = emit;
    this.query = query;
    this.pending = pending;
    this.entry = entry;
    this.ws = null;
    this.wanted = true;
    this.reconnectDelay = 500;
    this.reconnectTimer = null;
    this.controlId = 0;
    this.pendingHistory = false;
    this.unacked = 0;  // binary frames received on the current socket and not yet acknowledged
    this.unackedSeq = 0;  // seq of the last of them
    this.dicts = new Dictionaries();
  }

  open() {
    if (!this.wanted) return;
    let sock;
    const params = { ms_only: 1, ack: 1, ...this.query() };
    try { sock = new WebSocket(socketUrl(this.cfg, this.sessionId, params)); } catch (e) {
      this.emit({ type: "error", message: String(e) }, this);
      this.scheduleReconnect();
      return;
    }
    sock.binaryType = "arraybuffer";
    this.ws = sock;
    this.unacked = 0;
    this.pendingHistory = false;
    this.dicts = new Dictionaries();  // a new stream: the server's encoder starts afresh too
    sock.onopen = () => { this.reconnectDelay = 500; this.entry.wsOpen = true; };
    sock.onmessage = (ev) => { if (this.ws === sock) this.receive(ev.data); };
    sock.onclose = () => {
      this.entry.wsOpen = false;
      if (this.ws !== sock) return;
      this.ws = null;
      this.emit({ type: "closed" }, this);
      this.scheduleReconnect();
    };
    sock.onerror = () => {};
  }

  receive(data) {
    if (typeof data !== "string") {
      const frame = decoded(data, this.dicts, this.emit, this);
      const history = this.pendingHistory;
      this.pendingHistory = false;
      this.emit({ type: "batch", frame, history }, this);
      this.unacked += 1;
      if (frame) this.unackedSeq = frame.header.seq | 0;
      // acknowledged once its rows went into the plot (the next flush); at once if nothing will be
      // flushed (ignored frame, plot not ready) or the tab is hidden (no animation frames)
      if (!this.pending() || document.hidden) this.flushed();
      return;
    }
    let msg;
    try { msg = JSON.parse(data); } catch { return; }
    if (!msg || typeof msg !== "object") return;
    if (msg.type === "hello") msg = { ...msg, status: msg.session || {} };
    if (msg.type === "history") this.pendingHistory = (msg.rows | 0) > 0;
    this.emit(msg, this);
  }

  /** Flow control: tell the server every frame received so far on this socket has been processed. */
  flushed() {
    const ws = this.ws;
    if (!this.unacked || !ws || ws.readyState !== WebSocket.OPEN) return;
    ws.send(JSON.stringify({ type: "ack_frames", seq: this.unackedSeq }));
    this.unacked = 0;
    this.entry.acksSent += 1;
  }

  control(action, args = {}) {
    const ws = this.ws;
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify({ type: "control", id: ++this.controlId, action, ...args }));
      return;
    }
    // socket down (reconnecting): the REST action does the same
    api(this.cfg, "POST", "sessions/" + encodeURIComponent(this.sessionId) + "/actions/" + action, args)
      .then((r) => {
        if (r.status >= 400) this.emit({ type: "error", message: (r.data && r.data.message) || "HTTP " + r.status }, this);
        else if (r.data) this.emit({ type: "ack", status: r.data.status || r.data }, this);
      })
      .catch((e) => this.emit({ type: "error", message: String(e) }, this));
  }

  scheduleReconnect() {
    if (!this.wanted || this.reconnectTimer) return;
    this.reconnectTimer = setTimeout(() => { this.reconnectTimer = null; this.open(); }, this.reconnectDelay);
    this.reconnectDelay = Math.min(this.reconnectDelay * 2, 5000);
  }

  close() {
    this.wanted = false;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.ws) { const s = this.ws; this.ws = null; try { s.close(); } catch {} }
  }
}
