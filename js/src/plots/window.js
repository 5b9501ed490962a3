// The plot's full-resolution window: the last `rollover` rows (the session's buffer_rows) of the plotted
// columns as Float64Arrays, with per-block min/max (BLOCK rows) of every value column so a decimation
// (m4.js) reads O(rows / BLOCK + pixels x BLOCK) values instead of every row. Appends are O(rows);
// rolling off old rows is an occasional copy (amortised O(1) per row: the arrays hold up to ~2x rollover).
import { num } from "./columns.js";

export const BLOCK = 64;

export class RowWindow {
  /** `x`: the time column name; `ys`: the value columns; `rollover`: rows kept. */
  constructor(x, ys, rollover) {
    this.xName = x;
    this.yNames = ys;
    this.rollover = Math.max(1, Math.min(Number(rollover) || Infinity, 1 << 27));
    this.cap = 0;
    this.x = new Float64Array(0);
    this.ys = ys.map(() => new Float64Array(0));
    this.blocks = ys.map(() => ({ min: new Float64Array(0), max: new Float64Array(0),
      imin: new Int32Array(0), imax: new Int32Array(0) }));
    this.start = 0;  // rows [start, end) are the window
    this.end = 0;
    this.sorted = true;  // x never decreases (binary searches by time are valid)
  }

  get length() { return this.end - this.start; }

  clear() { this.start = 0; this.end = 0; this.sorted = true; }

  /** Make room for `n` more rows: drop rows that roll off (block-aligned) and grow up to ~2x rollover. */
  reserve(n) {
    if (this.end + n <= this.cap) return;
    const keepFrom = Math.max(this.start, this.end + n - this.rollover);
    const shift = Math.floor(keepFrom / BLOCK) * BLOCK;
    const need = this.end - shift + n;
    if (need > this.cap) {
      const cap = Math.ceil(Math.max(need, Math.min(this.cap * 2 || 4096, 2 * this.rollover + BLOCK)) / BLOCK) * BLOCK;
      const grow = (old, Ctor, len) => { const a = new Ctor(len); a.set(old.subarray(0, Math.min(old.length, len))); return a; };
      this.x = grow(this.x, Float64Array, cap);
      this.ys = this.ys.map((y) => grow(y, Float64Array, cap));
      const nb = cap / BLOCK;
      this.blocks = this.blocks.map((b) => ({ min: grow(b.min, Float64Array, nb), max: grow(b.max, Float64Array, nb),
        imin: grow(b.imin, Int32Array, nb), imax: grow(b.imax, Int32Array, nb) }));
      this.cap = cap;
    }
    if (shift > 0) {
      this.x.copyWithin(0, shift, this.end);
      for (const y of this.ys) y.copyWithin(0, shift, this.end);
      const k = shift / BLOCK; const nb = Math.ceil(this.end / BLOCK);
      for (const b of this.blocks) {
        b.min.copyWithin(0, k, nb); b.max.copyWithin(0, k, nb);
        b.imin.copyWithin(0, k, nb); b.imax.copyWithin(0, k, nb);
        for (let i = 0; i < nb - k; i++) { b.imin[i] -= shift; b.imax[i] -= shift; }
      }
      this.start -= shift; this.end -= shift;
    }
  }

  /** Append rows [from, from + n) of decoded wire columns ({name: TypedArray | string[]}). */
  append(columns, from, n) {
    if (n <= 0) return;
    if (n > this.rollover) { from += n - this.rollover; n = this.rollover; }
    this.reserve(n);
    const at = this.end;
    copyColumn(this.x, at, columns[this.xName], from, n);
    if (this.sorted) {
      const x = this.x;
      for (let i = at > this.start ? at : at + 1; i < at + n; i++) if (x[i] < x[i - 1]) { this.sorted = false; break; }
    }
    for (let j = 0; j < this.ys.length; j++) {
      const y = this.ys[j]; const b = this.blocks[j];
      copyColumn(y, at, columns[this.yNames[j]], from, n);
      for (let i = at; i < at + n; i++) {
        const k = (i / BLOCK) | 0;
        if (i % BLOCK === 0) { b.min[k] = Infinity; b.max[k] = -Infinity; b.imin[k] = -1; b.imax[k] = -1; }
        const v = y[i];
        if (v < b.min[k]) { b.min[k] = v; b.imin[k] = i; }
        if (v > b.max[k]) { b.max[k] = v; b.imax[k] = i; }
      }
    }
    this.end = at + n;
    if (this.end - this.start > this.rollover) this.start = this.end - this.rollover;
  }
}

function copyColumn(out, at, arr, from, n) {
  if (!arr || Array.isArray(arr)) { out.fill(NaN, at, at + n); return; }
  const big = arr instanceof globalThis.BigInt64Array || arr instanceof globalThis.BigUint64Array;
  if (!big) { out.set(from === 0 && arr.length === n ? arr : arr.subarray(from, from + n), at); return; }
  for (let i = 0; i < n; i++) out[at + i] = num(arr[from + i]);
}
