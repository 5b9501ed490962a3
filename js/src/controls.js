// The control bar: play/pause, stop, step, speed, seek, time, loop, mode and live symbol. Buttons send
// control actions through `send(action, args)`; which ones are enabled follows the server's control table
// (controls.table_json, sent in `hello`) when there is one.
import { button, element, setAttr, setProp, setText } from "./dom.js";
import { fmtTime } from "./status.js";

const SPEEDS = ["0.1", "0.25", "0.5", "1", "2", "5", "10", "25", "50", "100", "250", "500", "1000", "max"];
// Row pacing (the `rate` action: rows/bars per second whatever their spacing), in the same menu.
const RATES = ["1", "2", "5", "10", "25", "100"];
const RATE_PREFIX = "rows:";

/** The menu value of a status: "rows:<rate>" when pacing by rows, else the speed text. */
export function pacingValue(st) {
  if (st.pacing === "rows" && st.rate != null) return RATE_PREFIX + String(Number(st.rate));
  const sp = st.speed;
  return sp === "max" || sp === null || sp === undefined ? "max" : String(Number(sp));
}

function optionLabel(v) {
  if (v.startsWith(RATE_PREFIX)) return v.slice(RATE_PREFIX.length) + " rows/s";
  return v === "max" ? "max" : v + "×";
}

/** Whether `action` is allowed in (mode, state) by the control table; null without a table. */
export function allowedBy(table, action, mode, state) {
  if (!table || typeof table !== "object" || !table.actions) return null;
  const a = table.actions[action];
  const states = a && a.allowed && a.allowed[mode];
  return Array.isArray(states) && states.includes(state);
}

/** The speed choices the table's speed range permits (all of SPEEDS without a table). */
export function speedChoices(table) {
  const sp = table && table.speed;
  if (!sp) return SPEEDS;
  const lo = Number(sp.min); const hi = Number(sp.max);
  return SPEEDS.filter((s) => (s === "max" ? sp.allow_max !== false
    : !(Number(s) < lo) && !(Number(s) > hi)));
}

export class ControlBar {
  /** `send(action, args)`: run a control; `current()`: the status shown ({state, mode, ...}). */
  constructor(send, current) {
    this.send = send;
    this.current = current;
    this.seeking = false;
    this.speedKey = null;
    const bar = (this.el = element("div", "jr-bar"));
    this.play = button("jr-play", "▶ Play", "Play");
    this.stop = button("jr-stop", "■ Stop", "Stop");
    this.step = button("jr-step", "Step ›", "Step one row");
    this.speed = element("select", "jr-speed", { title: "Speed" });
    this.speed.setAttribute("aria-label", "Speed");
    this.setSpeeds(SPEEDS);
    this.seek = element("input", "jr-seek", { type: "range", min: "0", max: "1000", step: "1", value: "0" });
    this.seek.setAttribute("aria-label", "Seek");
    this.time = element("span", "jr-time");
    this.time.setAttribute("aria-live", "off");
    const loopLabel = element("label", "jr-loop");
    this.loop = element("input", "", { type: "checkbox" });
    this.loop.setAttribute("aria-label", "Loop");
    loopLabel.append(this.loop, document.createTextNode(" loop"));
    this.mode = button("jr-mode", "REPLAY", "Switch to live mode");
    this.symbol = element("input", "jr-symbol", { type: "text", size: 8, placeholder: "symbol" });
    this.symbol.setAttribute("aria-label", "Live symbol");
    bar.append(this.play, this.stop, this.step, this.speed, this.seek, this.time, loopLabel, this.mode, this.symbol);
    this.wire();
  }

  togglePlay() { this.send(this.current().state === "playing" ? "pause" : "play"); }

  wire() {
    this.play.addEventListener("click", () => this.togglePlay());
    this.stop.addEventListener("click", () => this.send("stop"));
    this.step.addEventListener("click", () => this.send("step", { n: 1 }));
    this.speed.addEventListener("change", () => {
      const v = this.speed.value;
      if (v.startsWith(RATE_PREFIX)) this.send("rate", { rate: Number(v.slice(RATE_PREFIX.length)) });
      else this.send("speed", { speed: v === "max" ? "max" : Number(v) });
    });
    this.seek.addEventListener("input", () => { this.seeking = true; });
    this.seek.addEventListener("change", () => {
      this.seeking = false;
      this.send("seek", { fraction: Number(this.seek.value) / 1000 });
    });
    this.loop.addEventListener("change", () => this.send("loop", { loop: this.loop.checked }));
    this.mode.addEventListener("click", () => {
      const live = this.current().mode === "live";
      const args = { mode: live ? "replay" : "live" };
      const sym = this.symbol.value.trim();
      if (!live && sym) args.symbol = sym;
      this.send("mode", args);
    });
    this.symbol.addEventListener("keydown", (ev) => {
      ev.stopPropagation();
      const sym = this.symbol.value.trim();
      if (ev.key === "Enter" && sym) this.send("mode", { mode: "live", symbol: sym });
    });
  }

  /** Space and k toggle play/pause while focus is in `root` (not in a text field). */
  bindKeys(root) {
    root.addEventListener("keydown", (ev) => {
      const tag = (ev.target && ev.target.tagName) || "";
      if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA") return;
      if (ev.key === " " || ev.key === "k" || ev.key === "K") {
        ev.preventDefault();
        ev.stopPropagation();
        this.togglePlay();
      }
    });
  }

  setSpeeds(choices, rates = []) {
    const all = [...choices, ...rates.map((r) => RATE_PREFIX + r)];
    const key = all.join(",");
    if (key === this.speedKey) return;
    this.speedKey = key;
    this.speed.replaceChildren(...all.map((s) => element("option", "", { value: s, textContent: optionLabel(s) })));
  }

  /** Labels, values and enabled state for status `st` (state, mode, speed, loop, symbol filled in). */
  update(st, table) {
    const { state, mode } = st;
    const playing = state === "playing";
    const live = mode === "live";
    const p = this.play;
    setText(p, playing ? "❚❚ Pause" : "▶ Play");
    setAttr(p, "aria-label", playing ? "Pause" : "Play");
    setProp(p, "title", playing ? "Pause (space)" : "Play (space)");
    setAttr(p, "aria-pressed", playing ? "true" : "false");
    const ok = (action) => allowedBy(table, action, mode, state);
    if (table && table.actions) {
      setProp(p, "disabled", !ok(playing ? "pause" : "play"));
      setProp(this.stop, "disabled", !ok("stop"));
      setProp(this.step, "disabled", !ok("step"));
      setProp(this.seek, "disabled", !ok("seek"));
      setProp(this.speed, "disabled", !ok("speed"));
      setProp(this.loop, "disabled", !ok("loop"));
      setProp(this.mode, "disabled", !ok("mode"));
      setProp(this.symbol, "disabled", !ok("mode"));
    } else {  // no table (an older server): the built-in rule
      for (const e of [p, this.stop, this.loop, this.mode, this.symbol]) setProp(e, "disabled", false);
      setProp(this.step, "disabled", playing || live);
      setProp(this.seek, "disabled", live);
      setProp(this.speed, "disabled", live);
    }
    this.setSpeeds(speedChoices(table), !table || !table.actions || table.actions.rate ? RATES : []);
    const spText = pacingValue(st);
    if (![...this.speed.options].some((o) => o.value === spText)) {
      this.speed.appendChild(element("option", "", { value: spText, textContent: optionLabel(spText) }));
    }
    if (document.activeElement !== this.speed) setProp(this.speed, "value", spText);
    setProp(this.loop, "checked", !!st.loop);
    setText(this.mode, live ? "LIVE" : "REPLAY");
    setAttr(this.mode, "aria-label", live ? "Switch to replay mode" : "Switch to live mode");
    if (this.mode.classList.contains("jr-live") !== live) this.mode.classList.toggle("jr-live", live);
    if (document.activeElement !== this.symbol) setProp(this.symbol, "value", st.symbol || "");
  }

  /** The moving parts: slider position and time label. */
  progress(st) {
    const live = st.mode === "live";
    if (!this.seeking) setProp(this.seek, "value", String(Math.round((Number(st.progress) || 0) * 1000)));
    setText(this.time, live ? "live" : fmtTime(st));
  }
}
