// One embedded Bokeh plot fed by streamed rows: rows are queued (views of the received frames) and reach
// the raw ColumnDataSource through at most one stream() per animation frame, only the last `rollover`
// rows (the source keeps no more). The plot kind (line, candles) draws whatever else it needs.
import { removeDocument } from "../bokeh.js";
import { emptyData, tailColumns } from "./columns.js";

export class StreamPlot {
  /** `kindFor(spec)`: the plot kind class for a spec (plots/index.js). */
  constructor(container, entry, kindFor) {
    this.container = container;
    this.entry = entry;
    this.kindFor = kindFor;
    this.spec = null;
    this.views = null;
    this.doc = null;
    this.source = null;
    this.kind = null;  // the plot kind's instance (LinePlot, CandlesPlot)
    this.queue = [];  // [{columns: {name: TypedArray view of the received frame}, rows}]
    this.queued = 0;
    this.pendingClear = false;  // cleared at the next flush, together with the rows that follow
    this.held = false;  // no flush until release(): a history frame is announced (reset + history = one update)
    this.onFlush = null;  // called after each flush (the socket acknowledges its frames then)
    this.scheduled = false;
    this.generation = 0;
    this.anchorsShown = null;  // whether the empty-plot anchors are shown (null: not applied yet)
  }

  async embed(spec) {
    const gen = ++this.generation;
    this.destroyViews();
    this.spec = spec;
    this.queue = []; this.queued = 0; this.pendingClear = false; this.held = false;
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
    const Kind = this.kindFor(spec);
    this.kind = new Kind(spec, this.doc);
    this.entry.source = this.source;
    this.entry.bars = this.kind.bars || null;
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
    this.views = null; this.doc = null; this.source = null; this.kind = null;
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
    // Parts entirely before the rows the kind keeps can never reach the plot: let them go (a hidden tab
    // runs no animation frames).
    const keep = this.kind ? this.kind.keep(this.rollover) : this.rollover;
    while (this.queue.length > 1 && this.queued - this.queue[0].rows >= keep) this.queued -= this.queue.shift().rows;
    this.schedule();
  }

  /** Empty the plot; applied at the next flush with the rows that arrive meanwhile (no blank frame between
   * a reset and its history). */
  clear() {
    this.queue = []; this.queued = 0;
    if (this.kind) this.kind.clear(false);
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
      if (this.kind) this.kind.clear(true);
    }
    if (total > 0) {
      this.source.stream(tailColumns(parts, this.spec.columns, n), this.spec.rollover);
      if (this.kind) this.kind.update(parts);
      this.entry.streamCalls += 1;
      this.entry.rowsStreamed += n;
    }
    this.syncAnchors();
    if (this.onFlush) this.onFlush();
  }
}
