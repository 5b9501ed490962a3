"""Shared test set-up. Keep this small: layer fixtures live in ``tests/<layer>/conftest.py``."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS_DIR = REPO_ROOT / "artifacts"  # gitignored: screenshots, logs kept for CI

# ``server_helpers`` (tests/server) is the one client of the replay REST/WebSocket API for every test folder.
sys.path.insert(0, str(REPO_ROOT / "tests" / "server"))

# BokehJS from the Python package, never from a CDN (tests run offline); inherited by kernels and servers.
os.environ.setdefault("BOKEH_RESOURCES", "inline")

#: Set by ``./dev test`` (and implied by ``CI=true``): a missing external program fails the tests needing it.
REQUIRE_BINARIES_ENV = "JUPYTER_REPLAY_REQUIRE_BINARIES"


def binaries_required() -> bool:
    """True under ``./dev test`` and in CI, where ``./dev setup`` has installed every external program."""
    flag = os.environ.get(REQUIRE_BINARIES_ENV, "").strip().lower()
    return flag not in ("", "0", "false", "no") or os.environ.get("CI", "").strip().lower() == "true"


def require_binary(name: str, hint: str, path: str | None = None) -> str:
    """The path of external program ``name`` (``path`` if given and present, else looked up on PATH).

    The one rule for missing programs (chromium, redis-server, node, configurable-http-proxy): under
    ``./dev test`` or CI the test FAILS (a skip there would hide a broken set-up and untested code);
    a plain ``pytest`` elsewhere skips it. Use it through the ``require_binary`` fixture.
    """
    found = path if path is not None and os.path.exists(path) else shutil.which(name)
    if found:
        return found
    reason = f"{name} not found ({hint})"
    if binaries_required():
        pytest.fail(f"{reason}; required because {REQUIRE_BINARIES_ENV}=1 or CI=true", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session", name="require_binary")
def require_binary_fixture() -> Callable[..., str]:
    """``require_binary(name, hint, path=None) -> str``: see the function of that name in tests/conftest.py."""
    return require_binary


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository checkout."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """``<repo>/artifacts`` (created), for files a human looks at after a run."""
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    return ARTIFACTS_DIR
