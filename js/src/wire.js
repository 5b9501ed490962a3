// Binary wire frames (jupyter_replay/wire.py): u32 header length, JSON header, 8-aligned column bytes.
// Columns are decoded as views of the frame (no copies). Text/categorical columns travel as int32 codes
// plus a dictionary delta; a Dictionaries instance holds one stream's dictionaries.

const TYPED = {
  float64: Float64Array, float32: Float32Array,
  int64: globalThis.BigInt64Array, uint64: globalThis.BigUint64Array,
  int32: Int32Array, uint32: Uint32Array, int16: Int16Array, uint16: Uint16Array,
  int8: Int8Array, uint8: Uint8Array,
};

/** The dictionaries of one stream (one socket connection or one comm): column name -> values.
 * A column entry's `dictionary: {base, values}` appends `values` at index `base`; base 0 replaces the
 * column's dictionary (the encoder starts afresh on histories, resyncs and at its size cap). A new
 * stream (reconnect) starts with a new instance. */
export class Dictionaries {
  constructor() { this.columns = new Map(); }

  /** Apply one column's delta; returns the column's dictionary (an array of strings). */
  apply(name, delta) {
    const base = Number(delta && delta.base) || 0;
    const values = (delta && Array.isArray(delta.values)) ? delta.values : [];
    let dict = base === 0 ? null : this.columns.get(name);
    if (!dict) { dict = []; this.columns.set(name, dict); }
    // a view that joined mid-stream may miss earlier values (its history frame, base 0, follows):
    // unknown codes decode as null until then
    if (dict.length > base) dict.length = base;
    while (dict.length < base) dict.push(null);
    for (const v of values) dict.push(v);
    return dict;
  }

  clear() { this.columns.clear(); }
}

/** Strings for int32 `codes` (-1 or unknown = null). */
export function decodeCodes(codes, dict) {
  const out = new Array(codes.length);
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i];
    out[i] = c >= 0 && c < dict.length ? dict[c] : null;
  }
  return out;
}

/** Decode one binary frame: {header, columns: {name: TypedArray | string[]}, codes: {name: Int32Array}}.
 * Numeric columns are aligned views (no copies); dictionary columns are decoded to strings (their codes
 * stay available in `codes`). Without `dicts` a frame-local dictionary is used (deltas are not kept). */
export function decodeFrame(data, dicts = new Dictionaries()) {
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
  const codes = {};
  for (const spec of header.columns || []) {
    const Ctor = TYPED[spec.dtype];
    if (!Ctor) continue;
    const arr = new Ctor(ab, start + spec.offset, rows);
    if (spec.dictionary && arr instanceof Int32Array) {
      codes[spec.name] = arr;
      columns[spec.name] = decodeCodes(arr, dicts.apply(spec.name, spec.dictionary));
    } else columns[spec.name] = arr;
  }
  return { header, columns, codes };
}
