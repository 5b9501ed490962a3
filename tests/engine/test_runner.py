"""ThreadedSession: the synchronous facade used in kernels and scripts without a server."""

from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd
import pytest

from jupyter_replay import IllegalTransitionError, InvalidValueError, State, ThreadedSession
from jupyter_replay.sources import DataFrameSource


def frame(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {"timestamp": pd.date_range("2024-01-02", periods=n, freq="10ms", tz="UTC"), "v": np.arange(n, dtype=float)}
    )


def test_plays_in_background_while_caller_is_busy() -> None:
    s = ThreadedSession(DataFrameSource(frame(30)), speed=10)
    threads: set[str] = set()
    s.on_batch(lambda batch, clock: threads.add(threading.current_thread().name))
    s.play()
    time.sleep(0.2)  # the "cell" is busy; replay runs on the background loop meanwhile
    assert s.wait(timeout=10) is State.FINISHED
    assert s.frame()["v"].tolist() == [float(i) for i in range(30)]
    assert threads == {"jupyter-replay-callbacks"}  # the session's own callback thread, off the shared loop
    s.close()


def test_errors_cross_the_thread_boundary_typed() -> None:
    s = ThreadedSession(DataFrameSource(frame(5)))
    with pytest.raises(InvalidValueError):
        s.set_speed(0)
    with pytest.raises(IllegalTransitionError):
        s.pause()
    assert s.step(2) == 2 and s.status()["position"] == 2
    s.close()


def test_two_threaded_sessions_are_independent() -> None:
    a = ThreadedSession(DataFrameSource(frame(1000)), speed=1)
    b = ThreadedSession(DataFrameSource(frame(50)), speed="max")
    a.play()
    b.play()
    b.wait(timeout=10)
    a.pause()
    assert a.state is State.PAUSED and b.state is State.FINISHED
    assert len(b.frame()) == 50 and len(a.frame()) < 1000
    b.set_mode("live")
    assert a.status()["mode"] == "replay"
    a.close()
    b.close()


@pytest.mark.parametrize("where", ["client", "engine"])
def test_a_failing_callback_is_logged_once_then_counted(where: str, caplog: pytest.LogCaptureFixture) -> None:
    """Through ``ThreadedSession.on_batch`` (the client) or the engine ``Session.on_batch`` alike: the first
    failure with its traceback, once per callback; every failure in ``status()["callback_errors"]``."""
    s = ThreadedSession(DataFrameSource(frame(200)), speed="max")
    batches: list[int] = []

    def counter(batch, clock):
        batches.append(len(batch))

    def broken(batch, clock):
        raise KeyError("symbol")

    def also_broken(batch, clock):
        raise ValueError("other")

    register = s.on_batch if where == "client" else (lambda fn: s.runner.call(lambda: s.session.on_batch(fn)))
    for fn in (counter, broken, also_broken):
        register(fn)
    with caplog.at_level("ERROR"):
        for _ in range(5):
            s.step(10)  # one batch each: five failures of each callback
        s.play()
        assert s.wait(timeout=20) is State.FINISHED
    try:
        records = [r for r in caplog.records if "on_batch callback" in r.getMessage()]
        assert len(batches) >= 6
        assert [r.exc_info[0] for r in records] == [KeyError, ValueError]  # once per callback, in order
        st = s.status()
        assert st["callback_errors"] == 2 * len(batches)
        assert st["error"] == "on_batch callback 'also_broken' failed: ValueError('other')"
        assert st["state"] == "finished" and s.frame()["v"].tolist() == [float(i) for i in range(200)]
    finally:
        s.close()
