"""The results table (a Markdown pipe table, readable in a terminal too), machine facts and RESULTS.md."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

from .common import Figure, fmt_value

__all__ = ["COLUMNS", "format_table", "format_notes", "machine_info", "write_results"]

COLUMNS = ["bench", "figure", "measured", "baseline", "ratio", "target", "result"]
_PACKAGES = ["jupyter-replay", "numpy", "pandas", "pyarrow", "tornado", "jupyter_server", "jupyterlab",
             "bokeh", "jupyter_bokeh", "ipywidgets", "anywidget", "playwright", "websockets", "psutil"]


def _ratio(f: Figure) -> str:
    if f.ratio is None or not f.available:
        return "-"
    r = f.ratio
    if r == 0:
        return "0x"
    if r >= 100:
        return f"{r:,.0f}x"
    if r >= 10:
        return f"{r:.1f}x"
    if r >= 0.01:
        return f"{r:.3f}x" if r < 1 else f"{r:.2f}x"
    return f"{r:.2e}x"


def _row(f: Figure) -> list[str]:
    measured = fmt_value(f.value, f.unit) if f.available else "not available"
    return [f.bench, f.name, measured, fmt_value(f.baseline, f.unit) if f.baseline is not None else "-",
            _ratio(f), f.target.describe() if f.target else "-", f.verdict]


def format_table(figures: Sequence[Figure], notes: bool = True) -> str:
    """A Markdown pipe table padded to fixed widths, then numbered notes (baseline, method, reasons)."""
    rows = [COLUMNS] + [_row(f) for f in figures]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    right = {2, 3, 4}

    def line(cells: list[str]) -> str:
        out = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        return "| " + " | ".join(out) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if i in right else ("-" * (w + 2)) for i, w in enumerate(widths)) + "|"
    text = "\n".join([line(rows[0]), sep] + [line(r) for r in rows[1:]])
    if notes:
        text += "\n\n" + format_notes(figures)
    return text


def format_notes(figures: Sequence[Figure]) -> str:
    lines = ["Notes:"]
    for f in figures:
        parts = []
        if f.baseline_name:
            parts.append(f"baseline: {f.baseline_name}")
        if f.note:
            parts.append(f.note)
        if parts:
            lines.append(f"- {f.bench} / {f.name}: " + "; ".join(parts))
    return "\n".join(lines)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _chromium() -> str:
    try:
        out = subprocess.run(["/usr/bin/chromium", "--version"], capture_output=True, text=True, timeout=20)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "not installed"


def _git_commit() -> str:
    try:
        root = Path(__file__).resolve().parents[1]
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine_info() -> dict[str, Any]:
    """Date, CPU, cores, RAM, OS, Python and package versions, load average."""
    try:
        import psutil

        ram = f"{psutil.virtual_memory().total / 2**30:.1f} GiB"
    except ImportError:
        ram = "unknown"
    versions = {}
    for pkg in _PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "not installed"
    return {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram": ram,
        "os": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "chromium": _chromium(),
        "commit": _git_commit(),
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a",
        "versions": versions,
    }


def write_results(path: Path, figures: Sequence[Figure], machine: dict[str, Any], *, command: str,
                  quick: bool, elapsed_s: float, loads: dict[str, float] | None = None,
                  commentary: str = "") -> Path:
    """Write ``RESULTS.md``: how it was run, the machine, the table and its notes."""
    passed = sum(f.passed is True for f in figures)
    failed = [f for f in figures if f.passed is False]
    missing = [f for f in figures if not f.available]
    vers = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    lines = [
        "# Benchmark results",
        "",
        f"Recorded by `{command}` on {machine['date']} ({elapsed_s / 60:.1f} min"
        f"{', --quick: indicative only' if quick else ''}). Every figure is a ratio against a baseline "
        "measured in the same run; absolute numbers move with the machine's load.",
        "",
        "## Machine",
        "",
        f"- CPU: {machine['cpu']}, {machine['cores']} cores; RAM {machine['ram']}",
        f"- OS: {machine['os']}; {machine['python']}",
        f"- Chromium: {machine['chromium']}",
        f"- Commit: {machine['commit']}",
        f"- Load average when the run ended (1/5/15 min): {machine['loadavg']}",
        *([f"- 1-min load average after each bench (2 cores; other work on the machine adds noise): "
           + ", ".join(f"{k} {v:.2f}" for k, v in loads.items())] if loads else []),
        f"- Versions: {vers}",
        "",
        "## Results",
        "",
        f"{passed} figures meet their target, {len(failed)} miss it, {len(missing)} not available.",
        "",
        format_table(figures, notes=False),
        "",
        format_notes(figures).replace("Notes:", "### Notes\n"),
        "",
    ]
    if commentary:
        lines += ["## Discussion", "", commentary.strip(), ""]
    lines += ["## Reproduce", "", "```", "pip install -e '.[test]'   # or ./dev setup",
              "python -m bench            # or: jupyter replay bench; --quick, --only NAME, --write", "```", ""]
    path.write_text("\n".join(lines))
    return path
