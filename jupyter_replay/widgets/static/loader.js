// jupyter_replay widget loader (hand-written, not built: the source is this file): the `_esm` every Replay model carries (a few hundred bytes, not the bundle).
// The widget bundle (replay.js, ~45 KB) is asked from the kernel ({type: "need_esm"} -> {type: "esm"} + one
// buffer) once per page and bundle version, then shared by every view: a saved notebook keeps this loader
// per widget, never the bundle. The bundle's default export does the rendering.
const KEY = "__jupyter_replay_esm__";

function fetchBundle(model) {
  return new Promise((resolve, reject) => {
    const onMsg = (msg, buffers) => {
      if (!msg || msg.type !== "esm") return;
      model.off("msg:custom", onMsg);
      if (!buffers || !buffers.length) { reject(new Error("empty widget bundle")); return; }
      const code = new TextDecoder().decode(buffers[0]);
      const url = URL.createObjectURL(new Blob([code], { type: "text/javascript" }));
      import(url).then(resolve, reject).finally(() => URL.revokeObjectURL(url));
    };
    model.on("msg:custom", onMsg);
    model.send({ type: "need_esm" });
  });
}

/** The bundle module for this model's bundle version, fetched once per page (a failure lets the next view retry). */
export function loadBundle(model) {
  const cache = (globalThis[KEY] = globalThis[KEY] || {});
  const id = model.get("bundle") || "";
  if (!cache[id]) cache[id] = fetchBundle(model).catch((err) => { delete cache[id]; throw err; });
  return cache[id];
}

export default {
  async render({ model, el }) {
    el.textContent = "loading replay widget…";
    const mod = await loadBundle(model);
    return mod.default.render({ model, el });
  },
};
