// Plot kind "line": value columns against time. The raw source (streamed by StreamPlot) is all it draws.

export class LinePlot {
  static kind = "line";

  constructor(spec, doc) { this.spec = spec; this.doc = doc; }

  /** Queued rows worth keeping until the next flush (the raw source keeps its last `rollover`). */
  keep(rollover) { return rollover; }

  clear() {}

  update() {}
}
