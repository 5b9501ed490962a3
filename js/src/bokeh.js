// BokehJS loading: inline from the kernel's bokeh package (no CDN is reachable), once per page.
import { REGISTRY } from "./registry.js";

function waitFor(pred, timeoutMs, intervalMs = 50) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const tick = () => {
      const v = pred();
      if (v) resolve(v);
      else if (Date.now() - t0 > timeoutMs) resolve(null);
      else setTimeout(tick, intervalMs);
    };
    tick();
  });
}

const bokehReady = () => (window.Bokeh && window.Bokeh.embed && window.Bokeh.embed.embed_item ? window.Bokeh : null);

/** Run BokehJS source text (sent by the kernel, from the installed bokeh package: inline, never a CDN). */
function injectBokeh(code) {
  if (bokehReady()) return;
  const script = document.createElement("script");
  script.type = "text/javascript";
  script.dataset.jupyterReplay = "bokehjs";
  script.textContent = code;
  document.head.appendChild(script);
}

/** Inject the BokehJS code the kernel sends ({type: "bokehjs"} + one buffer); returns the unsubscribe. */
export function acceptBokehCode(model) {
  const handler = (msg, buffers) => {
    if (msg && msg.type === "bokehjs" && buffers && buffers.length) injectBokeh(new TextDecoder().decode(buffers[0]));
  };
  model.on("msg:custom", handler);
  return () => model.off("msg:custom", handler);
}

/** window.Bokeh, asking the kernel for the BokehJS bundle (once per page) when nobody loaded it. */
export function loadBokeh(model) {
  if (bokehReady()) return Promise.resolve(window.Bokeh);
  if (!REGISTRY.bokeh) {
    REGISTRY.bokeh = (async () => {
      // another loader (jupyter_bokeh, output_notebook) may be on its way
      if (await waitFor(bokehReady, 300)) return window.Bokeh;
      REGISTRY.bokehRequested = true;
      model.send({ type: "need_bokeh" });
      const b = await waitFor(bokehReady, 120000);
      if (!b) REGISTRY.bokeh = null;  // let a later widget try again
      return b;
    })();
  }
  return REGISTRY.bokeh;
}

/** Drop an embedded document from Bokeh's global list (the view was removed). */
export function removeDocument(doc) {
  const docs = window.Bokeh && window.Bokeh.documents;
  if (!docs || !doc) return;
  const i = docs.indexOf(doc);
  if (i >= 0) docs.splice(i, 1);
}
