"""Shared test set-up. Keep this small: layer fixtures live in ``tests/<layer>/conftest.py``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS_DIR = REPO_ROOT / "artifacts"  # gitignored: screenshots, logs kept for CI

# ``server_helpers`` (tests/server) is the one client of the replay REST/WebSocket API for every test folder.
sys.path.insert(0, str(REPO_ROOT / "tests" / "server"))

# BokehJS from the Python package, never from a CDN (tests run offline); inherited by kernels and servers.
os.environ.setdefault("BOKEH_RESOURCES", "inline")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository checkout."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """``<repo>/artifacts`` (created), for files a human looks at after a run."""
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    return ARTIFACTS_DIR
