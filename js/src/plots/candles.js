// Plot kind "ohlc": candles (and a volume panel) built in the browser from every streamed row into the
// series' bars source (time open high low close volume dir): with `spec.ohlc` (open, high, low, close
// columns) every row is a bar; otherwise the price column is bucketed by the series' bar width of data time.
import { emptyData, num } from "./columns.js";

const BAR_KEYS = ["time", "open", "high", "low", "close", "volume", "dir"];

export class CandlesPlot {
  static kind = "ohlc";

  /** Candles are built from every row (not from the decimated window). */
  needsRows = true;

  /** Series `group` (its bars source: `spec.bar_sources[group]`); `bars`: that ColumnDataSource given. */
  constructor(spec, doc, group = 0, bars = null) {
    this.spec = spec;
    const name = (spec.bar_sources || [spec.bars])[group];
    this.bars = bars || (name && doc ? doc.get_model_by_name(name) : null);
    this.width = Number((spec.bar_widths || [])[group]) || spec.bar_ms;
    this.lastBar = null;  // the open (last) candle, patched while its interval lasts
  }

  /** Rows queued between draws worth keeping (candles need every row of a bar: more than the window). */
  keep(rollover) { return Math.max(rollover * 2, 1 << 20); }

  clear(now) {
    this.lastBar = null;
    if (now && this.bars) this.bars.data = emptyData(this.bars);
  }

  /** Candles from every queued row (read from the frames' views, no copies). */
  update(parts) {
    if (!this.bars) return;
    if (this.spec.ohlc) { this.rowBars(parts); return; }
    const spec = this.spec;
    const w = this.width;
    let cur = this.lastBar ? { ...this.lastBar } : null;
    const wasOpen = this.lastBar ? this.lastBar.time : null;
    const done = [];
    for (const part of parts) {
      const t = part.columns.timestamp; const p = part.columns[spec.price];
      const v = spec.volume ? part.columns[spec.volume] : null;
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
      this.stream(done.slice(k));
    }
    this.lastBar = cur;
  }

  stream(bars) {
    const out = {};
    for (const key of BAR_KEYS) out[key] = Float64Array.from(bars, (b) => b[key]);
    this.bars.stream(out, this.spec.bar_rollover);
  }

  /** One bar per row from the open, high, low, close columns (rows missing any of them are skipped:
   * merged streams leave them NaN on the other stream's rows). */
  rowBars(parts) {
    const spec = this.spec;
    const done = [];
    for (const part of parts) {
      const t = part.columns.timestamp;
      const [o, h, l, c] = spec.ohlc.map((name) => part.columns[name]);
      const v = spec.volume ? part.columns[spec.volume] : null;
      if (!t || !o || !h || !l || !c) continue;
      for (let i = 0; i < part.rows; i++) {
        const b = { time: num(t[i]), open: num(o[i]), high: num(h[i]), low: num(l[i]), close: num(c[i]) };
        if (!(Number.isFinite(b.open) && Number.isFinite(b.high) && Number.isFinite(b.low) && Number.isFinite(b.close))) continue;
        const vi = v ? num(v[i]) : 1;
        b.volume = Number.isFinite(vi) ? vi : 0;
        b.dir = b.close >= b.open ? 1 : -1;
        done.push(b);
      }
    }
    if (done.length) this.stream(done);
  }
}
