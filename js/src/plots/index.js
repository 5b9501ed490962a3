// Plot kinds by `spec.kind` (widgets/plots/: one module per kind). A kind is a class `new Kind(spec, doc, group)` (one
// instance per series: `group` indexes `spec.sources`) with keep(rollover), clear(now), update(parts) and
// optionally `bars` (its extra source, for the registry).
import { CandlesPlot } from "./candles.js";
import { LinePlot } from "./line.js";
import { StreamPlot } from "./stream.js";

const KINDS = new Map();

export function registerKind(cls) { KINDS.set(cls.kind, cls); }

/** The kind class for a spec (unknown kinds draw the raw source only, like "line"). */
export function kindFor(spec) { return KINDS.get(spec && spec.kind) || LinePlot; }

registerKind(LinePlot);
registerKind(CandlesPlot);

/** A plot for one view: its kind follows each embedded spec. */
export function createPlot(container, entry) { return new StreamPlot(container, entry, kindFor); }

export { StreamPlot, LinePlot, CandlesPlot };
export { tailColumns } from "./columns.js";
