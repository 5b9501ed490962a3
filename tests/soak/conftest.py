"""The soak runs only when asked for with ``-m soak`` (``./dev test`` passes ``-m "not soak"``; a bare
``pytest`` run skips it instead of spending ten minutes)."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "soak" in (config.getoption("markexpr") or "") and "not soak" not in config.getoption("markexpr"):
        return
    skip = pytest.mark.skip(reason="soak test: run with -m soak (see docs/testing.md)")
    for item in items:
        if item.get_closest_marker("soak"):
            item.add_marker(skip)
