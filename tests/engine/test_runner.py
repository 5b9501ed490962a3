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
    assert threads == {"jupyter-replay-loop"}
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
