// The page-wide registry tests and benches read: window.__jupyter_replay__.widgets = [entry per view].
export const REGISTRY = (globalThis.__jupyter_replay__ ??= { widgets: [] });

/** A view's registry entry (counters are plain fields so a test can read them as JSON). */
export function addEntry(model, el) {
  const entry = {
    // rowsReceived: rows since the last reset/history; rowsTotal: every row received (never reset);
    // rowsStreamed: rows drawn into the plot's window (BokehJS gets their decimation: pointsDrawn);
    // windowRows: rows the window holds; newestMs: time of the newest row received; freezes / settledAt:
    // pause clicks and when the session's answer settled the last one; framesSkipped: draws skipped (late)
    model, el, sessionId: null, transport: "local", rowsReceived: 0, rowsTotal: 0, rowsStreamed: 0,
    framesReceived: 0, streamCalls: 0, acksSent: 0, resets: 0, framesMerged: 0, rowsDropped: 0,
    lastSeq: 0, mode: null, source: null, bars: null, marks: null, document: null, status: {}, controls: null,
    errors: [], closed: false,
  };
  REGISTRY.widgets.push(entry);
  return entry;
}

export function removeEntry(entry) {
  const i = REGISTRY.widgets.indexOf(entry);
  if (i >= 0) REGISTRY.widgets.splice(i, 1);
}
