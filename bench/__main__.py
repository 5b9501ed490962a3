"""Run the benchmarks and print the results table: ``python -m bench [--quick] [--only NAME ...]``.

Also ``jupyter replay bench`` from a source checkout. ``--write`` records the table with the date and the
machine in ``bench/RESULTS.md``; ``--json FILE`` writes the raw figures.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/__main__.py`: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = "bench"

from bench.common import Figure, not_available  # noqa: E402
from bench.options import BENCHES, build_parser, select  # noqa: E402
from bench.report import format_table, machine_info, write_results  # noqa: E402

__all__ = ["main", "run_benches", "run_from_args"]


LOADS: dict[str, float] = {}  # 1-min load average after each bench (noise context for RESULTS.md)


def run_benches(names: Sequence[str], quick: bool, options: dict[str, Any], log=print) -> list[Figure]:
    """Run the named benches in order; a bench that crashes yields one ``not available`` row."""
    import os

    figures: list[Figure] = []
    for name in names:
        module_name, desc = BENCHES[name]
        log(f"[bench] {name}: {desc} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            module = importlib.import_module(module_name)
            got = module.run(quick=quick, **options)
        except Exception as exc:  # noqa: BLE001 - report and go on with the other benches
            traceback.print_exc(file=sys.stderr)
            got = [not_available(name, desc, f"{type(exc).__name__}: {exc}")]
        log(f"[bench] {name}: done in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
        if hasattr(os, "getloadavg"):
            LOADS[name] = os.getloadavg()[0]
        figures.extend(got)
    return figures


def run_from_args(args: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    names = select(args.only, args.skip)
    options = {"duration": args.duration, "sessions": args.sessions}
    started = time.time()
    if args.tiny:
        options["tiny"] = True
    figures = run_benches(names, args.quick or args.tiny, options)
    elapsed = time.time() - started
    print(format_table(figures))
    if args.write:
        cmd = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
        path = write_results(Path(args.write), figures, machine_info(), command=cmd.strip(),
                             quick=args.quick, elapsed_s=elapsed, loads=LOADS)
        print(f"\nwritten to {path}", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine_info(), "quick": args.quick,
                                               "figures": [f.as_dict() for f in figures]}, indent=1, default=str))
    if args.strict and any(f.passed is False for f in figures):
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_from_args(args, argv)


if __name__ == "__main__":
    sys.exit(main())
