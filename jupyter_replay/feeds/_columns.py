"""Column schemas for feeds: normalising ``fields`` specs and building columnar chunks from records."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..exceptions import InvalidValueError

__all__ = ["FieldsSpec", "normalize_fields", "default_value", "records_to_columns", "backoff_delay"]

#: ``["price", "size"]`` (all float64) or ``{"price": "float64", "size": "int64"}``.
FieldsSpec = Sequence[str] | Mapping[str, Any] | None


def normalize_fields(fields: FieldsSpec) -> dict[str, np.dtype] | None:
    """``fields`` as ``{name: np.dtype}`` (None stays None: the schema is discovered later)."""
    if fields is None:
        return None
    if isinstance(fields, str):
        raise InvalidValueError("fields must be a list of names or a {name: dtype} mapping, not a string")
    if isinstance(fields, Mapping):
        items = list(fields.items())
    else:
        items = [(name, np.float64) for name in fields]
    out: dict[str, np.dtype] = {}
    for name, dtype in items:
        try:
            dt = np.dtype(object if dtype in (str, "str", "string") else dtype)
        except TypeError as exc:
            raise InvalidValueError(f"field {name!r}: bad dtype {dtype!r} ({exc})") from None
        if dt.kind not in "biufO":
            raise InvalidValueError(f"field {name!r}: dtype {dt} not supported (numeric, bool or object)")
        out[str(name)] = dt
    return out


def default_value(dtype: np.dtype) -> Any:
    """Fill value for a missing field: NaN for floats, 0 / False for ints and bools, None for objects."""
    if dtype.kind == "f":
        return np.nan
    if dtype.kind in "iu":
        return 0
    if dtype.kind == "b":
        return False
    return None


def records_to_columns(records: Sequence[Mapping[str, Any]], dtypes: Mapping[str, np.dtype]) -> dict[str, np.ndarray]:
    """Columnar arrays from a list of dict records (missing or unparsable values get the fill value)."""
    out: dict[str, np.ndarray] = {}
    for name, dtype in dtypes.items():
        fill = default_value(dtype)
        values = [r.get(name, fill) for r in records]
        if dtype.kind == "O":
            arr = np.empty(len(values), dtype=object)
            arr[:] = values
        else:
            try:
                arr = np.asarray([fill if v is None else v for v in values]).astype(dtype)
            except (TypeError, ValueError):
                arr = np.fromiter((_coerce(v, dtype, fill) for v in values), dtype=dtype, count=len(values))
        out[name] = arr
    return out


def _coerce(value: Any, dtype: np.dtype, fill: Any) -> Any:
    try:
        return dtype.type(value)
    except (TypeError, ValueError, OverflowError):
        return fill


def backoff_delay(
    attempt: int, *, initial: float, maximum: float, factor: float = 2.0, jitter: float = 0.5,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): exponential, capped, with random jitter.

    The delay is ``min(maximum, initial * factor**attempt)`` reduced by a random fraction of up to
    ``jitter`` (0..1), so many clients reconnecting at once spread out.
    """
    base = min(float(maximum), float(initial) * float(factor) ** max(0, int(attempt)))
    r = (rng or random).random()
    return max(0.0, base * (1.0 - float(jitter) * r))

