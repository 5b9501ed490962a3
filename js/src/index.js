// jupyter_replay widget front end (anywidget ESM): control bar + BokehJS streaming plot.
//
// Data path (docs/design.md, "Widgets"): the view starts on the kernel's comm (CommTransport: the kernel's
// ThreadedSession is authoritative) and follows the kernel to its server session once the kernel confirms
// the handover (attach.js), then streams from the session's WebSocket (SocketTransport). Both transports
// raise the same messages, handled by one dispatcher (view.js); rows reach BokehJS through plots/.
// Tests read window.__jupyter_replay__.widgets: [{sessionId, rowsReceived, source, ...}] (registry.js).
import { Attacher } from "./attach.js";
import { acceptBokehCode, loadBokeh } from "./bokeh.js";
import { ControlBar } from "./controls.js";
import { element } from "./dom.js";
import { createPlot } from "./plots/index.js";
import { addEntry, removeEntry } from "./registry.js";
import { pageConfig } from "./server.js";
import { CommTransport } from "./transport.js";
import { ReplayView } from "./view.js";

const TRAITS = ["change:status", "change:speed", "change:loop", "change:mode", "change:symbol"];

function render({ model, el }) {
  const entry = addEntry(model, el);
  el.classList.add("jupyter-replay");
  const root = element("div", "jr-root", { tabIndex: 0 });
  root.setAttribute("role", "group");
  root.setAttribute("aria-label", "Replay controls and plot");
  root.setAttribute("data-lm-suppress-shortcuts", "true");  // our keys, not JupyterLab's
  root.setAttribute("data-p-suppress-shortcuts", "true");
  const statusLine = element("div", "jr-status");
  statusLine.setAttribute("role", "status");
  const plotDiv = element("div", "jr-plot", { textContent: "loading plot…" });

  let view = null;
  const bar = new ControlBar((action, args) => view.control(action, args), () => view.shown());
  bar.bindKeys(root);
  root.append(bar.el, statusLine, plotDiv);
  el.replaceChildren(root);
  view = new ReplayView(model, entry, { root, bar, statusLine, plot: createPlot(plotDiv, entry) });

  const comm = new CommTransport(model, view.emit);
  view.transport = comm;
  const attacher = new Attacher(model, entry, (sid) => view.follow(attacher.cfg, sid), () => view.updateUi());
  const offBokeh = acceptBokehCode(model);
  const onTraits = () => view.updateUi();
  const onPlot = () => view.replot();
  for (const t of TRAITS) model.on(t, onTraits);
  model.on("change:plot", onPlot);
  view.updateUi();

  (async () => {
    const B = await loadBokeh(model);
    if (entry.closed) return;
    if (!B) { plotDiv.textContent = "BokehJS did not load"; return; }
    await view.embedForMode(view.shown().mode);
    if (entry.closed) return;
    attacher.configure(pageConfig());
    if (entry.transport !== "ws") comm.start();  // the kernel's status and the rows this view missed
    await attacher.attach();
  })();

  return () => {
    view.close();
    comm.close();
    attacher.close();
    offBokeh();
    for (const t of TRAITS) model.off(t, onTraits);
    model.off("change:plot", onPlot);
    removeEntry(entry);
  };
}

export default { render };
