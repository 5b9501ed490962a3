"""The wire format shared by the server WebSocket, the widget JS and Python clients (pure numpy + json).

Text frames are JSON objects (``hello``, ``state``, ``reset``, ``history``, ``dropped``, ``error``, ``ack``
from the server; ``control`` from clients). Rows travel in binary frames, one batch each::

    u32 little-endian header length | UTF-8 JSON header | zero padding to a multiple of 8 | column buffers

Header: ``{"type": "batch", "seq", "first_row", "rows", "mode", "columns": [{"name", "dtype", "offset",
"nbytes"}, ...]}`` (``offset`` counts from the start of the buffer area, each buffer 8-byte aligned,
little-endian). A coalesced frame also has ``first_seq``; the frame that follows a ``history`` message has
``"history": true``. The time column goes as ``timestamp`` (float64 ms since the epoch, for BokehJS) and
``timestamp_ns`` (int64, exact) unless ``ms_only``. Numeric columns keep their dtype; ``bool`` columns go as
``uint8`` bytes with ``"bool": true``; ``datetime64``/``timedelta64`` columns as int64 ns with ``"unit": "ns"``;
``float16`` as ``float32``; object/string columns are not sent.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any, Mapping, Sequence

import numpy as np

from .batch import TIME_COLUMN, Batch, ResetEvent, StateEvent
from .exceptions import ReplayError, brief
from .timeconv import temporal_to_ns

__all__ = [
    "TIME_MS_COLUMN",
    "TIME_NS_COLUMN",
    "WIRE_DTYPES",
    "WireError",
    "encode_batch",
    "encode_batches",
    "encode_columns",
    "decode_frame",
    "dumps",
    "loads",
    "hello_message",
    "state_message",
    "reset_message",
    "event_message",
    "history_message",
    "dropped_message",
    "error_message",
    "ack_message",
    "control_message",
]

#: Column names of the time column on the wire.
TIME_MS_COLUMN = TIME_COLUMN  # float64 ms since the epoch
TIME_NS_COLUMN = f"{TIME_COLUMN}_ns"  # int64 ns since the epoch

#: dtypes that travel as is (little-endian).
WIRE_DTYPES = frozenset(
    ["float64", "float32", "int64", "int32", "int16", "int8", "uint64", "uint32", "uint16", "uint8"]
)

_LEN = struct.Struct("<I")
_ALIGN = 8


class WireError(ReplayError, ValueError):
    """A frame or message that does not follow the wire format."""

    http_status = 400


def _pad(n: int) -> int:
    return (-n) % _ALIGN


def _wire_column(values: np.ndarray, name: str = "column") -> tuple[np.ndarray, dict[str, Any]] | None:
    """The little-endian array to send for ``values`` plus extra header keys, or None (not sent)."""
    values = np.asarray(values)
    kind = values.dtype.kind
    extra: dict[str, Any] = {}
    if kind == "b":
        values, extra = values.astype(np.uint8), {"bool": True}
    elif kind in "mM":
        values = temporal_to_ns(values, f"column {brief(name)}").view(np.int64).astype("<i8", copy=False)
        extra = {"unit": "ns"}
    elif kind == "f" and values.dtype.itemsize == 2:
        values = values.astype(np.float32)
    elif kind not in "iuf" or values.dtype.newbyteorder("=").name not in WIRE_DTYPES:
        return None
    if values.dtype.str[0] == ">":
        values = values.astype(values.dtype.newbyteorder("<"))
    return np.ascontiguousarray(values), extra


def encode_columns(
    header: Mapping[str, Any], ts: np.ndarray, columns: Mapping[str, np.ndarray], *, ms_only: bool = False
) -> bytes:
    """Encode a binary frame: ``header`` (without ``columns``/``rows``) plus the time and value columns."""
    ts = np.asarray(ts, dtype=np.int64)
    arrays: list[tuple[str, np.ndarray, dict[str, Any]]] = [
        (TIME_MS_COLUMN, ts.astype(np.float64) / 1e6, {})
    ]
    if not ms_only:
        arrays.append((TIME_NS_COLUMN, ts, {}))
    taken = {TIME_MS_COLUMN, TIME_NS_COLUMN}
    for name, values in columns.items():
        if name in taken:
            continue
        if len(values) != len(ts):
            raise WireError(f"column {name!r} has {len(values)} rows, the time column {len(ts)}")
        wired = _wire_column(values, str(name))
        if wired is not None:
            arrays.append((str(name), wired[0], wired[1]))
            taken.add(name)
    specs = []
    offset = 0
    for name, arr, extra in arrays:
        nbytes = int(arr.nbytes)
        specs.append({"name": name, "dtype": arr.dtype.name, "offset": offset, "nbytes": nbytes, **extra})
        offset += nbytes + _pad(nbytes)
    head = dict(header)
    head["rows"] = int(len(ts))
    head["columns"] = specs
    head_bytes = json.dumps(head, separators=(",", ":"), allow_nan=False).encode("utf-8")
    prefix = _LEN.size + len(head_bytes)
    out = bytearray(prefix + _pad(prefix) + offset)
    out[: _LEN.size] = _LEN.pack(len(head_bytes))
    out[_LEN.size : prefix] = head_bytes
    base = prefix + _pad(prefix)
    for (_, arr, _), spec in zip(arrays, specs):
        start = base + spec["offset"]
        out[start : start + spec["nbytes"]] = arr.tobytes()
    return bytes(out)


def _mode(mode: Any) -> str:
    return str(getattr(mode, "value", mode))


def encode_batch(batch: Batch, *, ms_only: bool = False, **extra: Any) -> bytes:
    """One batch as one binary frame; ``extra`` keys go into the header (e.g. ``history=True``)."""
    header = {"type": "batch", "seq": int(batch.seq), "first_row": int(batch.first_row), "mode": _mode(batch.mode)}
    header.update(extra)
    return encode_columns(header, batch.ts, batch.columns, ms_only=ms_only)


def encode_batches(batches: Sequence[Batch], *, ms_only: bool = False) -> bytes:
    """Coalesce consecutive batches (same mode, contiguous rows) into one frame with ``first_seq``..``seq``."""
    if not batches:
        raise WireError("nothing to encode")
    if len(batches) == 1:
        return encode_batch(batches[0], ms_only=ms_only)
    first = batches[0]
    names = list(first.columns)
    for prev, cur in zip(batches, batches[1:]):
        if cur.seq <= prev.seq or _mode(cur.mode) != _mode(first.mode):
            raise WireError("batches to coalesce must be of one mode with increasing seq")
        if cur.first_row != prev.first_row + len(prev):
            raise WireError(f"rows are not contiguous: {prev.first_row}+{len(prev)} then {cur.first_row}")
        if list(cur.columns) != names:
            raise WireError("batches to coalesce must have the same columns")
    ts = np.concatenate([b.ts for b in batches])
    cols = {k: np.concatenate([b.columns[k] for b in batches]) for k in names}
    header = {
        "type": "batch",
        "seq": int(batches[-1].seq),
        "first_seq": int(first.seq),
        "first_row": int(first.first_row),
        "mode": _mode(first.mode),
    }
    return encode_columns(header, ts, cols, ms_only=ms_only)


def decode_frame(data: bytes | bytearray | memoryview) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Decode a binary frame into ``(header, {name: array})``; arrays are read-only views of ``data``.

    ``bool`` columns come back as ``bool`` arrays, ``unit: ns`` columns stay int64.
    """
    buf = memoryview(data).cast("B")
    if len(buf) < _LEN.size:
        raise WireError("frame too short")
    (hlen,) = _LEN.unpack_from(buf, 0)
    prefix = _LEN.size + hlen
    if prefix > len(buf):
        raise WireError("header length beyond the frame")
    try:
        header = json.loads(bytes(buf[_LEN.size : prefix]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:  # RecursionError: nested too deep
        raise WireError(f"bad frame header: {exc}") from None
    if not isinstance(header, dict) or not isinstance(header.get("columns"), list):
        raise WireError("frame header lacks columns")
    base = prefix + _pad(prefix)
    rows = header.get("rows", 0)
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
        raise WireError(f"bad row count {rows!r}")
    out: dict[str, np.ndarray] = {}
    for spec in header["columns"]:
        try:
            dtype = np.dtype(spec["dtype"]).newbyteorder("<")
            offset, nbytes = int(spec["offset"]), int(spec["nbytes"])
            start = base + offset
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise WireError(f"bad column spec {spec!r}: {exc}") from None
        # raw little-endian numbers only: never objects, strings or records (nothing to unpickle or eval)
        if dtype.name not in WIRE_DTYPES or not isinstance(spec.get("name"), str):
            raise WireError(f"column spec {spec!r} is not a numeric wire column")
        if offset < 0 or start + nbytes > len(buf) or nbytes != rows * dtype.itemsize:
            raise WireError(f"column {spec.get('name')!r} does not fit the frame")
        arr = np.frombuffer(buf, dtype=dtype, count=rows, offset=start)
        if spec.get("bool"):
            arr = arr.view(np.bool_)
        out[spec["name"]] = arr
    return header, out


# ---------------------------------------------------------------- text messages


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("max" if value > 0 else None)
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "value") and hasattr(type(value), "__members__"):  # Enum
        return _json_safe(value.value)
    return value


def dumps(message: Any) -> str:
    """A text frame (or any JSON document): compact; numpy scalars, enums and non-finite floats made JSON-safe."""
    return json.dumps(_json_safe(message), separators=(",", ":"), allow_nan=False)


def loads(text: str | bytes) -> dict[str, Any]:
    """Parse a text frame into a dict (``WireError`` if it is not a JSON object with a ``type``)."""
    try:
        msg = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:  # RecursionError: nested too deep
        raise WireError(f"malformed JSON message: {exc}") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise WireError("a message must be a JSON object with a string 'type'")
    return msg


def hello_message(status: Mapping[str, Any], seq: int, **extra: Any) -> dict[str, Any]:
    """``hello``: first message on a connection."""
    return {"type": "hello", "session": dict(status), "seq": int(seq), **extra}


def state_message(event: StateEvent) -> dict[str, Any]:
    """``state`` for a ``StateEvent``."""
    return {"type": "state", "seq": int(event.seq), "status": dict(event.status)}


def reset_message(event: ResetEvent) -> dict[str, Any]:
    """``reset`` for a ``ResetEvent``."""
    return {"type": "reset", "seq": int(event.seq), "mode": _mode(event.mode), "reason": event.reason}


def event_message(event: StateEvent | ResetEvent) -> dict[str, Any]:
    """The text message for a non-batch event."""
    if isinstance(event, StateEvent):
        return state_message(event)
    if isinstance(event, ResetEvent):
        return reset_message(event)
    raise WireError(f"no text message for {type(event).__name__}")


def history_message(rows: int, seq: int, **extra: Any) -> dict[str, Any]:
    """``history``: announces the binary frame holding the session's buffer."""
    return {"type": "history", "rows": int(rows), "seq": int(seq), **extra}


def dropped_message(count: int, **extra: Any) -> dict[str, Any]:
    """``dropped``: ``count`` frames were coalesced away for a slow client."""
    return {"type": "dropped", "count": int(count), **extra}


def error_message(status: int, message: str, id: Any = None) -> dict[str, Any]:
    """``error``: a control message failed (``status`` is the HTTP-like code)."""
    msg = {"type": "error", "status": int(status), "message": str(message)}
    if id is not None:
        msg["id"] = id
    return msg


def ack_message(id: Any, status: Mapping[str, Any]) -> dict[str, Any]:
    """``ack``: a control message succeeded; ``status`` is the session status after it."""
    return {"type": "ack", "id": id, "status": dict(status)}


def control_message(action: str, id: Any = None, **args: Any) -> dict[str, Any]:
    """A client's ``control`` message (same argument names as the REST actions)."""
    return {"type": "control", "id": id, "action": action, **args}
