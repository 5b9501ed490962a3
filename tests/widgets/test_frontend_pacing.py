"""The control bar's pacing menu (js/src/controls.js): speeds and rows-per-second (the ``rate`` action)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from test_frontend import run_node


@pytest.fixture(scope="module")
def node(require_binary: Callable[..., str]) -> str:
    return require_binary("node", "install Debian's nodejs; `./dev setup` does")


def test_pacing_menu_value_follows_the_status(node: str, tmp_path: Path) -> None:
    out = run_node(node, tmp_path, """
const { pacingValue } = await import("SRC/controls.js");
console.log(JSON.stringify([
  pacingValue({ speed: 10, pacing: "time", rate: null }),
  pacingValue({ speed: "max", pacing: "time" }),
  pacingValue({ speed: 1, pacing: "rows", rate: 5 }),
  pacingValue({ speed: 2.5 }),
]));
""")
    assert out == ["10", "max", "rows:5", "2.5"]
