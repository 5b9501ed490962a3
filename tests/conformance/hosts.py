"""The four hosts behind one interface: what a scenario sees of a replay, wherever it runs.

    engine    ``Session`` on an asyncio loop in a thread of the test process
    threaded  ``runner.ThreadedSession`` (a kernel without a server)
    widget_local  the ``Replay`` widget with no server (what nbval, nbclient, VS Code and scripts run)
    attached  the ``Replay`` widget in a real kernel, attached to that kernel's session on a real server
    rest      plain HTTP + a WebSocket client and the wire decoder (no jupyter_replay client code)

Every host: ``load(dataset, input="pandas")`` (``input``: the library the data comes from, ``golden.input_data``), ``control(action, args) -> status`` (raises the typed error of
``jupyter_replay.exceptions``), ``status()``, ``wait_state(states)``, ``events()`` (records from
``host_side.event_record``), ``frame()``, ``add_callback(kind, **params)`` and ``store()`` (hosts with
``callbacks = False`` cannot run Python callbacks), ``close()``.
"""

from __future__ import annotations

import ast
import asyncio
import base64
import io
import json
import pickle
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import golden
import host_side
import pandas as pd
import pyarrow as pa

from jupyter_replay import exceptions, wire

__all__ = [
    "TIMEOUT",
    "AttachedHost",
    "EngineHost",
    "Host",
    "LocalWidgetHost",
    "RestHost",
    "ThreadedHost",
    "raise_error",
]

TIMEOUT = 60.0
NOT_PLAYING = ("stopped", "paused", "finished")


def raise_error(types: list[str], message: str) -> None:
    """Re-raise an error that crossed a process boundary as the first ``jupyter_replay.exceptions`` class
    in its MRO (``ReplayError`` if none; an AssertionError when it was not a ``ReplayError`` at all)."""
    for name in types:
        cls = getattr(exceptions, name, None)
        if isinstance(cls, type) and issubclass(cls, exceptions.ReplayError):
            raise cls(message)
    raise AssertionError(f"not a ReplayError: {types[0]}: {message}")


class Host:
    """Shared waiting logic; subclasses provide the primitives."""

    name = "?"
    callbacks = True

    def wait_state(self, states: tuple[str, ...] = NOT_PLAYING, timeout: float = TIMEOUT) -> dict[str, Any]:
        return self.wait_status(lambda st: st.get("state") in states, timeout, f"state in {states}")

    def wait_status(self, pred: Callable[[dict], bool], timeout: float = TIMEOUT, what: str = "") -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            st = self.status()
            if pred(st):
                return st
            assert time.monotonic() < deadline, f"{self.name}: timed out waiting for {what}; status {st}"
            time.sleep(0.02)

    def wait_events(self, pred: Callable[[list[dict]], Any], timeout: float = TIMEOUT, what: str = "") -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            evs = self.events()
            if pred(evs):
                return evs
            assert time.monotonic() < deadline, f"{self.name}: timed out waiting for {what}; events {evs[-5:]}"
            time.sleep(0.02)

    def wait_store(self, pred: Callable[[dict], Any], timeout: float = TIMEOUT, what: str = "") -> dict:
        deadline = time.monotonic() + timeout
        while True:
            st = self.store()
            if pred(st):
                return st
            assert time.monotonic() < deadline, f"{self.name}: timed out waiting for {what}; store {st}"
            time.sleep(0.02)

    # primitives
    def load(self, dataset: str, input: str = "pandas") -> None: raise NotImplementedError
    def control(self, action: str, args: dict[str, Any] | None = None) -> dict[str, Any]: raise NotImplementedError
    def status(self) -> dict[str, Any]: raise NotImplementedError
    def events(self) -> list[dict[str, Any]]: raise NotImplementedError
    def frame(self) -> pd.DataFrame: raise NotImplementedError
    def add_callback(self, kind: str, **params: Any) -> None: raise NotImplementedError
    def marks(self) -> list[dict[str, Any]]: raise NotImplementedError
    def store(self) -> dict[str, Any]: raise NotImplementedError
    def close(self) -> None: pass


# ----------------------------------------------------------------------------------------- engine


class EngineHost(Host):
    """The engine ``Session`` on its own asyncio loop thread; every call runs on that loop."""

    name = "engine"

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="conformance-engine", daemon=True)
        self.thread.start()
        self.session: Any = None
        self._events: list[dict] = []
        self._store: dict[str, Any] = {}

    def _call(self, fn: Callable[[], Any]) -> Any:
        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(TIMEOUT)

    def load(self, dataset: str, input: str = "pandas") -> None:
        from jupyter_replay.session import Session
        from jupyter_replay.sources import as_source

        self._close_session()
        self._events, self._store = [], {}
        source = as_source(golden.input_data(input, dataset), time=golden.TIME[dataset])
        self.session = self._call(lambda: Session(source))
        self._call(lambda: self.session.subscribe(lambda e: self._events.append(host_side.event_record(e))))

    def control(self, action: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._call(lambda: self.session.control(action, dict(args or {})))

    def status(self) -> dict[str, Any]:
        return self._call(self.session.status)

    def events(self) -> list[dict[str, Any]]:
        return self._call(lambda: list(self._events))

    def frame(self) -> pd.DataFrame:
        return self._call(self.session.frame)

    def add_callback(self, kind: str, **params: Any) -> None:
        self._call(lambda: host_side.add_callback(self.session, kind, self._store, **params))

    def marks(self) -> list[dict[str, Any]]:
        keys = ("time_ns", "y", "text", "side")
        return self._call(lambda: [{k: m.to_json()[k] for k in keys} for m in self.session.marks])

    def store(self) -> dict[str, Any]:
        return self._call(lambda: json.loads(json.dumps(self._store, default=str)))

    def _close_session(self) -> None:
        if self.session is not None:
            session, self.session = self.session, None
            asyncio.run_coroutine_threadsafe(session.aclose(), self.loop).result(TIMEOUT)

    def close(self) -> None:
        self._close_session()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


# ----------------------------------------------------------------------------------------- threaded


class ThreadedHost(Host):
    """``ThreadedSession``: the engine on a background loop, driven from plain threads."""

    name = "threaded"

    def __init__(self) -> None:
        self.session: Any = None
        self._events: list[dict] = []
        self._store: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _on_event(self, event: Any) -> None:
        with self._lock:
            self._events.append(host_side.event_record(event))

    def load(self, dataset: str, input: str = "pandas") -> None:
        from jupyter_replay.runner import ThreadedSession
        from jupyter_replay.sources import as_source

        self.close()
        self._events, self._store = [], {}
        self.session = ThreadedSession(as_source(golden.input_data(input, dataset), time=golden.TIME[dataset]))
        self.session.subscribe(self._on_event)

    def control(self, action: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.session.control(action, dict(args or {}))

    def status(self) -> dict[str, Any]:
        return self.session.status()

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._events)

    def frame(self) -> pd.DataFrame:
        return self.session.frame()

    def add_callback(self, kind: str, **params: Any) -> None:
        host_side.add_callback(self.session, kind, self._store, **params)

    def marks(self) -> list[dict[str, Any]]:
        return host_side.mark_records(self.session.marks)

    def store(self) -> dict[str, Any]:
        return self.session.runner.call(lambda: json.loads(json.dumps(self._store, default=str)))

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None


class LocalWidgetHost(Host):
    """The ``Replay`` widget with no server to attach to (nbval, nbclient, VS Code, scripts), in-process:
    the same ``WidgetDriver`` the attached host runs in its kernel."""

    name = "widget_local"

    def __init__(self) -> None:
        self.driver = host_side.WidgetDriver()

    def _call(self, name: str, **args: Any) -> Any:
        answer = json.loads(self.driver.call(name, json.dumps(args)))
        if "error" in answer:
            err = answer["error"]
            try:
                raise_error(err["types"], err["message"])
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{err['traceback']}") from None
        return answer["ok"]

    def load(self, dataset: str, input: str = "pandas") -> None:
        self._call("load", dataset=dataset, input=input)

    def control(self, action: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._call("control", action=action, args=dict(args or {}))

    def status(self) -> dict[str, Any]:
        return self._call("status")

    def wait_state(self, states: tuple[str, ...] = NOT_PLAYING, timeout: float = TIMEOUT) -> dict[str, Any]:
        self._call("wait", states=list(states), timeout=timeout)
        return self.status()

    def events(self) -> list[dict[str, Any]]:
        return self._call("events")

    def frame(self) -> pd.DataFrame:
        return pickle.loads(base64.b64decode(self._call("frame")))

    def add_callback(self, kind: str, **params: Any) -> None:
        self._call("add_callback", kind=kind, params=params)

    def marks(self) -> list[dict[str, Any]]:
        return self._call("marks")

    def store(self) -> dict[str, Any]:
        return self._call("store")

    def close(self) -> None:
        self._call("close")


# ----------------------------------------------------------------------------------------- server side


class Server:
    """A real Jupyter server (the e2e harness's JupyterLab subprocess) and plain HTTP to it."""

    def __init__(self, lab: Any) -> None:
        self.lab = lab
        self.url = lab.url
        self.token = lab.token

    def request(self, method: str, path: str, body: Any = None, raw: bytes | None = None,
                content_type: str = "application/json") -> tuple[int, Any, dict]:
        """``(status, JSON or bytes, headers)``; never raises on HTTP error statuses."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        headers = {"Authorization": f"token {self.token}"}
        if data is not None:
            headers["Content-Type"] = content_type
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
                code, payload, hdrs = resp.status, resp.read(), dict(resp.headers)
        except urllib.error.HTTPError as err:
            code, payload, hdrs = err.code, err.read(), dict(err.headers)
        if hdrs.get("Content-Type", "").startswith("application/json") and payload:
            payload = json.loads(payload)
        return code, payload, hdrs

    def start_kernel(self) -> str:
        code, model, _ = self.request("POST", "api/kernels", {"name": "python3"})
        assert code == 201, model
        return model["id"]

    def fresh_session(self, kernel_id: str) -> dict[str, Any]:
        """Delete the kernel's replay session if there is one, create a new one (as the widget JS does)."""
        self.request("DELETE", f"replay/api/sessions/{kernel_id}")
        code, model, _ = self.request("POST", "replay/api/sessions", {"kernel_id": kernel_id})
        assert code == 201, model
        return model


def _raise_http(code: int, payload: Any) -> None:
    message = payload.get("message") if isinstance(payload, dict) else str(payload)
    reason = payload.get("reason") if isinstance(payload, dict) else None
    by_status = {400: "InvalidValueError", 409: "IllegalTransitionError", 404: "SessionNotFoundError"}
    raise_error([t for t in (reason, by_status.get(code)) if t] or [f"HTTP{code}"], str(message))


class RestHost(Host):
    """Raw REST + WebSocket: JSON over HTTP, Arrow for data and buffer, the wire decoder for rows."""

    name = "rest"
    callbacks = False

    def __init__(self, server: Server, kernel_id: str) -> None:
        self.server = server
        self.kid = kernel_id
        self.sid: str | None = None
        self._ws: Any = None
        self._reader: threading.Thread | None = None
        self._events: list[dict] = []
        self._lock = threading.Lock()
        self._hello = threading.Event()
        self._synced = threading.Event()
        self._marks: list[dict[str, Any]] = []  # the session's marks as the WebSocket tells them

    def load(self, dataset: str, input: str = "pandas") -> None:
        """Any input reaches the server as what a REST client sends: its Arrow table as an IPC stream."""
        self._close_ws()
        self._events, self._marks = [], []
        self.sid = self.server.fresh_session(self.kid)["id"]
        table = golden.arrow_table(golden.input_data(input, dataset))
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        code, payload, _ = self.server.request(
            "PUT", f"replay/api/sessions/{self.sid}/data?time={golden.TIME[dataset]}",
            raw=sink.getvalue().to_pybytes(), content_type="application/vnd.apache.arrow.stream")
        if code != 200:
            _raise_http(code, payload)
        self._open_ws()

    # WebSocket: a reader thread turns messages into event records
    def _open_ws(self) -> None:
        import websocket  # websocket-client: a plain, synchronous WebSocket client

        url = self.server.url.replace("http", "ws", 1) + f"replay/api/sessions/{self.sid}/ws"
        self._hello.clear()
        self._synced.clear()
        self._ws = websocket.create_connection(url, header=[f"Authorization: token {self.server.token}"],
                                               timeout=TIMEOUT)
        ws = self._ws
        self._reader = threading.Thread(target=self._read, args=(ws,), name="conformance-rest-ws", daemon=True)
        self._reader.start()
        assert self._hello.wait(TIMEOUT) and self._synced.wait(TIMEOUT), "no hello/history on the WebSocket"

    def _read(self, ws: Any) -> None:
        import websocket

        history_next = False
        # one decoder per connection: text columns travel as dictionary codes, the dictionary once per stream
        decoder = wire.FrameDecoder() if hasattr(wire, "FrameDecoder") else None
        decode = decoder.decode if decoder is not None else wire.decode_frame
        while True:
            try:
                opcode, data = ws.recv_data()
            except (websocket.WebSocketException, OSError):
                return
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return
            if opcode == websocket.ABNF.OPCODE_BINARY:
                header, cols = decode(data)
                if history_next or header.get("history"):
                    history_next = False
                    self._synced.set()
                    continue
                ts = cols.get(wire.TIME_NS_COLUMN)
                names = [c for c in cols if c not in (wire.TIME_NS_COLUMN, wire.TIME_MS_COLUMN)]
                rec = {"kind": "batch", "seq": int(header["seq"]), "first_row": int(header["first_row"]),
                       "n": int(header["rows"]), "mode": header.get("mode"),
                       "ts": [int(t) for t in ts] if ts is not None else [], "columns": names,
                       "position": header.get("position"), "warmup": header.get("warmup") is True}
            else:
                msg = json.loads(data)
                kind = msg.get("type")
                if kind == "hello":
                    self._hello.set()
                    continue
                if kind == "history":
                    history_next = int(msg.get("rows") or 0) > 0
                    if not history_next:
                        self._synced.set()
                    continue
                if kind == "reset":
                    rec = {"kind": "reset", "seq": int(msg["seq"]), "reason": msg.get("reason"), "mode": msg.get("mode"),
                           "position": msg.get("position")}
                elif kind == "state":
                    st = msg.get("status") or {}
                    rec = {"kind": "state", "seq": int(msg["seq"]), "state": st.get("state"), "mode": st.get("mode")}
                elif kind == "marks":
                    marks = [{k: m[k] for k in ("time_ns", "y", "text", "side")} for m in msg["marks"]]
                    with self._lock:
                        if msg.get("history"):  # the current marks (after a history): not events
                            self._marks = marks
                            continue
                        self._marks.extend(marks)
                        self._events.extend({"kind": "mark", "seq": int(msg["seq"]), **m} for m in marks)
                    continue
                else:
                    continue
            if rec["kind"] == "reset":
                with self._lock:
                    self._marks = []
            with self._lock:
                self._events.append(rec)

    def _close_ws(self) -> None:
        if self._ws is not None:
            try:
                self._ws.close()
            except Exception:
                pass
            if self._reader is not None:
                self._reader.join(10)
            self._ws = None

    def control(self, action: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        code, payload, _ = self.server.request(
            "POST", f"replay/api/sessions/{self.sid}/actions/{urllib.parse.quote(action)}", dict(args or {}))
        if code != 200:
            _raise_http(code, payload)
        return payload

    def status(self) -> dict[str, Any]:
        code, payload, _ = self.server.request("GET", f"replay/api/sessions/{self.sid}")
        assert code == 200, payload
        return {k: v for k, v in payload.items() if k not in golden.SERVER_MODEL_FIELDS}

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._events)

    def marks(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._marks)

    def frame(self) -> pd.DataFrame:
        code, body, _ = self.server.request("GET", f"replay/api/sessions/{self.sid}/buffer")
        assert code == 200, body
        return pa.ipc.open_stream(io.BytesIO(body)).read_all().to_pandas()

    def close(self) -> None:
        self._close_ws()
        if self.sid is not None:
            self.server.request("DELETE", f"replay/api/sessions/{self.sid}")
            self.sid = None


class AttachedHost(Host):
    """The ``Replay`` widget running in a real kernel, attached to that kernel's server session.

    The test plays the browser's part (create the session over REST, deliver ``attach`` to the widget);
    everything else is the widget's own Python API, executed in the kernel (``host_side.WidgetDriver``).
    """

    name = "attached"

    def __init__(self, server: Server, kernel_id: str, connection_file: str, paths: list[str]) -> None:
        from jupyter_client import BlockingKernelClient

        self.server = server
        self.kid = kernel_id
        self.kc = BlockingKernelClient(connection_file=connection_file)
        self.kc.load_connection_file()
        self.kc.start_channels(iopub=False, stdin=False, hb=False)
        # a starting kernel on a busy machine takes seconds: wait for its kernel_info reply (jupyter_client's
        # wait_for_ready gives up when the heartbeat misses a beat during start-up)
        msg_id = self.kc.kernel_info()
        deadline = time.monotonic() + TIMEOUT
        while self.kc.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))["parent_header"].get("msg_id") != msg_id:
            pass
        setup = "import sys\n" + "".join(f"sys.path.insert(0, {p!r})\n" for p in paths) + (
            "import host_side\n_conf = host_side.WidgetDriver()\n"
            "import jupyter_replay\n_conf_file = jupyter_replay.__file__\n")
        self._execute(setup)
        self.package_file = self._eval("_conf_file")

    def _execute(self, code: str, expressions: dict[str, str] | None = None) -> dict[str, Any]:
        msg_id = self.kc.execute(code, silent=False, store_history=False, user_expressions=expressions or {})
        deadline = time.monotonic() + TIMEOUT
        while True:
            reply = self.kc.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        content = reply["content"]
        if content["status"] != "ok":
            raise AssertionError("kernel code failed:\n" + "\n".join(content.get("traceback", [])))
        return content.get("user_expressions", {})

    def _eval(self, expr: str) -> Any:
        out = self._execute("", {"v": expr})["v"]
        assert out["status"] == "ok", out
        return ast.literal_eval(out["data"]["text/plain"])

    def _call(self, name: str, **args: Any) -> Any:
        answer = json.loads(self._eval(f"_conf.call({name!r}, {json.dumps(args)!r})"))
        if "error" in answer:
            err = answer["error"]
            try:
                raise_error(err["types"], err["message"])
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n(in the kernel)\n{err['traceback']}") from None
        return answer["ok"]

    def load(self, dataset: str, input: str = "pandas") -> None:
        """The input object is built in the kernel (``WidgetDriver.do_load``), as a notebook user builds it."""
        self._call("close")
        model = self.server.fresh_session(self.kid)
        attach = {"session": model["id"], "client_token": model["client_token"], "server_url": model["server_url"]}
        self._call("load", dataset=dataset, attach=attach, input=input)

    def control(self, action: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._call("control", action=action, args=dict(args or {}))

    def status(self) -> dict[str, Any]:
        return self._call("status")

    def wait_state(self, states: tuple[str, ...] = NOT_PLAYING, timeout: float = TIMEOUT) -> dict[str, Any]:
        self._call("wait", states=list(states), timeout=timeout)
        return self.status()

    def events(self) -> list[dict[str, Any]]:
        return self._call("events")

    def frame(self) -> pd.DataFrame:
        return pickle.loads(base64.b64decode(self._call("frame")))

    def add_callback(self, kind: str, **params: Any) -> None:
        self._call("add_callback", kind=kind, params=params)

    def marks(self) -> list[dict[str, Any]]:
        return self._call("marks")

    def store(self) -> dict[str, Any]:
        return self._call("store")

    def close(self) -> None:
        try:
            self._call("close")
        finally:
            self.kc.stop_channels()
