"""The bench command line (argparse only, no heavy imports: ``jupyter replay bench`` builds it on every call)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

__all__ = ["BENCHES", "DESCRIPTION", "build_parser", "select"]

DESCRIPTION = ("Run the jupyter_replay benchmarks and print a table: each figure against a baseline measured "
               "in the same run, with its target and PASS/FAIL.")

#: name -> (module, one-line description), in run order.
BENCHES: dict[str, tuple[str, str]] = {
    "core": ("bench.bench_core", "replay core at speed max vs per-row pandas loops"),
    "wire": ("bench.bench_wire", "engine -> WebSocket client: binary frames vs per-row JSON"),
    "pacing": ("bench.bench_pacing", "release lateness at 1x / 100x vs busy-wait and asyncio.sleep"),
    "parquet": ("bench.bench_parquet", "seek in a 10M-row Parquet file vs a full time-column read"),
    "data": ("bench.bench_data", "100-file dataset seek vs full time read; Arrow/Polars sources vs via pandas; attach"),
    "window": ("bench.bench_window", "per-update cost with a 1M-row vs a 10k-row retained window"),
    "sessions": ("bench.bench_sessions", "concurrent sessions in one Jupyter server"),
    "heavy": ("bench.bench_heavy", "bystander pacing while heavy requests hit the same server"),
    "browser": ("bench.bench_browser", "JupyterLab + headless Chromium vs the ipywidgets.Play baseline"),
}

RESULTS_MD = Path(__file__).resolve().parent / "RESULTS.md"


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Add the bench options to ``parser`` (a new one by default)."""
    p = parser or argparse.ArgumentParser(prog="python -m bench", description=DESCRIPTION)
    p.add_argument("--quick", action="store_true",
                   help="fewer repeats and a 5 s pacing run instead of 60 s (same data sizes; indicative only)")
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # toy sizes for the smoke test
    p.add_argument("--only", action="append", default=[], metavar="NAME",
                   help=f"run only this bench (repeatable or comma-separated): {', '.join(BENCHES)}")
    p.add_argument("--skip", action="append", default=[], metavar="NAME", help="skip this bench (repeatable)")
    p.add_argument("--duration", type=float, default=None, help="pacing run length in seconds (default 60, quick 5)")
    p.add_argument("--sessions", type=int, default=None, help="concurrent server sessions (default 200)")
    p.add_argument("--write", nargs="?", const=str(RESULTS_MD), default=None, metavar="FILE",
                   help="record the table with date and machine in FILE (default bench/RESULTS.md)")
    p.add_argument("--json", default=None, metavar="FILE", help="write the figures as JSON to FILE")
    p.add_argument("--strict", action="store_true", help="exit 1 when a figure misses its target")
    return p


def select(only: Sequence[str], skip: Sequence[str]) -> list[str]:
    """Bench names to run, in order (``--only`` / ``--skip`` values may be comma-separated)."""

    def split(values: Sequence[str]) -> list[str]:
        return [n.strip() for v in values for n in v.split(",") if n.strip()]

    wanted, skipped = split(only), set(split(skip))
    unknown = [n for n in [*wanted, *skipped] if n not in BENCHES]
    if unknown:
        raise SystemExit(f"unknown bench {unknown}; choose from {', '.join(BENCHES)}")
    return [n for n in (wanted or list(BENCHES)) if n not in skipped]
