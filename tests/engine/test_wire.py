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
    assert wire.merged_message(2) == {"type": "merged", "frames_merged": 2, "rows_dropped": 0}
    assert wire.merged_message(0, 7, total_rows_dropped=9)["rows_dropped"] == 7
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


# ---------------------------------------------------------------- dictionary columns (text, categorical)


def text_batch(seq: int, first_row: int, values: list, start: int = T0) -> Batch:
    n = len(values)
    ts = start + (first_row + np.arange(n, dtype=np.int64)) * 1_000_000
    cols = {"price": np.arange(n, dtype=np.float64), "symbol": np.array(values, dtype=object)}
    return Batch(seq=seq, session_id="s", mode=Mode.REPLAY, ts=ts, columns=cols, first_row=first_row)


def dictionary_of(frame: bytes, name: str = "symbol") -> dict:
    (hlen,) = struct.unpack_from("<I", frame, 0)
    header = json.loads(frame[4 : 4 + hlen])
    return next(c for c in header["columns"] if c["name"] == name)["dictionary"]


def test_text_values_go_once_per_stream_and_decode_exactly():
    enc, dec = wire.FrameEncoder(), wire.FrameDecoder()
    b1 = text_batch(1, 0, ["AAPL", "MSFT", None, "AAPL"])
    b2 = text_batch(2, 4, ["MSFT", "GOOG", "AAPL"])
    f1, f2 = enc.encode(b1), enc.encode(b2)
    assert dictionary_of(f1) == {"base": 0, "values": ["AAPL", "MSFT"]}
    assert dictionary_of(f2) == {"base": 2, "values": ["GOOG"]}  # only the new value
    _, c1 = dec.decode(f1)
    _, c2 = dec.decode(f2)
    assert c1["symbol"].dtype == object and c1["symbol"].tolist() == ["AAPL", "MSFT", None, "AAPL"]
    assert c2["symbol"].tolist() == ["MSFT", "GOOG", "AAPL"]
    # a history frame starts afresh (a client that joins gets the whole dictionary)
    f3 = enc.encode(text_batch(3, 0, ["GOOG"]), history=True)
    assert dictionary_of(f3) == {"base": 0, "values": ["GOOG"]}
    assert wire.FrameDecoder().decode(f3)[1]["symbol"].tolist() == ["GOOG"]
    # merged batches: one frame, one dictionary
    f4 = wire.FrameEncoder().encode([b1, b2])
    assert wire.decode_frame(f4)[1]["symbol"].tolist() == b1.columns["symbol"].tolist() + b2.columns["symbol"].tolist()


def test_dictionary_keeps_scalar_types_and_nulls():
    values = ["1", 1, 1.0, True, False, None, float("nan"), "ü €", 0]
    header, cols = wire.decode_frame(wire.encode_batch(text_batch(1, 0, values)))
    out = cols["symbol"].tolist()
    assert out == ["1", 1, 1.0, True, False, None, None, "ü €", 0]
    assert [type(v) for v in out] == [str, int, float, bool, bool, type(None), type(None), str, int]


def test_dictionary_restarts_beyond_the_cap():
    enc, dec = wire.FrameEncoder(max_values=4), wire.FrameDecoder(max_values=4)
    frames = [enc.encode(text_batch(i + 1, 3 * i, [f"v{3 * i + k}" for k in range(3)])) for i in range(3)]
    assert [dictionary_of(f)["base"] for f in frames] == [0, 0, 0]  # 3 + 3 > 4: afresh each time
    assert [dec.decode(f)[1]["symbol"].tolist() for f in frames][2] == ["v6", "v7", "v8"]
    small = wire.FrameEncoder(max_values=100, max_bytes=10)
    small.encode(text_batch(1, 0, ["abcdefgh"]))
    assert dictionary_of(small.encode(text_batch(2, 1, ["ijklmnop"])))["base"] == 0  # 16 bytes > 10


def test_objects_that_are_not_json_scalars_are_not_sent():
    b = text_batch(1, 0, ["a", {"x": 1}])
    assert "symbol" not in wire.decode_frame(wire.encode_batch(b))[1]


@pytest.mark.parametrize(
    "dictionary, codes, match",
    [
        ({"base": 3, "values": ["a"]}, [0], "base"),  # values before it were never received
        ({"base": 0, "values": ["a"]}, [1], "outside"),
        ({"base": 0, "values": ["a"]}, [-2], "outside"),
        ({"base": 0, "values": [["nested"]]}, [0], "JSON scalar"),
        ({"base": "0", "values": ["a"]}, [0], "base"),
        ({"values": ["a"]}, [0], "base"),
        ("abc", [0], "dictionary"),
    ],
)
def test_decoder_rejects_bad_dictionaries(dictionary, codes, match):
    codes_arr = np.array(codes, dtype="<i4")
    header = {"type": "batch", "seq": 1, "rows": len(codes), "columns": [
        {"name": "sym", "dtype": "int32", "offset": 0, "nbytes": codes_arr.nbytes, "dictionary": dictionary}]}
    head = json.dumps(header).encode()
    prefix = 4 + len(head)
    frame = struct.pack("<I", len(head)) + head + b"\0" * ((-prefix) % 8) + codes_arr.tobytes()
    with pytest.raises(wire.WireError, match=match):
        wire.FrameDecoder().decode(frame)


def test_numeric_bytes_stay_within_5_percent_of_the_raw_columns():
    n = 10_000
    rng = np.random.default_rng(0)
    b = Batch(seq=1, session_id="s", mode=Mode.REPLAY, ts=T0 + np.arange(n, dtype=np.int64) * 1000,
              columns={"price": rng.random(n), "size": rng.integers(0, 100, n), "side": np.ones(n, np.int8)},
              first_row=0)
    raw = b.ts.nbytes + sum(c.nbytes for c in b.columns.values())
    browser = wire.FrameEncoder(ms_only=True).encode(b)  # the time column once (float64 ms)
    assert len(browser) <= 1.05 * raw
    full = wire.FrameEncoder().encode(b)  # + the exact int64 ns time column for Python clients
    assert len(full) <= 1.05 * (raw + b.ts.nbytes)
    spec = {c["name"]: c for c in json.loads(full[4 : 4 + struct.unpack_from("<I", full)[0]])["columns"]}
    assert all(spec[k]["nbytes"] == v.nbytes for k, v in b.columns.items())  # numeric columns as they are
    # a text column costs its int32 codes plus each value once
    t = text_batch(1, 0, ["AAPL", "MSFT", "GOOG"] * 3000)
    frame = wire.FrameEncoder(ms_only=True).encode(t)
    assert len(frame) <= 1.05 * (t.ts.nbytes + t.columns["price"].nbytes + 4 * len(t)) + 200
