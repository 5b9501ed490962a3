"""Figure 7: real JupyterLab in headless Chromium: our widget vs the ``ipywidgets.Play`` + ``jupyter_bokeh`` baseline.

One JupyterLab (``tests/e2e/lab_harness.start_lab``: jupyter_replay's server extension enabled,
``BOKEH_RESOURCES=inline``) and one headless Chromium (Playwright, ``/usr/bin/chromium``). Each notebook
is opened in its own page, run, played by clicking its own play button, measured, paused by clicking
its pause button, and closed (kernel shut down) before the next one, so they never compete for the CPU.

Both notebooks replay the same 200,000 synthetic ticks (the baseline notebook's data, 100 ms apart)
into a BokehJS line plot with a 5,000-row rollover, looping. The baseline notebook
(``tests/e2e/data/play_bokeh.ipynb``, a copy of the shared baseline) runs twice: with its default knobs
(100 rows per tick, 50 ms interval) and at the fastest its own sliders allow (5,000 rows per tick,
10 ms). Ours: ``jupyter_replay.replay(ticks, buffer_rows=5000, loop=True)`` at speed "max".

Measured in the page: rows reaching the BokehJS ``ColumnDataSource`` (its ``stream_to`` wrapped: both
``source.stream`` from our widget and jupyter_bokeh's ``ColumnsStreamed`` patches go through it), per
second; pause-to-stop latency = time from the pause click to the last rows reaching the source;
animation frames per second (a ``requestAnimationFrame`` counter) while streaming, against the same
page idle before play.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import E2E_DIR, Figure, at_least, at_most, info, not_available, use_e2e_harness

__all__ = ["NAME", "run"]

NAME = "browser"
REPO_ROOT = Path(__file__).resolve().parents[1]
BASELINE_NB = E2E_DIR / "data" / "play_bokeh.ipynb"
ROLLOVER = 5_000
PACED_SPEED = 200  # 100 ms ticks at 200x = 2,000 rows/s: what the baseline's default knobs ask for

_INSTRUMENT = """
(cds) => {
  const B = (window.__bench ??= {rows: 0, calls: 0, log: [], frames: 0});
  if (!cds || cds.__benchWrapped) return !!cds;
  const orig = cds.stream_to.bind(cds);
  cds.stream_to = (prop, data, rollover, opts) => {
    let n = 0;
    const first = data instanceof Map ? data.values().next().value : Object.values(data)[0];
    if (first && first.length !== undefined) n = first.length;
    B.rows += n; B.calls += 1; B.log.push([performance.now(), n]);
    if (B.log.length > 20000) B.log.splice(0, 10000);
    return orig(prop, data, rollover, opts);
  };
  cds.__benchWrapped = true;
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
  return e ? {transport: e.transport, sessionId: e.sessionId, rows: e.rowsReceived, frames: e.framesReceived,
              streamCalls: e.streamCalls, errors: e.errors, state: e.status && e.status.state} : null;
}
"""

_COUNTERS = "() => { const B = window.__bench; return {rows: B.rows, calls: B.calls, frames: B.frames, now: performance.now()}; }"

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


def _notebook_ours(path: Path, speed: Any) -> None:
    import nbformat

    base = nbformat.read(BASELINE_NB, as_version=4)
    data_cell = next(c for c in base.cells if c.cell_type == "code" and "rng = np.random.default_rng" in c.source)
    setup = data_cell.source.split("output_notebook(")[0]  # the baseline's imports + its data, nothing of Bokeh
    setup = "\n".join(line for line in setup.splitlines() if "bokeh" not in line and "ipywidgets" not in line)
    data = data_cell.source[data_cell.source.index("rng = np.random.default_rng"):]
    cells = [
        nbformat.v4.new_code_cell("N_ROWS = 200_000\nimport jupyter_replay"),
        nbformat.v4.new_code_cell(setup + "\n" + data),
        nbformat.v4.new_code_cell(
            f"r = jupyter_replay.replay(ticks, time='timestamp', y='price', buffer_rows={ROLLOVER}, "
            f"speed={speed!r}, loop=True)\nr"),
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


def _measure(page: Any, find_cds: str, play_sel: str, pause_sel: str, measure_s: float, pauses: int,
             log: Any) -> dict[str, Any]:
    from lab_harness import wait_for

    wait_for(lambda: page.evaluate(f"() => !!({find_cds})()"), timeout=60, message="no BokehJS data source")
    page.evaluate(f"() => ({_INSTRUMENT})(({find_cds})())")
    # Idle frame rate: the same page before play.
    c0 = page.evaluate(_COUNTERS)
    page.wait_for_timeout(3000)
    c1 = page.evaluate(_COUNTERS)
    idle_fps = (c1["frames"] - c0["frames"]) / ((c1["now"] - c0["now"]) / 1e3)

    page.wait_for_selector(play_sel, timeout=30_000)
    if page.evaluate(_CLICK, play_sel) is None:
        raise RuntimeError(f"no play button {play_sel}")
    wait_for(lambda: page.evaluate(_COUNTERS)["rows"] > 0, timeout=30, message="play: no rows reached BokehJS")
    page.wait_for_timeout(2000)  # warm-up
    c0 = page.evaluate(_COUNTERS)
    page.wait_for_timeout(int(measure_s * 1000))
    c1 = page.evaluate(_COUNTERS)
    dt = (c1["now"] - c0["now"]) / 1e3
    out = {
        "rows_s": (c1["rows"] - c0["rows"]) / dt,
        "calls_s": (c1["calls"] - c0["calls"]) / dt,
        "fps": (c1["frames"] - c0["frames"]) / dt,
        "idle_fps": idle_fps,
        "measure_s": dt,
    }
    latencies = []
    for i in range(pauses):
        if i:  # play again for a while
            page.wait_for_selector(play_sel, timeout=30_000)
            page.evaluate(_CLICK, play_sel)
            page.wait_for_timeout(2000)
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
    out["pause_ms"] = statistics.median(latencies)
    out["pause_all"] = latencies
    return out


def _run_notebook(lab: Any, browser: Any, nb_path: Path, find_cds: str, play_sel: str, pause_sel: str,
                  measure_s: float, pauses: int, log: Any, extra: str | None = None) -> dict[str, Any]:
    from lab_harness import open_notebook, run_all_cells

    ctx = browser.new_context(base_url=lab.url, viewport={"width": 1400, "height": 1000})
    ctx.set_default_timeout(60_000)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        path = lab.add_notebook(nb_path)
        open_notebook(page, path)
        run_all_cells(page)
        out = _measure(page, find_cds, play_sel, pause_sel, measure_s, pauses, log)
        if extra:
            out["extra"] = page.evaluate(extra)
        out["page_errors"] = errors[:5]
        return out
    finally:
        ctx.close()
        try:
            lab.shutdown_kernels()
        except OSError:
            pass


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
    pauses = 1 if tiny else (3 if quick else 5)
    log = lambda *a, **k: print(*a, file=sys.stderr, flush=True)  # noqa: E731
    results: dict[str, dict[str, Any]] = {}
    failures: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="jr-bench-browser-") as tmp:
        tmp_p = Path(tmp)
        nbs = {
            "baseline_default": (tmp_p / "baseline_default.ipynb", 100, 50),
            "baseline_fastest": (tmp_p / "baseline_fastest.ipynb", 5000, 10),
        }
        for name, (p, rows, ms) in nbs.items():
            _notebook_baseline(p, rows, ms)
        ours_nb = tmp_p / "ours_max.ipynb"
        _notebook_ours(ours_nb, "max")
        paced_nb = tmp_p / "ours_paced.ipynb"
        _notebook_ours(paced_nb, PACED_SPEED)
        lab = start_lab(tmp_p / "lab")
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                try:
                    plan = [
                        ("ours", ours_nb, _FIND_OUR_CDS, ".jr-play[aria-label='Play']",
                         ".jr-play[aria-label='Pause']", _OUR_ENTRY),
                        ("ours_paced", paced_nb, _FIND_OUR_CDS, ".jr-play[aria-label='Play']",
                         ".jr-play[aria-label='Pause']", _OUR_ENTRY),
                        ("baseline_default", nbs["baseline_default"][0], _FIND_BASELINE_CDS,
                         ".widget-play button:has(i.fa-play)", ".widget-play button:has(i.fa-pause)", None),
                        ("baseline_fastest", nbs["baseline_fastest"][0], _FIND_BASELINE_CDS,
                         ".widget-play button:has(i.fa-play)", ".widget-play button:has(i.fa-pause)", None),
                    ]
                    for name, nb, find, play_sel, pause_sel, extra in plan:
                        log(f"[bench] browser: {name} ...")
                        try:
                            results[name] = _run_notebook(lab, browser, nb, find, play_sel, pause_sel,
                                                          measure_s, pauses, log, extra)
                            log(f"[bench] browser: {name}: {json.dumps(results[name], default=str)[:400]}")
                        except Exception as exc:  # noqa: BLE001 - one notebook failing must not hide the others
                            failures[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                            log(f"[bench] browser: {name} failed: {failures[name]}")
                finally:
                    browser.close()
        finally:
            stop_lab(lab)
    return _figures(results, failures, measure_s)


LABELS = {
    "ours": "widget at speed max",
    "ours_paced": f"widget at {PACED_SPEED}x (2,000 rows/s)",
    "baseline_default": "baseline, default knobs (100 rows/tick, 50 ms: 2,000 rows/s asked)",
    "baseline_fastest": "baseline, fastest knobs (5,000 rows/tick, 10 ms)",
}


def _pauses(v: dict[str, Any]) -> str:
    return "[" + ", ".join(f"{x:.0f}" for x in v["pause_all"]) + "] ms"


def _figures(results: dict[str, dict[str, Any]], failures: dict[str, str], measure_s: float) -> list[Figure]:
    ours, paced = results.get("ours"), results.get("ours_paced")
    base_d, base_f = results.get("baseline_default"), results.get("baseline_fastest")
    reason = "; ".join(f"{k}: {v}" for k, v in failures.items()) or "no result"
    figs: list[Figure] = []
    rows_name = "rows/s into BokehJS: widget at max vs baseline at its fastest"
    if ours and base_f:
        transport = (ours.get("extra") or {}).get("transport", "?")
        figs.append(Figure(
            NAME, rows_name, ours["rows_s"], base_f["rows_s"], unit="rows/s", target=at_least(10, ">= 10x"),
            baseline_name=LABELS["baseline_fastest"],
            note=f"ours {ours['calls_s']:.1f} stream calls/s (transport {transport}), baseline {base_f['calls_s']:.1f} "
                 f"updates/s; {measure_s:g} s after a 2 s warm-up; same 200k ticks, rollover {ROLLOVER:,}"))
    else:
        figs.append(not_available(NAME, rows_name, reason, at_least(10, ">= 10x")))
    if ours and base_d:
        figs.append(info(NAME, "rows/s: widget at max vs baseline, default knobs", ours["rows_s"] / base_d["rows_s"], "x",
                         note=f"baseline default: {base_d['rows_s']:,.0f} rows/s at {base_d['calls_s']:.1f} updates/s"))
    pause_name = f"pause-to-stop latency, both asked 2,000 rows/s"
    if paced and base_d:
        figs.append(Figure(
            NAME, pause_name, paced["pause_ms"], base_d["pause_ms"], unit="ms", target=at_most(1 / 3, "<= 1/3"),
            baseline_name=LABELS["baseline_default"],
            note=f"median of {len(paced['pause_all'])} pause clicks -> last rows into the source (0: none after the "
                 f"click): ours {_pauses(paced)}, "
                 f"baseline {_pauses(base_d)}; ours delivered {paced['rows_s']:,.0f} rows/s, baseline "
                 f"{base_d['rows_s']:,.0f}"))
    else:
        figs.append(not_available(NAME, pause_name, reason, at_most(1 / 3, "<= 1/3")))
    if ours and base_f:
        figs.append(info(NAME, "pause-to-stop at max vs baseline at its fastest", ours["pause_ms"], "ms",
                         note=f"ours {_pauses(ours)}, baseline fastest {_pauses(base_f)}"))
    fps_name = "frame rate while streaming at max vs idle page"
    if ours:
        figs.append(Figure(
            NAME, fps_name, ours["fps"], ours["idle_fps"], unit="fps", target=at_least(0.9, ">= 0.9 of idle"),
            baseline_name="same page idle before play",
            note="requestAnimationFrame count; " + "; ".join(
                f"{LABELS[k]}: {v['fps']:.0f} fps streaming, {v['idle_fps']:.0f} idle" for k, v in results.items()
                if k != "ours")))
    else:
        figs.append(not_available(NAME, fps_name, reason, at_least(0.9, ">= 0.9 of idle")))
    for k, v in failures.items():
        figs.append(not_available(NAME, f"{LABELS.get(k, k)} run", v))
    for k, v in results.items():
        if v.get("page_errors"):
            figs.append(info(NAME, f"page errors ({LABELS[k]})", len(v["page_errors"]), note=str(v["page_errors"])))
    return figs
