"""The wire codec: binary batch frames and JSON text messages (design.md "Wire format")."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jupyter_replay import wire
from jupyter_replay.batch import Batch, Mode, ResetEvent, StateEvent

T0 = 1_700_000_000_123_456_789


def make_batch(seq: int = 1, first_row: int = 0, n: int = 5, start: int = T0, mode: Mode = Mode.REPLAY) -> Batch:
    ts = start + np.arange(n, dtype=np.int64) * 1_000_000
    cols = {
        "price": np.linspace(100.0, 101.0, n),
        "size": np.arange(n, dtype=np.int64) + first_row,
        "side": np.where(np.arange(n) % 2 == 0, 1, -1).astype(np.int8),
        "flag": np.arange(n) % 3 == 0,
        "sym": np.array(["A"] * n, dtype=object),
    }
    return Batch(seq=seq, session_id="s", mode=mode, ts=ts, columns=cols, first_row=first_row)


def test_frame_layout_is_aligned_little_endian():
    b = make_batch(n=3)
    frame = wire.encode_batch(b)
    (hlen,) = struct.unpack_from("<I", frame, 0)
    header = json.loads(frame[4 : 4 + hlen])
    base = 4 + hlen + (-(4 + hlen)) % 8
    assert base % 8 == 0
    assert header["type"] == "batch" and header["seq"] == 1 and header["rows"] == 3
    assert header["first_row"] == 0 and header["mode"] == "replay"
    names = [c["name"] for c in header["columns"]]
    assert names == ["timestamp", "timestamp_ns", "price", "size", "side", "flag", "sym"]
    sym = header["columns"][-1]
    assert sym["dtype"] == "int32" and sym["dictionary"] == {"base": 0, "values": ["A"]}
    for spec in header["columns"]:
        assert spec["offset"] % 8 == 0
    ms = header["columns"][0]
    raw = np.frombuffer(frame, "<f8", count=3, offset=base + ms["offset"])
    np.testing.assert_allclose(raw, b.ts / 1e6)
    assert len(frame) >= base + header["columns"][-1]["offset"] + header["columns"][-1]["nbytes"]


def test_roundtrip_exact_and_dtypes():
    b = make_batch(seq=7, first_row=40, n=6)
    header, cols = wire.decode_frame(wire.encode_batch(b))
    assert header["seq"] == 7 and header["first_row"] == 40 and header["rows"] == 6
    np.testing.assert_array_equal(cols["timestamp_ns"], b.ts)
    assert cols["timestamp"].dtype == np.float64
    np.testing.assert_array_equal(cols["price"], b.columns["price"])
    assert cols["size"].dtype == np.int64 and cols["side"].dtype == np.int8
    assert cols["flag"].dtype == np.bool_
    np.testing.assert_array_equal(cols["flag"], b.columns["flag"])
    assert cols["sym"].dtype == object and cols["sym"].tolist() == ["A"] * 6
    spec = {c["name"]: c for c in header["columns"]}
    assert spec["flag"]["dtype"] == "uint8" and spec["flag"]["bool"] is True


def test_ms_only_omits_ns_column():
    header, cols = wire.decode_frame(wire.encode_batch(make_batch(), ms_only=True))
    assert "timestamp_ns" not in cols and "timestamp" in cols


def test_empty_batch():
    header, cols = wire.decode_frame(wire.encode_batch(make_batch(n=0)))
    assert header["rows"] == 0 and len(cols["timestamp"]) == 0


def test_big_endian_and_datetime_columns_become_little_endian_ns():
    b = Batch(
        seq=1,
        session_id="s",
        mode=Mode.LIVE,
        ts=np.array([T0, T0 + 1], np.int64),
        columns={
            "be": np.array([1.5, 2.5], dtype=">f8"),
            "when": np.array(["2024-01-01", "2024-01-02"], dtype="datetime64[D]"),
            "half": np.array([1, 2], dtype=np.float16),
        },
        first_row=0,
    )
    header, cols = wire.decode_frame(wire.encode_batch(b))
    assert header["mode"] == "live"
    np.testing.assert_array_equal(cols["be"], [1.5, 2.5])
    assert cols["when"].dtype == np.dtype("datetime64[ns]")  # the engine's dtype again (int64 ns on the wire)
    assert cols["when"][0] == np.datetime64("2024-01-01", "ns")
    spec = {c["name"]: c for c in header["columns"]}
    assert spec["when"]["dtype"] == "int64" and spec["when"]["unit"] == "ns"
    assert cols["half"].dtype == np.float16 and spec["half"]["dtype"] == "float32"


def test_coalesce_keeps_first_seq_and_rows():
    b1, b2, b3 = make_batch(1, 0, 3), make_batch(2, 3, 4, start=T0 + 10**7), make_batch(5, 7, 2, start=T0 + 10**8)
    header, cols = wire.decode_frame(wire.encode_batches([b1, b2, b3]))
    assert header["first_seq"] == 1 and header["seq"] == 5
    assert header["first_row"] == 0 and header["rows"] == 9
    np.testing.assert_array_equal(cols["timestamp_ns"], np.concatenate([b1.ts, b2.ts, b3.ts]))
    np.testing.assert_array_equal(cols["size"], np.concatenate([b.columns["size"] for b in (b1, b2, b3)]))


def test_coalesce_single_is_plain_frame():
    header, _ = wire.decode_frame(wire.encode_batches([make_batch(3)]))
    assert header["seq"] == 3 and "first_seq" not in header


@pytest.mark.parametrize(
    "batches",
    [
        [],
        [make_batch(1, 0, 3), make_batch(2, 4, 3)],  # gap in rows
        [make_batch(2, 0, 3), make_batch(1, 3, 3)],  # seq not increasing
        [make_batch(1, 0, 3), make_batch(2, 3, 3, mode=Mode.LIVE)],  # mode change
    ],
)
def test_coalesce_rejects_non_contiguous(batches):
    with pytest.raises(wire.WireError):
        wire.encode_batches(batches)


@pytest.mark.parametrize(
    "frame",
    [b"", b"\x01\x00", struct.pack("<I", 100) + b"{}", struct.pack("<I", 2) + b"{}", struct.pack("<I", 3) + b"{]}"],
)
def test_decode_rejects_garbage(frame):
    with pytest.raises(wire.WireError):
        wire.decode_frame(frame)


def test_decode_rejects_truncated_buffer():
    frame = wire.encode_batch(make_batch(n=10))
    with pytest.raises(wire.WireError):
        wire.decode_frame(frame[:-8])


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(0, 50),
    seq=st.integers(0, 2**40),
    first_row=st.integers(0, 2**40),
    values=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=50, max_size=50),
)
def test_roundtrip_property(n, seq, first_row, values):
    ts = T0 + np.cumsum(np.arange(n, dtype=np.int64))
    cols = {"x": np.array(values[:n], np.float64), "i": np.arange(n, dtype=np.int32)}
    b = Batch(seq=seq, session_id="s", mode=Mode.REPLAY, ts=ts, columns=cols, first_row=first_row)
    header, out = wire.decode_frame(wire.encode_batch(b))
    assert (header["seq"], header["first_row"], header["rows"]) == (seq, first_row, n)
    np.testing.assert_array_equal(out["timestamp_ns"], ts)
    np.testing.assert_array_equal(out["x"], cols["x"])  # NaN positions compare equal
    np.testing.assert_array_equal(out["i"], cols["i"])


def test_text_messages():
    state = StateEvent(seq=3, session_id="s", status={"speed": float("inf"), "progress": np.float64(0.5)})
    msg = wire.loads(wire.dumps(wire.event_message(state)))
    assert msg == {"type": "state", "seq": 3, "status": {"speed": "max", "progress": 0.5}}
    reset = ResetEvent(seq=4, session_id="s", mode=Mode.LIVE, reason="mode")
    assert wire.loads(wire.dumps(wire.event_message(reset))) == {
        "type": "reset",
        "seq": 4,
        "mode": "live",
        "reason": "mode",
    }
    assert wire.history_message(10, 4) == {"type": "history", "rows": 10, "seq": 4}
    assert wire.dropped_message(2) == {"type": "dropped", "count": 2}
    assert wire.error_message(409, "nope", id=1) == {"type": "error", "status": 409, "message": "nope", "id": 1}
    assert wire.ack_message(5, {"state": "paused"})["status"] == {"state": "paused"}
    assert wire.control_message("seek", id=2, fraction=0.5) == {
        "type": "control",
        "id": 2,
        "action": "seek",
        "fraction": 0.5,
    }
    assert wire.hello_message({"id": "s"}, 0)["session"] == {"id": "s"}
    with pytest.raises(wire.WireError):
        wire.event_message(make_batch())


@pytest.mark.parametrize("text", ["not json", "[1, 2]", '{"no": "type"}', '{"type": 3}'])
def test_loads_rejects(text):
    with pytest.raises(wire.WireError):
        wire.loads(text)
