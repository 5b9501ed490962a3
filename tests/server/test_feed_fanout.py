"""LIVE sessions of different kernels share one upstream per (feed, symbol), each with its own pause and buffer."""

from __future__ import annotations

from server_helpers import on_server_loop


async def upstreams(api) -> list[dict]:
    code, body, _ = await api.request("GET", "replay", "api", "feeds")
    assert code == 200
    return body["upstreams"]


@on_server_loop
async def test_two_live_sessions_share_one_upstream_and_pause_independently(api):
    ka, kb = await api.start_kernel(), await api.start_kernel()
    for kid in (ka, kb):
        await api.create(kid, source={"kind": "sample", "n": 100})
    assert await upstreams(api) == []

    await api.ok(ka, "mode", mode="live", symbol="FAN")
    await api.ok(kb, "mode", mode="live", symbol="FAN")
    ups = await upstreams(api)
    assert [(u["feed"], u["symbol"], u["subscribers"]) for u in ups] == [("synthetic", "FAN", 2)]

    await api.wait_for(ka, lambda m: m["rows"] > 0)
    await api.wait_for(kb, lambda m: m["rows"] > 0)

    paused = await api.ok(ka, "pause")
    assert paused["state"] == "paused"
    rows_a = (await api.status(ka))["rows"]
    rows_b = (await api.status(kb))["rows"]
    await api.wait_for(kb, lambda m: m["rows"] > rows_b + 3)  # B keeps streaming from the shared upstream
    assert (await api.status(ka))["rows"] == rows_a  # A's pause holds
    assert (await api.status(kb))["state"] == "playing"

    # A mode switch clears only A's buffer; the upstream stays for B
    back = await api.ok(ka, "mode", mode="replay")
    assert back["buffer_rows"] == 0 and (await api.status(kb))["buffer_rows"] > 0
    ups = await upstreams(api)
    assert [(u["symbol"], u["subscribers"]) for u in ups] == [("FAN", 1)]

    # the last subscriber closes the upstream
    await api.ok(kb, "mode", mode="replay")
    await api.wait_for(kb, lambda m: m["mode"] == "replay")
    assert await upstreams(api) == []
