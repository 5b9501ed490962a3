// DOM helpers. Writes happen only when the value changes: each write invalidates the page's style/layout,
// which BokehJS then recomputes on its next render.

export function setText(el, text) { if (el.textContent !== text) el.textContent = text; }
export function setProp(el, key, value) { if (el[key] !== value) el[key] = value; }
export function setAttr(el, name, value) { if (el.getAttribute(name) !== value) el.setAttribute(name, value); }

export function element(tag, cls, props = {}) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  Object.assign(e, props);
  return e;
}

export function button(cls, text, label, title) {
  const b = element("button", "jr-btn " + cls, { type: "button", textContent: text, title: title || label });
  b.setAttribute("aria-label", label);
  return b;
}

/** Run `fn` in the next animation frame, or after 250 ms in a background tab (no animation frames). */
export function nextFrame(fn) {
  let done = false;
  const run = () => { if (done) return; done = true; fn(); };
  requestAnimationFrame(run);
  setTimeout(run, 250);
}
