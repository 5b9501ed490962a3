"""The input data of the conformance scenarios and the expected results, computed from the input only.

Nothing here asks a host anything: the expected buffer, positions, symbol counts and status keys are
derived from the DataFrames below and the written rules (``BUFFER_DTYPES``, ``STATUS_KEYS``). Imported
both by the tests and, for the attached host, inside the real kernel (the kernel builds the same frames).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = [
    "BUFFER_DTYPES",
    "ARROW_INPUTS",
    "DATASETS",
    "FORBIDDEN_STATUS_KEYS",
    "SERVER_MODEL_FIELDS",
    "STATUS_KEYS",
    "TIME",
    "dataset",
    "expected_frame",
    "input_data",
    "rows_before",
    "symbol_counts",
    "ts_ns",
]

MIXED_ROWS = 40
LONG_DATES = 60
SYMBOLS = ("AAPL", "MSFT", "NVDA")


def mixed() -> pd.DataFrame:
    """One row per second, every kind of value column a user brings."""
    n = MIXED_ROWS
    return pd.DataFrame({
        "timestamp": pd.date_range("2024-01-02 09:30", periods=n, freq="1s", tz="UTC"),
        "price": np.round(np.linspace(100.0, 104.0, n), 6),
        "size": np.arange(1, n + 1, dtype=np.int64),
        "side": [("buy", "sell", "cross")[i % 3] for i in range(n)],                      # text
        "venue": pd.Categorical([("XNAS", "ARCX")[i % 2] for i in range(n)]),             # categorical
        "odd_lot": np.array([i % 4 == 0 for i in range(n)]),                              # bool
        "qty": pd.array([None if i % 5 == 0 else i for i in range(n)], dtype="Int64"),    # nullable int
        "settle": pd.date_range("2024-01-04", periods=n, freq="D"),                       # naive datetime
        "local": pd.date_range("2024-01-02 10:30", periods=n, freq="1s", tz="Europe/Berlin"),  # tz-aware
    })


def long_format() -> pd.DataFrame:
    """Long format as people export it: ``date, symbol, price`` (several rows per timestamp)."""
    dates = pd.date_range("2024-03-01 09:30", periods=LONG_DATES, freq="1s", tz="UTC")
    rows = [(d, s, 100.0 + 10 * k + i / 10) for i, d in enumerate(dates) for k, s in enumerate(SYMBOLS)
            if not (s == "NVDA" and i % 4 == 3)]  # NVDA skips some dates: counts differ per symbol
    return pd.DataFrame(rows, columns=["date", "symbol", "price"])


DATASETS = {"mixed": mixed, "long": long_format}
TIME = {"mixed": "timestamp", "long": "date"}

_TEXT = str(pd.Series(["x"]).dtype)  # pandas' default text dtype ("str" on pandas 3, "object" before)

#: dtypes of ``r.buffer`` per dataset: the time column is ``timestamp`` (UTC, ns); text and categorical
#: values come back as text, nullable ints as float64 (nulls -> NaN), datetimes as datetime64[ns] in UTC.
BUFFER_DTYPES: dict[str, dict[str, str]] = {
    "mixed": {
        "timestamp": "datetime64[ns, UTC]", "price": "float64", "size": "int64", "side": _TEXT,
        "venue": _TEXT, "odd_lot": "bool", "qty": "float64", "settle": "datetime64[ns]", "local": "datetime64[ns]",
    },
    "long": {"timestamp": "datetime64[ns, UTC]", "symbol": _TEXT, "price": "float64"},
}

#: columns of the built-in synthetic live feed (README: LIVE works offline) and of ``r.buffer`` in LIVE
LIVE_DTYPES = {"timestamp": "datetime64[ns, UTC]", "price": "float64", "size": "int64", "side": "int8"}

#: ``status`` keys on every host (brief, contract 3).
STATUS_KEYS = frozenset({
    "id", "mode", "state", "speed", "loop", "symbol", "has_data", "position", "position_ns", "position_iso",
    "time_ns", "progress", "num_rows", "start_ns", "end_ns", "columns", "buffer_rows", "buffer_capacity",
    "rows", "rows_total", "seq", "frames_merged", "rows_dropped", "subscribers", "callback_errors", "error", "last",
    # pacing (time at ``speed``, or rows per second at ``rate``) and the timing of this host's callbacks
    "rate", "pacing", "callback_p50_ms", "callback_p99_ms", "callback_max_ms", "callback_queue",
    # plot markers since the last reset (``mark``)
    "marks",
})
#: keys that must be gone everywhere (renamed or merged into ``callback_errors``)
FORBIDDEN_STATUS_KEYS = frozenset({"dropped", "client_callback_errors"})
#: what the REST session model adds to the status (server facts about the session, not its status)
SERVER_MODEL_FIELDS = frozenset({
    "kernel_id", "clients", "created", "instance", "owner", "shared", "role", "client_token", "server_url",
})


def dataset(name: str) -> pd.DataFrame:
    return DATASETS[name]()


#: the Arrow-native inputs (issue 17), each built from the same pandas frame; the expected results stay those
#: of the pandas input. What the libraries make of the golden columns (``input_data``) differs per input:
#: pandas 3 writes ``timestamp[us]`` (not ns), the categorical becomes an Arrow dictionary (pyarrow) or a
#: Polars ``Categorical``, while DuckDB turns it into plain text and every tz-aware column into its session
#: zone (the Berlin zone is gone; the instants are the same). The buffer must not show any of it.
ARROW_INPUTS = ("pyarrow", "polars", "duckdb")


def input_data(kind: str, name: str) -> Any:
    """Input ``name`` as a user of library ``kind`` ("pandas" or one of ``ARROW_INPUTS``) hands it over."""
    df = dataset(name)
    if kind == "pandas":
        return df
    table = pa.Table.from_pandas(df, preserve_index=False)
    if kind == "pyarrow":
        return table
    if kind == "polars":
        import polars as pl

        return pl.from_arrow(table)
    if kind == "duckdb":
        import duckdb

        # DuckDB keeps no zone per value: it exports TIMESTAMPTZ in its connection's TimeZone, which defaults to
        # the machine's zone (``Etc/UTC`` here, so the buffer's timestamp dtype would read
        # ``datetime64[ns, Etc/UTC]``, elsewhere another zone). Pin it, as a user who wants UTC does.
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        return con.from_arrow(table)
    raise ValueError(f"unknown input kind {kind!r}")


def arrow_table(data: Any) -> pa.Table:
    """``input_data`` as an Arrow table, the way a plain REST client reads it before it uploads Arrow IPC."""
    if isinstance(data, pd.DataFrame):
        return pa.Table.from_pandas(data, preserve_index=False)
    if isinstance(data, pa.Table):
        return data
    return pa.RecordBatchReader.from_stream(data).read_all()  # Polars, DuckDB: the Arrow C stream


def ts_ns(df: pd.DataFrame, name: str) -> np.ndarray:
    """The time column of input ``name`` as int64 ns since the epoch (UTC)."""
    col = df[TIME[name]]
    return col.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]").to_numpy().view(np.int64)


def expected_frame(name: str, start: int = 0, stop: int | None = None) -> pd.DataFrame:
    """``r.buffer`` after rows ``start:stop`` of input ``name`` were released (since the last reset)."""
    df = dataset(name).iloc[start:stop].reset_index(drop=True)
    out = {}
    for col, dtype in BUFFER_DTYPES[name].items():
        src = df[TIME[name]] if col == "timestamp" else df[col]
        if dtype.startswith("datetime64[ns"):
            if getattr(src.dtype, "tz", None) is not None:
                src = src.dt.tz_convert("UTC")
                if dtype == "datetime64[ns]":
                    src = src.dt.tz_localize(None)
            out[col] = src.astype(dtype)
        elif dtype == "float64":
            out[col] = src.astype("float64")
        elif dtype == _TEXT:
            out[col] = src.astype(str).astype(_TEXT)
        else:
            out[col] = src.astype(dtype)
    return pd.DataFrame(out)


def rows_before(name: str, t_ns: int) -> int:
    """Index of the first row at or after ``t_ns`` (where a seek to ``t_ns`` lands)."""
    return int(np.searchsorted(ts_ns(dataset(name), name), t_ns, side="left"))


def seek_fraction_ns(name: str, fraction: float) -> int:
    ts = ts_ns(dataset(name), name)
    return int(ts[0]) + int(round((int(ts[-1]) - int(ts[0])) * fraction))


def symbol_counts(start: int = 0, stop: int | None = None) -> dict[str, int]:
    """Rows per symbol of the long-format input (what the accumulating callback must find)."""
    counts = dataset("long")["symbol"].iloc[start:stop].value_counts()
    return {str(k): int(v) for k, v in counts.items()}


def frame_problems(got: pd.DataFrame, want: pd.DataFrame) -> list[str]:
    """Differences between a host's buffer and the expected one (columns, dtypes, then values)."""
    problems = []
    if list(got.columns) != list(want.columns):
        problems.append(f"columns {list(got.columns)} != expected {list(want.columns)}")
    for col in want.columns:
        if col not in got.columns:
            continue
        if str(got[col].dtype) != str(want[col].dtype):
            problems.append(f"column {col!r} has dtype {got[col].dtype}, expected {want[col].dtype}")
    if len(got) != len(want):
        problems.append(f"{len(got)} rows, expected {len(want)}")
    elif not problems:
        try:
            pd.testing.assert_frame_equal(got.reset_index(drop=True), want, check_dtype=True)
        except AssertionError as exc:
            problems.append(f"values differ: {str(exc)[:300]}")
    return problems


def normaliser_message(action: str, args: dict[str, Any]) -> str | None:
    """The message of the one control table's refusal of ``action(args)`` (None if the table accepts it:
    then the session refuses it later, e.g. a seek outside the data). Every host must say the same."""
    from jupyter_replay import controls
    from jupyter_replay.exceptions import InvalidValueError

    try:
        controls.normalise_args(action, args)
    except InvalidValueError as exc:
        return str(exc)
    return None


def json_safe(value: Any) -> Any:
    """Values as they survive JSON (used to compare statuses)."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
