"""Figure 8: the replay dashboard (``jupyter replay dashboard``, standalone Voilà) with 20 concurrent visitors.

One dashboard server started by the real command (``tests/e2e/dashboard_harness.start_dashboard``) and
one headless Chromium (Playwright, ``/usr/bin/chromium``) holding one browser context per visitor: real
visitors, each rendering the page, its widgets and its BokehJS plot, each with its own Voilà kernel.

Measured:
- time to first plot: from the page's navigation start (``performance.timeOrigin``) to the dashboard's
  BokehJS plot being embedded (the widget's data source exists), recorded in the page by an init script.
  Baseline: the same for one visitor alone on the idle server, measured first in the same run.
- server memory per visitor: RSS of the Voilà process plus its kernels with every visitor playing, minus
  the idle server's RSS, divided by the visitors (and the median kernel RSS).
- server CPU per visitor: CPU seconds of the Voilà process plus its kernels over a window in which every
  visitor plays at 1x, per second of window and per visitor (% of one core). The browser's CPU is not
  counted (it is the visitors' machines).
- cleanup: all pages closed (Voilà's beforeunload shutdown) -> every kernel gone.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import Figure, info, not_available, percentile, use_e2e_harness

__all__ = ["NAME", "run"]

NAME = "dashboard"
REPO_ROOT = Path(__file__).resolve().parents[1]
VISITORS = 20

# Runs in every page before its scripts: note when the dashboard's plot is embedded (ms since navigation start).
_FIRST_PLOT = """
(() => {
  const t = setInterval(() => {
    const R = window.__jupyter_replay__;
    const w = R && R.widgets && R.widgets[0];
    if (w && w.source) { window.__firstPlotMs = performance.now(); clearInterval(t); }
  }, 50);
})();
"""


def _tree(pid: int) -> list[Any]:
    import psutil

    proc = psutil.Process(pid)
    return [proc, *proc.children(recursive=True)]


def _rss(procs: list[Any]) -> int:
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except Exception:  # noqa: BLE001 - a kernel that just exited
            pass
    return total


def _cpu(procs: list[Any]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except Exception:  # noqa: BLE001 - a kernel that just exited
            pass
    return total


_PAGE_STATE = """() => {
  const R = window.__jupyter_replay__;
  const w = R && R.widgets && R.widgets[0];
  const st = document.querySelector('.jr-dash-status');
  const plot = w && w.el ? w.el.querySelector('.jr-plot') : null;
  return {widgets: R && R.widgets ? R.widgets.length : 0, source: !!(w && w.source),
          errors: w ? [...(w.errors || [])] : [], plotText: plot ? plot.textContent.slice(0, 60) : null,
          status: st ? st.textContent : null, rows: w && w.source ? (w.source.get_length() ?? 0) : 0};
}"""


def _poll(pages: list[Any], js: str, deadline_s: float, what: str, log: Any) -> dict[int, Any]:
    """Poll every page with ``js`` until each returned a truthy value or ``deadline_s`` passed (then the
    missing ones are left out): {page index: value}."""
    got: dict[int, Any] = {}
    t0 = last_log = time.monotonic()
    while len(got) < len(pages) and time.monotonic() - t0 < deadline_s:
        for i, page in enumerate(pages):
            if i not in got:
                value = page.evaluate(js)
                if value:
                    got[i] = value
        if time.monotonic() - last_log > 30:
            log(f"[dashboard] {what}: {len(got)}/{len(pages)} after {time.monotonic() - t0:.0f} s")
            last_log = time.monotonic()
        time.sleep(0.25)  # polling interval of this measurement loop (the timings are taken in the pages)
    return got


def _visit(browser: Any, url: str, n: int, timeout_s: float, log: Any) -> tuple[list[Any], dict[int, float]]:
    """Open ``n`` visitors at once; returns their pages and {index: seconds to first plot} of those that
    plotted within ``timeout_s``."""
    pages = []
    for _ in range(n):
        ctx = browser.new_context(viewport={"width": 1200, "height": 900})
        ctx.set_default_timeout(60_000)
        ctx.add_init_script(_FIRST_PLOT)
        page = ctx.new_page()
        page.goto(url, wait_until="commit", timeout=timeout_s * 1000)
        pages.append(page)
    firsts = _poll(pages, "() => window.__firstPlotMs ?? 0", timeout_s, "plotted", log)
    for i, page in enumerate(pages):
        if i not in firsts:
            log(f"[dashboard] visitor {i} has no plot after {timeout_s:.0f} s: {page.evaluate(_PAGE_STATE)}")
    return pages, {i: ms / 1000 for i, ms in firsts.items()}


def _play_all(pages: list[Any], timeout_s: float, log: Any) -> int:
    """Press Play on every page; returns how many plots received rows within ``timeout_s``."""
    from lab_harness import replay_button

    for page in pages:
        replay_button(page, "Play").click()
    js = "() => { const R = window.__jupyter_replay__; const w = R && R.widgets[0]; " \
         "return !!(w && w.source && w.source.get_length() > 0); }"
    return len(_poll(pages, js, timeout_s, "playing", log))


def _leave(dash: Any, pages: list[Any], timeout_s: float) -> float:
    """Close every page as a visitor does (``beforeunload`` runs: Voilà's shutdown beacon); seconds until all
    their kernels are gone. The contexts are closed only afterwards: closing one at once could drop the beacon."""
    from dashboard_harness import page_kernel_id
    from lab_harness import wait_for

    kernels = [page_kernel_id(p) for p in pages]
    t0 = time.monotonic()
    for page in pages:
        page.close(run_before_unload=True)
    def gone() -> bool:
        try:
            return not any(dash.kernel_exists(k) for k in kernels)
        except OSError:  # the server is busy shutting 20 kernels down: ask again
            return False

    wait_for(gone, timeout=timeout_s, interval=0.5, message="kernels outlived their closed pages")
    elapsed = time.monotonic() - t0
    for page in pages:
        page.context.close()
    return elapsed


def run(quick: bool = False, tiny: bool = False, **_: Any) -> list[Figure]:
    import os

    title = f"dashboard: {VISITORS} concurrent visitors"
    try:
        import psutil  # noqa: F401
        import voila  # noqa: F401
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        return [not_available(NAME, title, f"missing: {exc}")]
    if not os.path.exists("/usr/bin/chromium"):
        return [not_available(NAME, title, "/usr/bin/chromium missing")]
    if not (REPO_ROOT / "jupyter_replay" / "widgets" / "static" / "replay.js").exists():
        return [not_available(NAME, title, "widget not built")]
    use_e2e_harness()
    from dashboard_harness import start_dashboard, stop_dashboard
    from lab_harness import CHROMIUM, CHROMIUM_ARGS

    n = 2 if tiny else VISITORS
    window_s = 3.0 if tiny else (10.0 if quick else 20.0)
    timeout_s = 420.0
    log = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: T201 - progress on stderr
    with tempfile.TemporaryDirectory(prefix="jr-bench-dashboard-") as tmp:
        # culling must not touch a visitor during the run: both timeouts beyond the bench's own
        dash = start_dashboard("standalone", Path(tmp), disconnect_timeout=2 * timeout_s, connect_timeout=2 * timeout_s)
        try:
            time.sleep(2.0)  # let the freshly started server settle before its idle RSS is taken
            idle_rss = _rss(_tree(dash.proc.pid))
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                try:
                    log("[dashboard] one visitor alone (baseline) ...")
                    pages, single = _visit(browser, dash.url, 1, timeout_s, log)
                    _leave(dash, pages, timeout_s)
                    if not single:
                        return [not_available(NAME, title, "a visitor alone got no plot")]
                    log(f"[dashboard] {n} visitors at once ...")
                    t0 = time.monotonic()
                    pages, plotted = _visit(browser, dash.url, n, timeout_s, log)
                    all_plotted_s = time.monotonic() - t0
                    firsts = list(plotted.values())
                    if not firsts:
                        return [not_available(NAME, title, f"none of {n} visitors got a plot in {timeout_s:.0f} s")]
                    playing = _play_all([pages[i] for i in plotted], 120.0, log)
                    procs = _tree(dash.proc.pid)
                    kernels = procs[1:]
                    rss = _rss(procs)
                    kernel_rss = sorted(_rss([k]) for k in kernels)
                    cpu0, w0 = _cpu(procs), time.monotonic()
                    time.sleep(window_s)  # the measurement window itself: every visitor keeps playing at 1x
                    cpu_s, wall_s = _cpu(procs) - cpu0, time.monotonic() - w0
                    log(f"[dashboard] idle RSS {idle_rss / 2**20:.0f} MiB, with visitors {rss / 2**20:.0f} MiB, "
                        f"{len(kernels)} kernels, {cpu_s:.1f} CPU s in {wall_s:.1f} s, first plot alone "
                        f"{single[0]:.1f} s, concurrent {sorted(round(f, 1) for f in firsts)}")
                    cleanup_s = _leave(dash, pages, timeout_s)
                finally:
                    browser.close()
        finally:
            stop_dashboard(dash)
    mib = 1024 * 1024
    med = statistics.median(firsts)
    note = (f"{n} Chromium contexts opened together on one standalone Voilà server; "
            f"p95 {percentile(firsts, 95):.1f} s, max {max(firsts):.1f} s, {len(firsts)}/{n} plotted "
            f"(last after {all_plotted_s:.1f} s), {playing} streaming after Play; busy shared 2-core machine")
    return [
        Figure(NAME, f"time to first plot, median of {n} concurrent visitors vs 1 alone", med, single[0], unit="s",
               note=note, baseline_name="one visitor alone",
               extra={"first_plot_s": firsts, "single_s": single[0], "plotted": len(firsts), "playing": playing}),
        info(NAME, "time to first plot, p95 of the concurrent visitors", percentile(firsts, 95), "s"),
        info(NAME, "server memory per visitor (Voilà + kernels RSS over idle, all playing)",
             (rss - idle_rss) / n / mib, "MiB",
             note=f"idle server {idle_rss / mib:.0f} MiB, total with {n} visitors {rss / mib:.0f} MiB, "
                  f"median kernel RSS {statistics.median(kernel_rss) / mib:.0f} MiB ({len(kernels)} kernels)"),
        info(NAME, "server CPU per visitor while all play at 1x (Voilà + kernels)", 100 * cpu_s / wall_s / n,
             "% core", note=f"{cpu_s:.1f} CPU s over {wall_s:.1f} s for {n} visitors"),
        info(NAME, f"cleanup: {n} pages closed -> all their kernels gone", cleanup_s, "s"),
    ]
