"""Isolation property test, engine level: several ``Session``s on one ``TestTimer`` driven by random
interleavings of every control (and live feeds we push rows into), each checked against a model of
that session alone.

After every step, for every session: the status (mode, state, speed, loop, symbol, position, rows,
buffer size, seq, error) equals the model's; seq numbers go up by exactly 1; replayed rows are exactly
the source rows from the modelled position on (never duplicated, never skipped, never another
session's); live rows are exactly the pushed rows while playing; ``first_row`` is contiguous between
resets; the buffer holds exactly the newest rows since the last reset; every client (subscriber) got
the same events. An action on one session leaves every other session's status and buffer
byte-identical and sends its clients nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, run_state_machine_as_test

from replay_model import DURATIONS, FRACTIONS, LOOPS, MODES, SEC, SPEEDS, STATS, STEP_NS, SYMBOLS, Model, kinds, mostly_valid

from jupyter_replay import Mode, Session, State, StateEvent, TestTimer
from jupyter_replay.batch import Chunk
from jupyter_replay.exceptions import ReplayError
from jupyter_replay.sources import ArraySource, LiveSource

T0 = int(pd.Timestamp("2024-01-02 09:30", tz="UTC").value)
BUFFER_ROWS = 25  # small, so rollover happens often


@pytest.fixture(autouse=True)
def jp_server_cleanup() -> Any:
    """No Jupyter server in this module: override pytest-jupyter's autouse cleanup."""
    yield


# ---------------------------------------------------------------------------------------- live feed
class PushFeed(LiveSource):
    """A real ``LiveSource`` whose chunks the test pushes; it can also end or fail on request."""

    def __init__(self, symbol: str, tag: int) -> None:
        self.symbol = symbol
        self.tag = tag
        self.dtypes = {"row": np.dtype(np.int64), "tag": np.dtype(np.int64), "bid": np.dtype(np.float64)}
        self.columns = list(self.dtypes)
        self.closed = False
        self._queue: asyncio.Queue[Any] = asyncio.Queue()

    def push(self, ids: np.ndarray) -> None:
        ts = T0 + ids.astype(np.int64) * 1_000_000
        self._queue.put_nowait(
            Chunk(ts, {"row": ids.astype(np.int64), "tag": np.full(len(ids), self.tag, np.int64), "bid": ids * 0.5})
        )

    def end(self) -> None:
        self._queue.put_nowait(None)

    def fail(self) -> None:
        self._queue.put_nowait(ConnectionResetError("feed dropped"))

    async def batches(self):  # type: ignore[override]
        while True:
            item = await self._queue.get()
            if item is None:
                return
            if isinstance(item, Exception):
                raise item
            yield item

    async def aclose(self) -> None:
        self.closed = True
        self._queue.put_nowait(None)


def _status_key(session: Session) -> str:
    status = session.status()
    if session.mode is Mode.LIVE:
        status.pop("time_ns")  # wall time in LIVE
    return json.dumps(status, sort_keys=True, default=str)


def _buffer_bytes(session: Session) -> tuple[bytes, ...]:
    chunk = session.buffer.to_chunk()
    return (chunk.ts.tobytes(), *(np.ascontiguousarray(c).tobytes() for _, c in sorted(chunk.columns.items())))


class Client:
    """A subscriber of one session (a browser tab, a kernel...)."""

    def __init__(self, session: Session, *, broken: bool = False) -> None:
        self.events: list[Any] = []
        self.joined_at = session.seq
        self.broken = broken
        self.unsubscribe = session.subscribe(self.receive)

    def receive(self, event: Any) -> None:
        self.events.append(event)
        if self.broken:
            raise RuntimeError("this client is broken")


# ---------------------------------------------------------------------------------------- machine
class SessionsMachine(RuleBasedStateMachine):
    """Two or three sessions on one loop and one virtual timer."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.timer = TestTimer(start_ns=10 * SEC)
        self.sessions: list[Session] = []
        self.models: list[Model] = []
        self.clients: list[list[Client]] = []
        self.feeds: list[list[PushFeed]] = []
        self.factory_symbols: list[list[str]] = []
        self.seen: list[int] = []  # events of client 0 already absorbed by the model

    # ------------------------------------------------------------------ setup
    @initialize(
        shapes=st.lists(
            st.tuples(st.integers(1, 90), st.integers(0, 2**32 - 1)), min_size=2, max_size=3
        )
    )
    def setup(self, shapes: list[tuple[int, int]]) -> None:
        for index, (n, seed) in enumerate(shapes):
            rng = np.random.default_rng(seed)
            gaps = rng.choice([0, 1_000_000, SEC // 4, SEC, 3 * SEC], size=n)  # duplicates included
            ts = T0 + index * 7 * SEC + np.cumsum(gaps).astype(np.int64)
            data = {"row": np.arange(n, dtype=np.int64), "tag": np.full(n, index, np.int64),
                    "price": 100.0 + index + np.arange(n) / 8}
            source = ArraySource(ts, data, tz="UTC")
            self.feeds.append([])
            self.factory_symbols.append([])
            session = self._run(self._make(source, index))
            self.sessions.append(session)
            self.models.append(Model(index, ts, BUFFER_ROWS))
            self.clients.append([Client(session), Client(session)])
            self.seen.append(0)

    async def _make(self, source: ArraySource, index: int) -> Session:
        def factory(symbol: str) -> PushFeed:
            self.factory_symbols[index].append(symbol)
            feed = PushFeed(symbol, index)
            self.feeds[index].append(feed)
            return feed

        return Session(source, session_id=f"s{index}", timer=self.timer, buffer_rows=BUFFER_ROWS, live_factory=factory)

    def teardown(self) -> None:
        async def close() -> None:
            for s in self.sessions:
                await s.aclose()
            await asyncio.sleep(0)

        try:
            self._run(close())
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            if pending:
                self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        finally:
            self.loop.close()

    def _run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    async def _settle(self) -> None:
        for _ in range(8):
            await asyncio.sleep(0)

    # ------------------------------------------------------------------ helpers
    def _absorb_new(self, i: int, during_action: bool) -> list[Any]:
        events = self.clients[i][0].events[self.seen[i]:]
        self.seen[i] += len(events)
        for e in events:
            self.models[i].absorb(e, self.sessions[i].id, during_action)
        return events

    def _absorb_settled(self) -> None:
        for i in range(len(self.sessions)):
            self._absorb_new(i, during_action=False)

    def _snapshot_others(self, i: int) -> list[tuple[Any, ...]]:
        return [
            (_status_key(s), _buffer_bytes(s), tuple(len(c.events) for c in self.clients[j]))
            for j, s in enumerate(self.sessions)
            if j != i
        ]

    def _control(self, i: int, action: str, args: dict[str, Any]) -> None:
        """Run one action on session ``i`` and check it against the model and the other sessions.

        Everything between the two snapshots is synchronous (no ``await``): whatever the pacing tasks
        of playing sessions do while the loop runs happens before or after, never in between.
        """
        session, model = self.sessions[i], self.models[i]
        call_args = {k: (v[0] if k == "timestamp" else v) for k, v in args.items()}

        async def act() -> None:
            self._absorb_settled()
            before = self._snapshot_others(i)
            before_status = _status_key(session)
            error, pattern, after = model.expect(action, args)
            raised: BaseException | None = None
            try:
                session.control(action, call_args)
            except ReplayError as exc:
                raised = exc
            assert self._snapshot_others(i) == before, f"{action} {args} on s{i} changed another session"
            STATS[f"{action}:{'ok' if error is None else error.__name__}"] += 1
            if error is not None:
                assert isinstance(raised, error), f"{action} {args}: expected {error.__name__}, got {raised!r}"
                assert str(raised)
                assert _status_key(session) == before_status, "a refused action changed the session"
                assert self._absorb_new(i, during_action=True) == []
                return
            assert raised is None, f"{action} {args} raised {raised!r}"
            events = self._absorb_new(i, during_action=True)
            after()
            got = kinds(events)
            assert re.fullmatch(pattern, got), f"{action} {args}: events {got!r}, want {pattern!r}"
            for e in events:
                if isinstance(e, StateEvent):
                    assert e.status["state"] == model.state.value and e.status["mode"] == model.mode

        self._run(act())
        self._run(self._settle())
        self._absorb_settled()

    def _quiet(self, j: int) -> bool:
        """Session ``j`` has nothing running by itself (not a playing replay)."""
        return not (self.models[j].mode == "replay" and self.models[j].rstate is State.PLAYING)

    def _snapshot_quiet(self, i: int) -> list[tuple[Any, ...]]:
        return [(_status_key(s), _buffer_bytes(s)) for j, s in enumerate(self.sessions) if j != i and self._quiet(j)]

    # ------------------------------------------------------------------ rules: controls
    sessions_idx = st.integers(0, 2)

    def _pick(self, i: int) -> int:
        return i % len(self.sessions)

    @rule(i=sessions_idx, action=st.sampled_from(["play", "pause", "stop", "play", "pause"]))
    def simple(self, i: int, action: str) -> None:
        self._control(self._pick(i), action, {})

    @rule(i=sessions_idx, data=st.data())
    def step(self, i: int, data: st.DataObject) -> None:
        args = data.draw(
            st.one_of(
                st.just({}),
                st.builds(lambda v: {"n": v[0]}, mostly_valid(STEP_NS)),
                st.builds(lambda v: {"duration": v[0]}, mostly_valid(DURATIONS)),
                st.just({"n": 1, "duration": "1s"}),
            )
        )
        self._control(self._pick(i), "step", args)

    @rule(i=sessions_idx, data=st.data())
    def seek(self, i: int, data: st.DataObject) -> None:
        i = self._pick(i)
        ts = self.models[i].ts
        start, end = int(ts[0]), int(ts[-1])
        inside = st.integers(start, end)
        timestamp = st.one_of(
            inside.map(lambda ns: (ns, ns)),
            inside.map(lambda ns: (pd.Timestamp(ns, tz="UTC").isoformat(), ns)),
            inside.map(lambda ns: (pd.Timestamp(ns, tz="UTC"), ns)),
            st.sampled_from(ts.tolist()).map(lambda ns: (ns, ns)),  # exactly on a (maybe duplicated) timestamp
            st.sampled_from([(start - 1, start - 1), (end + 1, end + 1), (2**64, None), (-(2**64), None),
                             ("not a time", None), (1.5e18, None), (True, None), (None, None), ("NaT", None)]),
        )
        args = data.draw(
            st.one_of(
                timestamp.map(lambda t: {"timestamp": t}),
                mostly_valid(FRACTIONS).map(lambda f: {"fraction": f[0]}),
                st.just({}),
            )
        )
        self._control(i, "seek", args)

    @rule(i=sessions_idx, speed=mostly_valid(SPEEDS))
    def speed(self, i: int, speed: tuple[Any, Any]) -> None:
        self._control(self._pick(i), "speed", {"speed": speed[0]})

    @rule(i=sessions_idx, loop=mostly_valid(LOOPS))
    def loop(self, i: int, loop: tuple[Any, Any]) -> None:
        self._control(self._pick(i), "loop", {"loop": loop[0]})

    @rule(i=sessions_idx, mode=mostly_valid(MODES), symbol=st.one_of(st.none(), st.none(), mostly_valid(SYMBOLS)))
    def mode(self, i: int, mode: tuple[Any, Any], symbol: tuple[Any, Any] | None) -> None:
        args = {"mode": mode[0]}
        if symbol is not None:
            args["symbol"] = symbol[0]
        self._control(self._pick(i), "mode", args)

    @rule(i=sessions_idx, which=st.sampled_from(["dance", "step+", "speed-", "", "PLAY"]))
    def unknown(self, i: int, which: str) -> None:
        if which == "step+":
            self._control(self._pick(i), "step", {"n": 1, "colour": "red"})
        elif which == "speed-":
            self._control(self._pick(i), "speed", {})
        else:
            self._control(self._pick(i), which, {})

    # ------------------------------------------------------------------ rules: time and feeds
    @rule(ms=st.sampled_from([0, 1, 16, 17, 100, 250, 1000, 5000]))
    def advance(self, ms: int) -> None:
        """Wall time passes: playing sessions release what is due (and only those)."""
        self._absorb_settled()
        self._run(self.timer.run_until_idle(limit_ns=self.timer.now() + ms * 1_000_000))
        self._absorb_settled()

    def _live_ready(self, i: int) -> bool:
        return self.models[i].mode == "live" and self.models[i].live_alive

    @precondition(lambda self: any(self._live_ready(i) for i in range(len(self.sessions))))
    @rule(i=sessions_idx, k=st.integers(1, 40))
    def push(self, i: int, k: int) -> None:
        """The current feed of a live session delivers rows: kept while playing, skipped while paused."""
        i = self._pick(i)
        if not self._live_ready(i):
            return
        self._absorb_settled()
        model = self.models[i]
        ids = np.arange(model.live_next, model.live_next + k)
        model.live_next += k
        if model.lstate is State.PLAYING:
            model.live_expected.extend(ids.tolist())
        before = self._snapshot_quiet(i)
        self.feeds[i][-1].push(ids)
        self._run(self._settle())
        self._absorb_settled()
        assert not model.live_expected, "pushed live rows not delivered"
        assert self._snapshot_quiet(i) == before

    @precondition(lambda self: any(len(f) > 1 for f in self.feeds))
    @rule(i=sessions_idx, k=st.integers(1, 5))
    def push_stale(self, i: int, k: int) -> None:
        """A feed the session has left (mode switch, stop, symbol change) delivers nothing anywhere."""
        i = self._pick(i)
        stale = self.feeds[i][:-1] if self._live_ready(i) else self.feeds[i]
        if not stale:
            return
        self._absorb_settled()
        before = self._snapshot_quiet(-1)
        stale[0].push(np.arange(10**6, 10**6 + k))  # its rows would break the model's row checks too
        self._run(self._settle())
        self._absorb_settled()
        assert self._snapshot_quiet(-1) == before

    @precondition(lambda self: any(self._live_ready(i) for i in range(len(self.sessions))))
    @rule(i=sessions_idx, fail=st.booleans())
    def feed_ends(self, i: int, fail: bool) -> None:
        """The upstream ends (FINISHED) or fails (PAUSED with an error); only this session notices."""
        i = self._pick(i)
        if not self._live_ready(i):
            return
        self._absorb_settled()
        self.models[i].pending_end = State.PAUSED if fail else State.FINISHED
        before = self._snapshot_quiet(i)
        feed = self.feeds[i][-1]
        feed.fail() if fail else feed.end()
        self._run(self._settle())
        self._absorb_settled()
        assert self.models[i].pending_end is None, "the feed's end was not reported"
        assert self._snapshot_quiet(i) == before

    # ------------------------------------------------------------------ rules: clients
    @rule(i=sessions_idx, broken=st.booleans())
    def join(self, i: int, broken: bool) -> None:
        i = self._pick(i)
        if len(self.clients[i]) < 5:
            self.clients[i].append(Client(self.sessions[i], broken=broken))

    @rule(i=sessions_idx)
    def leave(self, i: int) -> None:
        i = self._pick(i)
        if len(self.clients[i]) > 2:
            self.clients[i].pop().unsubscribe()

    # ------------------------------------------------------------------ invariants
    @invariant()
    def each_session_matches_its_model(self) -> None:
        for i, (session, model) in enumerate(zip(self.sessions, self.models)):
            assert self.seen[i] == len(self.clients[i][0].events), "events not absorbed"
            model.check_status(session.status())
            chunk = session.buffer.to_chunk()
            if model.rows:
                ids = np.concatenate(model.stream_ids)[-BUFFER_ROWS:]
                np.testing.assert_array_equal(chunk.columns["row"], ids)
                np.testing.assert_array_equal(chunk.ts, np.concatenate(model.stream_ts)[-BUFFER_ROWS:])
                assert np.all(chunk.columns["tag"] == i)
            else:
                assert len(chunk) == 0
            reference = self.clients[i][0].events
            for client in self.clients[i][1:]:
                expected = [e for e in reference if e.seq > client.joined_at]
                assert len(client.events) == len(expected) and all(a is b for a, b in zip(client.events, expected))
            if model.mode == "live":  # the feed in use is the one for the session's current symbol
                assert self.factory_symbols[i][-1] == model.symbol


@pytest.fixture
def quiet_session_log() -> Any:
    """Broken clients and failing feeds are logged with tracebacks by design; keep the output readable."""
    logger = logging.getLogger("jupyter_replay.session")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


def test_sessions_are_isolated_under_random_controls(quiet_session_log: Any) -> None:
    STATS.clear()
    run_state_machine_as_test(
        SessionsMachine,
        settings=settings(
            max_examples=200,
            stateful_step_count=50,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
        ),
    )
    print(sorted(STATS.items()))
    for action in ("play", "pause", "stop", "step", "seek", "speed", "mode", "loop"):
        assert STATS[f"{action}:ok"] > 0, action
    for refused in ("InvalidValueError", "IllegalTransitionError"):
        assert sum(v for k, v in STATS.items() if k.endswith(refused)) > 0
    for mode in ("replay", "live"):
        assert STATS[f"event:Batch:{mode}"] > 0 and STATS[f"event:ResetEvent:{mode}"] > 0
