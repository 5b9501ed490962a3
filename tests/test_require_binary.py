"""The one rule for missing external programs (tests/conftest.py ``require_binary``)."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest

MISSING = "jupyter-replay-no-such-program"


@pytest.mark.parametrize("env", [{}, {"JUPYTER_REPLAY_REQUIRE_BINARIES": "0"}, {"CI": "false"}])
def test_a_missing_program_is_a_skip_outside_ci(
    require_binary: Callable[..., str], monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    monkeypatch.delenv("JUPYTER_REPLAY_REQUIRE_BINARIES", raising=False)
    monkeypatch.delenv("CI", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(pytest.skip.Exception, match=MISSING):
        require_binary(MISSING, "a hint")


@pytest.mark.parametrize("env", [{"JUPYTER_REPLAY_REQUIRE_BINARIES": "1"}, {"CI": "true"}])
def test_a_missing_program_fails_under_dev_test_and_ci(
    require_binary: Callable[..., str], monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    monkeypatch.delenv("JUPYTER_REPLAY_REQUIRE_BINARIES", raising=False)
    monkeypatch.delenv("CI", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(pytest.fail.Exception, match="a hint"):
        require_binary(MISSING, "a hint", path="/nonexistent/" + MISSING)


def test_a_present_program_is_returned(require_binary: Callable[..., str]) -> None:
    assert require_binary("python-of-this-run", "unused", path=sys.executable) == sys.executable
