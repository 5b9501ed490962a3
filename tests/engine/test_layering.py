"""Imports flow one way: the engine never pulls in the server or widget stacks."""

from __future__ import annotations

import subprocess
import textwrap
import sys

import jupyter_replay

FORBIDDEN = ("tornado", "jupyter_server", "ipywidgets", "anywidget", "bokeh", "traitlets", "IPython")


def test_engine_imports_no_server_or_widget_stack() -> None:
    code = (
        "import sys\n"
        "import jupyter_replay, jupyter_replay.sources, jupyter_replay.feeds, jupyter_replay.wire\n"
        "from jupyter_replay import Session, ThreadedSession\n"
        f"bad = sorted(m for m in {FORBIDDEN!r} if m in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"engine imported {out}"


def test_public_api_is_declared() -> None:
    missing = [name for name in jupyter_replay.__all__ if not hasattr(jupyter_replay, name)]
    assert missing == []
    assert jupyter_replay.replay.__module__ == "jupyter_replay.widgets.replay"


def _literal_blocks(doc: str) -> list[str]:
    """The ``::`` literal blocks of a reST docstring, dedented."""
    blocks, lines = [], doc.splitlines()
    for i, line in enumerate(lines):
        if not line.rstrip().endswith("::"):
            continue
        body = []
        for nxt in lines[i + 1:]:
            if nxt.strip() and not nxt.startswith("    "):
                break
            body.append(nxt)
        blocks.append(textwrap.dedent("\n".join(body)).strip())
    return blocks


def test_package_docstring_engine_example_runs() -> None:
    """The package docstring's engine example runs as written, without the widget or server stacks."""
    blocks = _literal_blocks(jupyter_replay.__doc__ or "")
    engine = next(b for b in blocks if "from jupyter_replay import" in b)
    assert "Session" in engine and "DataFrameSource" in engine
    code = engine + f"\nimport sys\nprint('forbidden:', sorted(m for m in {FORBIDDEN!r} if m in sys.modules))\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "forbidden: []" in out.stdout
    assert "price" in out.stdout  # the frame printed by the example has the sample's columns


def test_package_docstring_widget_example_names_exist() -> None:
    blocks = _literal_blocks(jupyter_replay.__doc__ or "")
    widget = next(b for b in blocks if "jr.replay" in b)
    assert "import jupyter_replay as jr" in widget and callable(jupyter_replay.replay)
