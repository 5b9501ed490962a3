"""Figure 7: real JupyterLab in headless Chromium: our widget vs the ``ipywidgets.Play`` + ``jupyter_bokeh`` baseline.

One JupyterLab (``tests/e2e/lab_harness.start_lab``: jupyter_replay's server extension enabled,
``BOKEH_RESOURCES=inline``) and one headless Chromium (Playwright, ``/usr/bin/chromium``). Each notebook
is opened in its own page, run, played by clicking its own play button, measured, paused by clicking
its pause button, and closed (kernel shut down) before the next one, so they never compete for the CPU.

The baseline notebook (``tests/e2e/data/play_bokeh.ipynb``, a copy of the shared baseline: 200,000 ticks
100 ms apart, a BokehJS line with a 5,000-row rollover, looping) runs with its default knobs (100 rows per
tick, 50 ms) and at the fastest its own sliders allow (5,000 rows per tick, 10 ms). Ours, on the same
data (issue 15's configurations):

- ``paced``: default settings (``buffer_rows`` 100,000) at 200x = the 2,000 rows/s the baseline's
  defaults ask for;
- ``max``: default settings at speed "max" (looping);
- ``1m``: a 1,000,000-row window: 1,500,000 ticks played at 1000x until the plot holds 1M rows, then
  at 250x (2,500 rows/s) with the window full;
- ``max+cpu`` / ``paced+cpu``: as ``max`` / ``paced`` with two busy-loop processes running from before
  the idle measurement to the end (CPU contention on top of whatever else runs on the machine).

Measured in the page: for the baseline, rows reaching the BokehJS ``ColumnDataSource`` (its ``stream_to``
wrapped); for ours, rows received (data rows replayed to the page), rows drawn into the plot's window per
draw and the points BokehJS gets for them (the widget's ``onApply`` hook, called once per draw). Pause
latency: pause click -> the last update of the plot after it (0 when none), p95 over the clicks; frame
rate: a ``requestAnimationFrame`` counter while streaming, against the same page idle before play (under
the same contention in the ``+cpu`` runs).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

from .common import E2E_DIR, Figure, at_least, at_most, info, not_available, percentile, use_e2e_harness

__all__ = ["NAME", "run"]

NAME = "browser"
REPO_ROOT = Path(__file__).resolve().parents[1]
BASELINE_NB = E2E_DIR / "data" / "play_bokeh.ipynb"
ROLLOVER = 5_000  # the baseline's plot
PACED_SPEED = 200  # 100 ms ticks at 200x = 2,000 rows/s: what the baseline's default knobs ask for
BIG_WINDOW = 1_000_000
BIG_SPEED = "250"  # 2,500 rows/s from a full 1M-row window
FILL_SPEED = 1000  # (10,000 rows/s: the window fills in ~100 s)
PAUSE_TARGET_MS = 17.0  # one animation frame at 60 Hz
TODAY_ROWS_INTO_BOKEH = 72_000  # issue 15's table: rows/s into BokehJS at speed max before this change

# The baseline: rows reaching its data source (stream_to wrapped); rAF counter.
_INSTRUMENT_CDS = """
(cds) => {
  const B = (window.__bench ??= {rows: 0, points: 0, calls: 0, log: [], frames: 0});
  if (!cds || cds.__benchWrapped) return !!cds;
  const orig = cds.stream_to.bind(cds);
  cds.stream_to = (prop, data, rollover, opts) => {
    let n = 0;
    const first = data instanceof Map ? data.values().next().value : Object.values(data)[0];
    if (first && first.length !== undefined) n = first.length;
    B.rows += n; B.points += n; B.calls += 1; B.log.push([performance.now(), n]);
    if (B.log.length > 20000) B.log.splice(0, 10000);
    return orig(prop, data, rollover, opts);
  };
  cds.__benchWrapped = true;
  B.received = () => B.rows;
  if (!B.raf) {
    B.raf = true;
    const tick = () => { B.frames += 1; requestAnimationFrame(tick); };
    requestAnimationFrame(tick);
  }
  return true;
}
"""

# Ours: the widget calls entry.onApply(rows, points) once per draw (rows drawn into its window, points
# handed to BokehJS); rows received from the registry entry.
_INSTRUMENT_OURS = """
() => {
  const B = (window.__bench ??= {rows: 0, points: 0, calls: 0, log: [], frames: 0});
  const R = window.__jupyter_replay__;
  const ws = R.widgets.filter(w => !w.closed && w.source);
  const e = ws[ws.length - 1];
  if (!e) return false;
  e.onApply = (rows, points) => {
    B.rows += rows; B.points += points; B.calls += 1; B.log.push([performance.now(), rows]);
    if (B.log.length > 20000) B.log.splice(0, 10000);
  };
  B.received = () => e.rowsTotal;
  if (!B.raf) {
    B.raf = true;
    const tick = () => { B.frames += 1; requestAnimationFrame(tick); };
    requestAnimationFrame(tick);
  }
  return true;
}
"""

_FIND_BASELINE_CDS = """
() => {
  const B = window.Bokeh;
  if (!B || !B.documents) return null;
  for (const doc of B.documents) { const m = doc.get_model_by_name('ticks'); if (m) return m; }
  return null;
}
"""

_FIND_OUR_CDS = """
() => {
  const R = window.__jupyter_replay__;
  const ws = R && R.widgets ? R.widgets.filter(w => !w.closed && w.source) : [];
  return ws.length ? ws[ws.length - 1].source : null;
}
"""

_OUR_ENTRY = """
() => {
  const R = window.__jupyter_replay__;
  const ws = R && R.widgets ? R.widgets.filter(w => !w.closed) : [];
  const e = ws[ws.length - 1];
  let gl = null;
  try { const c = document.createElement('canvas'); gl = !!(c.getContext('webgl2') || c.getContext('webgl')); }
  catch (x) { gl = false; }
  return e ? {transport: e.transport, sessionId: e.sessionId, rows: e.rowsReceived, frames: e.framesReceived,
              streamCalls: e.streamCalls, errors: e.errors, state: e.status && e.status.state,
              windowRows: e.windowRows, pointsDrawn: e.pointsDrawn, plotWidth: e.plotWidth,
              framesSkipped: e.framesSkipped || 0, drawMs: e.drawMs, bokehWebgl: !!e.webgl, browserWebgl: gl,
              framesMerged: e.framesMerged, freezes: e.freezes || 0, busyMs: e.busyMs || 0} : null;
}
"""

_COUNTERS = """() => { const B = window.__bench;
  return {rows: B.rows, points: B.points, calls: B.calls, frames: B.frames, received: B.received(),
          now: performance.now()}; }"""

_CLICK = """
(selector) => {
  const b = document.querySelector(selector);
  if (!b) return null;
  const t = performance.now();
  b.click();
  return t;
}
"""

_LAST_AFTER = """
(t) => {
  const log = window.__bench.log;
  let last = null, rows = 0;
  for (const [ts, n] of log) if (ts >= t && n > 0) { last = ts; rows += n; }
  return {last: last === null ? null : last - t, rows};
}
"""

_WINDOW_ROWS = """() => { const R = window.__jupyter_replay__;
  const ws = R.widgets.filter(w => !w.closed && w.source);
  return ws.length ? (ws[ws.length - 1].windowRows || 0) : 0; }"""


def _notebook_ours(path: Path, speed: Any, *, n_rows: int = 200_000, buffer_rows: int | None = None,
                   loop: bool = True) -> None:
    """The baseline's data cell (its imports and ticks, nothing of Bokeh/ipywidgets) + our widget."""
    import nbformat

    base = nbformat.read(BASELINE_NB, as_version=4)
    data_cell = next(c for c in base.cells if c.cell_type == "code" and "rng = np.random.default_rng" in c.source)
    setup = data_cell.source.split("output_notebook(")[0]
    setup = "\n".join(line for line in setup.splitlines() if "bokeh" not in line and "ipywidgets" not in line)
    data = data_cell.source[data_cell.source.index("rng = np.random.default_rng"):]
    buffer = f", buffer_rows={buffer_rows}" if buffer_rows else ""  # none: the default window
    cells = [
        nbformat.v4.new_code_cell(f"N_ROWS = {n_rows}\nimport jupyter_replay"),
        nbformat.v4.new_code_cell(setup + "\n" + data),
        nbformat.v4.new_code_cell(
            f"r = jupyter_replay.replay(ticks, time='timestamp', y='price'{buffer}, speed={speed!r}, loop={loop})\nr"),
    ]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def _notebook_baseline(path: Path, rows_per_tick: int, interval_ms: int) -> None:
    import nbformat

    nb = nbformat.read(BASELINE_NB, as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", []))
    params.source = (f"N_ROWS = 200_000\nROWS_PER_TICK = {rows_per_tick}\nINTERVAL_MS = {interval_ms}\n"
                     f"ROLLOVER = {ROLLOVER}\nLOOP = True")
    nbformat.write(nb, path)


def _fill_big_window(page: Any) -> None:
    """1m: played at 1000x (10,000 rows/s) until the plot's window holds 1M rows, then at 250x."""
    from lab_harness import wait_for

    try:
        wait_for(lambda: page.evaluate(_WINDOW_ROWS) >= BIG_WINDOW, timeout=400, interval=1.0)
    except AssertionError:
        raise AssertionError(f"the 1M-row window did not fill: {page.evaluate(_OUR_ENTRY)}") from None
    page.select_option(".jr-root select[aria-label='Speed']", BIG_SPEED)


def _released(lab: Any, page: Any) -> int | None:
    """Rows the page's replay session has released so far (its ``rows_total`` status key, over REST: never
    reset, loops included): the data rows replayed, whether or not the page drew them all (at speed max the
    page shows snapshots)."""
    sid = page.evaluate("() => { const R = window.__jupyter_replay__; const ws = R ? R.widgets.filter(w => !w.closed)"
                        " : []; return ws.length ? ws[ws.length - 1].sessionId : null; }")
    if not sid:
        return None
    model = lab.api("GET", f"replay/api/sessions/{sid}")
    return int(model["rows_total"]) if model and "rows_total" in model else None


def _measure(page: Any, ours: bool, play_sel: str, pause_sel: str, measure_s: float, pauses: int, log: Any,
             prepare: Callable[[Any], None] | None = None, lab: Any = None) -> dict[str, Any]:
    from lab_harness import wait_for

    find = _FIND_OUR_CDS if ours else _FIND_BASELINE_CDS
    wait_for(lambda: page.evaluate(f"() => !!({find})()"), timeout=120, message="no BokehJS data source")
    if ours:
        assert page.evaluate(f"() => ({_INSTRUMENT_OURS})()")
    else:
        page.evaluate(f"() => ({_INSTRUMENT_CDS})(({find})())")
    # Idle frame rate: the same page before play.
    c0 = page.evaluate(_COUNTERS)
    page.wait_for_timeout(3000)
    c1 = page.evaluate(_COUNTERS)
    idle_fps = (c1["frames"] - c0["frames"]) / ((c1["now"] - c0["now"]) / 1e3)

    page.wait_for_selector(play_sel, timeout=30_000)
    if page.evaluate(_CLICK, play_sel) is None:
        raise RuntimeError(f"no play button {play_sel}")
    wait_for(lambda: page.evaluate(_COUNTERS)["rows"] > 0, timeout=60, message="play: no rows reached BokehJS")
    if prepare is not None:
        prepare(page)
    page.wait_for_timeout(2000)  # warm-up
    r0 = _released(lab, page) if ours and lab is not None else None
    t0 = time.monotonic()
    c0 = page.evaluate(_COUNTERS)
    page.wait_for_timeout(int(measure_s * 1000))
    c1 = page.evaluate(_COUNTERS)
    r1 = _released(lab, page) if r0 is not None else None
    t1 = time.monotonic()
    dt = (c1["now"] - c0["now"]) / 1e3
    out = {
        "rows_s": (c1["rows"] - c0["rows"]) / dt,  # rows into the plot (baseline: into its data source)
        "points_s": (c1["points"] - c0["points"]) / dt,  # rows of values handed to BokehJS
        "received_s": (c1["received"] - c0["received"]) / dt,  # rows received by the page
        "calls_s": (c1["calls"] - c0["calls"]) / dt,
        "fps": (c1["frames"] - c0["frames"]) / dt,
        "idle_fps": idle_fps,
        "measure_s": dt,
        # data rows the session replayed (released) per second; the baseline's are the rows it streams
        "replayed_s": (r1 - r0) / (t1 - t0) if r0 is not None and r1 is not None else None,
    }
    latencies = []
    for i in range(pauses):
        if i:  # play again for a while
            page.wait_for_selector(play_sel, timeout=30_000)
            page.evaluate(_CLICK, play_sel)
            page.wait_for_timeout(1500)
        page.wait_for_selector(pause_sel, timeout=30_000)
        t_click = page.evaluate(_CLICK, pause_sel)
        # settled: no rows for 1.5 s (in-flight updates may still land after the click)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            before = page.evaluate(_COUNTERS)["rows"]
            page.wait_for_timeout(1500)
            if page.evaluate(_COUNTERS)["rows"] == before:
                break
        after = page.evaluate(_LAST_AFTER, t_click)
        latencies.append(after["last"] or 0.0)
        log(f"[bench] browser:   pause {i + 1}: last rows {after['last']} ms after the click ({after['rows']} rows)")
    out["pause_p95"] = percentile(latencies, 95)
    out["pause_median"] = statistics.median(latencies)
    out["pause_all"] = latencies
    return out


class _Contention:
    """Two busy-loop processes (CPU contention) for the duration of a ``with`` block."""

    def __enter__(self) -> _Contention:
        self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
        return self

    def __exit__(self, *exc: Any) -> None:
        for p in self.procs:
            p.kill()
        for p in self.procs:
            p.wait(timeout=10)


def _run_notebook(lab: Any, browser: Any, nb_path: Path, ours: bool, play_sel: str, pause_sel: str,
                  measure_s: float, pauses: int, log: Any, prepare: Callable[[Any], None] | None = None,
                  contention: bool = False) -> dict[str, Any]:
    from contextlib import nullcontext

    from lab_harness import open_notebook, run_all_cells

    ctx = browser.new_context(base_url=lab.url, viewport={"width": 1400, "height": 1000})
    ctx.set_default_timeout(120_000)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        path = lab.add_notebook(nb_path)
        open_notebook(page, path)
        run_all_cells(page)
        with _Contention() if contention else nullcontext():
            out = _measure(page, ours, play_sel, pause_sel, measure_s, pauses, log, prepare, lab)
        if ours:
            out["extra"] = page.evaluate(_OUR_ENTRY)
        out["page_errors"] = errors[:5]
        return out
    finally:
        ctx.close()
        try:
            lab.shutdown_kernels()
        except OSError:
            pass


OURS_PLAY, OURS_PAUSE = ".jr-play[aria-label='Play']", ".jr-play[aria-label='Pause']"
BASE_PLAY, BASE_PAUSE = ".widget-play button:has(i.fa-play)", ".widget-play button:has(i.fa-pause)"

LABELS = {
    "paced": f"widget, default settings, {PACED_SPEED}x (2,000 rows/s)",
    "max": "widget, default settings, speed max",
    "1m": f"widget, 1M-row window, {BIG_SPEED}x",
    "max+cpu": "widget, speed max, 2 busy loops",
    "paced+cpu": f"widget, {PACED_SPEED}x, 2 busy loops",
    "baseline_default": "baseline, default knobs (100 rows/tick, 50 ms: 2,000 rows/s asked)",
    "baseline_fastest": "baseline, fastest knobs (5,000 rows/tick, 10 ms)",
}
OURS = ("paced", "max", "1m", "max+cpu", "paced+cpu")


def run(quick: bool = False, tiny: bool = False, **_: Any) -> list[Figure]:
    import os

    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        return [not_available(NAME, "browser rows/s vs ipywidgets.Play baseline", f"playwright: {exc}")]
    if not os.path.exists("/usr/bin/chromium"):
        return [not_available(NAME, "browser rows/s vs ipywidgets.Play baseline", "/usr/bin/chromium missing")]
    if not (REPO_ROOT / "jupyter_replay" / "widgets" / "static" / "replay.js").exists():
        return [not_available(NAME, "browser rows/s vs ipywidgets.Play baseline", "widget not built")]
    use_e2e_harness()
    from lab_harness import CHROMIUM, CHROMIUM_ARGS, start_lab, stop_lab

    measure_s = 3.0 if tiny else (5.0 if quick else 10.0)
    pauses = 2 if tiny else (5 if quick else 10)
    log = lambda *a, **k: print(*a, file=sys.stderr, flush=True)  # noqa: E731
    only = [x for x in os.environ.get("JR_BENCH_BROWSER_ONLY", "").split(",") if x]  # (re-running one config)
    results: dict[str, dict[str, Any]] = {}
    failures: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="jr-bench-browser-") as tmp:
        tmp_p = Path(tmp)
        nb = {name: tmp_p / f"{name.replace('+', '_')}.ipynb" for name in LABELS}
        _notebook_baseline(nb["baseline_default"], 100, 50)
        _notebook_baseline(nb["baseline_fastest"], 5000, 10)
        _notebook_ours(nb["paced"], PACED_SPEED)
        _notebook_ours(nb["max"], "max")
        _notebook_ours(nb["1m"], FILL_SPEED, n_rows=BIG_WINDOW * 3 // 2, buffer_rows=BIG_WINDOW, loop=False)
        _notebook_ours(nb["max+cpu"], "max")
        _notebook_ours(nb["paced+cpu"], PACED_SPEED)
        plan: list[tuple[str, bool, Any, bool]] = [
            ("paced", True, None, False), ("max", True, None, False), ("1m", True, _fill_big_window, False),
            ("max+cpu", True, None, True), ("paced+cpu", True, None, True),
            ("baseline_default", False, None, False), ("baseline_fastest", False, None, False),
        ]
        if tiny:
            plan = [p for p in plan if p[0] in ("max", "baseline_fastest")]
        if only:
            plan = [p for p in plan if p[0] in only]
        lab = start_lab(tmp_p / "lab")
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                try:
                    for name, ours, prepare, contention in plan:
                        log(f"[bench] browser: {name} ...")
                        play, pause = (OURS_PLAY, OURS_PAUSE) if ours else (BASE_PLAY, BASE_PAUSE)
                        try:
                            results[name] = _run_notebook(lab, browser, nb[name], ours, play, pause, measure_s,
                                                          pauses, log, prepare, contention)
                            log(f"[bench] browser: {name}: {json.dumps(results[name], default=str)[:700]}")
                        except Exception as exc:  # noqa: BLE001 - one notebook failing must not hide the others
                            failures[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                            log(f"[bench] browser: {name} failed: {failures[name]}")
                finally:
                    browser.close()
        finally:
            stop_lab(lab)
    return _figures(results, failures, measure_s)


def _ms(values: list[float]) -> str:
    return "[" + ", ".join(f"{x:.0f}" for x in values) + "] ms"


def _figures(results: dict[str, dict[str, Any]], failures: dict[str, str], measure_s: float) -> list[Figure]:
    reason = "; ".join(f"{k}: {v}" for k, v in failures.items()) or "no result"
    base_d, base_f = results.get("baseline_default"), results.get("baseline_fastest")
    figs: list[Figure] = []
    ours_names = [k for k in OURS if k in results or k in failures]
    # pause: click -> last row applied, p95, every configuration
    for k in ours_names:
        v = results.get(k)
        name = f"pause click -> last row applied, p95: {LABELS[k]}"
        target = at_most(PAUSE_TARGET_MS, f"<= {PAUSE_TARGET_MS:g} ms", on="value")
        if not v:
            figs.append(not_available(NAME, name, failures.get(k, reason), target))
            continue
        figs.append(Figure(
            NAME, name, v["pause_p95"], base_d["pause_p95"] if base_d else None, unit="ms", target=target,
            baseline_name=LABELS["baseline_default"] + " (p95)",
            note=f"{len(v['pause_all'])} clicks: {_ms(v['pause_all'])} (0: nothing applied after the click); "
                 f"baseline default {_ms(base_d['pause_all']) if base_d else '-'}"))
    # frame rate vs the idle page, every configuration
    for k in ours_names:
        v = results.get(k)
        name = f"frame rate streaming vs idle page: {LABELS[k]}"
        target = at_least(0.9, ">= 0.9 of idle")
        if not v:
            figs.append(not_available(NAME, name, failures.get(k, reason), target))
            continue
        ex = v.get("extra") or {}
        figs.append(Figure(
            NAME, name, v["fps"], v["idle_fps"], unit="fps", target=target, baseline_name="same page idle before play",
            note=f"window {ex.get('windowRows') or 0:,} rows, {ex.get('pointsDrawn') or 0:,} points drawn at "
                 f"{ex.get('plotWidth')} px; draws skipped (late frames) {ex.get('framesSkipped', 0)}; widget JS "
                 f"(ingest + decimate + hand to BokehJS) {ex.get('busyMs', 0) / 1e3:.1f} s in all; "
                 f"{v['received_s']:,.0f} rows/s received"))
    # data rows replayed per second at speed max vs the baseline's fastest
    ours = results.get("max")
    name = "data rows/s replayed at speed max vs baseline at its fastest"
    if ours and base_f and ours.get("replayed_s") is not None:
        ex = ours.get("extra") or {}
        figs.append(Figure(
            NAME, name, ours["replayed_s"], base_f["rows_s"], unit="rows/s", target=at_least(100, ">= 100x"),
            baseline_name=LABELS["baseline_fastest"],
            note=f"rows the session released (its 'rows_total' status over REST; issue 15's 'data rows/s replayed'), "
                 f"{measure_s:g} s after a 2 s warm-up; the page received {ours['received_s']:,.0f} rows/s "
                 f"(transport {ex.get('transport', '?')}) and drew its window's latest rows at each frame; "
                 f"baseline {base_f['calls_s']:.1f} updates/s; same 200k ticks, looping"))
    else:
        figs.append(not_available(NAME, name, reason, at_least(100, ">= 100x")))
    name = "rows/s into the plot at speed max vs before this change"
    if ours:
        figs.append(Figure(
            NAME, name, ours["rows_s"], TODAY_ROWS_INTO_BOKEH, unit="rows/s", target=at_least(1.0, "not lower"),
            baseline_name="issue 15's measurement (72,000 rows/s into BokehJS, buffer_rows=5000)",
            note=f"rows drawn into the plot's window per second; BokehJS gets their M4 decimation: "
                 f"{ours['points_s']:,.0f} points/s in {ours['calls_s']:.1f} updates/s"))
    else:
        figs.append(not_available(NAME, name, reason, at_least(1.0, "not lower")))
    if base_d and base_f:
        figs.append(info(NAME, "baseline rows/s into BokehJS (fastest knobs)", base_f["rows_s"], "rows/s",
                         note=f"default {base_d['rows_s']:,.0f} rows/s at {base_d['calls_s']:.1f} updates/s, fps "
                              f"{base_d['fps']:.0f}/{base_d['idle_fps']:.0f} idle; fastest {base_f['calls_s']:.1f} "
                              f"updates/s, fps {base_f['fps']:.0f}/{base_f['idle_fps']:.0f} idle; pause p95 default "
                              f"{base_d['pause_p95']:.0f} ms, fastest {base_f['pause_p95']:.0f} ms"))
    any_ours = next((results[k] for k in ours_names if k in results), None)
    if any_ours:
        ex = any_ours.get("extra") or {}
        figs.append(info(NAME, "BokehJS draws with WebGL (1) or its canvas fallback (0)",
                         float(bool(ex.get("bokehWebgl"))),
                         note=f"the browser offers a WebGL context: {ex.get('browserWebgl')}; Chromium flags of "
                              f"tests/e2e/lab_harness.py (headless, --disable-gpu)"))
    for k in ours_names:
        v = results.get(k)
        if v:
            figs.append(info(NAME, f"rows/s replayed to the page: {LABELS[k]}", v["received_s"], "rows/s",
                             note=f"into the plot {v['rows_s']:,.0f} rows/s, points into BokehJS "
                                  f"{v['points_s']:,.0f}/s, {v['calls_s']:.1f} updates/s; pause median "
                                  f"{v['pause_median']:.0f} ms"))
    for k, v in results.items():
        if v.get("page_errors"):
            figs.append(info(NAME, f"page errors ({LABELS[k]})", len(v["page_errors"]), note=str(v["page_errors"])))
    return figs
