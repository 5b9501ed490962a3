"""A real S3-compatible server on loopback for object-storage tests: moto's standalone server."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["s3_server", "put_parquet"]

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
