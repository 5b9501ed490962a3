// The marks layer of one plot (r.mark(...), marks returned by on_batch callbacks): the spec's marks source
// (widgets/plot_marks.py, named spec.marks) drawn as triangles (buy: green ▲ below the value, sell: red ▼
// above it) and text labels. Marks arrive as `marks` messages ({time_ms, y, text, side}); they wait here
// until the plot's next draw, where a mark without y takes the plotted value at its time (the window's
// last row at or before it; a mark whose row has not arrived yet waits for it). Cleared with the plot.

const BUY = { glyph: "▲", color: "#2e7d32", offset: 14 };  // screen pixels: positive is down
const SELL = { glyph: "▼", color: "#c62828", offset: -14 };
const LABEL_GAP = 16;  // the label sits beyond the triangle (or on the value when there is no side)
const MAX_MARKS = 10_000;  // the session keeps at most this many marks (controls.MAX_MARKS)

function emptyMarks() {
  return { x: [], y: [], glyph: [], color: [], glyph_offset: [], text: [], text_offset: [] };
}

/** The plotted value at `t` (ms): the window's first value column at its last row at or before `t`;
 * the first row's value before the window; NaN when the row has not arrived (or nothing is plotted). */
export function valueAt(win, t) {
  if (!win || !win.length || !win.ys.length) return NaN;
  const x = win.x; const y = win.ys[0];
  if (!win.sorted) {  // rows out of time order: the latest time at or before t, by a scan
    let best = -1; let newest = -Infinity; let first = win.start;
    for (let i = win.start; i < win.end; i++) {
      if (x[i] <= t && (best < 0 || x[i] >= x[best])) best = i;
      if (x[i] < x[first]) first = i;
      if (x[i] > newest) newest = x[i];
    }
    if (t > newest) return NaN;
    return best >= 0 ? y[best] : y[first];
  }
  let lo = win.start; let hi = win.end - 1;
  if (t > x[hi]) return NaN;
  if (t <= x[lo]) return y[lo];
  while (lo < hi) {  // last index with x <= t
    const mid = (lo + hi + 1) >> 1;
    if (x[mid] <= t) lo = mid; else hi = mid - 1;
  }
  return y[lo];
}

export class MarksLayer {
  constructor() {
    this.source = null;
    this.all = [];  // every mark since the last clear (a newly embedded plot draws them again)
    this.pending = [];  // received, not yet drawn
    this.shown = 0;  // marks in the source
    this.needsClear = false;
  }

  /** Draw into the marks source of a newly embedded spec (null: none): every mark is drawn there again. */
  attach(spec, doc) {
    let src = null;
    try { src = spec && spec.marks && doc ? doc.get_model_by_name(spec.marks) : null; } catch { src = null; }
    this.source = src;
    this.shown = 0;
    this.needsClear = false;
    this.pending = [...this.all];
  }

  /** Marks of a `marks` message (`replace`: the session's current marks, after a history). */
  add(marks, replace = false) {
    if (replace) this.clear();
    for (const m of marks || []) {
      if (m && Number.isFinite(Number(m.time_ms)) && this.all.length < MAX_MARKS) { this.all.push(m); this.pending.push(m); }
    }
  }

  clear() { this.all = []; this.pending = []; this.shown = 0; this.needsClear = true; }

  get dirty() { return this.needsClear || this.pending.length > 0; }

  /** At the plot's draw: a pending clear, then every pending mark whose value is known by now. */
  draw(win) {
    if (!this.source) return;
    if (this.needsClear) { this.source.data = emptyMarks(); this.needsClear = false; }
    if (!this.pending.length) return;
    const out = emptyMarks(); const wait = [];
    for (const m of this.pending) {
      const t = Number(m.time_ms);
      const y = m.y !== null && m.y !== undefined ? Number(m.y) : valueAt(win, t);
      if (!Number.isFinite(y)) { wait.push(m); continue; }
      const side = m.side === "buy" ? BUY : m.side === "sell" ? SELL : null;
      out.x.push(t); out.y.push(y);
      out.glyph.push(side ? side.glyph : "");
      out.color.push(side ? side.color : "#333333");
      out.glyph_offset.push(side ? side.offset : 0);
      out.text.push(m.text ? String(m.text) : "");
      out.text_offset.push(side ? side.offset + Math.sign(side.offset) * LABEL_GAP : 0);
    }
    this.pending = wait;
    if (!out.x.length) return;
    this.source.stream(out);
    this.shown += out.x.length;
  }
}
