"""REST API of the replay server extension against a real Jupyter server and real kernels."""

from __future__ import annotations

import numpy as np
import pandas as pd
from server_helpers import arrow_bytes, on_server_loop, ts_ns

from jupyter_replay.sources import sample_trades

SESSIONS = ("replay", "api", "sessions")


@on_server_loop
async def test_extension_is_loaded(jp_serverapp, replay_ext, api):
    assert replay_ext.name == "jupyter_replay"
    assert "jupyter_replay" in jp_serverapp.extension_manager.extension_points
    assert jp_serverapp.web_app.settings["replay_manager"] is replay_ext.manager
    code, body, _ = await api.request("GET", *SESSIONS)
    assert (code, body) == (200, [])


@on_server_loop
async def test_create_list_get_delete(api, jp_base_url):
    kid = await api.start_kernel()
    code, model, resp = await api.request(
        "POST", *SESSIONS, body={"kernel_id": kid, "source": {"kind": "sample", "n": 200}}
    )
    assert code == 201, model
    assert jp_base_url == "/a%40b/"
    assert resp.headers["Location"] == f"{jp_base_url}replay/api/sessions/{kid}"
    assert model["id"] == model["kernel_id"] == kid
    assert model["state"] == "stopped" and model["mode"] == "replay" and model["num_rows"] == 200
    assert isinstance(model["client_token"], str) and len(model["client_token"]) >= 32
    assert model["server_url"].startswith("http://127.0.0.1:") and model["server_url"].endswith(jp_base_url)

    code, listing, _ = await api.request("GET", *SESSIONS)
    assert code == 200 and [m["kernel_id"] for m in listing] == [kid]
    entry = listing[0]
    for key in ("mode", "state", "speed", "position", "buffer_rows", "clients"):
        assert key in entry
    assert "client_token" not in entry  # the capability is only handed out per session

    code, again, _ = await api.request("POST", *SESSIONS, body={"kernel_id": kid})
    assert code == 409 and "already exists" in again["message"]

    got = await api.status(kid)
    assert got["kernel_id"] == kid and got["client_token"] == model["client_token"]
    viewer = await api.status(kid, headers={"X-Test-Role": "viewer"})
    assert "client_token" not in viewer  # read-only users do not get the write capability

    code, body, _ = await api.request("DELETE", *SESSIONS, kid)
    assert code == 204 and body == b""
    code, body, _ = await api.request("GET", *SESSIONS, kid)
    assert code == 404 and kid in body["message"]
    code, listing, _ = await api.request("GET", *SESSIONS)
    assert listing == []


@on_server_loop
async def test_two_kernels_are_independent(api):
    ka, kb = await api.start_kernel(), await api.start_kernel()
    await api.create(ka, source={"kind": "sample", "n": 400, "seed": 1}, speed="max")
    await api.create(kb, source={"kind": "sample", "n": 300, "seed": 2}, speed="max")
    for kid in (ka, kb):
        await api.ok(kid, "play")
    for kid in (ka, kb):
        await api.wait_for(kid, lambda m: m["state"] == "finished")
    # each buffer holds its own session's data, nothing else
    for kid, seed, n in ((ka, 1, 400), (kb, 2, 300)):
        buf = await api.buffer(kid)
        expected = sample_trades(n=n, seed=seed)
        np.testing.assert_array_equal(ts_ns(buf), ts_ns(expected))
        np.testing.assert_array_equal(buf["price"].to_numpy(), expected["price"].to_numpy())

    before_b = await api.status(kb)
    buffer_b = await api.buffer(kb)
    # pause, speed, loop, stop, step, seek, mode switch in A ...
    await api.ok(ka, "speed", speed=2)
    await api.ok(ka, "play")  # finished -> rewinds and plays again
    await api.ok(ka, "pause")
    await api.ok(ka, "loop", loop=True)
    await api.ok(ka, "seek", fraction=0.5)
    await api.ok(ka, "step", n=3)
    live = await api.ok(ka, "mode", mode="live", symbol="AAA")
    assert live["mode"] == "live" and live["symbol"] == "AAA"
    await api.wait_for(ka, lambda m: m["buffer_rows"] > 0)  # the live feed flows in A
    # ... leave B untouched
    after_b = await api.status(kb)
    for key in ("mode", "state", "speed", "loop", "symbol", "position", "buffer_rows", "rows", "seq", "last"):
        assert after_b[key] == before_b[key], key
    pd.testing.assert_frame_equal(await api.buffer(kb), buffer_b)

    # and the other way round
    before_a = await api.ok(ka, "mode", mode="replay")
    await api.ok(kb, "speed", speed=7)
    await api.ok(kb, "mode", mode="live")
    after_a = await api.status(ka)
    assert (after_b := await api.status(kb))["mode"] == "live" and after_b["speed"] == 7
    for key in ("mode", "state", "speed", "loop", "symbol", "position", "seq"):
        assert after_a[key] == before_a[key], key


@on_server_loop
async def test_actions_round_trip(api):
    kid = await api.start_kernel()
    await api.create(kid, source={"kind": "sample", "n": 100})
    model = await api.ok(kid, "step", n=5)
    assert model["state"] == "paused" and model["position"] == 5 and model["buffer_rows"] == 5
    model = await api.ok(kid, "step", duration="1s")
    assert model["position"] > 5
    model = await api.ok(kid, "seek", timestamp=model["start_ns"])
    assert model["position"] == 0 and model["buffer_rows"] == 0
    assert (await api.ok(kid, "speed", speed="max"))["speed"] == "max"
    assert (await api.ok(kid, "speed", speed=3.5))["speed"] == 3.5
    assert (await api.ok(kid, "loop", loop=True))["loop"] is True
    await api.ok(kid, "play")
    assert (await api.ok(kid, "pause"))["state"] == "paused"
    assert (await api.ok(kid, "stop"))["state"] == "stopped"


@on_server_loop
async def test_data_upload_and_buffer(api):
    kid = await api.start_kernel()
    model = await api.create(kid)
    assert model["has_data"] is False
    t0 = pd.Timestamp("2024-03-01T10:00:00Z")
    df = pd.DataFrame(
        {
            "t": t0 + pd.to_timedelta(np.arange(50) * 10, unit="ms"),
            "x": np.arange(50, dtype=np.float64),
            "flag": np.arange(50) % 2 == 0,
        }
    )
    code, model, _ = await api.request(
        "PUT", *SESSIONS, kid, "data", raw=arrow_bytes(df), params={"time": "t"},
        headers={"Content-Type": "application/vnd.apache.arrow.stream"},
    )
    assert code == 200, model
    assert model["num_rows"] == 50 and model["has_data"] and "client_token" not in model
    await api.ok(kid, "speed", speed="max")
    await api.ok(kid, "play")
    await api.wait_for(kid, lambda m: m["state"] == "finished")
    buf = await api.buffer(kid)
    np.testing.assert_array_equal(ts_ns(buf), ts_ns(df, "t"))
    np.testing.assert_array_equal(buf["x"], df["x"])
    np.testing.assert_array_equal(buf["flag"], df["flag"])

    code, err, _ = await api.request("PUT", *SESSIONS, kid, "data", raw=b"not arrow at all")
    assert code == 400 and "Arrow" in err["message"]
    code, err, _ = await api.request("PUT", *SESSIONS, kid, "data", raw=arrow_bytes(df))  # no "timestamp" column
    assert code == 400 and "time column" in err["message"]


@on_server_loop
async def test_file_sources_and_data_dirs(api, jp_root_dir, tmp_path):
    df = sample_trades(n=120, seed=3)
    df.to_parquet(jp_root_dir / "trades.parquet")
    (jp_root_dir / "sub").mkdir()
    df.to_csv(jp_root_dir / "sub" / "trades.csv", index=False)
    outside = tmp_path / "outside.csv"
    df.to_csv(outside, index=False)
    (jp_root_dir / "link.csv").symlink_to(outside)

    k1, k2, k3 = await api.start_kernel(), await api.start_kernel(), await api.start_kernel()
    assert (await api.create(k1, source={"kind": "parquet", "path": "trades.parquet"}))["num_rows"] == 120
    assert (await api.create(k2, source={"kind": "csv", "path": "sub/trades.csv"}))["num_rows"] == 120

    for path in ("../outside.csv", str(outside), "link.csv", "sub/../../outside.csv"):
        code, err, _ = await api.request("POST", *SESSIONS, body={"kernel_id": k3, "source": {"kind": "csv", "path": path}})
        assert code == 403 and "outside the allowed" in err["message"], (path, err)
    code, err, _ = await api.request(
        "POST", *SESSIONS, body={"kernel_id": k3, "source": {"kind": "csv", "path": "missing.csv"}}
    )
    assert code == 400 and "no such data file" in err["message"]
    assert k3 not in [m["kernel_id"] for m in (await api.request("GET", *SESSIONS))[1]]


@on_server_loop
async def test_error_codes(api, replay_ext):
    kid = await api.start_kernel()
    await api.create(kid, source={"kind": "sample", "n": 50_000})
    # 400: malformed JSON, wrong types, bad values, unknown action/argument, body too large
    code, err, _ = await api.request("POST", *SESSIONS, body="{not json")
    assert code == 400 and "JSON" in err["message"]
    code, err, _ = await api.request("POST", *SESSIONS, body="[1, 2]")
    assert code == 400
    k2 = await api.start_kernel()
    for bad in (
        {"kernel_id": k2, "source": {"kind": "ftp"}},
        {"kernel_id": k2, "source": {"kind": ["sample"]}},
        {"kernel_id": k2, "source": {"kind": "sample", "n": 10**9}},
        {"kernel_id": k2, "source": {"kind": "csv", "path": "x.csv", "sep": ";"}},
        {"kernel_id": k2, "source": "sample"},
        {"kernel_id": k2, "speed": "warp"},
        {"kernel_id": k2, "loop": "yes"},
        {"kernel_id": k2, "colour": "red"},
        {"kernel_id": 42},
    ):
        code, err, _ = await api.request("POST", *SESSIONS, body=bad)
        assert code == 400 and err["message"], (bad, err)
    assert [m["kernel_id"] for m in (await api.request("GET", *SESSIONS))[1]] == [kid]
    for action, args in (
        ("speed", {"speed": 0}),
        ("speed", {"speed": "fast"}),
        ("speed", {"speed": 5000}),
        ("seek", {"fraction": 1.5}),
        ("seek", {"timestamp": "not a time"}),
        ("step", {"n": -1}),
        ("loop", {"loop": "yes"}),
        ("mode", {"mode": "sideways"}),
        ("mode", {"mode": "live", "symbol": "bad symbol!"}),
        ("play", {"unexpected": 1}),
        ("dance", {}),
    ):
        code, err = await api.action(kid, action, **args)
        assert code == 400, (action, args, err)
        assert err["message"]
    code, err, _ = await api.request("POST", *SESSIONS, kid, "actions", "play", body="{oops")
    assert code == 400
    replay_ext.max_body_bytes = 64
    code, err, _ = await api.request("POST", *SESSIONS, kid, "actions", "speed", body={"speed": 1, "pad": "x" * 100})
    assert code == 400 and "too large" in err["message"]
    code, err, _ = await api.request("PUT", *SESSIONS, kid, "data", raw=b"x" * 1000)
    assert code == 400 and "too large" in err["message"]
    replay_ext.max_body_bytes = 1 << 20

    # 404: unknown session, unknown kernel
    for method, parts in (
        ("GET", (*SESSIONS, "nope")),
        ("DELETE", (*SESSIONS, "nope")),
        ("POST", (*SESSIONS, "nope", "actions", "play")),
        ("GET", (*SESSIONS, "nope", "buffer")),
        ("PUT", (*SESSIONS, "nope", "data")),
    ):
        code, err, _ = await api.request(method, *parts)
        assert code == 404 and "nope" in err["message"], (method, parts, err)
    code, err, _ = await api.request("POST", *SESSIONS, body={"kernel_id": "00000000-0000-0000-0000-000000000000"})
    assert code == 404 and "kernel" in err["message"]

    # 409: illegal transitions
    await api.ok(kid, "play")
    code, err = await api.action(kid, "step", n=1)
    assert code == 409 and "playing" in err["message"]
    await api.ok(kid, "mode", mode="live")
    code, err = await api.action(kid, "seek", fraction=0.1)
    assert code == 409 and "LIVE" in err["message"]
    await api.ok(kid, "mode", mode="replay")
    await api.ok(kid, "stop")
    code, err = await api.action(kid, "pause")
    assert code == 409

    # 403: not authorized (read-only user may read but not control; no permission at all)
    code, err, _ = await api.request("POST", *SESSIONS, kid, "actions", "play", body={}, headers={"X-Test-Role": "viewer"})
    assert code == 403 and "not authorized" in err["message"]
    code, _, _ = await api.request("GET", *SESSIONS, kid, headers={"X-Test-Role": "viewer"})
    assert code == 200
    for method, parts in (("GET", SESSIONS), ("GET", (*SESSIONS, kid)), ("DELETE", (*SESSIONS, kid))):
        code, err, _ = await api.request(method, *parts, headers={"X-Test-Role": "nobody"})
        assert code == 403, (method, parts)
    assert (await api.status(kid))["state"] == "stopped"  # nothing above changed the session


@on_server_loop
async def test_replay_token_capability(api):
    ka, kb = await api.start_kernel(), await api.start_kernel()
    token_a = (await api.create(ka, source={"kind": "sample", "n": 100}))["client_token"]
    await api.create(kb, source={"kind": "sample", "n": 100})
    cap = {"Authorization": f"ReplayToken {token_a}"}

    code, model, _ = await api.request("GET", *SESSIONS, ka, headers=cap)
    assert code == 200 and model["id"] == ka
    code, model, _ = await api.request("POST", *SESSIONS, ka, "actions", "speed", body={"speed": 4}, headers=cap)
    assert code == 200 and model["speed"] == 4
    df = sample_trades(n=10, seed=9)
    code, model, _ = await api.request("PUT", *SESSIONS, ka, "data", raw=arrow_bytes(df), headers=cap)
    assert code == 200 and model["num_rows"] == 10
    code, _, _ = await api.request("GET", *SESSIONS, ka, "buffer", headers=cap)
    assert code == 200

    # valid for that one session only
    for method, parts, body in (
        ("GET", (*SESSIONS, kb), None),
        ("POST", (*SESSIONS, kb, "actions", "play"), {}),
        ("DELETE", (*SESSIONS, kb), None),
        ("GET", SESSIONS, None),
        ("POST", SESSIONS, {"kernel_id": kb}),
        ("GET", (*SESSIONS, "nope"), None),
    ):
        code, err, _ = await api.request(method, *parts, body=body, headers=cap)
        assert code == 403, (method, parts, err)
    for bad in ("ReplayToken wrong", "ReplayToken ", "ReplayToken " + token_a[:-1]):
        code, _, _ = await api.request("GET", *SESSIONS, ka, headers={"Authorization": bad})
        assert code == 403, bad
    assert (await api.status(kb))["state"] == "stopped"
