"""Object storage: datasets on a real S3-compatible server (moto, loopback), file:// URLs, fsspec filesystems."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import s3fs
from data_helpers import put_parquet, s3_server, write_dataset
from test_sources_dataset import drain

from jupyter_replay.exceptions import DataError, InvalidValueError
from jupyter_replay.sources import DatasetSource, as_source
from jupyter_replay.sources.parquet import clear_row_group_cache

BUCKET = "replay-data"


@pytest.fixture(scope="module")
def s3_env():
    with s3_server(BUCKET) as (_, env):
        yield env


@pytest.fixture
def s3_dataset(s3_env, tmp_path, monkeypatch):
    """The same hive dataset on local disk and under ``s3://replay-data/ticks/``; credentials in the env."""
    for key, value in s3_env.items():
        monkeypatch.setenv(key, value)
    root = tmp_path / "ticks"
    expected = write_dataset(root)
    for f in sorted(root.rglob("*.parquet")):
        key = "ticks/" + f.relative_to(root).as_posix()
        put_parquet(s3_env, BUCKET, key, pq.read_table(f, partitioning=None), row_group_size=16)
    clear_row_group_cache()
    return root, expected


def test_s3_dataset_replays_like_the_local_copy(s3_dataset):
    root, expected = s3_dataset
    remote = as_source(f"s3://{BUCKET}/ticks/")
    local = DatasetSource(root)
    assert isinstance(remote, DatasetSource) and len(remote.parts) == 6
    assert (remote.columns, remote.dtypes, remote.num_rows) == (local.columns, local.dtypes, local.num_rows)
    got, want = drain(remote.open()), drain(local.open())
    for c in got.columns:
        np.testing.assert_array_equal(got[c].to_numpy(), want[c].to_numpy())
    ts = expected.timestamp.astype("int64").to_numpy()
    cur = remote.open(int(ts[123]))
    assert cur.position == 123 and cur.peek_ns() == ts[123]
    assert remote.describe()["path"] == f"s3://{BUCKET}/ticks/"


def test_s3_symbols_prune_and_glob(s3_dataset):
    src = DatasetSource(f"s3://{BUCKET}/ticks/", symbols=["AAA"])
    assert len(src.parts) == 2 and set(drain(src.open()).symbol) == {"AAA"}
    glob = as_source(f"s3://{BUCKET}/ticks/date=2024-01-03/*/*.parquet")
    assert len(glob.parts) == 3 and glob.num_rows == 180


def test_explicit_fsspec_filesystem(s3_dataset, s3_env):
    fs = s3fs.S3FileSystem(
        key=s3_env["AWS_ACCESS_KEY_ID"], secret=s3_env["AWS_SECRET_ACCESS_KEY"],
        endpoint_url=s3_env["AWS_ENDPOINT_URL"], client_kwargs={"region_name": s3_env["AWS_DEFAULT_REGION"]},
    )
    src = DatasetSource(f"{BUCKET}/ticks", filesystem=fs, symbols="BBB")
    assert src.num_rows == 120


def test_object_replaced_after_open_is_refused(s3_dataset, s3_env):
    src = DatasetSource(f"s3://{BUCKET}/ticks/", symbols="CCC")
    key = "ticks/" + src.parts[0].path.split("/ticks/", 1)[1]
    put_parquet(s3_env, BUCKET, key, pa.table({"timestamp": pa.array([1], pa.int64())}))
    with pytest.raises(DataError, match="changed"):
        drain(src.open())


def test_file_url_and_bad_urls(tmp_path):
    root = tmp_path / "d"
    write_dataset(root, days=1)
    assert as_source(f"file://{root}").num_rows == 180
    with pytest.raises(InvalidValueError, match="nosuch://"):
        as_source("nosuch://bucket/x")
    with pytest.raises(DataError, match="no such file"):
        as_source(f"file://{tmp_path}/missing")
