// One embedded Bokeh plot fed by streamed rows. Rows go into the plot's full-resolution window (window.js:
// the last `rollover` rows as typed arrays) as they arrive; at most once per animation frame BokehJS gets
// the M4 decimation (m4.js) of the visible x-range at the plot's pixel width, so the cost of a frame
// depends on the pixels, not on the rows held (a 1M-row window draws like a 5k-row one). Zoom and pan
// re-decimate from the window (full resolution when zoomed in). When the page falls behind (animation
// frames late) a draw is skipped and the next one shows everything: display frames are skipped, never rows.
//
// Pause stops the picture at once: `freeze()` (a pause/stop/seek/mode click) draws what arrived before the
// click and holds later rows; `settle(position)` (the status of the pause) applies the held rows before
// the session's position and discards any beyond it, then and until the next play (`resume()`).
// The plot kind (line, candles) draws whatever else it needs from the rows.
//
// A plot draws one *series* per source of the spec (`spec.sources`): one, or one per group of `by=`
// (groups.js splits each frame's rows by the group column once). Each series has its own window, source
// and kind instance; freeze, settle and clear act on all of them at once.
import { removeDocument, withBackend } from "../bokeh.js";
import { GroupSplit, seriesColumns } from "./groups.js";
import { MarksLayer } from "./marks.js";
import { decimate } from "./m4.js";
import { RowWindow } from "./window.js";

const LATE_FRAME_MS = 25;  // an animation frame this late after it was requested: the page is behind
const MAX_SKIPPED = 3;  // ... but the picture is redrawn at least every 4th frame
const UNDRAWN_BYTES = 4 << 20;  // received rows not yet drawn beyond which frames are acknowledged only
const UNDRAWN_DATA_MS = 60_000;  // ... after the next draw (bytes, and data time they span)
const SETTLE_TIMEOUT_MS = 2000;  // a frozen plot with no status answer applies what it holds
const DRAW_ALL_ROWS = 10_000;  // windows this small are drawn row for row (as cheap as their decimation)

/** The Bokeh plot model drawing `source` (its x_range is the visible range). */
function plotOf(doc, source) {
  let models = [];
  try { models = [...(doc.all_models || [])]; } catch { models = []; }
  return models.find((m) => m && m.x_range && Array.isArray(m.renderers)
    && m.renderers.some((r) => r && r.data_source === source)) || null;
}

/** The view of `model` among `views` and their children. */
function viewOf(views, model) {
  const todo = [...(views || [])];
  while (todo.length) {
    const v = todo.shift();
    if (!v) continue;
    if (v.model === model) return v;
    try { todo.push(...(v.child_views || [])); } catch {}
  }
  return null;
}

export class StreamPlot {
  /** `kindFor(spec)`: the plot kind class for a spec (plots/index.js). */
  constructor(container, entry, kindFor) {
    this.container = container;
    this.entry = entry;
    this.kindFor = kindFor;
    this.spec = null;
    this.views = null;
    this.doc = null;
    this.source = null;  // the first series' source
    this.kind = null;  // the first series' kind instance (LinePlot, CandlesPlot)
    // {source, kind, window (RowWindow of the spec's columns), parts + rows (rows for a kind that draws
    // from every row, candles, until the next draw), dirty} per series
    this.series = [];
    this.splitter = null;  // GroupSplit when the spec has `by`
    this.dirty = false;  // the window changed since the last draw
    this.undrawnRows = 0; this.undrawnBytes = 0; this.undrawnFrom = null; this.undrawnTo = null;
    this.frozen = false;  // a pause (stop, seek, mode) was clicked: rows wait in frozenParts for settle()
    this.frozenParts = [];
    this.frozenClear = false;  // a reset arrived while frozen: the plot is emptied when it settles
    this.frozenMarks = [];  // [marks, replace] received while frozen, applied when it settles
    this.settleTimer = null;
    this.stopAt = null;  // rows from this source position on are discarded (the session paused there) ...
    this.stopSeq = null;  // ... unless released after the status that said so (a step from the kernel)
    this.pendingClear = false;  // cleared at the next draw, together with the rows that follow
    this.held = false;  // no draw until release(): a history frame is announced (reset + history = one update)
    this.onFlush = null;  // called after each draw (the socket acknowledges its frames then)
    this.scheduled = false;
    this.generation = 0;
    this.anchorsShown = null;  // whether the empty-plot anchors are shown (null: not applied yet)
    this.plot = null; this.xRange = null; this.onRange = null;
    this.drawnZoomed = false;  // the last draw was of a zoomed/panned range (not the whole window)
    this.scheduledAt = 0; this.skipped = 0;
    this.marks = new MarksLayer();  // r.mark(...) and marks returned by callbacks (marks.js)
  }

  async embed(spec) {
    const gen = ++this.generation;
    this.destroyViews();
    this.spec = spec;
    this.resetRows();
    if (!spec || !spec.item) return;
    const target = document.createElement("div");
    target.className = "jr-plot-target";
    this.container.replaceChildren(target);
    const views = await window.Bokeh.embed.embed_item(withBackend(spec.item), target);
    if (gen !== this.generation) {  // a newer embed started meanwhile
      for (const v of [...(views || [])]) { try { v.remove(); } catch {} }
      return;
    }
    this.views = views;
    const root = views && [...views][0];
    this.doc = root ? root.model.document : null;
    const Kind = this.kindFor(spec);
    const named = (name) => (this.doc && name ? this.doc.get_model_by_name(name) : null);
    this.useSeries((spec.sources || [spec.source]).map((name, g) => (
      { source: named(name), kind: new Kind(spec, this.doc, g) })));
    this.marks.attach(spec, this.doc);
    this.entry.marks = this.marks.source;
    this.watchRange(this.source && this.doc ? plotOf(this.doc, this.source) : null);
    this.entry.document = this.doc;
    this.entry.webgl = this.webgl();
    this.anchorsShown = null;
    this.syncAnchors();
    this.schedule();
  }

  /** The series ([{source, kind}], in the spec's order), each with a full-resolution window for the
   * spec's columns (first: time). */
  useSeries(list) {
    const cols = (this.spec && this.spec.columns) || [];
    this.series = list.map(({ source, kind }) => ({
      source, kind, window: cols.length ? new RowWindow(cols[0], cols.slice(1), this.rollover) : null,
      parts: [], rows: 0, dirty: false,
    }));
    this.source = this.series.length ? this.series[0].source : null;
    this.kind = this.series.length ? this.series[0].kind : null;
    const spec = this.spec || {};
    this.splitter = spec.by && this.series.length ? new GroupSplit(spec.by, spec.groups, seriesColumns(spec)) : null;
    this.entry.source = this.source;
    this.entry.sources = this.series.map((s) => s.source);
    this.entry.bars = (this.kind && this.kind.bars) || null;
  }

  resetRows() {
    this.pendingClear = false; this.held = false;
    this.frozen = false; this.frozenParts = []; this.frozenClear = false; this.frozenMarks = [];
    this.stopAt = null; this.stopSeq = null; this.dirty = false;
    this.undrawnRows = 0; this.undrawnBytes = 0; this.undrawnFrom = null; this.undrawnTo = null;
    if (this.settleTimer) { clearTimeout(this.settleTimer); this.settleTimer = null; }
    for (const s of this.series) { s.parts = []; s.rows = 0; if (s.window) s.window.clear(); }
  }

  /** Re-decimate when the user zooms or pans (and once more when the range follows the data again). */
  watchRange(plot) {
    this.plot = plot;
    this.xRange = plot ? plot.x_range : null;
    if (!this.xRange || !this.xRange.change) return;
    this.onRange = () => {
      if (this.zoomed() || this.drawnZoomed) { this.dirty = true; this.schedule(); }
    };
    this.xRange.change.connect(this.onRange);
  }

  /** Whether the visible x-range is the user's (zoom, pan) rather than following the data. */
  zoomed() {
    const r = this.xRange;
    if (!r) return false;
    return "have_updated_interactively" in r ? !!r.have_updated_interactively : true;
  }

  /** Pixel columns of the plot area (the container's width before layout). */
  pixelWidth() {
    const v = this.plot ? viewOf(this.views, this.plot) : null;
    const w = v && v.frame && v.frame.bbox ? v.frame.bbox.width : 0;
    if (w > 0) return Math.max(50, Math.round(w));
    const c = this.container ? this.container.clientWidth : 0;  // (forces a layout: only before Bokeh's)
    return Math.max(50, Math.round(c > 0 ? c : 800));
  }

  /** Whether BokehJS draws this plot with WebGL (Bokeh falls back to canvas without it). */
  webgl() {
    const v = this.plot ? viewOf(this.views, this.plot) : null;
    return !!(v && v.canvas_view && v.canvas_view.webgl);
  }

  /** Empty plots keep axes and grid: the spec's invisible anchor renderers give the ranges an extent
   * while the raw source is empty (live: the last minute); once rows arrive they are hidden and the
   * ranges (only_visible) follow the data. */
  syncAnchors() {
    if (!this.doc || !this.spec || !this.source) return;
    const empty = !this.series.some((s) => s.source && (s.source.get_length() ?? 0) > 0);
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
    if (this.xRange && this.onRange) { try { this.xRange.change.disconnect(this.onRange); } catch {} }
    this.plot = null; this.xRange = null; this.onRange = null; this.drawnZoomed = false;
    if (this.views) {
      for (const v of [...this.views]) { try { v.remove(); } catch {} }
    }
    removeDocument(this.doc);
    this.views = null; this.doc = null; this.source = null; this.kind = null;
    this.series = []; this.splitter = null;
    this.entry.source = null; this.entry.sources = []; this.entry.bars = null; this.entry.document = null;
    this.marks.attach(null, null); this.entry.marks = null;
  }

  /** Rows the source keeps (its stream rollover). */
  get rollover() {
    const r = Number(this.spec && this.spec.rollover);
    return r > 0 ? r : Infinity;
  }

  /** Rows of one decoded frame (zero-copy views); `first`: the source position of its first row (header
   * position), `history`: a snapshot (never discarded), `seq`: the sequence number of its first batch.
   * Returns the rows taken (not discarded). */
  push(columns, rows, first = null, history = false, seq = null) {
    if (!this.spec || rows <= 0) return 0;
    const part = { columns, rows, first: Number.isFinite(first) ? first : null, history,
      seq: Number.isFinite(seq) ? seq : null };
    if (this.frozen) { this.frozenParts.push(part); return rows; }  // (a history too: it follows a clear)
    return this.ingest(part);
  }

  /** Into the window (and the kind's queue), up to the pause point. */
  ingest(part) {
    const t0 = performance.now();
    try { return this.ingestRows(part); } finally { this.entry.busyMs = (this.entry.busyMs || 0) + performance.now() - t0; }
  }

  ingestRows(part) {
    let n = part.rows;
    const later = part.seq !== null && this.stopSeq !== null && part.seq > this.stopSeq;  // released after the stop
    if (this.stopAt !== null && part.first !== null && !part.history && !later) n = Math.min(n, this.stopAt - part.first);
    if (n <= 0) { this.entry.rowsDiscarded = (this.entry.rowsDiscarded || 0) + part.rows; return 0; }
    if (n < part.rows) this.entry.rowsDiscarded = (this.entry.rowsDiscarded || 0) + part.rows - n;
    const pieces = this.splitter ? this.splitter.split(part.columns, n) : [{ columns: part.columns, rows: n }];
    pieces.forEach((piece, g) => {
      const s = this.series[g];
      if (!piece || !s) return;
      if (s.window) s.window.append(piece.columns, 0, piece.rows);
      s.dirty = true;
      if (!s.kind || !s.kind.needsRows) return;
      s.parts.push(piece);
      s.rows += piece.rows;
      // parts entirely before the rows the kind keeps can never reach the plot
      const keep = s.kind.keep(this.rollover);
      while (s.parts.length > 1 && s.rows - s.parts[0].rows >= keep) s.rows -= s.parts.shift().rows;
    });
    const ts = part.columns[this.spec.columns && this.spec.columns.length ? this.spec.columns[0] : "timestamp"];
    if (ts && ts.length) {
      const a = Number(ts[0]); const b = Number(ts[n - 1]);
      if (this.undrawnFrom === null) this.undrawnFrom = a;
      this.undrawnTo = b;
    }
    this.undrawnRows += n;
    this.undrawnBytes += n * 8 * ((this.spec.columns && this.spec.columns.length) || 1);
    this.dirty = true;
    this.schedule();
    return n;
  }

  /** Whether more frames may be acknowledged before the next draw: what is received and not yet drawn
   * stays within UNDRAWN_BYTES and UNDRAWN_DATA_MS of data time (a frozen plot always drains). */
  roomForMore() {
    if (this.frozen) return true;
    const span = this.undrawnFrom === null ? 0 : this.undrawnTo - this.undrawnFrom;
    return this.undrawnBytes <= UNDRAWN_BYTES && !(span > UNDRAWN_DATA_MS);
  }

  /** A pause (stop, seek, mode switch) was clicked: draw what arrived before, hold what arrives after. */
  freeze() {
    if (this.frozen) return;
    if (this.dirty && this.source && !this.held) this.draw();
    this.frozen = true;
    this.entry.freezes = (this.entry.freezes || 0) + 1;
    if (this.settleTimer) clearTimeout(this.settleTimer);
    this.settleTimer = setTimeout(() => { this.settleTimer = null; this.settle(null); }, SETTLE_TIMEOUT_MS);
  }

  /** The session stopped at `position` (rows before it were released; `seq`: its status's sequence
   * number): apply the held rows before it, discard rows from it on that were released before that
   * status, until resume(). null: no position known (apply what is held). */
  settle(position, seq = null) {
    if (this.settleTimer) { clearTimeout(this.settleTimer); this.settleTimer = null; }
    const parts = this.frozenParts;
    if (this.frozen) this.entry.settledAt = performance.now();  // (tests: when the click's answer came)
    const clear = this.frozenClear; const marks = this.frozenMarks;
    this.frozenParts = []; this.frozen = false; this.frozenClear = false; this.frozenMarks = [];
    if (clear) this.clear();
    for (const [m, replace] of marks) { this.marks.add(m, replace); this.dirty = true; }
    if (Number.isFinite(position) && position !== null) {
      this.stopAt = Number(position);
      this.stopSeq = Number.isFinite(seq) && seq !== null ? Number(seq) : null;
    }
    for (const p of parts) this.ingest(p);
    if (this.dirty && this.source && !this.held) this.draw();  // the picture reaches the pause point now
  }

  /** Play (or step) again: rows flow. */
  resume() {
    if (this.frozen) this.settle(null);
    this.stopAt = null; this.stopSeq = null;
  }

  /** Empty the plot (a new stream: reset or history); drawn at the next frame with the rows that arrive
   * meanwhile (no blank frame between a reset and its history). */
  clear() {
    if (this.frozen) {  // (a resync or a reset raced the click) what the user sees stays until settle()
      this.frozenParts = []; this.frozenClear = true; this.frozenMarks = [];
      return;
    }
    // (stopAt stays: rows released before the stop are still cut; later ones pass by their seq)
    for (const s of this.series) {
      if (s.window) s.window.clear();
      s.parts = []; s.rows = 0;
      if (s.kind) s.kind.clear(false);
    }
    this.marks.clear();
    this.pendingClear = true;
    this.dirty = true;
    this.schedule();
  }

  /** Marks of a `marks` message (`replace`: the session's current ones), drawn at the next frame. */
  addMarks(marks, replace = false) {
    if (this.frozen) { this.frozenMarks.push([marks, replace]); return; }  // with the rows they are on
    this.marks.add(marks, replace);
    this.dirty = true;
    this.schedule();
  }

  /** Defer draws until release() (a history frame follows: the clear waits for its rows). */
  hold() { this.held = true; }

  release() {
    if (!this.held) return;
    this.held = false;
    // the session is not playing (stopAt: a pause's resync, no rows follow): the picture reaches it now,
    // not at the next animation frame
    if (this.stopAt !== null && !this.frozen && this.dirty && this.source) { this.draw(); return; }
    this.schedule();
  }

  schedule() {
    if (this.scheduled || this.held || !this.dirty || !this.source) return;
    this.scheduled = true;
    this.scheduledAt = performance.now();
    let done = false;
    const run = (t) => { if (done) return; done = true; this.scheduled = false; this.flush(t); };
    requestAnimationFrame(run);
    setTimeout(run, 250);  // background tabs get no animation frames
  }

  /** The animation frame's draw, unless the page is behind (then the next frame draws it all). */
  flush(t) {
    if (!this.source || this.held || !this.dirty) return;
    if (typeof t === "number") {  // an animation frame this long after it was asked for: the page is behind
      if (t - this.scheduledAt > LATE_FRAME_MS && this.skipped < MAX_SKIPPED) {
        this.skipped += 1;
        this.entry.framesSkipped = (this.entry.framesSkipped || 0) + 1;
        this.schedule();
        return;
      }
    }
    this.skipped = 0;
    this.draw();
  }

  /** One update of BokehJS: a pending clear, the kind's rows, the decimated visible window. */
  draw() {
    const t0 = performance.now();
    const clear = this.pendingClear;
    this.pendingClear = false;
    const zoomed = this.zoomed();
    const r = this.xRange;
    const width = this.pixelWidth();
    const all = clear || zoomed || this.drawnZoomed || width !== this.drawnWidth;  // else: changed series only
    let points = 0; let windowRows = 0;
    for (const s of this.series) {
      if (clear && s.kind) s.kind.clear(true);
      if (s.parts.length && s.kind) s.kind.update(s.parts);
      s.parts = []; s.rows = 0;
      if (s.window) windowRows += s.window.length;
      if (!s.window || !s.source || !(all || s.dirty)) continue;
      const out = decimate(s.window, zoomed ? r.start : null, zoomed ? r.end : null, width,
        Math.max(4 * width, DRAW_ALL_ROWS));
      s.source.data = out.data;
      s.points = out.points;
      s.dirty = false;
    }
    for (const s of this.series) points += s.points || 0;
    this.marks.draw(this.series.length ? this.series[0].window : null);  // (a mark with no value: on the first series)
    this.drawnZoomed = zoomed;
    this.drawnWidth = width;
    const rows = this.undrawnRows;
    const e = this.entry;
    e.streamCalls += 1;
    e.rowsStreamed += rows;
    e.windowRows = windowRows;
    e.pointsDrawn = points;
    e.plotWidth = width;
    this.undrawnRows = 0; this.undrawnBytes = 0; this.undrawnFrom = null; this.undrawnTo = null;
    this.dirty = false;
    this.syncAnchors();
    e.drawMs = performance.now() - t0;
    e.busyMs = (e.busyMs || 0) + e.drawMs;  // (benchmarks: the widget's own main-thread time)
    if (typeof e.onApply === "function") { try { e.onApply(rows, e.pointsDrawn); } catch {} }
    if (this.onFlush) this.onFlush();
  }
}
