// The status shown: the session status (kernel trait or server messages) moved on by the rows received
// since, and the one-line summary under the control bar.

const INT_FORMAT = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

export function fmtInt(n) {
  return Number.isFinite(n) ? INT_FORMAT.format(Math.round(n)) : "0";
}

export function fmtTime(status) {
  let iso = status && status.position_iso;
  // at the end there is no next row: show the replay clock's data time (the last row released)
  if (!iso && status && Number.isFinite(Number(status.time_ns)) && status.time_ns !== null) {
    iso = new Date(Number(status.time_ns) / 1e6).toISOString();
  }
  if (!iso) return "--";
  return String(iso).replace("T", " ").replace(/\+00:00$|Z$/, "").slice(0, 23);
}

/** The last status received plus the rows of events after it: the server sends status on transitions
 * only, so between them the position (slider, time label) moves with the rows this view receives. */
export class StatusStore {
  constructor() { this.status = null; this.rowsAfter = 0; this.lastTsMs = null; }

  set(st) { if (st) { this.status = st; this.rowsAfter = 0; } }

  /** Rows of a live (not history) frame; `lastTsMs`: its last row's time (ms) or null; `seq`: the frame's
   * (last) sequence number. Rows released before the status (in flight when it was sent, e.g. the last
   * frames of a replay that finished at speed max) are in its position already: not counted again. */
  addRows(rows, lastTsMs, seq = null) {
    const st = this.status;
    if (st && st.seq != null && seq != null && Number(seq) <= Number(st.seq)) return;
    this.rowsAfter += rows;
    if (lastTsMs != null) this.lastTsMs = lastTsMs;
  }

  reset() { this.rowsAfter = 0; this.lastTsMs = null; }

  /** The status now (null before any status arrived). */
  current() {
    const st = this.status;
    if (!st || !this.rowsAfter) return st;
    const pos = (Number(st.position) || 0) + this.rowsAfter;
    const out = { ...st, position: pos };
    const cap = Number(st.buffer_capacity) || Infinity;
    out.buffer_rows = Math.min(cap, (Number(st.buffer_rows) || 0) + this.rowsAfter);
    if (this.lastTsMs != null && Number.isFinite(this.lastTsMs)) out.position_iso = new Date(this.lastTsMs).toISOString();
    if (st.mode !== "live" && Number(st.num_rows) > 0) out.progress = Math.min(1, pos / Number(st.num_rows));
    return out;
  }
}

/** Frames merged for a slow display (no data lost) and rows really dropped, from the status and this
 * view's own `merged` messages (older servers: `dropped`). */
export function flowCounts(st, entry) {
  const merged = Number(st.frames_merged ?? st.dropped) || 0;
  const rows = Number(st.rows_dropped) || 0;
  return { framesMerged: Math.max(merged, entry.framesMerged), rowsDropped: Math.max(rows, entry.rowsDropped) };
}

/** The status line: state, mode, position, buffer, merged frames / lost rows (only when any), host. */
export function statusText(st, entry, error) {
  const live = st.mode === "live";
  const { framesMerged, rowsDropped } = flowCounts(st, entry);
  const parts = [
    st.state, st.mode + (live && st.symbol ? " " + st.symbol : ""),
    "row " + fmtInt(Number(st.position) || 0) + (live ? "" : " (" + Math.round((Number(st.progress) || 0) * 100) + "%)"),
    fmtInt(Number(st.buffer_rows) || 0) + " rows buffered",
  ];
  if (framesMerged > 0) parts.push("merged " + fmtInt(framesMerged) + " frames");
  if (rowsDropped > 0) parts.push(fmtInt(rowsDropped) + " rows dropped");
  parts.push(entry.transport === "ws" ? "server" : "kernel");
  return parts.join(" · ") + (error ? " · error: " + error : "");
}
