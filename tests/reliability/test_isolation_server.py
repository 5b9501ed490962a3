"""Isolation property test, server level: three kernels' sessions on one real Jupyter server, driven in
random order through REST and WebSocket control messages by several clients (a REST client, a writer
WebSocket, a read-only WebSocket).

After every step: the acted-on session's status code and status (mode, state, speed, loop, symbol)
match a model of that session alone; every other session's status is unchanged (minus the fields a
playing session advances by itself) and its WebSocket received no state or reset message (checked
with a ping/pong barrier); every WebSocket stream stays gap- and duplicate-free.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test
from replay_model import STATS, Model, lookup, mostly_valid
from server_helpers import Api, WsClient
from stream_check import StreamChecker

from jupyter_replay import State
from jupyter_replay.exceptions import IllegalTransitionError, InvalidValueError
from jupyter_replay.sources import DataFrameSource, sample_trades

SESSIONS = ("replay", "api", "sessions")
N_ROWS = 20_000  # ~1000 s of data: at <= 5x nothing reaches the end during the test
CODES = {None: 200, InvalidValueError: 400, IllegalTransitionError: 409}
#: fields a running (playing) session changes by itself
MOVING = {"position", "position_ns", "position_iso", "time_ns", "progress", "rows", "rows_total", "buffer_rows",
          "seq", "last", "frames_merged", "rows_dropped"}

# JSON-able inputs (value, normalized or None when invalid); nothing here can reach the end of the data
TABLES: dict[str, list[tuple[Any, Any]]] = {
    "speed": [(1, 1.0), (2.5, 2.5), ("2x", 2.0), ("0.1", 0.1), (5, 5.0), (0.5, 0.5),
              (0, None), (-1, None), (float("nan"), None), (float("-inf"), None), (1e308, None), (2**64, None),
              ("fast", None), ("", None), (True, None), (None, None), ([1], None), ({}, None), (1000.5, None)],
    "loop": [(True, True), (False, False), (1, None), (0, None), ("true", None), (None, None)],
    "mode": [("replay", "replay"), ("live", "live"), ("LIVE", "live"),
             ("sideways", None), ("", None), (None, None), (5, None), (["live"], None)],
    "symbol": [("DEMO", "DEMO"), ("ABC", "ABC"), ("X.Y-1", "X.Y-1"),
               ("", None), ("bad symbol!", None), (5, None), ("x" * 65, None), ("a\x00b", None)],
    "duration": [("1s", 1), ("250ms", 1), (10**9, 1),
                 (0, None), (-5, None), ("soon", None), (1e308, None), (2**64, None), ([1], None), (True, None)],
    "n": [(1, 1), (3, 3), (50, 50), (0, None), (-1, None), (1.5, None), ("2", None), (True, None)],
    "fraction": [(0.0, 0.0), (0.25, 0.25), (0.5, 0.5), (0, 0.0),
                 (-0.1, None), (1.5, None), (float("nan"), None), ("0.5", None), (True, None), (None, None)],
}


def _others_key(model: dict[str, Any], running: bool) -> dict[str, Any]:
    return {k: v for k, v in model.items() if not (k == "time_ns" or (running and k in MOVING))}


class ServerSessionsMachine(RuleBasedStateMachine):
    """Drives the sessions of ``kernels`` (class attributes set by the test) on the server loop."""

    api: Api
    kernels: list[str]
    loop: asyncio.AbstractEventLoop
    ts: dict[str, np.ndarray]

    def __init__(self) -> None:
        super().__init__()
        self.models: list[Model] = []
        self.writers: list[WsClient] = []
        self.viewers: list[WsClient] = []
        self.checkers: list[StreamChecker] = []
        self.msg_id = 0

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coro, 30))

    # ------------------------------------------------------------------ setup
    @initialize()
    def setup(self) -> None:
        self.run(self._setup())

    async def _setup(self) -> None:
        for i, kid in enumerate(self.kernels):
            await self.api.request("DELETE", *SESSIONS, kid)
            await self.api.create(kid, source={"kind": "sample", "n": N_ROWS, "seed": i})
            self.models.append(Model(i, self.ts[kid], tables=TABLES))
            writer = await self.api.ws(kid)
            checker = StreamChecker(kid)
            for _ in range(3):  # hello, history, history frame
                checker.feed(*await writer.recv())
            self.writers.append(writer)
            self.checkers.append(checker)
            viewer = await self.api.ws(kid, headers={"X-Test-Role": "viewer"})
            self.viewers.append(viewer)

    def teardown(self) -> None:
        for ws in self.writers + self.viewers:
            ws.close()

    # ------------------------------------------------------------------ helpers
    async def _statuses(self) -> list[dict[str, Any]]:
        out = []
        for kid in self.kernels:
            model = await self.api.status(kid)
            model.pop("client_token", None)
            model.pop("server_url", None)
            out.append(model)
        return out

    def _running(self, j: int) -> bool:
        return self.models[j].state is State.PLAYING

    async def _barrier(self, j: int) -> list[dict[str, Any]]:
        """Everything session ``j``'s writer socket received up to a pong sent now (texts returned)."""
        self.msg_id += 1
        pong = f"b{self.msg_id}"
        await self.writers[j].send(type="ping", id=pong)
        while True:
            kind, msg = await self.writers[j].recv()
            assert kind != "closed", "the writer socket closed"
            self.checkers[j].feed(kind, msg)
            if kind == "text" and msg["type"] == "pong" and msg["id"] == pong:
                return [m for m in self.checkers[j].new_texts() if m["type"] != "pong"]

    def _act(self, i: int, action: str, args: dict[str, Any], via: str) -> None:
        self.run(self._act_async(i % len(self.kernels), action, args, via))

    async def _act_async(self, i: int, action: str, args: dict[str, Any], via: str) -> None:
        kid, model = self.kernels[i], self.models[i]
        for j in range(len(self.kernels)):  # start from a quiet point: everything so far consumed
            await self._barrier(j)
        before = await self._statuses()
        call_args = {k: (v[0] if k == "timestamp" else v) for k, v in args.items()}
        if via == "viewer":
            error, after = "forbidden", None
        elif action == "speed" and "speed" in args and lookup(TABLES["speed"], args["speed"]) is None:
            error, after = InvalidValueError, None  # the server validates speeds before the mode check
        else:
            error, _, after = model.expect(action, args)
        want = 403 if error == "forbidden" else CODES[error]
        if via == "rest":
            code, body, _ = await self.api.request(
                "POST", *SESSIONS, kid, "actions", action, body=json.dumps(call_args)
            )
            assert body.get("message") if code != 200 else body["id"] == kid
        else:
            self.msg_id += 1
            ws = self.writers[i] if via == "ws" else self.viewers[i]
            await ws.send(type="control", id=self.msg_id, action=action, **call_args)
            while True:  # the viewer socket also streams; skip to the reply
                kind, msg = await ws.recv()
                if via == "ws":
                    self.checkers[i].feed(kind, msg)
                if kind == "text" and msg.get("id") == self.msg_id and msg["type"] in ("ack", "error"):
                    break
            code = 200 if msg["type"] == "ack" else msg["status"]
            assert code == 200 or msg["message"]
        assert code == want, f"{via} {action} {call_args} on {kid}: {code}, expected {want}"
        STATS[f"server:{via}:{action}:{code}"] += 1
        if after is not None and code == 200:
            after()
        after_statuses = await self._statuses()
        texts = [await self._barrier(j) for j in range(len(self.kernels))]
        for j, (b, a) in enumerate(zip(before, after_statuses)):
            if j == i:
                continue
            running = self._running(j)
            assert _others_key(a, running) == _others_key(b, running), f"{action} on {kid} changed {self.kernels[j]}"
            assert not [m for m in texts[j] if m["type"] in ("state", "reset")], f"{self.kernels[j]} got {texts[j]}"
        status = after_statuses[i]
        got = {k: status[k] for k in ("mode", "state", "speed", "loop", "symbol")}
        assert got == {"mode": model.mode, "state": model.state.value, "speed": model.speed, "loop": model.loop,
                       "symbol": model.symbol}, f"{action} {call_args}"
        if code != 200:
            assert _others_key(status, self._running(i)) == _others_key(before[i], self._running(i))

    # ------------------------------------------------------------------ rules
    idx = st.integers(0, 2)
    via = st.sampled_from(["rest", "ws", "rest", "ws", "viewer"])

    @rule(i=idx, via=via, action=st.sampled_from(["play", "pause", "stop", "play", "pause"]))
    def simple(self, i: int, via: str, action: str) -> None:
        self._act(i, action, {}, via)

    @rule(i=idx, via=via, data=st.data())
    def step(self, i: int, via: str, data: st.DataObject) -> None:
        args = data.draw(st.one_of(
            st.just({}),
            mostly_valid(TABLES["n"]).map(lambda v: {"n": v[0]}),
            mostly_valid(TABLES["duration"]).map(lambda v: {"duration": v[0]}),
            st.just({"n": 1, "duration": "1s"}),
        ))
        self._act(i, "step", args, via)

    @rule(i=idx, via=via, data=st.data())
    def seek(self, i: int, via: str, data: st.DataObject) -> None:
        ts = self.ts[self.kernels[i % len(self.kernels)]]
        start, mid, end = int(ts[0]), int(ts[len(ts) // 2]), int(ts[-1])
        timestamp = st.one_of(
            st.integers(start, mid).map(lambda ns: (ns, ns)),
            st.sampled_from([(start - 1, None), (end + 1, None), (2**64, None), ("not a time", None),
                             (1.5e18, None), (True, None), (None, None)]),
        )
        args = data.draw(st.one_of(
            timestamp.map(lambda t: {"timestamp": t}),
            mostly_valid(TABLES["fraction"]).map(lambda f: {"fraction": f[0]}),
            st.just({}),
        ))
        if "timestamp" in args and args["timestamp"][1] is None and isinstance(args["timestamp"][0], int):
            ns = args["timestamp"][0]
            args["timestamp"] = (ns, ns)  # out of range ints: the model refuses them itself
        self._act(i, "seek", args, via)

    @rule(i=idx, via=via, speed=mostly_valid(TABLES["speed"]))
    def speed(self, i: int, via: str, speed: tuple[Any, Any]) -> None:
        self._act(i, "speed", {"speed": speed[0]}, via)

    @rule(i=idx, via=via, loop=mostly_valid(TABLES["loop"]))
    def loop_(self, i: int, via: str, loop: tuple[Any, Any]) -> None:
        self._act(i, "loop", {"loop": loop[0]}, via)

    @rule(i=idx, via=via, mode=mostly_valid(TABLES["mode"]), symbol=st.one_of(st.none(), mostly_valid(TABLES["symbol"])))
    def mode(self, i: int, via: str, mode: tuple[Any, Any], symbol: tuple[Any, Any] | None) -> None:
        args = {"mode": mode[0]}
        if symbol is not None:
            args["symbol"] = symbol[0]
        self._act(i, "mode", args, via)

    @rule(i=idx, via=via, action=st.sampled_from(["dance", "PLAY", "step"]))
    def unknown(self, i: int, via: str, action: str) -> None:
        self._act(i, action, {"colour": "red"} if action == "step" else {}, via)

    @rule(i=idx)
    def resume(self, i: int) -> None:
        """The writer drops its socket and resumes with ``?since=``: the stream goes on without a gap."""
        self.run(self._resume(i % len(self.kernels)))

    async def _resume(self, i: int) -> None:
        await self._barrier(i)
        checker = self.checkers[i]
        hello = next(m for m in checker.texts[::-1] if m["type"] == "hello") if checker.texts else None
        self.writers[i].close()
        instance = (await self.api.status(self.kernels[i]))["instance"]
        assert hello is None or hello["instance"] == instance
        checker.resuming = True
        self.writers[i] = await self.api.ws(self.kernels[i], since=checker.seq, instance=instance)
        kind, msg = await self.writers[i].recv()
        checker.feed(kind, msg)
        assert msg["type"] == "hello" and msg["instance"] == instance
        checker.resuming = False
        texts = await self._barrier(i)
        assert not [m for m in texts if m["type"] == "reset" and m["reason"] == "resync"], "resume fell back to resync"
        STATS["server:resume"] += 1

    @invariant()
    def streams_are_consistent(self) -> None:
        """Each writer stream holds exactly the rows its session released (the checker refuses gaps and
        duplicates as it reads): a quiet replay session's ``rows`` equals the stream's next row; a
        running (or live) one may be ahead of a socket, never behind it."""
        self.run(self._streams_are_consistent())

    async def _streams_are_consistent(self) -> None:
        for j, checker in enumerate(self.checkers):
            await self._barrier(j)
            status = await self.api.status(self.kernels[j])
            assert checker.next_row is not None, f"{self.kernels[j]}: stream not positioned after hello/history"
            assert checker.seq <= status["seq"], f"{self.kernels[j]}: stream seq {checker.seq} > session {status['seq']}"
            if status["mode"] == "replay" and status["state"] != State.PLAYING.value:
                assert checker.next_row == status["rows"], (
                    f"{self.kernels[j]}: stream ends at row {checker.next_row}, the session released {status['rows']}"
                )
            else:
                assert checker.next_row <= status["rows"], f"{self.kernels[j]}: stream ahead of its session"


@pytest.fixture
def jp_server_config(jp_server_config: Any) -> Any:
    jp_server_config.ReplayExtension.buffer_rows = 5_000
    return jp_server_config


def test_server_sessions_are_isolated(api: Api, jp_serverapp: Any) -> None:
    loop = asyncio.get_event_loop_policy().get_event_loop()
    kernels = [loop.run_until_complete(api.start_kernel()) for _ in range(3)]
    ts = {kid: DataFrameSource(sample_trades(n=N_ROWS, seed=i)).ts for i, kid in enumerate(kernels)}
    machine = type("Machine", (ServerSessionsMachine,), {"api": api, "kernels": kernels, "loop": loop, "ts": ts})
    STATS.clear()
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=20,
            stateful_step_count=30,
            deadline=None,
            database=None,
            derandomize=True,  # the same action sequence on every run (what it meets still depends on timing)
            suppress_health_check=list(HealthCheck),
        ),
    )
    print(sorted(STATS.items()))
    for action in ("play", "pause", "step", "seek", "speed", "mode", "loop"):  # the run did exercise things
        # exercised: answered by the session (200) or refused for its state (409); which of the two a pause
        # gets depends on whether the replay is still playing at that moment, i.e. on the machine's speed
        assert sum(STATS[f"server:{via}:{action}:{code}"] for via in ("rest", "ws") for code in (200, 409)) > 0, action
    for via in ("rest", "ws"):
        assert sum(v for k, v in STATS.items() if k.startswith(f"server:{via}:") and k.endswith(":200")) > 10, via
    assert any(k.startswith("server:viewer:") and k.endswith(":403") for k in STATS)
    assert sum(v for k, v in STATS.items() if k.endswith(":400")) and sum(v for k, v in STATS.items() if k.endswith(":409"))
