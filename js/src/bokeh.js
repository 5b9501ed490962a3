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

let fastWebgl = null;
const SOFTWARE_GL = /swiftshader|llvmpipe|softpipe|software|basic render|mesa offscreen/i;

/** Whether the browser offers hardware-accelerated WebGL. With a software one (SwiftShader, llvmpipe:
 * headless or --disable-gpu browsers, VMs, remote desktops) BokehJS's WebGL path costs far more than its
 * canvas one: each frame is rendered in software and copied back with drawImage (5 fps instead of 60 in
 * headless Chromium), so the plot uses canvas there. `failIfMajorPerformanceCaveat` alone does not refuse
 * Chromium's SwiftShader, hence the renderer name too. */
export function hardwareWebgl() {
  if (fastWebgl !== null) return fastWebgl;
  fastWebgl = false;
  try {
    const c = document.createElement("canvas");
    const opts = { failIfMajorPerformanceCaveat: true };
    const gl = c.getContext("webgl2", opts) || c.getContext("webgl", opts);
    if (gl) {
      const ext = gl.getExtension("WEBGL_debug_renderer_info");
      const name = String(gl.getParameter(ext ? ext.UNMASKED_RENDERER_WEBGL : gl.RENDERER) || "");
      fastWebgl = !SOFTWARE_GL.test(name);
      const lose = gl.getExtension("WEBGL_lose_context");
      if (lose) lose.loseContext();  // browsers cap live contexts: give this probe's back
    }
  } catch { fastWebgl = false; }
  return fastWebgl;
}

/** A json_item with every plot's `output_backend` "webgl" set to "canvas" unless WebGL is hardware
 * accelerated (the spec asks for WebGL; Bokeh itself falls back to canvas only when there is no WebGL). */
export function withBackend(item) {
  if (!item || hardwareWebgl()) return item;
  const walk = (v) => {
    if (Array.isArray(v)) return v.map(walk);
    if (!v || typeof v !== "object") return v;
    const out = {};
    for (const [k, x] of Object.entries(v)) out[k] = k === "output_backend" && x === "webgl" ? "canvas" : walk(x);
    return out;
  };
  return walk(item);
}
