"""``Replay`` in a real IPython kernel: what a frontend sees on iopub, and controls sent as comm messages.

No browser: the test plays the frontend with ``jupyter_client`` (it reads the widget's comm messages and
sends the custom messages the widget JS sends).
"""

from __future__ import annotations

import queue
import time
from typing import Any

import jupyter_client.manager
import pytest

from jupyter_replay import wire


SETUP = """
import numpy as np, pandas as pd
from jupyter_replay.widgets import replay
df = pd.DataFrame({"timestamp": pd.date_range("2024-01-02", periods=1500, freq="10ms", tz="UTC"),
                   "price": np.arange(1500, dtype=float), "size": np.ones(1500, dtype=np.int64)})
r = replay(df, speed="max")
r
"""
PLAY = """
r.play(); state = r.wait(timeout=30)
print("STATE", state, len(r.buffer))
"""


class Frontend:
    """Collects the iopub messages of the widget comm and sends comm messages like the widget JS."""

    def __init__(self, kc: Any) -> None:
        self.kc = kc
        self.comm_id: str | None = None
        self.custom: list[tuple[dict, list[bytes]]] = []
        self.updates: list[dict] = []
        self.stdout = ""

    def pump(self, timeout: float = 0.2) -> None:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                msg = self.kc.get_iopub_msg(timeout=left)
            except queue.Empty:
                return
            kind, content = msg["msg_type"], msg["content"]
            if kind == "comm_open" and content.get("target_name") == "jupyter.widget":
                state = content["data"]["state"]
                if state.get("_anywidget_id", "").endswith("Replay"):
                    self.comm_id = content["comm_id"]
            elif kind == "comm_msg" and content["comm_id"] == self.comm_id:
                data = content["data"]
                if data.get("method") == "custom":
                    self.custom.append((data["content"], [bytes(b) for b in msg.get("buffers", [])]))
                elif data.get("method") == "update":
                    self.updates.append(data["state"])
            elif kind == "stream":
                self.stdout += content["text"]
            elif kind == "error":
                raise AssertionError("\n".join(content["traceback"]))

    def until(self, pred: Any, timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            self.pump()
            value = pred()
            if value:
                return value
            assert time.monotonic() < deadline, "timed out"

    def send(self, content: dict) -> None:
        msg = self.kc.session.msg(
            "comm_msg", {"comm_id": self.comm_id, "data": {"method": "custom", "content": content}}
        )
        self.kc.shell_channel.send(msg)

    def frames(self) -> list[tuple[dict, dict]]:
        return [wire.decode_frame(b[0]) for c, b in self.custom if c.get("type") in ("frame", "history") and b]


@pytest.fixture(scope="module")
def kernel():
    km, kc = jupyter_client.manager.start_new_kernel(kernel_name="python3")
    try:
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_frames_reach_the_frontend_over_the_comm_and_controls_come_back(kernel) -> None:
    fe = Frontend(kernel)
    kernel.execute(SETUP)
    fe.until(lambda: fe.comm_id)
    fe.send({"type": "history"})  # what a view does when it has rendered
    fe.until(lambda: [m for m in fe.custom if m[0]["type"] == "history"])
    kernel.execute(PLAY)
    fe.until(lambda: "STATE" in fe.stdout)
    assert "STATE finished 1500" in fe.stdout
    # every row reached the frontend in order, as float ms, in few coalesced frames
    fe.until(lambda: sum(h["rows"] for h, _ in fe.frames()) == 1500)
    frames = fe.frames()
    prices = [p for _, cols in frames for p in cols["price"].tolist()]
    assert prices == [float(i) for i in range(1500)]
    assert all("timestamp_ns" not in cols and cols["timestamp"].dtype.name == "float64" for _, cols in frames)
    assert any(u.get("status", {}).get("state") == "finished" for u in fe.updates)

    # the widget JS asks for BokehJS: it comes inline from the kernel's bokeh package
    fe.send({"type": "need_bokeh"})
    (content, buffers), = fe.until(lambda: [m for m in fe.custom if m[0]["type"] == "bokehjs"])
    assert len(buffers[0]) > 500_000 and b"Bokeh" in buffers[0][:200_000]

    # controls from the browser act on the kernel's session; traits and the plot follow
    fe.send({"type": "control", "action": "speed", "speed": 25})
    fe.until(lambda: any(u.get("speed") == 25.0 for u in fe.updates))
    fe.send({"type": "control", "action": "stop"})
    reset = fe.until(lambda: [c for c, _ in fe.custom if c["type"] == "reset"])
    assert reset[-1]["reason"] == "stop"
    fe.until(lambda: any(u.get("status", {}).get("state") == "stopped" for u in fe.updates))
    fe.send({"type": "control", "action": "step", "n": 7})
    fe.until(lambda: any(u.get("status", {}).get("position") == 7 for u in fe.updates))
    fe.send({"type": "control", "action": "speed", "speed": -3})
    err = fe.until(lambda: [c for c, _ in fe.custom if c["type"] == "error"])
    assert err[-1]["status"] == 400
    # a late view asks for the buffer
    fe.send({"type": "history"})
    hist = fe.until(lambda: (h := [m for m in fe.custom if m[0]["type"] == "history"]) and len(h) == 2 and h)
    assert hist[-1][0]["rows"] == 7
    header, cols = wire.decode_frame(hist[-1][1][0])
    assert cols["price"].tolist() == [float(i) for i in range(7)]
