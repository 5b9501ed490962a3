"""Test data on disk and on a real S3-compatible server on loopback (moto's standalone server)."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from jupyter_replay.timeconv import to_ns

__all__ = ["s3_server", "put_parquet", "write_dataset", "T0", "SYMBOLS"]

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "replay-test",
    "AWS_SECRET_ACCESS_KEY": "replay-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@contextmanager
def s3_server(bucket: str, timeout: float = 60.0) -> Iterator[tuple[str, dict[str, str]]]:
    """``(endpoint URL, environment)`` of a moto S3 server on 127.0.0.1 (a free port) with ``bucket``.

    The environment holds the standard AWS variables (credentials, region, ``AWS_ENDPOINT_URL``) that
    pyarrow and s3fs read; the caller puts them in ``os.environ`` (``monkeypatch.setenv``).
    """
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        port = server._server.server_port  # port 0: the OS chose it
        endpoint = f"http://127.0.0.1:{port}"
        env = {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}
        client = boto3.client(
            "s3", endpoint_url=endpoint, region_name=env["AWS_DEFAULT_REGION"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )
        deadline = time.monotonic() + timeout
        while True:  # wait until the server answers (a busy machine may be slow to start the thread)
            try:
                client.create_bucket(Bucket=bucket)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield endpoint, env
    finally:
        server.stop()


def put_parquet(env: dict[str, str], bucket: str, key: str, table: pa.Table, **write_kwargs) -> None:
    """Upload ``table`` as a Parquet object (boto3: pyarrow's multipart writer does not suit moto)."""
    import boto3

    buf = io.BytesIO()
    pq.write_table(table, buf, **write_kwargs)
    boto3.client(
        "s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    ).put_object(Bucket=bucket, Key=key, Body=buf.getvalue())


T0 = to_ns("2024-01-02")
DAY = 86_400 * 10**9
SYMBOLS = ["AAA", "BBB", "CCC"]


def write_dataset(root, days: int = 2, rows: int = 60, row_group_size: int = 16, seed: int = 5) -> pd.DataFrame:
    """``root/date=.../symbol=.../part-0.parquet``, symbols overlapping in time; returns all rows in time order."""
    rng = np.random.default_rng(seed)
    frames = []
    used: set[int] = set()
    for d in range(days):
        date = str(pd.Timestamp(T0 + d * DAY).date())
        for sym in SYMBOLS:
            ts = set()
            while len(ts) < rows:  # distinct over the whole dataset: the expected order is unambiguous
                t = int(T0 + d * DAY + rng.integers(0, 3600 * 10**9))
                if t not in used:
                    ts.add(t)
                    used.add(t)
            ts_arr = np.sort(np.fromiter(ts, np.int64))
            table = pa.table(
                {
                    "timestamp": pa.array(ts_arr, pa.timestamp("ns", tz="UTC")),
                    "price": rng.normal(100, 1, rows),
                    "size": rng.integers(1, 100, rows),
                }
            )
            out = root / f"date={date}" / f"symbol={sym}"
            out.mkdir(parents=True)
            pq.write_table(table, out / "part-0.parquet", row_group_size=row_group_size)
            frame = table.to_pandas()
            frame["date"], frame["symbol"] = date, sym
            frames.append(frame)
    return pd.concat(frames).sort_values("timestamp", kind="stable").reset_index(drop=True)
