// Column copies for BokehJS: only the rows a source keeps, as Float64Array (numbers) or arrays (text).

export const num = (x) => (typeof x === "bigint" ? Number(x) : x);

const isText = (arr) => Array.isArray(arr);  // a dictionary column, decoded to strings

/** Copy `len` values of `arr` from `from` into `out` at `at` (NaN / null if `arr` is missing). */
function copyInto(out, at, arr, from, len) {
  if (!arr) { out.fill(out instanceof Float64Array ? NaN : null, at, at + len); return; }
  if (!(out instanceof Float64Array)) {
    for (let i = 0; i < len; i++) out[at + i] = isText(arr) ? arr[from + i] : num(arr[from + i]);
    return;
  }
  if (isText(arr)) { out.fill(NaN, at, at + len); return; }
  const src = from === 0 && arr.length === len ? arr : arr.subarray(from, from + len);
  if (src instanceof globalThis.BigInt64Array || src instanceof globalThis.BigUint64Array) {
    for (let i = 0; i < len; i++) out[at + i] = Number(src[i]);
  } else out.set(src, at);
}

/** The last `n` rows of queued parts ([{columns: {name: TypedArray view | string[]}, rows}]) per name:
 * Float64Array for numeric columns, an array for text columns; earlier rows are never copied. */
export function tailColumns(parts, names, n) {
  let first = parts.length;
  let need = n;
  while (need > 0 && first > 0) need -= parts[--first].rows;
  const skip = need < 0 ? -need : 0;  // rows of parts[first] before the tail
  const out = {};
  for (const name of names) {
    let text = false;
    for (let i = first; i < parts.length && !text; i++) text = isText(parts[i].columns[name]);
    const col = text ? new Array(n) : new Float64Array(n);
    let at = 0;
    for (let i = first; i < parts.length; i++) {
      const from = i === first ? skip : 0;
      const len = parts[i].rows - from;
      copyInto(col, at, parts[i].columns[name], from, len);
      at += len;
    }
    out[name] = col;
  }
  return out;
}

/** Empty columns for every column of a Bokeh ColumnDataSource. */
export function emptyData(source) {
  const out = {};
  const data = source.data;
  const keys = data instanceof Map ? [...data.keys()] : Object.keys(data);
  for (const k of keys) out[k] = new Float64Array(0);
  return out;
}
