"""Imports flow one way: the engine never pulls in the server or widget stacks."""

from __future__ import annotations

import subprocess
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
