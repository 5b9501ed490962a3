// M4 decimation (Jugel et al., "M4: a visualization-oriented time series data aggregation", VLDB 2014; as in
// plotly-resampler's MinMax aggregators and HoloViews' downsample1d "minmax"): for each pixel column of the
// visible x-range keep the first, last, min and max row of every value column. A line through those rows
// is drawn with the same pixels as one through every row, spikes included, and BokehJS gets at most
// 4 x width points per value column whatever the window holds.
//
// NaN values (a merged stream's columns are NaN on the other stream's rows) are skipped: first and last are
// each column's first and last non-NaN rows, and in the output a column's NaN rows are bridged by the
// straight line between its neighbouring values (what a line skipping those rows draws), so a sparse
// series is drawn as a line, never as isolated points or vertical bars.
import { BLOCK } from "./window.js";

/** First index in [lo, hi) with x[i] >= v (hi if none); x sorted. */
export function lowerBound(x, lo, hi, v) {
  while (lo < hi) { const m = (lo + hi) >>> 1; if (x[m] < v) lo = m + 1; else hi = m; }
  return lo;
}

/** First index in [lo, hi) with x[i] > v (hi if none); x sorted. */
export function upperBound(x, lo, hi, v) {
  while (lo < hi) { const m = (lo + hi) >>> 1; if (x[m] <= v) lo = m + 1; else hi = m; }
  return lo;
}

/** Push the indices of the min and max of y over [a, b) (NaN skipped) onto `out`; whole blocks of
 * `blk` ({min, max, imin, imax} per BLOCK rows, see window.js) are read from their aggregates. */
function extrema(y, blk, a, b, out) {
  let mn = Infinity; let mx = -Infinity; let imn = -1; let imx = -1;
  let i = a;
  if (blk && b - a >= 2 * BLOCK) {
    const first = Math.ceil(a / BLOCK) * BLOCK;
    for (; i < first; i++) { const v = y[i]; if (v < mn) { mn = v; imn = i; } if (v > mx) { mx = v; imx = i; } }
    for (let k = first / BLOCK; (k + 1) * BLOCK <= b; k++) {
      if (blk.min[k] < mn) { mn = blk.min[k]; imn = blk.imin[k]; }
      if (blk.max[k] > mx) { mx = blk.max[k]; imx = blk.imax[k]; }
      i = (k + 1) * BLOCK;
    }
  }
  for (; i < b; i++) { const v = y[i]; if (v < mn) { mn = v; imn = i; } if (v > mx) { mx = v; imx = i; } }
  if (imn >= 0) out.push(imn);
  if (imx >= 0) out.push(imx);
}

/** First index in [a, b) where y is not NaN (-1 if none); whole blocks without a value (imin < 0) are
 * skipped. */
export function firstValue(y, blk, a, b) {
  let i = a;
  while (i < b) {
    if (blk && i % BLOCK === 0 && i + BLOCK <= b && blk.imin[i / BLOCK] < 0) { i += BLOCK; continue; }
    if (y[i] === y[i]) return i;
    i += 1;
  }
  return -1;
}

/** Last index in [a, b) where y is not NaN (-1 if none). */
export function lastValue(y, blk, a, b) {
  let i = b - 1;
  while (i >= a) {
    const k = (i + 1) / BLOCK;
    if (blk && (i + 1) % BLOCK === 0 && i + 1 - BLOCK >= a && blk.imin[k - 1] < 0) { i -= BLOCK; continue; }
    if (y[i] === y[i]) return i;
    i -= 1;
  }
  return -1;
}

/** Fill NaN runs of `ys` (output values at output times `xs`; output row k is window row rowAt(k)) by
 * linear interpolation between the column's neighbouring values (outside the output too: the window's
 * nearest values before and after). Leading/trailing NaN with no value beyond stay NaN. */
function bridge(win, j, xs, ys, rowAt) {
  const n = ys.length;
  const y = win.ys[j]; const blk = win.blocks ? win.blocks[j] : null;
  let px = NaN; let py = NaN;  // the value before the current run
  let from = -1;  // start of the current NaN run
  for (let k = 0; k <= n; k++) {
    if (k < n && ys[k] !== ys[k]) { if (from < 0) from = k; continue; }
    if (from >= 0) {
      let ax = px; let ay = py; let bx = NaN; let by = NaN;
      if (from === 0) { const i = lastValue(y, blk, win.start, rowAt(0)); if (i >= 0) { ax = win.x[i]; ay = y[i]; } }
      if (k < n) { bx = xs[k]; by = ys[k]; } else {
        const i = firstValue(y, blk, rowAt(n - 1) + 1, win.end);
        if (i >= 0) { bx = win.x[i]; by = y[i]; }
      }
      if (ay === ay && by === by) {
        for (let m = from; m < k; m++) ys[m] = bx > ax ? ay + (by - ay) * (xs[m] - ax) / (bx - ax) : ay;
      }
      from = -1;
    }
    if (k < n) { px = xs[k]; py = ys[k]; }
  }
}

/** M4 row indices (ascending, unique) of rows [i0, i1) drawn over x in [x0, x1] on `width` pixel columns.
 * `ys`: value columns; `blocks`: their block aggregates (or null). Rows left of x0 / right of x1 (the
 * neighbours that carry the line to the edge) form their own groups. Unsorted x: columns by row index. */
export function m4Indices(x, ys, blocks, i0, i1, x0, x1, width, sorted = true) {
  const out = [];
  const group = [];
  const emit = (a, b) => {
    group.length = 0;
    group.push(a, b - 1);
    for (let j = 0; j < ys.length; j++) {
      const blk = blocks ? blocks[j] : null;
      const f = firstValue(ys[j], blk, a, b);
      if (f >= 0) group.push(f, lastValue(ys[j], blk, f, b));
      extrema(ys[j], blk, a, b, group);
    }
    group.sort((p, q) => p - q);
    let prev = -1;
    for (const i of group) if (i !== prev) { out.push(i); prev = i; }
  };
  width = Math.max(1, Math.floor(width));
  if (!sorted || !(x1 > x0)) {
    const step = (i1 - i0) / width;
    for (let c = 0; c < width; c++) {
      const a = i0 + Math.floor(c * step); const b = i0 + Math.floor((c + 1) * step);
      if (b > a) emit(a, b);
    }
    return Int32Array.from(out);
  }
  const dx = (x1 - x0) / width;
  let a = i0;
  while (a < i1) {
    const v = x[a];
    let b;
    if (!(v >= x0)) b = v < x0 ? lowerBound(x, a + 1, i1, x0) : a + 1;  // left of the range (or NaN)
    else if (v > x1) b = i1;
    else {
      const c = Math.min(width - 1, Math.floor((v - x0) / dx));
      b = c === width - 1 ? upperBound(x, a + 1, i1, x1) : lowerBound(x, a + 1, i1, x0 + (c + 1) * dx);
    }
    emit(a, b);
    a = b;
  }
  return Int32Array.from(out);
}

/** Columns for BokehJS from a RowWindow: the M4 decimation of the rows in [x0, x1] (null: the whole
 * window) at `width` pixels, plus the neighbour row on each side; every row when there are at most
 * `drawAll` (default 4 x width: no more than M4 would give).
 * Returns {data: {name: Float64Array}, rows: rows represented, points: rows drawn}. */
export function decimate(win, x0, x1, width, drawAll = 4 * Math.max(1, Math.floor(width))) {
  const { start, end, x } = win;
  let i0 = start; let i1 = end;
  if (win.sorted && x0 != null && x1 != null && end > start) {
    i0 = Math.max(start, lowerBound(x, start, end, x0) - 1);
    i1 = Math.min(end, upperBound(x, start, end, x1) + 1);
  } else if (end > start) { x0 = x[start]; x1 = x[end - 1]; }
  const names = [win.xName, ...win.yNames];
  const cols = [x, ...win.ys];
  const data = {};
  const n = i1 - i0;
  let rowAt; let points;
  if (n <= drawAll) {
    names.forEach((name, j) => { data[name] = cols[j].slice(i0, i1); });
    rowAt = (k) => i0 + k; points = n;
  } else {
    const idx = m4Indices(x, win.ys, win.blocks, i0, i1, x0, x1, width, win.sorted);
    names.forEach((name, j) => {
      const src = cols[j]; const col = new Float64Array(idx.length);
      for (let k = 0; k < idx.length; k++) col[k] = src[idx[k]];
      data[name] = col;
    });
    rowAt = (k) => idx[k]; points = idx.length;
  }
  if (points > 0) win.yNames.forEach((name, j) => bridge(win, j, data[win.xName], data[name], rowAt));
  return { data, rows: n, points };
}
