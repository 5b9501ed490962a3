// One widget view: the dispatcher for the messages both transports raise (transport.js), the plot it
// feeds and the status it shows. Only the active transport's session messages count (the comm stays
// open after the view follows the session to the server, for errors and BokehJS).
import { setAttr, nextFrame } from "./dom.js";
import { StatusStore, statusText } from "./status.js";
import { SocketTransport } from "./transport.js";

const PROGRESS_MS = 200;  // the progress display (slider, time, status line) redraws at most this often
const SESSION_MESSAGES = new Set(["hello", "state", "ack", "reset", "history", "batch", "marks", "merged", "dropped",
  "closed"]);
// Controls after which what the user sees must not run past the click (the plot freezes until the
// session's answer says where it stopped); and controls that let rows flow again.
const FREEZING = new Set(["pause", "stop", "seek", "mode"]);
const RESUMING = new Set(["play", "step"]);

export class ReplayView {
  constructor(model, entry, { root, bar, statusLine, plot }) {
    this.model = model;
    this.entry = entry;
    this.root = root;
    this.bar = bar;
    this.statusLine = statusLine;
    this.plot = plot;
    this.store = new StatusStore();
    this.transport = null;  // the active transport
    this.specMode = null;
    this.lastError = "";
    this.progressKey = null;  // the progress display's last state/mode/error, when it was drawn, its timer
    this.progressAt = 0;
    this.progressTimer = null;
    this.uiFrame = false;
    this.uiTimer = null;
    this.emit = (msg, from) => this.dispatch(msg, from);
    plot.onFlush = () => { if (this.transport) this.transport.flushed(); };
  }

  // ---- the one dispatcher

  dispatch(msg, from) {
    if (this.entry.closed) return;
    if (from !== this.transport && SESSION_MESSAGES.has(msg.type)) return;  // a transport no longer followed
    const entry = this.entry;
    switch (msg.type) {
      case "hello":
        if (msg.instance) entry.instance = msg.instance;
        if (msg.controls !== undefined) entry.controls = msg.controls || null;
        if (msg.status) {
          this.setStatus(msg.status);
          const mode = msg.status.mode;
          if (mode && mode !== this.specMode && from.name === "ws") void this.embedForMode(mode);
        } else this.requestUi();
        return;
      case "state":
        entry.lastSeq = Math.max(entry.lastSeq, msg.seq | 0);
        this.setStatus(msg.status);
        return;
      case "ack":  // the answer to a control: if it left the session playing (a seek), rows flow again
        this.setStatus(msg.status);
        if (msg.status && msg.status.state === "playing" && this.plot.frozen) this.plot.resume();
        return;
      case "reset":
        this.onReset(msg);
        if (msg.reason === "resync") this.plot.hold();  // state + history follow
        return;
      case "history":
        this.onHistoryStart(msg);
        if ((msg.rows | 0) > 0) this.plot.hold();  // its frame comes next: clear and rows in one update
        return;
      case "batch":
        if (msg.frame) this.onFrame(msg.frame, msg.history);
        this.plot.release();
        return;
      case "marks":  // one new mark, or (history) the session's current marks
        this.plot.addMarks(msg.marks, msg.history === true);
        return;
      case "merged": case "dropped":  // (older servers: dropped {count})
        entry.framesMerged += Number(msg.frames_merged ?? msg.count) || 0;
        entry.rowsDropped += Number(msg.rows_dropped) || 0;
        this.requestUi();
        return;
      case "error":  // (a refused control: what a click froze is shown)
        if (this.plot.frozen && from === this.transport) this.plot.settle(null);
        this.setError(msg.message || "error " + msg.status);
        return;
      case "closed":
        this.plot.release();
        return;
      default:
    }
  }

  /** Queue one decoded frame's rows (views, no copies) unless it is a duplicate or of another mode. */
  onFrame(frame, fromHistory) {
    const entry = this.entry;
    const h = frame.header;
    const history = fromHistory || h.history;
    const seq = h.seq | 0;
    if (!history && seq <= entry.lastSeq) return;  // duplicate after a reconnect
    if (h.mode && entry.mode && h.mode !== entry.mode && !history) return;  // raced a reset: ignore
    entry.lastSeq = Math.max(entry.lastSeq, seq);
    entry.framesReceived += 1;
    entry.rowsReceived += h.rows | 0;
    entry.rowsTotal += h.rows | 0;
    const tsCol = frame.columns.timestamp;
    if (tsCol && tsCol.length && (h.rows | 0) > 0) entry.newestMs = Number(tsCol[(h.rows | 0) - 1]);  // (tests)
    // the source position of its first row (what a status's position counts), else its stream row
    const first = h.position != null ? Number(h.position) : (h.first_row != null ? Number(h.first_row) : null);
    const firstSeq = h.first_seq != null ? Number(h.first_seq) : Number(h.seq);
    const taken = this.plot.push(frame.columns, h.rows | 0, first, !!history, firstSeq);
    if (!history && taken > 0) {
      const ts = frame.columns.timestamp;
      this.store.addRows(taken, ts && ts.length >= taken ? ts[taken - 1] : null, seq);
    }
    this.scheduleUi();
  }

  onReset(msg) {
    const entry = this.entry;
    entry.resets += 1;
    this.store.reset();
    entry.lastSeq = Math.max(entry.lastSeq, msg.seq | 0);
    entry.rowsReceived = 0;
    const mode = msg.mode || entry.mode;
    if (mode && mode !== this.specMode) { entry.mode = mode; this.plot.addMarks(null, true); void this.embedForMode(mode); }
    else this.plot.clear();
    this.requestUi();
  }

  onHistoryStart(msg) {
    const entry = this.entry;
    this.plot.clear();
    entry.rowsReceived = 0;
    entry.lastSeq = Math.max(entry.lastSeq, msg.seq | 0);
    if (msg.mode && msg.mode !== this.specMode) { entry.mode = msg.mode; void this.embedForMode(msg.mode); }
  }

  // ---- transports

  /** Follow the server session over its WebSocket. The plot keeps the kernel's rows until the server's
   * history (the same rows: the kernel carried its buffer over on attach) replaces them, so attaching
   * never blanks the plot. Sequence numbers restart. */
  follow(cfg, sessionId) {
    const entry = this.entry;
    if (entry.transport === "ws" || entry.closed) return;
    entry.transport = "ws";
    entry.lastSeq = 0;
    entry.instance = null;
    const plot = this.plot;
    this.transport = new SocketTransport(cfg, sessionId, this.emit, {
      entry,
      // acknowledge at once while the plot has room for more undrawn rows (bytes, data time), else after
      // its next draw (the server merges frames meanwhile)
      pending: () => plot.scheduled && !plot.roomForMore(),
      query: () => {
        const q = {};
        // the plot keeps its last `rollover` rows: a history needs no more (candles need every row)
        const spec = plot.spec;
        if (spec && !spec.bars && Number(spec.rollover) > 0) q.tail = spec.rollover;
        if (entry.lastSeq > 0 && entry.instance) { q.since = entry.lastSeq; q.instance = entry.instance; }  // resume
        return q;
      },
    });
    this.transport.open();
    this.updateUi();
  }

  control(action, args = {}) {
    this.lastError = "";
    if (FREEZING.has(action)) this.plot.freeze();  // the picture stops in this frame; settled by the answer
    else if (RESUMING.has(action)) this.plot.resume();
    if (this.transport) this.transport.control(action, args);
  }

  // ---- plot specs

  async embedForMode(mode) {
    this.specMode = mode;
    const plots = this.model.get("plot") || {};
    this.entry.mode = mode;
    await this.plot.embed(plots[mode] || plots.replay);
  }

  /** Re-embed after the `plot` trait changed. */
  replot() { this.specMode = null; void this.embedForMode(this.shown().mode); }

  // ---- status and UI

  /** The status as received (moved on by the rows since), or the kernel's status trait. */
  current() { return this.store.current() || this.model.get("status") || {}; }

  /** current() with the defaults the controls need (from the traits). */
  shown() {
    const st = this.current();
    const m = this.model;
    return {
      ...st,
      state: st.state || "stopped",
      mode: st.mode || m.get("mode") || "replay",
      speed: st.speed !== undefined ? st.speed : m.get("speed"),
      loop: !!(st.loop !== undefined ? st.loop : m.get("loop")),
      symbol: st.symbol || m.get("symbol") || "",
    };
  }

  setStatus(st) {
    if (!st) return;
    this.store.set(st);
    this.plotFollows(st);
    this.requestUi();
  }

  /** The plot follows the session's state: not playing = stopped at `position` (rows before it are
   * shown, none after it until the next play); playing = rows flow (unless a click froze the plot and
   * this status is older than the session's answer). Live positions count rows differently: no cut. */
  plotFollows(st) {
    const plot = this.plot;
    if (!st.state || typeof plot.settle !== "function") return;
    if (st.state === "playing") { if (!plot.frozen) plot.resume(); return; }
    const pos = Number(st.position);
    plot.settle(st.mode !== "live" && st.position != null && Number.isFinite(pos) ? pos : null,
      st.seq != null ? Number(st.seq) : null);
  }

  setError(msg) {
    this.lastError = msg ? String(msg) : "";
    if (msg) this.entry.errors.push(String(msg));
    this.updateUi();
  }

  /** entry.status at once, the DOM in the next animation frame (one redraw however many messages). */
  requestUi() {
    this.entry.status = this.current();
    if (this.uiFrame) return;
    this.uiFrame = true;
    nextFrame(() => { this.uiFrame = false; if (!this.entry.closed) this.updateUi(); });
  }

  /** At most ~10 status redraws per second from streamed rows. */
  scheduleUi() {
    if (this.uiTimer) return;
    this.uiTimer = setTimeout(() => { this.uiTimer = null; if (!this.entry.closed) this.updateUi(); }, 100);
  }

  updateUi() {
    const entry = this.entry;
    entry.status = this.current();
    const st = this.shown();
    this.bar.update(st, entry.controls);
    const data = this.root.dataset;
    if (data.state !== st.state) data.state = st.state;
    if (data.mode !== st.mode) data.mode = st.mode;
    if (data.transport !== entry.transport) data.transport = entry.transport;
    // Progress (slider, time, status line) moves with every frame: redrawn at most every PROGRESS_MS unless
    // the state, mode or error changed.
    const key = [st.state, st.mode, st.symbol, this.lastError, entry.transport].join("|");
    const now = performance.now();
    if (key === this.progressKey && now - this.progressAt < PROGRESS_MS) {
      if (!this.progressTimer) {
        this.progressTimer = setTimeout(() => { this.progressTimer = null; if (!entry.closed) this.updateUi(); },
          PROGRESS_MS - (now - this.progressAt));
      }
      return;
    }
    this.progressKey = key; this.progressAt = now;
    this.bar.progress(st);
    const text = statusText(st, entry, this.lastError);
    if (this.statusLine.textContent !== text) this.statusLine.textContent = text;
    setAttr(this.root, "data-rows", String(entry.rowsReceived));
  }

  close() {
    this.entry.closed = true;
    if (this.uiTimer) clearTimeout(this.uiTimer);
    if (this.progressTimer) clearTimeout(this.progressTimer);
    if (this.transport) this.transport.close();
    this.plot.destroyViews();
  }
}
