"""Smoke test of the benchmark command (``python -m bench``): it runs and prints a well-formed table.

Timings are not asserted (tests assert behaviour): this only checks the command works end to end on toy
sizes, that every row carries a verdict, and that the CLI exposes it as ``jupyter replay bench``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
HEADER = ["bench", "figure", "measured", "baseline", "ratio", "target", "result"]


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_bench_core_tiny_prints_table_and_json(tmp_path: Path) -> None:
    out_json = tmp_path / "figures.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny", "--only", "core", "--json", str(out_json)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert _cells(lines[0]) == HEADER
    assert set(lines[1].replace("|", "").replace(":", "")) == {"-"}  # Markdown separator row
    rows = [_cells(line) for line in lines[2:] if line.startswith("|")]
    assert len(rows) >= 3
    for row in rows:
        assert len(row) == len(HEADER)
        assert row[0] == "core"
        assert row[6] in {"PASS", "FAIL", "info", "n/a"}
    targeted = [r for r in rows if r[5] != "-"]
    assert {r[5] for r in targeted} >= {">= 100x", ">= 1000x"}
    for r in targeted:  # a measured figure has a value, a baseline and a ratio
        assert r[2].endswith("rows/s") and r[3].endswith("rows/s") and r[4].endswith("x")
    assert "Notes:" in proc.stdout and "extrapolated" in proc.stdout  # iloc is sampled, and says so

    data = json.loads(out_json.read_text())
    assert data["machine"]["cores"] >= 1 and data["machine"]["python"]
    figs = data["figures"]
    assert [f["verdict"] for f in figs] == [r[6] for r in rows]
    itertuples = next(f for f in figs if "itertuples" in f["name"] and f["target"])
    assert itertuples["value"] > 0 and itertuples["baseline"] > 0
    assert itertuples["ratio"] == pytest.approx(itertuples["value"] / itertuples["baseline"])


def test_bench_unknown_name_is_rejected() -> None:
    proc = subprocess.run([sys.executable, "-m", "bench", "--only", "nope"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "unknown bench" in proc.stderr and "core" in proc.stderr


def test_not_available_figure_renders_without_a_number() -> None:
    sys.path.insert(0, str(REPO_ROOT))
    try:
        from bench.common import Figure, at_least, not_available
        from bench.report import format_table
    finally:
        sys.path.remove(str(REPO_ROOT))
    table = format_table([
        Figure("x", "measured one", 200.0, 2.0, unit="rows/s", target=at_least(10, ">= 10x")),
        not_available("y", "missing one", "server extension not installed", target=at_least(10, ">= 10x")),
    ])
    rows = [_cells(line) for line in table.splitlines()[2:4]]
    assert rows[0][4:] == ["100x", ">= 10x", "PASS"]
    assert rows[1][2:5] == ["not available", "-", "-"] and rows[1][6] == "n/a"
    assert "not available: server extension not installed" in table


def test_cli_has_bench_subcommand() -> None:
    from jupyter_replay.cli import bench_options, parse_args

    args = parse_args(["bench", "--quick", "--only", "core"])
    assert args.rest == ["--quick", "--only", "core"] and args.func.__name__ == "cmd_bench"
    options = bench_options(args.rest)
    assert options.quick is True and options.only == ["core"]
    with pytest.raises(SystemExit):
        parse_args(["version", "--quick"])  # only bench passes arguments through


def test_cli_parser_does_not_import_bench() -> None:
    """Building the parser (every `jupyter replay ...` call) leaves the checkout's bench/ alone."""
    code = ("import sys; from jupyter_replay.cli import build_parser; build_parser(); "
            "print(sorted(m for m in sys.modules if m == 'bench' or m.startswith('bench.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"
