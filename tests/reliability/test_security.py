"""Security: unauthenticated requests are rejected, cross-origin WebSockets with cookie auth are refused,
a read-only user can watch but not control, and nothing on the wire is ever unpickled or evaluated.
"""

from __future__ import annotations

import ast
import builtins
import io
import json
import marshal
import os
import pickle
import urllib.parse
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from reliability_helpers import SESSIONS, Bystander, stable
from server_helpers import arrow_bytes, on_server_loop
from tornado.httpclient import HTTPClientError

import jupyter_replay
from jupyter_replay import Batch, Mode, ResetEvent, StateEvent, wire
from jupyter_replay.sources import sample_trades

PACKAGE = Path(jupyter_replay.__file__).resolve().parent


def _endpoints(kid: str) -> list[tuple[str, tuple[str, ...], object]]:
    return [
        ("GET", SESSIONS, None), ("POST", SESSIONS, {"kernel_id": kid}),
        ("GET", (*SESSIONS, kid), None), ("DELETE", (*SESSIONS, kid), None),
        *[("POST", (*SESSIONS, kid, "actions", a), {}) for a in ("play", "pause", "stop", "step", "seek", "speed",
                                                                 "mode", "loop")],
        ("PUT", (*SESSIONS, kid, "data"), arrow_bytes(sample_trades(n=5))),
        ("GET", (*SESSIONS, kid, "buffer"), None), ("GET", ("replay", "api", "feeds"), None),
    ]


@on_server_loop
async def test_unauthenticated_requests_are_rejected(api):
    bystander = await Bystander.start(api)
    kid = bystander.id
    for headers in ({"Authorization": ""}, {"Authorization": "token wrong"}, {"Authorization": "Bearer x"},
                    {"Authorization": "ReplayToken "}, {"Authorization": "ReplayToken wrong"},
                    {"Authorization": "token " + "x" * 10_000}):
        for method, parts, body in _endpoints(kid):
            raw = body if isinstance(body, bytes) else None
            code, err, _ = await api.request(method, *parts, headers=headers, raw=raw,
                                             body=None if raw is not None or body is None else body)
            assert code == 403, (headers["Authorization"][:20], method, parts, code)
        with pytest.raises(HTTPClientError) as info:
            await api.ws(kid, headers=headers)
        assert info.value.code == 403
    with pytest.raises(HTTPClientError) as info:  # a wrong token in the query string
        await api.ws(kid, headers={"Authorization": ""}, token="wrong")
    assert info.value.code == 403
    await bystander.check()


def _login_cookie(resp) -> tuple[str, str]:
    cookie = "; ".join(c.split(";", 1)[0] for c in resp.headers.get_list("Set-Cookie"))
    return cookie, urllib.parse.urlparse(resp.effective_url).netloc


@on_server_loop
async def test_cross_origin_requests_with_cookie_auth_are_refused(api):
    bystander = await Bystander.start(api)
    kid = bystander.id
    _, _, resp = await api.request("GET", "api", "status")  # token login: the server sets its login cookie
    cookie, host = _login_cookie(resp)
    assert cookie
    browser = {"Cookie": cookie, "Authorization": "", "Host": host}
    for origin in ("http://evil.example", "null", f"http://{host}.evil.example", "https://" + host.split(":")[0]):
        with pytest.raises(HTTPClientError) as info:
            await api.ws(kid, headers={**browser, "Origin": origin})
        assert info.value.code == 403, origin
    # (token-authenticated requests skip jupyter_server's origin check by design: a page on another site
    # cannot know the token; only ambient credentials, i.e. the cookie, need the origin check)
    # what a cross-site page could send with the cookie (another Origin, no XSRF token) is refused:
    # jupyter_server's APIHandler answers 404 to cross-origin API requests, 403 without the XSRF token
    for origin in ({"Origin": "http://evil.example"}, {}):
        for method, parts, body in _endpoints(kid):
            if method == "GET" and origin:
                code, _, _ = await api.request(method, *parts, headers={**browser, **origin})
                assert code == 404, (method, parts, code)
                continue
            if method == "GET":
                continue
            raw = body if isinstance(body, bytes) else None
            code, err, _ = await api.request(method, *parts, headers={**browser, **origin}, raw=raw,
                                             body=None if raw is not None or body is None else body)
            assert code == (404 if origin else 403), (method, parts, origin, code, err)
    ws = await api.ws(kid, headers={**browser, "Origin": f"http://{host}"})  # same origin: fine
    kind, hello = await ws.recv()
    assert hello["type"] == "hello" and hello["session"]["id"] == kid
    ws.close()
    await bystander.check()


@on_server_loop
async def test_read_only_user_can_watch_but_not_control(api):
    kid = await api.start_kernel()
    await api.create(kid, source={"kind": "sample", "n": 2000, "seed": 3}, speed="max")
    bystander = await Bystander.start(api)
    viewer = {"X-Test-Role": "viewer"}
    before = stable(await api.status(kid))

    model = await api.status(kid, headers=viewer)
    assert "client_token" not in model  # no write capability handed to a reader
    assert (await api.request("GET", *SESSIONS, headers=viewer))[0] == 200
    assert (await api.request("GET", *SESSIONS, kid, "buffer", headers=viewer))[0] == 200
    for method, parts, body in _endpoints(kid):
        if method == "GET":
            continue
        raw = body if isinstance(body, bytes) else None
        code, err, _ = await api.request(method, *parts, headers=viewer, raw=raw,
                                         body=None if raw is not None or body is None else body)
        assert code == 403 and err["message"], (method, parts, code)

    ws = await api.ws(kid, headers=viewer)
    kind, hello = await ws.recv()
    assert hello["writable"] is False
    for i, (action, args) in enumerate([("play", {}), ("pause", {}), ("stop", {}), ("step", {"n": 1}),
                                        ("seek", {"fraction": 0.5}), ("speed", {"speed": 2}), ("mode", {"mode": "live"}),
                                        ("loop", {"loop": True}), ("speed", {"speed": "bad"}), ("dance", {})]):
        reply = await ws.control(action, id=i, **args)
        assert reply["type"] == "error" and reply["status"] == 403, (action, reply)
    assert stable(await api.status(kid)) == before  # nothing the viewer did changed anything

    # ... but the viewer watches what a writer does
    await api.ok(kid, "play")
    msgs = await ws.until(lambda k, m: k == "text" and m["type"] == "state" and m["status"]["state"] == "finished")
    frames = [m for k, m in msgs if k == "frame" and not m[0].get("history")]
    assert sum(h["rows"] for h, _ in frames) == 2000
    ws.close()
    await bystander.check()


# ---------------------------------------------------------------------------------------- no pickle / code
FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle", "joblib"}
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__"}


def _code_findings(path: Path) -> list[str]:
    """Imports of deserializers that run code, and eval/exec-like calls, in one module (comments ignored)."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in FORBIDDEN_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in FORBIDDEN_MODULES:
            found.append(f"from {node.module} import")
        elif isinstance(node, ast.Call):
            fn = node.func
            name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else ""
            if name in FORBIDDEN_CALLS or (name == "load" and "yaml" in ast.unparse(fn)):
                found.append(f"call {ast.unparse(fn)}")
            if any(kw.arg == "allow_pickle" for kw in node.keywords):
                found.append(f"allow_pickle in {ast.unparse(fn)}")
    return [f"{path.relative_to(PACKAGE)}:{f}" for f in found]


def test_wire_and_server_code_never_unpickle_or_eval():
    """Static check of everything that handles bytes from the network: the wire codec, the server
    extension, feeds and the kernel-side client (also catches ``numpy.load(allow_pickle=...)``)."""
    modules = [PACKAGE / "wire.py", *sorted((PACKAGE / "server").glob("*.py")), *sorted((PACKAGE / "feeds").glob("*.py")),
               PACKAGE / "widgets" / "remote.py"]
    assert len(modules) > 8
    findings = [f for m in modules for f in _code_findings(m)]
    assert findings == []


class _Tripwire:
    """While active, any unpickling, marshal load or eval/exec raises (and is recorded)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.hits: list[str] = []
        self.monkeypatch = monkeypatch

    def _trap(self, name: str):
        def trapped(*args, **kwargs):
            self.hits.append(name)
            raise AssertionError(f"{name} called while handling wire data")

        return trapped

    def __enter__(self) -> "_Tripwire":
        mp = self.monkeypatch
        for mod, attr in ((pickle, "loads"), (pickle, "load"), (pickle, "Unpickler"), (marshal, "loads"),
                          (builtins, "eval"), (builtins, "exec")):
            mp.setattr(mod, attr, self._trap(f"{mod.__name__}.{attr}"))
        return self

    def __exit__(self, *exc) -> None:
        self.monkeypatch.undo()


def test_decoding_every_frame_type_uses_only_json_and_raw_buffers(monkeypatch):
    ts = np.arange(5, dtype=np.int64) * 1_000_000 + 1_700_000_000_000_000_000
    cols = {"f": np.arange(5.0), "i": np.arange(5, dtype=np.int32), "b": np.arange(5) % 2 == 0,
            "u": np.arange(5, dtype=np.uint16), "h": np.arange(5, dtype=np.float16),
            "d": ts.view("datetime64[ns]"), "o": np.array(["x"] * 5, dtype=object)}
    b1 = Batch(1, "s", Mode.REPLAY, ts, cols, 0)
    b2 = Batch(2, "s", Mode.REPLAY, ts + 10, cols, 5)
    frames = [wire.encode_batch(b1), wire.encode_batch(b1, ms_only=True), wire.encode_batches([b1, b2]),
              wire.encode_batch(b1, history=True)]
    texts = [wire.hello_message({"id": "s"}, 3, instance="i", writable=True),
             wire.state_message(StateEvent(4, "s", {"speed": float("inf"), "x": float("nan")})),
             wire.reset_message(ResetEvent(5, "s", Mode.LIVE, "mode")), wire.history_message(5, 5, first_row=0, mode="replay"),
             wire.merged_message(3, 1, total_frames_merged=7), wire.error_message(400, "bad", 1), wire.ack_message(1, {"id": "s"}),
             wire.control_message("seek", 2, fraction=0.5)]
    with _Tripwire(monkeypatch) as trip:
        for frame in frames:
            header, got = wire.decode_frame(frame)
            # numeric columns come from raw buffers; the one object column is dictionary-coded text whose
            # values came out of the JSON header (JSON scalars only: nothing is unpickled or evaluated)
            assert all(isinstance(a, np.ndarray) and (a.dtype != object or k == "o") for k, a in got.items())
            assert set(got["o"].tolist()) == {"x"} and len(got["o"]) == header["rows"] and got["b"].dtype == np.bool_
        for msg in texts:
            assert wire.loads(wire.dumps(msg))["type"] == msg["type"]
        # a frame announcing object or string dtypes is refused, not interpreted
        for spec in ({"dtype": "O"}, {"dtype": "|O8"}, {"dtype": "<U2"}, {"dtype": "V8"}, {"dtype": "datetime64[ns]"}):
            head = json.dumps({"rows": 1, "columns": [{"name": "x", "offset": 0, "nbytes": 8, **spec}]}).encode()
            bad = len(head).to_bytes(4, "little") + head + b"\0" * ((-(4 + len(head))) % 8) + b"\0" * 8
            with pytest.raises(wire.WireError):
                wire.decode_frame(bad)
    assert trip.hits == []


class _Boom:
    """Unpickling this creates a marker file: proof that someone unpickled it."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


class _PickledExtension(pa.ExtensionType):
    """An extension type named like pyarrow's old pickle-based ``PyExtensionType``, carrying a payload."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        super().__init__(pa.int64(), "arrow.py_extension_type")

    def __arrow_ext_serialize__(self) -> bytes:
        return self.payload

    @classmethod
    def __arrow_ext_deserialize__(cls, storage_type, serialized):
        return cls(serialized)


@on_server_loop
async def test_pickle_payloads_are_never_executed(api, tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Boom(str(marker)))
    kid = await api.start_kernel()
    await api.create(kid, source={"kind": "sample", "n": 50})
    bystander = await Bystander.start(api)
    ws = await api.ws(kid)
    await ws.until(lambda k, m: k == "frame")

    # pyarrow must not revive the pickled extension type (it would unpickle the payload)
    ext = _PickledExtension(payload)
    table = pa.table({"timestamp": pa.array(pd.date_range("2024-01-01", periods=3, freq="s", tz="UTC")),
                      "x": pa.ExtensionArray.from_storage(ext, pa.array([1, 2, 3], pa.int64()))})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    with _Tripwire(monkeypatch) as trip:
        code, err, _ = await api.request("PUT", *SESSIONS, kid, "data", raw=pickle.dumps(pd.DataFrame({"x": [1]})))
        assert code == 400 and "Arrow" in err["message"]
        code, err, _ = await api.request("PUT", *SESSIONS, kid, "data", raw=payload)
        assert code == 400
        code, _, _ = await api.request("PUT", *SESSIONS, kid, "data", raw=sink.getvalue().to_pybytes())
        assert code in (200, 400)
        code, err, _ = await api.request("POST", *SESSIONS, kid, "actions", "speed", raw=payload)
        assert code == 400 and "JSON" in err["message"]
        await ws.conn.write_message(payload, binary=True)
        reply = (await ws.until(lambda k, m: k == "text" and m["type"] == "error"))[-1][1]
        assert reply["status"] == 400
        await ws.conn.write_message(payload.decode("latin-1"))  # the same bytes as a text message
        reply = (await ws.until(lambda k, m: k == "text" and m["type"] == "error"))[-1][1]
        assert reply["status"] == 400
        await api.ok(kid, "play")  # the server streams on: still JSON text + raw numeric frames only
        await ws.until(lambda k, m: k == "text" and m["type"] == "state" and m["status"]["state"] == "finished")
    assert trip.hits == [] and not marker.exists()
    ws.close()
    await bystander.check()
    assert not os.path.exists(marker)


def test_arrow_extension_payload_is_not_unpickled_by_pyarrow(tmp_path):
    """The engine-side reader (``pa.ipc.open_stream(...).read_all().to_pandas()``) keeps unknown extension
    types as their storage: the pickle payload stays bytes."""
    marker = tmp_path / "pwned"
    ext = _PickledExtension(pickle.dumps(_Boom(str(marker))))
    table = pa.table({"x": pa.ExtensionArray.from_storage(ext, pa.array([1, 2], pa.int64()))})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    df = pa.ipc.open_stream(io.BytesIO(sink.getvalue().to_pybytes())).read_all().to_pandas()
    assert df["x"].tolist() == [1, 2] and not marker.exists()

