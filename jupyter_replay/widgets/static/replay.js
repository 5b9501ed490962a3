// jupyter_replay widget front end (anywidget ESM): control bar + BokehJS streaming plot.
//
// Data path (docs/design.md, "Widgets"):
//  * local: the kernel's ThreadedSession is authoritative; controls go to the kernel as
//    model.send({type: "control", ...}); rows arrive as custom messages {type: "frame"} + one binary
//    wire frame (ms_only), resets as {type: "reset"}, the buffer on request as {type: "history"} + frame.
//  * attached: on render we POST {baseUrl}replay/api/sessions {kernel_id}; the answer goes to the kernel
//    ({type: "attach"}); once the kernel confirms (trait `attached` == session id) we open the session's
//    WebSocket (?ms_only=1&token=...), stream its frames into BokehJS and send controls on the socket
//    (REST actions as a fallback while it reconnects). Data is never sent back to the kernel.
//    The socket is flow-controlled (?ack=1): once a frame's rows went into the plot we send
//    {type: "ack_frames", seq}, and the server keeps at most a couple of frames unacknowledged in flight
//    (merging the rest), so the data in flight is bounded and a pause stops the rows within about a frame.
// Rows reach the ColumnDataSource through at most one stream() per source per animation frame, and only
// the last `rollover` rows of what arrived since the previous frame (the source keeps no more): frames are
// decoded as views and only those rows are copied. Counters count every row received.
// Tests read window.__jupyter_replay__.widgets: [{sessionId, rowsReceived, source, ...}].

const SPEEDS = ["0.1", "0.25", "0.5", "1", "2", "5", "10", "25", "50", "100", "250", "500", "1000", "max"];
const REGISTRY = (globalThis.__jupyter_replay__ ??= { widgets: [] });
const TYPED = {
  float64: Float64Array, float32: Float32Array,
  int64: globalThis.BigInt64Array, uint64: globalThis.BigUint64Array,
  int32: Int32Array, uint32: Uint32Array, int16: Int16Array, uint16: Uint16Array,
  int8: Int8Array, uint8: Uint8Array,
};

// ------------------------------------------------------------------------------------------- wire

/** Decode one binary wire frame: {header, columns: {name: TypedArray}} (aligned views, no copies). */
export function decodeFrame(data) {
  let ab, base, len;
  if (data instanceof ArrayBuffer) { ab = data; base = 0; len = data.byteLength; }
  else { ab = data.buffer; base = data.byteOffset; len = data.byteLength; }
  if (base % 8 !== 0) { ab = ab.slice(base, base + len); base = 0; }  // typed arrays need alignment
  const dv = new DataView(ab, base, len);
  const hlen = dv.getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(ab, base + 4, hlen)));
  const prefix = 4 + hlen;
  const start = base + prefix + ((8 - (prefix % 8)) % 8);
  const rows = header.rows | 0;
  const columns = {};
  for (const spec of header.columns || []) {
    const Ctor = TYPED[spec.dtype];
    if (!Ctor) continue;
    columns[spec.name] = new Ctor(ab, start + spec.offset, rows);
  }
  return { header, columns };
}

/** Copy `len` values of `arr` from `from` into the Float64Array `out` at `at` (NaN if `arr` is missing). */
function copyF64(out, at, arr, from, len) {
  if (!arr) { out.fill(NaN, at, at + len); return; }
  const src = from === 0 && arr.length === len ? arr : arr.subarray(from, from + len);
  if (src instanceof globalThis.BigInt64Array || src instanceof globalThis.BigUint64Array) {
    for (let i = 0; i < len; i++) out[at + i] = Number(src[i]);
  } else out.set(src, at);
}

/** The last `n` rows of queued parts ([{columns: {name: TypedArray view}, rows}]) as Float64Array columns;
 * earlier rows are never copied. */
export function tailColumns(parts, names, n) {
  let first = parts.length;
  let need = n;
  while (need > 0 && first > 0) need -= parts[--first].rows;
  const skip = need < 0 ? -need : 0;  // rows of parts[first] before the tail
  const out = {};
  for (const name of names) {
    const col = new Float64Array(n);
    let at = 0;
    for (let i = first; i < parts.length; i++) {
      const from = i === first ? skip : 0;
      const len = parts[i].rows - from;
      copyF64(col, at, parts[i].columns[name], from, len);
      at += len;
    }
    out[name] = col;
  }
  return out;
}

const num = (x) => (typeof x === "bigint" ? Number(x) : x);

// -------------------------------------------------------------------------------------- page/REST

function pageConfig() {
  const el = document.getElementById("jupyter-config-data");
  if (!el) return null;
  try { return JSON.parse(el.textContent || "{}"); } catch { return null; }
}

function cookie(name) {
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

function apiUrl(cfg, path) {
  const base = new URL(cfg.baseUrl || "/", window.location.href);
  return new URL("replay/api/" + path, base).toString();
}

async function api(cfg, method, path, body) {
  const resp = await fetch(apiUrl(cfg, path), {
    method, headers: apiHeaders(cfg), credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await resp.json(); } catch { data = null; }
  return { status: resp.status, data };
}

// ------------------------------------------------------------------------------------------ BokehJS

function waitFor(pred, timeoutMs, intervalMs = 50) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const tick = () => {
      const v = pred();
      if (v) resolve(v);
      else if (Date.now() - t0 > timeoutMs) resolve(null);
      else setTimeout(tick, intervalMs);
    };
    tick();
  });
}

const bokehReady = () => (window.Bokeh && window.Bokeh.embed && window.Bokeh.embed.embed_item ? window.Bokeh : null);

/** Run BokehJS source text (sent by the kernel, from the installed bokeh package: inline, never a CDN). */
function injectBokeh(code) {
  if (bokehReady()) return;
  const script = document.createElement("script");
  script.type = "text/javascript";
  script.dataset.jupyterReplay = "bokehjs";
  script.textContent = code;
  document.head.appendChild(script);
}

/** window.Bokeh, asking the kernel for the BokehJS bundle (once per page) when nobody loaded it. */
function loadBokeh(model) {
  if (bokehReady()) return Promise.resolve(window.Bokeh);
  if (!REGISTRY.bokeh) {
    REGISTRY.bokeh = (async () => {
      // another loader (jupyter_bokeh, output_notebook) may be on its way
      if (await waitFor(bokehReady, 300)) return window.Bokeh;
      REGISTRY.bokehRequested = true;
      model.send({ type: "need_bokeh" });
      const b = await waitFor(bokehReady, 120000);
      if (!b) REGISTRY.bokeh = null;  // let a later widget try again
      return b;
    })();
  }
  return REGISTRY.bokeh;
}

function removeDocument(doc) {
  const docs = window.Bokeh && window.Bokeh.documents;
  if (!docs || !doc) return;
  const i = docs.indexOf(doc);
  if (i >= 0) docs.splice(i, 1);
}

// --------------------------------------------------------------------------------------------- plot

/** One embedded Bokeh plot; rows are queued and streamed once per animation frame. */
export class StreamPlot {
  constructor(container, entry) {
    this.container = container;
    this.entry = entry;
    this.spec = null;
    this.views = null;
    this.doc = null;
    this.source = null;
    this.bars = null;
    this.queue = [];  // [{columns: {name: TypedArray view of the received frame}, rows}]
    this.queued = 0;
    this.pendingClear = false;  // cleared at the next flush, together with the rows that follow
    this.held = false;  // no flush until release(): a history frame is announced (reset + history = one update)
    this.onFlush = null;  // called after each flush (the socket acknowledges its frames then)
    this.lastBar = null;
    this.scheduled = false;
    this.generation = 0;
    this.anchorsShown = null;  // whether the empty-plot anchors are shown (null: not applied yet)
  }

  async embed(spec) {
    const gen = ++this.generation;
    this.destroyViews();
    this.spec = spec;
    this.queue = []; this.queued = 0; this.lastBar = null; this.pendingClear = false; this.held = false;
    if (!spec || !spec.item) return;
    const target = document.createElement("div");
    target.className = "jr-plot-target";
    this.container.replaceChildren(target);
    const views = await window.Bokeh.embed.embed_item(spec.item, target);
    if (gen !== this.generation) {  // a newer embed started meanwhile
      for (const v of [...(views || [])]) { try { v.remove(); } catch {} }
      return;
    }
    this.views = views;
    const root = views && [...views][0];
    this.doc = root ? root.model.document : null;
    this.source = this.doc ? this.doc.get_model_by_name(spec.source) : null;
    this.bars = spec.bars && this.doc ? this.doc.get_model_by_name(spec.bars) : null;
    this.entry.source = this.source;
    this.entry.bars = this.bars;
    this.entry.document = this.doc;
    this.anchorsShown = null;
    this.syncAnchors();
    this.schedule();
  }

  /** Empty plots keep axes and grid: the spec's invisible anchor renderers give the ranges an extent
   * while the raw source is empty (live: the last minute); once rows arrive they are hidden and the
   * ranges (only_visible) follow the data. */
  syncAnchors() {
    if (!this.doc || !this.spec || !this.source) return;
    const empty = !((this.source.get_length() ?? 0) > 0);
    if (this.anchorsShown === empty) return;
    this.anchorsShown = empty;
    const span = Number(this.spec.anchor_now_ms);
    for (const name of this.spec.anchors || []) {
      let r = null;
      try { r = this.doc.get_model_by_name(name); } catch { r = null; }
      if (!r) continue;
      if (empty && span > 0 && r.data_source) {  // live: the last minute, as of now
        const data = r.data_source.data;
        const y = data instanceof Map ? data.get("y") : data.y;
        const now = Date.now();
        r.data_source.data = { x: [now - span, now], y };
      }
      r.visible = empty;
    }
  }

  destroyViews() {
    if (this.views) {
      for (const v of [...this.views]) { try { v.remove(); } catch {} }
    }
    removeDocument(this.doc);
    this.views = null; this.doc = null; this.source = null; this.bars = null;
    this.entry.source = null; this.entry.bars = null; this.entry.document = null;
  }

  /** Rows the source keeps (its stream rollover). */
  get rollover() {
    const r = Number(this.spec && this.spec.rollover);
    return r > 0 ? r : Infinity;
  }

  /** Queue decoded wire columns (zero-copy views; rows already accounted by the caller). Nothing is copied
   * here: the next flush copies only the rows the plot keeps. */
  push(columns, rows) {
    if (!this.spec || rows <= 0) return;
    this.queue.push({ columns, rows });
    this.queued += rows;
    // Parts entirely before the last `rollover` rows can never reach the source: let them go (candles
    // are built from every row, so with bars keep more; a hidden tab runs no animation frames).
    const keep = this.bars ? Math.max(this.rollover * 2, 1 << 20) : this.rollover;
    while (this.queue.length > 1 && this.queued - this.queue[0].rows >= keep) this.queued -= this.queue.shift().rows;
    this.schedule();
  }

  /** Empty the plot; applied at the next flush with the rows that arrive meanwhile (no blank frame between
   * a reset and its history). */
  clear() {
    this.queue = []; this.queued = 0; this.lastBar = null;
    this.pendingClear = true;
    this.schedule();
  }

  /** Defer flushes until release() (a history frame follows: the clear waits for its rows). */
  hold() { this.held = true; }

  release() {
    if (!this.held) return;
    this.held = false;
    this.schedule();
  }

  schedule() {
    if (this.scheduled || this.held || !(this.queue.length || this.pendingClear) || !this.source) return;
    this.scheduled = true;
    let done = false;
    const run = () => { if (done) return; done = true; this.scheduled = false; this.flush(); };
    requestAnimationFrame(run);
    setTimeout(run, 250);  // background tabs get no animation frames
  }

  /** One stream() of the last `rollover` rows queued since the previous flush (after a pending clear). */
  flush() {
    if (!this.source || this.held) return;
    const clear = this.pendingClear;
    if (!this.queue.length && !clear) return;
    const parts = this.queue; const total = this.queued;
    this.queue = []; this.queued = 0; this.pendingClear = false;
    const n = Math.min(total, this.rollover);
    if (clear) {  // (streaming `rollover` rows replaces all rows anyway)
      if (n < this.rollover) this.source.data = emptyData(this.source);
      if (this.bars) this.bars.data = emptyData(this.bars);
    }
    if (total > 0) {
      this.source.stream(tailColumns(parts, this.spec.columns, n), this.spec.rollover);
      if (this.bars) this.updateBars(parts);
      this.entry.streamCalls += 1;
      this.entry.rowsStreamed += n;
    }
    this.syncAnchors();
    if (this.onFlush) this.onFlush();
  }

  /** Candles from every queued row (read from the frames' views, no copies). */
  updateBars(parts) {
    const w = this.spec.bar_ms;
    let cur = this.lastBar ? { ...this.lastBar } : null;
    const wasOpen = this.lastBar ? this.lastBar.time : null;
    const done = [];
    for (const part of parts) {
      const t = part.columns.timestamp; const p = part.columns[this.spec.price];
      const v = this.spec.volume ? part.columns[this.spec.volume] : null;
      if (!t || !p) continue;
      for (let i = 0; i < part.rows; i++) {
        const price = num(p[i]);
        if (!Number.isFinite(price)) continue;
        const bt = Math.floor(num(t[i]) / w) * w + w / 2;  // candles are centred on their interval
        const vi = v ? num(v[i]) : 1;
        const vol = Number.isFinite(vi) ? vi : 0;
        if (cur && cur.time === bt) {
          cur.high = Math.max(cur.high, price); cur.low = Math.min(cur.low, price);
          cur.close = price; cur.volume += vol;
        } else {
          if (cur) done.push(cur);
          cur = { time: bt, open: price, high: price, low: price, close: price, volume: vol };
        }
      }
    }
    if (!cur) return;
    done.push(cur);
    for (const b of done) b.dir = b.close >= b.open ? 1 : -1;
    let k = 0;
    const len = this.bars.get_length ? (this.bars.get_length() ?? 0) : 0;
    if (wasOpen !== null && done[0].time === wasOpen && len > 0) {
      const b = done[0]; const i = len - 1;
      this.bars.patch({
        open: [[i, b.open]], high: [[i, b.high]], low: [[i, b.low]], close: [[i, b.close]],
        volume: [[i, b.volume]], dir: [[i, b.dir]],
      });
      k = 1;
    }
    if (k < done.length) {
      const rest = done.slice(k);
      const out = {};
      for (const key of ["time", "open", "high", "low", "close", "volume", "dir"]) {
        out[key] = Float64Array.from(rest, (b) => b[key]);
      }
      this.bars.stream(out, this.spec.bar_rollover);
    }
    this.lastBar = cur;
  }
}

function emptyData(source) {
  const out = {};
  const data = source.data;
  const keys = data instanceof Map ? [...data.keys()] : Object.keys(data);
  for (const k of keys) out[k] = new Float64Array(0);
  return out;
}

// ------------------------------------------------------------------------------------------ controls

function button(cls, text, label, title) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "jr-btn " + cls;
  b.textContent = text;
  b.setAttribute("aria-label", label);
  b.title = title || label;
  return b;
}

function fmtTime(status) {
  let iso = status && status.position_iso;
  // at the end there is no next row: show the replay clock's data time (the last row released)
  if (!iso && status && Number.isFinite(Number(status.time_ns)) && status.time_ns !== null) {
    iso = new Date(Number(status.time_ns) / 1e6).toISOString();
  }
  if (!iso) return "--";
  return String(iso).replace("T", " ").replace(/\+00:00$|Z$/, "").slice(0, 23);
}

const PROGRESS_MS = 200;  // the progress display (slider, time, status line) redraws at most this often
const INT_FORMAT = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

function fmtInt(n) {
  return Number.isFinite(n) ? INT_FORMAT.format(Math.round(n)) : "0";
}

// DOM writes only when the value changes: each write invalidates the page's style/layout, which BokehJS
// then recomputes on its next render.
function setText(el, text) { if (el.textContent !== text) el.textContent = text; }
function setProp(el, key, value) { if (el[key] !== value) el[key] = value; }
function setAttr(el, name, value) { if (el.getAttribute(name) !== value) el.setAttribute(name, value); }

// ------------------------------------------------------------------------------------------- render

function render({ model, el }) {
  const entry = {
    // rowsReceived: rows since the last reset/history; rowsTotal: every row received (never reset);
    // rowsStreamed: rows handed to BokehJS (at most `rollover` per stream call, the rest would roll over)
    model, el, sessionId: null, transport: "local", rowsReceived: 0, rowsTotal: 0, rowsStreamed: 0,
    framesReceived: 0, streamCalls: 0, acksSent: 0, resets: 0, dropped: 0, lastSeq: 0, mode: null,
    source: null, bars: null, document: null, status: {}, errors: [], closed: false,
  };
  REGISTRY.widgets.push(entry);

  // ---- DOM
  el.classList.add("jupyter-replay");
  const root = document.createElement("div");
  root.className = "jr-root";
  root.tabIndex = 0;
  root.setAttribute("role", "group");
  root.setAttribute("aria-label", "Replay controls and plot");
  root.setAttribute("data-lm-suppress-shortcuts", "true");  // our keys, not JupyterLab's
  root.setAttribute("data-p-suppress-shortcuts", "true");
  const bar = document.createElement("div");
  bar.className = "jr-bar";
  const playBtn = button("jr-play", "▶ Play", "Play");
  const stopBtn = button("jr-stop", "■ Stop", "Stop");
  const stepBtn = button("jr-step", "Step ›", "Step one row");
  const speedSel = document.createElement("select");
  speedSel.className = "jr-speed";
  speedSel.setAttribute("aria-label", "Speed");
  speedSel.title = "Speed";
  for (const s of SPEEDS) {
    const o = document.createElement("option");
    o.value = s; o.textContent = s === "max" ? "max" : s + "×";
    speedSel.appendChild(o);
  }
  const seek = document.createElement("input");
  seek.type = "range"; seek.min = "0"; seek.max = "1000"; seek.step = "1"; seek.value = "0";
  seek.className = "jr-seek";
  seek.setAttribute("aria-label", "Seek");
  const timeLabel = document.createElement("span");
  timeLabel.className = "jr-time";
  timeLabel.setAttribute("aria-live", "off");
  const loopLabel = document.createElement("label");
  loopLabel.className = "jr-loop";
  const loopBox = document.createElement("input");
  loopBox.type = "checkbox";
  loopBox.setAttribute("aria-label", "Loop");
  loopLabel.append(loopBox, document.createTextNode(" loop"));
  const modeBtn = button("jr-mode", "REPLAY", "Switch to live mode");
  const symbolIn = document.createElement("input");
  symbolIn.type = "text"; symbolIn.className = "jr-symbol"; symbolIn.size = 8;
  symbolIn.setAttribute("aria-label", "Live symbol");
  symbolIn.placeholder = "symbol";
  bar.append(playBtn, stopBtn, stepBtn, speedSel, seek, timeLabel, loopLabel, modeBtn, symbolIn);
  const statusLine = document.createElement("div");
  statusLine.className = "jr-status";
  statusLine.setAttribute("role", "status");
  const plotDiv = document.createElement("div");
  plotDiv.className = "jr-plot";
  plotDiv.textContent = "loading plot…";
  root.append(bar, statusLine, plotDiv);
  el.replaceChildren(root);

  const plot = new StreamPlot(plotDiv, entry);
  let seeking = false;
  let progressKey = null;  // the progress display's last state/mode/error, when it was drawn, its timer
  let progressAt = 0;
  let progressTimer = null;
  let lastError = "";
  let ws = null;
  let wsWanted = false;
  let reconnectDelay = 500;
  let reconnectTimer = null;
  let cfg = null;
  let controlId = 0;
  let pendingHistory = false;
  let specMode = null;
  let unacked = 0;  // binary frames received on the current socket and not yet acknowledged
  let unackedSeq = 0;  // seq of the last of them

  // ---- status
  // Attached: the server sends a state message on transitions only; between them the position moves with
  // the rows we receive (rows of events after the last status), so the slider and time label follow.
  function currentStatus() {
    if (entry.transport !== "ws" || !entry.wsStatus) return model.get("status") || {};
    const st = entry.wsStatus;
    if (!entry.rowsAfterStatus) return st;
    const pos = (Number(st.position) || 0) + entry.rowsAfterStatus;
    const out = { ...st, position: pos };
    const cap = Number(st.buffer_capacity) || Infinity;
    out.buffer_rows = Math.min(cap, (Number(st.buffer_rows) || 0) + entry.rowsAfterStatus);
    if (entry.lastTsMs != null && Number.isFinite(entry.lastTsMs)) out.position_iso = new Date(entry.lastTsMs).toISOString();
    if (st.mode !== "live" && Number(st.num_rows) > 0) out.progress = Math.min(1, pos / Number(st.num_rows));
    return out;
  }

  function setWsStatus(st) {
    if (!st) return;
    entry.wsStatus = st;
    entry.rowsAfterStatus = 0;
    requestUi();
  }

  // State changes from the socket: entry.status at once, the DOM in the next animation frame (at most one
  // redraw per frame however many messages arrive).
  let uiFrame = false;
  function requestUi() {
    entry.status = currentStatus();
    if (uiFrame) return;
    uiFrame = true;
    let done = false;
    const run = () => { if (done) return; done = true; uiFrame = false; if (!entry.closed) updateUi(); };
    requestAnimationFrame(run);
    setTimeout(run, 250);  // background tabs get no animation frames
  }

  function updateUi() {
    const st = currentStatus();
    entry.status = st;
    const state = st.state || "stopped";
    const mode = st.mode || model.get("mode") || "replay";
    const playing = state === "playing";
    setText(playBtn, playing ? "❚❚ Pause" : "▶ Play");
    setAttr(playBtn, "aria-label", playing ? "Pause" : "Play");
    setProp(playBtn, "title", playing ? "Pause (space)" : "Play (space)");
    setAttr(playBtn, "aria-pressed", playing ? "true" : "false");
    const live = mode === "live";
    setProp(stepBtn, "disabled", playing || live);
    setProp(seek, "disabled", live);
    setProp(speedSel, "disabled", live);
    const sp = st.speed !== undefined ? st.speed : model.get("speed");
    const spText = sp === "max" || sp === null ? "max" : String(Number(sp));
    if (![...speedSel.options].some((o) => o.value === spText)) {
      const o = document.createElement("option");
      o.value = spText; o.textContent = spText + "×";
      speedSel.appendChild(o);
    }
    if (document.activeElement !== speedSel) setProp(speedSel, "value", spText);
    setProp(loopBox, "checked", !!(st.loop !== undefined ? st.loop : model.get("loop")));
    setText(modeBtn, live ? "LIVE" : "REPLAY");
    setAttr(modeBtn, "aria-label", live ? "Switch to replay mode" : "Switch to live mode");
    if (modeBtn.classList.contains("jr-live") !== live) modeBtn.classList.toggle("jr-live", live);
    const sym = st.symbol || model.get("symbol") || "";
    if (document.activeElement !== symbolIn) setProp(symbolIn, "value", sym);
    const data = root.dataset;
    if (data.state !== state) data.state = state;
    if (data.mode !== mode) data.mode = mode;
    if (data.transport !== entry.transport) data.transport = entry.transport;
    // Progress (slider, time, status line) moves with every frame: redrawn at most every PROGRESS_MS unless
    // the state, mode or error changed.
    const key = [state, mode, sym, lastError, entry.transport].join("|");
    const now = performance.now();
    if (key === progressKey && now - progressAt < PROGRESS_MS) {
      if (!progressTimer) {
        progressTimer = setTimeout(() => { progressTimer = null; if (!entry.closed) updateUi(); },
          PROGRESS_MS - (now - progressAt));
      }
      return;
    }
    progressKey = key; progressAt = now;
    if (!seeking) setProp(seek, "value", String(Math.round((Number(st.progress) || 0) * 1000)));
    setText(timeLabel, live ? "live" : fmtTime(st));
    const dropped = (Number(st.dropped) || 0) + entry.dropped;
    const parts = [
      state, mode + (live && sym ? " " + sym : ""),
      "row " + fmtInt(Number(st.position) || 0) + (live ? "" : " (" + Math.round((Number(st.progress) || 0) * 100) + "%)"),
      fmtInt(Number(st.buffer_rows) || 0) + " rows buffered",
      fmtInt(dropped) + " dropped",
      entry.transport === "ws" ? "server" : "kernel",
    ];
    setText(statusLine, parts.join(" · ") + (lastError ? " · error: " + lastError : ""));
    const rows = String(entry.rowsReceived);
    if (data.rows !== rows) data.rows = rows;
  }

  let uiTimer = null;
  function scheduleUi() {  // at most ~10 status redraws per second from streamed rows
    if (uiTimer) return;
    uiTimer = setTimeout(() => { uiTimer = null; updateUi(); }, 100);
  }

  function setError(msg) {
    lastError = msg ? String(msg) : "";
    if (msg) entry.errors.push(String(msg));
    updateUi();
  }

  // ---- plot specs
  async function embedForMode(mode) {
    specMode = mode;
    const plots = model.get("plot") || {};
    const spec = plots[mode] || plots.replay;
    entry.mode = mode;
    await plot.embed(spec);
  }

  // ---- frames (both paths)
  /** Decode (views, no copies) and queue one wire frame; returns its header (null if undecodable). */
  function onFrame(buf, fromHistory) {
    let frame;
    try { frame = decodeFrame(buf); } catch (e) { setError("bad frame: " + e); return null; }
    const h = frame.header;
    const seq = h.seq | 0;
    if (!fromHistory && !h.history && seq <= entry.lastSeq) return h;  // duplicate after a reconnect
    if (h.mode && entry.mode && h.mode !== entry.mode && !(fromHistory || h.history)) {
      // rows of the other mode that raced a reset: ignore
      return h;
    }
    entry.lastSeq = Math.max(entry.lastSeq, seq);
    entry.framesReceived += 1;
    entry.rowsReceived += h.rows | 0;
    entry.rowsTotal += h.rows | 0;
    if (!(fromHistory || h.history)) {
      entry.rowsAfterStatus = (entry.rowsAfterStatus || 0) + (h.rows | 0);
      const ts = frame.columns.timestamp;
      if (ts && ts.length) entry.lastTsMs = ts[ts.length - 1];
    }
    plot.push(frame.columns, h.rows | 0);
    if (entry.transport === "ws") scheduleUi();
    return h;
  }

  function onReset(msg) {
    entry.resets += 1;
    entry.rowsAfterStatus = 0;
    entry.lastTsMs = null;
    entry.lastSeq = Math.max(entry.lastSeq, msg.seq | 0);
    entry.rowsReceived = 0;
    const mode = msg.mode || entry.mode;
    if (mode && mode !== specMode) { entry.mode = mode; void embedForMode(mode); }
    else plot.clear();
    requestUi();
  }

  function onHistoryStart(msg) {
    plot.clear();
    entry.rowsReceived = 0;
    entry.lastSeq = Math.max(entry.lastSeq, msg.seq | 0);
    if (msg.mode && msg.mode !== specMode) { entry.mode = msg.mode; void embedForMode(msg.mode); }
  }

  // ---- kernel messages (local path)
  function onCustom(msg, buffers) {
    if (!msg || typeof msg !== "object") return;
    switch (msg.type) {
      case "bokehjs":
        if (buffers && buffers.length) injectBokeh(new TextDecoder().decode(buffers[0]));
        return;
      case "frame":
        if (entry.transport === "ws") return;
        if (buffers && buffers.length) onFrame(buffers[0], false);
        return;
      case "reset":
        if (entry.transport === "ws") return;
        onReset(msg);
        return;
      case "history":
        if (entry.transport === "ws") return;
        onHistoryStart(msg);
        if (buffers && buffers.length) onFrame(buffers[0], true);
        return;
      case "error":
        setError(msg.message);
        return;
      case "attach_result":
        if (!msg.ok) { entry.attachDeclined = msg.message || "declined"; updateUi(); }
        return;
      default:
    }
  }
  model.on("msg:custom", onCustom);

  // ---- controls
  function control(action, args = {}) {
    lastError = "";
    if (entry.transport === "ws" && entry.sessionId) {
      const id = ++controlId;
      const msg = { type: "control", id, action, ...args };
      if (ws && ws.readyState === WebSocket.OPEN) { ws.send(JSON.stringify(msg)); return; }
      // socket down (reconnecting): the REST action does the same
      api(cfg, "POST", "sessions/" + encodeURIComponent(entry.sessionId) + "/actions/" + action, args)
        .then((r) => {
          if (r.status >= 400) setError((r.data && r.data.message) || "HTTP " + r.status);
          else if (r.data) setWsStatus(r.data.status || r.data);
        })
        .catch((e) => setError(String(e)));
      return;
    }
    model.send({ type: "control", action, ...args });
  }

  const togglePlay = () => control(currentStatus().state === "playing" ? "pause" : "play");
  playBtn.addEventListener("click", togglePlay);
  stopBtn.addEventListener("click", () => control("stop"));
  stepBtn.addEventListener("click", () => control("step", { n: 1 }));
  speedSel.addEventListener("change", () => {
    const v = speedSel.value;
    control("speed", { speed: v === "max" ? "max" : Number(v) });
  });
  seek.addEventListener("input", () => { seeking = true; });
  seek.addEventListener("change", () => {
    seeking = false;
    control("seek", { fraction: Number(seek.value) / 1000 });
  });
  loopBox.addEventListener("change", () => control("loop", { loop: loopBox.checked }));
  modeBtn.addEventListener("click", () => {
    const live = (currentStatus().mode || model.get("mode")) === "live";
    const args = { mode: live ? "replay" : "live" };
    if (!live && symbolIn.value.trim()) args.symbol = symbolIn.value.trim();
    control("mode", args);
  });
  symbolIn.addEventListener("keydown", (ev) => {
    ev.stopPropagation();
    if (ev.key === "Enter" && symbolIn.value.trim()) control("mode", { mode: "live", symbol: symbolIn.value.trim() });
  });
  root.addEventListener("keydown", (ev) => {
    const tag = (ev.target && ev.target.tagName) || "";
    if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA") return;
    if (ev.key === " " || ev.key === "k" || ev.key === "K") {
      ev.preventDefault();
      ev.stopPropagation();
      togglePlay();
    }
  });

  // ---- server session (attached path)
  function wsUrl() {
    const u = new URL(apiUrl(cfg, "sessions/" + encodeURIComponent(entry.sessionId) + "/ws"));
    u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
    u.searchParams.set("ms_only", "1");
    u.searchParams.set("ack", "1");  // flow control: we acknowledge frames (ack_frames) once plotted
    // the plot keeps its last `rollover` rows: a history needs no more (candles are built from every row)
    const spec = plot.spec;
    if (spec && !spec.bars && Number(spec.rollover) > 0) u.searchParams.set("tail", String(spec.rollover));
    if (cfg.token) u.searchParams.set("token", cfg.token);
    const xsrf = cookie("_xsrf");
    if (xsrf) u.searchParams.set("_xsrf", xsrf);
    if (entry.lastSeq > 0 && entry.instance) {  // resume after the last event we saw
      u.searchParams.set("since", String(entry.lastSeq));
      u.searchParams.set("instance", entry.instance);
    }
    return u.toString();
  }

  function openSocket() {
    if (!wsWanted || entry.closed) return;
    let sock;
    try { sock = new WebSocket(wsUrl()); } catch (e) { setError(String(e)); scheduleReconnect(); return; }
    sock.binaryType = "arraybuffer";
    ws = sock;
    unacked = 0;
    sock.onopen = () => { reconnectDelay = 500; entry.wsOpen = true; };
    sock.onmessage = (ev) => {
      if (ws !== sock) return;
      if (typeof ev.data !== "string") {
        const h = onFrame(ev.data, pendingHistory);
        pendingHistory = false;
        plot.release();
        unacked += 1;
        if (h) unackedSeq = h.seq | 0;
        // acknowledged once its rows went into the plot (the next flush); at once if nothing will be
        // flushed (ignored frame, plot not ready) or the tab is hidden (no animation frames)
        if (!plot.scheduled || document.hidden) sendAck();
        return;
      }
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      switch (msg.type) {
        case "hello":
          entry.wsConnected = true;
          entry.instance = msg.instance || entry.instance;
          setWsStatus(msg.session || {});
          if (entry.wsStatus.mode && entry.wsStatus.mode !== specMode) void embedForMode(entry.wsStatus.mode);
          break;
        case "history":
          onHistoryStart(msg);
          pendingHistory = (msg.rows | 0) > 0;
          plot.hold();  // its frame comes next: clear and rows in one update, no blank frame
          break;
        case "state":
          entry.lastSeq = Math.max(entry.lastSeq, msg.seq | 0);
          setWsStatus(msg.status);
          break;
        case "reset":
          onReset(msg);
          if (msg.reason === "resync") plot.hold();  // state + history follow
          break;
        case "dropped":
          entry.dropped += msg.count | 0;
          requestUi();
          break;
        case "error":
          setError(msg.message || "error " + msg.status);
          break;
        case "ack":
          setWsStatus(msg.status);
          break;
        default:
      }
    };
    sock.onclose = () => {
      entry.wsOpen = false;
      if (ws === sock) { ws = null; plot.release(); scheduleReconnect(); }
    };
    sock.onerror = () => {};
  }

  /** Flow control: tell the server every frame received so far on this socket has been processed. */
  function sendAck() {
    if (!unacked || !ws || ws.readyState !== WebSocket.OPEN) return;
    ws.send(JSON.stringify({ type: "ack_frames", seq: unackedSeq }));
    unacked = 0;
    entry.acksSent += 1;
  }
  plot.onFlush = sendAck;

  function scheduleReconnect() {
    if (!wsWanted || entry.closed || reconnectTimer) return;
    reconnectTimer = setTimeout(() => { reconnectTimer = null; openSocket(); }, reconnectDelay);
    reconnectDelay = Math.min(reconnectDelay * 2, 5000);
  }

  function switchToServer() {
    if (entry.transport === "ws" || !entry.sessionId) return;
    entry.transport = "ws";
    // The plot keeps the kernel's rows until the server's history (the same rows: the kernel carried its
    // buffer over on attach) replaces them, so attaching never blanks the plot. Sequence numbers restart.
    entry.lastSeq = 0;
    entry.instance = null;
    wsWanted = true;
    openSocket();
    updateUi();
  }

  // The kernel confirmed it is a client of the server session: follow it there (also for views that did
  // not create the session themselves, e.g. after a page reload or a second view of the same widget).
  function onAttachedChange() {
    const a = model.get("attached");
    if (!a || !cfg || (entry.sessionId && entry.sessionId !== a)) return;
    entry.sessionId = a;
    switchToServer();
  }
  model.on("change:attached", onAttachedChange);

  async function attach() {
    const kernelId = model.get("kernel_id");
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
      model.send({ type: "attach", session: sid, client_token: d.client_token, server_url: d.server_url || "" });
      onAttachedChange();
    } catch (e) {
      // network error: keep the local path
    }
  }

  // ---- wiring
  const onStatus = () => updateUi();
  const onPlot = () => { specMode = null; void embedForMode(currentStatus().mode || model.get("mode") || "replay"); };
  model.on("change:status", onStatus);
  model.on("change:speed", onStatus);
  model.on("change:loop", onStatus);
  model.on("change:mode", onStatus);
  model.on("change:symbol", onStatus);
  model.on("change:plot", onPlot);
  updateUi();

  (async () => {
    const B = await loadBokeh(model);
    if (entry.closed) return;
    if (!B) { plotDiv.textContent = "BokehJS did not load"; return; }
    await embedForMode(currentStatus().mode || model.get("mode") || "replay");
    if (entry.closed) return;
    cfg = pageConfig();
    onAttachedChange();  // already attached (page reload, another view): straight to the server
    if (entry.transport !== "ws") model.send({ type: "history" });  // the rows this view missed
    await attach();
  })();

  return () => {
    entry.closed = true;
    wsWanted = false;
    if (reconnectTimer) clearTimeout(reconnectTimer);
    if (uiTimer) clearTimeout(uiTimer);
    if (progressTimer) clearTimeout(progressTimer);
    if (ws) { const s = ws; ws = null; try { s.close(); } catch {} }
    model.off("msg:custom", onCustom);
    model.off("change:attached", onAttachedChange);
    model.off("change:status", onStatus);
    model.off("change:speed", onStatus);
    model.off("change:loop", onStatus);
    model.off("change:mode", onStatus);
    model.off("change:symbol", onStatus);
    model.off("change:plot", onPlot);
    plot.destroyViews();
    const i = REGISTRY.widgets.indexOf(entry);
    if (i >= 0) REGISTRY.widgets.splice(i, 1);
  };
}

export default { render };
