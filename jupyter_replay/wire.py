"""The wire format shared by the server WebSocket, the widget JS and Python clients (pure numpy + json).

Text frames are JSON objects (``hello``, ``state``, ``reset``, ``history``, ``marks``, ``merged``,
``error``, ``ack`` from the server; ``control`` from clients). ``marks`` carries plot markers
(``MarkEvent.to_json()``: ``seq, time_ns, time_ms, y, text, side``): one new mark, or with ``"history":
true`` all of the session's current marks, replacing the client's (after a ``history``'s frame).
Rows travel in binary frames, one batch each::

    u32 little-endian header length | UTF-8 JSON header | zero padding to a multiple of 8 | column buffers

Header: ``{"type": "batch", "seq", "first_row", "rows", "mode", "columns": [{"name", "dtype", "offset",
"nbytes"}, ...]}`` (``offset`` counts from the start of the buffer area, each buffer 8-byte aligned,
little-endian), plus ``"position"`` (source row of the first row, ``Batch.position``) when known and
``"warmup": true`` for warm-up rows before a seek's cut. A ``reset`` message carries ``"position"``,
where the stream resumes (``ResetEvent.position``). A coalesced frame also has ``first_seq``; the frame
that follows a ``history`` message has ``"history": true``. The time column goes as ``timestamp``
(float64 ms since the epoch, for BokehJS) and ``timestamp_ns`` (int64, exact) unless ``ms_only``.
Numeric columns keep their dtype; ``bool`` columns go as ``uint8`` bytes with ``"bool": true``;
``datetime64``/``timedelta64`` columns as int64 ns with ``"unit": "ns"``
and ``"logical": "datetime64[ns]"``/``"timedelta64[ns]"``; ``float16`` as ``float32`` with ``"logical"``.

Text and categorical (object) columns travel as dictionary codes: ``"dtype": "int32"`` (-1 = null) plus
``"dictionary": {"base": B, "values": [...]}``. The receiver keeps one dictionary per column name per
stream and puts ``values`` at index ``B`` (``B`` = 0 replaces it). A ``FrameEncoder`` (one per stream: per
WebSocket connection, per comm) sends each value once, and starts afresh (``B`` = 0) on history frames
and when a dictionary would pass ``MAX_DICTIONARY_VALUES`` values or ``MAX_DICTIONARY_BYTES``; a
``FrameDecoder`` (one per stream) applies them. Dictionary values are JSON scalars (str, bool, int,
finite float); an object column holding anything else is not sent. Decoded, such a column is an object
array of those values (``None`` for nulls, ``NaN`` included) -- the dtype the engine gives text and
categorical columns.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .batch import TIME_COLUMN, Batch, MarkEvent, ResetEvent, StateEvent, merge_batches
from .exceptions import ReplayError, brief
from .timeconv import temporal_to_ns

__all__ = [
    "MAX_DICTIONARY_BYTES",
    "MAX_DICTIONARY_VALUES",
    "TIME_MS_COLUMN",
    "TIME_NS_COLUMN",
    "WIRE_DTYPES",
    "FrameDecoder",
    "FrameEncoder",
    "WireError",
    "ack_message",
    "control_message",
    "decode_frame",
    "dumps",
    "encode_batch",
    "encode_batches",
    "encode_columns",
    "merged_message",
    "error_message",
    "event_message",
    "hello_message",
    "history_message",
    "loads",
    "mark_message",
    "marks_history_message",
    "reset_message",
    "state_message",
]

#: Column names of the time column on the wire.
TIME_MS_COLUMN = TIME_COLUMN  # float64 ms since the epoch
TIME_NS_COLUMN = f"{TIME_COLUMN}_ns"  # int64 ns since the epoch

#: dtypes that travel as is (little-endian).
WIRE_DTYPES = frozenset(
    ["float64", "float32", "int64", "int32", "int16", "int8", "uint64", "uint32", "uint16", "uint8"]
)
#: A stream's dictionary for one column starts afresh beyond this many values...
MAX_DICTIONARY_VALUES = 65_536
#: ... or this many bytes of (UTF-8) values.
MAX_DICTIONARY_BYTES = 4 << 20
#: ``logical`` dtypes a decoder restores from their wire dtype.
_LOGICAL = {"datetime64[ns]": "int64", "timedelta64[ns]": "int64", "float16": "float32"}

_LEN = struct.Struct("<I")
_ALIGN = 8


class WireError(ReplayError, ValueError):
    """A frame or message that does not follow the wire format."""

    http_status = 400


def _pad(n: int) -> int:
    return (-n) % _ALIGN


def _wire_column(values: np.ndarray, name: str = "column") -> tuple[np.ndarray, dict[str, Any]] | None:
    """The little-endian array to send for numeric ``values`` plus extra header keys, or None (not numeric)."""
    values = np.asarray(values)
    kind = values.dtype.kind
    extra: dict[str, Any] = {}
    if kind == "b":
        values, extra = values.astype(np.uint8), {"bool": True}
    elif kind in "mM":
        logical = "datetime64[ns]" if kind == "M" else "timedelta64[ns]"
        values = temporal_to_ns(values, f"column {brief(name)}").view(np.int64).astype("<i8", copy=False)
        extra = {"unit": "ns", "logical": logical}
    elif kind == "f" and values.dtype.itemsize == 2:
        values, extra = values.astype(np.float32), {"logical": "float16"}
    elif kind not in "iuf" or values.dtype.newbyteorder("=").name not in WIRE_DTYPES:
        return None
    if values.dtype.str[0] == ">":
        values = values.astype(values.dtype.newbyteorder("<"))
    return np.ascontiguousarray(values), extra


# ---------------------------------------------------------------- dictionary columns


def _is_null(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _key(v: Any) -> tuple[type, Any]:
    """Dictionary key: by type too, so ``True``, ``1`` and ``1.0`` stay three values."""
    if isinstance(v, np.generic):
        v = v.item()
    return (type(v), v)


_SCALARS = (str, bool, int, float)


def _value_bytes(v: Any) -> int:
    return len(v.encode("utf-8", "surrogatepass")) if isinstance(v, str) else 8


class _Dictionary:
    """One column's dictionary on the encoding side."""

    __slots__ = ("index", "nbytes", "values")

    def __init__(self) -> None:
        self.index: dict[tuple[type, Any], int] = {}
        self.values: list[Any] = []
        self.nbytes = 0


class _DictionaryColumns:
    """Per-column dictionaries of one stream; ``encode`` returns codes and the header entry."""

    def __init__(self, max_values: int = MAX_DICTIONARY_VALUES, max_bytes: int = MAX_DICTIONARY_BYTES) -> None:
        self.max_values = int(max_values)
        self.max_bytes = int(max_bytes)
        self._dicts: dict[str, _Dictionary] = {}

    def reset(self) -> None:
        self._dicts.clear()

    def encode(self, name: str, values: np.ndarray) -> tuple[np.ndarray, dict[str, Any]] | None:
        """int32 codes (-1 = null) and ``{"dictionary": ...}``; None if a value is not a JSON scalar."""
        arr = np.asarray(values, dtype=object)
        uniques, inverse = _factorize(arr)
        if uniques is None:
            return None
        d = self._dicts.get(name)
        new = [u for u in uniques if _key(u) not in d.index] if d is not None else list(uniques)
        if d is None or (
            len(d.values) + len(new) > self.max_values
            or d.nbytes + sum(_value_bytes(v) for v in new) > self.max_bytes
        ):
            d = self._dicts[name] = _Dictionary()  # afresh: bounded memory on both ends
            new = list(uniques)
        base = len(d.values)
        for v in new:
            d.index[_key(v)] = len(d.values)
            d.values.append(v)
            d.nbytes += _value_bytes(v)
        lookup = np.array([d.index[_key(u)] for u in uniques] + [-1], dtype=np.int32)
        codes = lookup[inverse]  # inverse == -1 picks the trailing -1 (null)
        return np.ascontiguousarray(codes, dtype="<i4"), {"dictionary": {"base": base, "values": new}}


def _factorize(arr: np.ndarray) -> tuple[list[Any] | None, np.ndarray]:
    """(unique non-null values in first-seen order, index per row with -1 for null); None if unsendable."""
    index: dict[tuple[type, Any], int] = {}
    uniques: list[Any] = []
    inverse = np.empty(len(arr), dtype=np.int64)
    for i, v in enumerate(arr):
        if _is_null(v):
            inverse[i] = -1
            continue
        if isinstance(v, np.generic):
            v = v.item()
        if not isinstance(v, _SCALARS) or (isinstance(v, float) and not math.isfinite(v)):
            return None, inverse
        k = (type(v), v)
        j = index.get(k)
        if j is None:
            j = index[k] = len(uniques)
            uniques.append(v)
        inverse[i] = j
    return uniques, inverse


# ---------------------------------------------------------------- frames


def _frame(header: Mapping[str, Any], arrays: list[tuple[str, np.ndarray, dict[str, Any]]], rows: int) -> bytes:
    specs = []
    offset = 0
    for name, arr, extra in arrays:
        nbytes = int(arr.nbytes)
        specs.append({"name": name, "dtype": arr.dtype.name, "offset": offset, "nbytes": nbytes, **extra})
        offset += nbytes + _pad(nbytes)
    head = dict(header)
    head["rows"] = int(rows)
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


class FrameEncoder:
    """Encodes the binary frames of one stream (one WebSocket connection, one comm).

    Stateful for dictionary columns: each text value is sent once per stream; history frames and a full
    dictionary start afresh. Frames must be sent in the order they are encoded.
    """

    def __init__(
        self, *, ms_only: bool = False, max_values: int = MAX_DICTIONARY_VALUES,
        max_bytes: int = MAX_DICTIONARY_BYTES,
    ) -> None:
        self.ms_only = ms_only
        self._dicts = _DictionaryColumns(max_values, max_bytes)

    def reset(self) -> None:
        """Forget the dictionaries (the next frame sends them whole)."""
        self._dicts.reset()

    def encode(self, batches: Batch | Sequence[Batch], *, history: bool = False, **extra: Any) -> bytes:
        """One frame for a batch, or for consecutive batches merged (``first_seq``..``seq``).

        ``history=True`` marks the frame that follows a ``history`` message and restarts the dictionaries;
        ``extra`` keys go into the header.
        """
        if isinstance(batches, Batch):
            batches = [batches]
        if not batches:
            raise WireError("nothing to encode")
        try:
            batch = merge_batches(batches)
        except ValueError as exc:
            raise WireError(str(exc)) from None
        header: dict[str, Any] = {
            "type": "batch", "seq": int(batch.seq), "first_row": int(batch.first_row), "mode": _mode(batch.mode),
        }
        if batch.position is not None:
            header["position"] = int(batch.position)
        if batch.warmup:
            header["warmup"] = True
        if len(batches) > 1:
            header["first_seq"] = int(batches[0].seq)
        if history:
            header["history"] = True
        header.update(extra)
        return self.encode_columns(header, batch.ts, batch.columns)

    def encode_columns(self, header: Mapping[str, Any], ts: np.ndarray, columns: Mapping[str, np.ndarray]) -> bytes:
        """A frame from ``header`` (without ``columns``/``rows``), the time column and the value columns."""
        if header.get("history"):
            self._dicts.reset()
        ts = np.asarray(ts, dtype=np.int64)
        arrays: list[tuple[str, np.ndarray, dict[str, Any]]] = [(TIME_MS_COLUMN, ts.astype(np.float64) / 1e6, {})]
        if not self.ms_only:
            arrays.append((TIME_NS_COLUMN, ts, {}))
        taken = {TIME_MS_COLUMN, TIME_NS_COLUMN}
        for name, values in columns.items():
            if name in taken:
                continue
            if len(values) != len(ts):
                raise WireError(f"column {name!r} has {len(values)} rows, the time column {len(ts)}")
            values = np.asarray(values)
            wired = _wire_column(values, str(name))
            if wired is None and values.dtype.kind in "OUS":
                wired = self._dicts.encode(str(name), values)
            if wired is not None:
                arrays.append((str(name), wired[0], wired[1]))
                taken.add(name)
        return _frame(header, arrays, len(ts))


class FrameDecoder:
    """Decodes the binary frames of one stream, keeping its dictionaries (see the module docstring)."""

    def __init__(self, max_values: int = MAX_DICTIONARY_VALUES) -> None:
        self.max_values = int(max_values)
        self._dicts: dict[str, list[Any]] = {}

    def reset(self) -> None:
        self._dicts.clear()

    def decode(self, data: bytes | bytearray | memoryview) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``(header, {name: array})``: numeric arrays are read-only views of ``data``; ``bool``,
        ``datetime64[ns]``, ``timedelta64[ns]`` and ``float16`` columns come back in their dtype, dictionary
        columns as object arrays."""
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
            if not isinstance(spec, dict):
                raise WireError("a column spec must be an object")
            try:
                dtype = np.dtype(spec["dtype"]).newbyteorder("<")
                offset, nbytes = int(spec["offset"]), int(spec["nbytes"])
                start = base + offset
            except (KeyError, TypeError, ValueError, OverflowError) as exc:
                raise WireError(f"bad column spec {brief(spec)}: {exc}") from None
            name = spec.get("name")
            # raw little-endian numbers only: never objects, strings or records (nothing to unpickle or eval)
            if dtype.name not in WIRE_DTYPES or not isinstance(name, str):
                raise WireError(f"column spec {brief(spec)} is not a numeric wire column")
            if offset < 0 or start + nbytes > len(buf) or nbytes != rows * dtype.itemsize:
                raise WireError(f"column {name!r} does not fit the frame")
            arr = np.frombuffer(buf, dtype=dtype, count=rows, offset=start)
            if "dictionary" in spec:
                arr = self._decode_dictionary(name, spec["dictionary"], arr, rows, dtype)
            elif spec.get("bool"):
                arr = arr.view(np.bool_)
            elif spec.get("logical") is not None:
                logical = spec["logical"]
                if _LOGICAL.get(logical) != dtype.name:
                    raise WireError(f"column {name!r}: logical type {brief(logical)} cannot come as {dtype.name}")
                arr = arr.view(logical) if logical != "float16" else arr.astype(np.float16)
            out[name] = arr
        return header, out

    def _decode_dictionary(self, name: str, spec: Any, codes: np.ndarray, rows: int, dtype: np.dtype) -> np.ndarray:
        if dtype.name != "int32":
            raise WireError(f"dictionary column {name!r} must have int32 codes, got {dtype.name}")
        if not isinstance(spec, dict) or not isinstance(spec.get("values"), list):
            raise WireError(f"dictionary of column {name!r} must be {{'base': int, 'values': [...]}}")
        start, values = spec.get("base"), spec["values"]
        current = self._dicts.get(name, [])
        if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start <= len(current):
            raise WireError(
                f"dictionary of column {name!r}: base {brief(start)} with {len(current)} values known "
                "(a frame was missed: resync)"
            )
        if any(not isinstance(v, _SCALARS) for v in values):
            raise WireError(f"dictionary of column {name!r} holds a value that is not a JSON scalar")
        if start + len(values) > max(self.max_values, rows):
            raise WireError(f"dictionary of column {name!r} beyond {self.max_values} values")
        current = current[:start] + values
        self._dicts[name] = current
        if rows and (int(codes.max()) >= len(current) or int(codes.min()) < -1):
            raise WireError(f"column {name!r} has codes outside its dictionary of {len(current)} values")
        lookup = np.empty(len(current) + 1, dtype=object)
        lookup[: len(current)] = current
        lookup[-1] = None
        return lookup[codes]  # code -1 picks the trailing None


def encode_columns(
    header: Mapping[str, Any], ts: np.ndarray, columns: Mapping[str, np.ndarray], *, ms_only: bool = False
) -> bytes:
    """A self-contained frame (dictionaries sent whole, base 0): for one-off frames and tests."""
    return FrameEncoder(ms_only=ms_only).encode_columns(header, ts, columns)


def encode_batch(batch: Batch, *, ms_only: bool = False, **extra: Any) -> bytes:
    """One batch as one self-contained frame; ``extra`` keys go into the header (e.g. ``history=True``)."""
    history = bool(extra.pop("history", False))
    return FrameEncoder(ms_only=ms_only).encode(batch, history=history, **extra)


def encode_batches(batches: Sequence[Batch], *, ms_only: bool = False) -> bytes:
    """Consecutive batches (``batch.can_merge``) as one self-contained frame with ``first_seq``..``seq``."""
    return FrameEncoder(ms_only=ms_only).encode(batches)


def decode_frame(data: bytes | bytearray | memoryview) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Decode a self-contained frame (its dictionaries must start at base 0: else use a ``FrameDecoder``)."""
    return FrameDecoder().decode(data)


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
    except (ValueError, RecursionError) as exc:
        # JSONDecodeError, UnicodeDecodeError, an integer literal over 4,300 digits (ValueError), nesting
        # too deep (RecursionError); the message is cut: it may quote the input
        raise WireError(f"malformed JSON message: {brief(str(exc), 200)}") from None
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
    msg = {"type": "reset", "seq": int(event.seq), "mode": _mode(event.mode), "reason": event.reason}
    if event.columns:
        msg["columns"] = [list(c) for c in event.columns]
    if event.position is not None:
        msg["position"] = int(event.position)
    return msg


def mark_message(event: MarkEvent) -> dict[str, Any]:
    """``marks`` for one new ``MarkEvent``."""
    return {"type": "marks", "seq": int(event.seq), "marks": [event.to_json()]}


def marks_history_message(marks: Sequence[MarkEvent], seq: int) -> dict[str, Any]:
    """``marks`` with ``history``: the session's current marks (bounded by ``controls.MAX_MARKS``)."""
    return {"type": "marks", "seq": int(seq), "history": True, "marks": [m.to_json() for m in marks]}


def event_message(event: StateEvent | ResetEvent | MarkEvent) -> dict[str, Any]:
    """The text message for a non-batch event."""
    if isinstance(event, StateEvent):
        return state_message(event)
    if isinstance(event, ResetEvent):
        return reset_message(event)
    if isinstance(event, MarkEvent):
        return mark_message(event)
    raise WireError(f"no text message for {type(event).__name__}")


def history_message(rows: int, seq: int, **extra: Any) -> dict[str, Any]:
    """``history``: announces the binary frame holding the session's buffer."""
    return {"type": "history", "rows": int(rows), "seq": int(seq), **extra}


def merged_message(frames_merged: int, rows_dropped: int = 0, **extra: Any) -> dict[str, Any]:
    """``merged``: since the last report, ``frames_merged`` batch frames were merged into others for a slow
    client (no row lost) and ``rows_dropped`` rows were skipped for it (a resync past the rows it had)."""
    return {"type": "merged", "frames_merged": int(frames_merged), "rows_dropped": int(rows_dropped), **extra}


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
