// Plot kind "line": value columns against time. The raw source (decimated by StreamPlot) is all it draws.

export class LinePlot {
  static kind = "line";

  needsRows = false;  // it draws the window only

  constructor(spec, doc) { this.spec = spec; this.doc = doc; }

  /** Queued rows worth keeping until the next draw (none are queued: needsRows is false). */
  keep(rollover) { return rollover; }

  clear() {}

  update() {}
}
