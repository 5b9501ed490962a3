// `by=` (widgets/plots/groups.py): one series per group. Each frame's rows are split by the group column
// once, into one part per group holding only the columns a series draws (gathered copies: a group's rows
// are scattered through the frame). Text columns arrive decoded to strings, integer ones as numbers or
// BigInts; rows of a group not in the spec's list are not drawn.
import { num } from "./columns.js";

/** The columns a series reads from a row: its window's, the kind's (ohlc, price, volume). */
export function seriesColumns(spec) {
  const names = [...(spec.columns || []), ...(spec.ohlc || []), spec.price, spec.volume];
  return [...new Set(names.filter((n) => typeof n === "string" && n))];
}

function gather(arr, idx) {
  if (Array.isArray(arr)) return Array.from(idx, (i) => arr[i]);
  const out = new Float64Array(idx.length);
  for (let k = 0; k < idx.length; k++) out[k] = num(arr[idx[k]]);
  return out;
}

export class GroupSplit {
  /** `by`: the group column; `groups`: the group values in series order; `names`: the columns to keep. */
  constructor(by, groups, names) {
    this.by = by;
    this.index = new Map((groups || []).map((g, i) => [g, i]));
    this.count = (groups || []).length;
    this.names = names;
  }

  /** Rows [0, n) of decoded `columns`, per group: [{columns, rows} | null] in series order. */
  split(columns, n) {
    const out = new Array(this.count).fill(null);
    const col = columns[this.by];
    if (!col || n <= 0) return out;
    const which = new Int32Array(n);
    const counts = new Int32Array(this.count);
    for (let i = 0; i < n; i++) {
      const g = this.index.get(num(col[i]));
      if (g === undefined) which[i] = -1; else { which[i] = g; counts[g] += 1; }
    }
    const idx = Array.from(counts, (c) => new Int32Array(c));
    const at = new Int32Array(this.count);
    for (let i = 0; i < n; i++) { const g = which[i]; if (g >= 0) idx[g][at[g]++] = i; }
    for (let g = 0; g < this.count; g++) {
      if (!counts[g]) continue;
      const cols = {};
      for (const name of this.names) if (columns[name]) cols[name] = gather(columns[name], idx[g]);
      out[g] = { columns: cols, rows: counts[g] };
    }
    return out;
  }
}
