"""Hand replay data from a kernel to a server on the same host without copying it: an Arrow IPC file.

The kernel writes its rows once, as one record batch, to a private file (mode 0600) in the server's
hand-off directory (mode 0700, announced to the session's creator only); the server memory-maps it
read-only (``pa.memory_map`` + ``ipc.open_file``), unlinks it, and replays straight from the mapping:
numeric and time columns are zero-copy views of file-backed pages the kernel's own page cache shares,
so the server's anonymous memory does not grow with the data. A kernel that cannot see the directory
(another host) uploads over HTTP instead.
"""

from __future__ import annotations

import os
import re
import stat
import uuid

import pyarrow as pa

from ..exceptions import DataError, InvalidValueError, PayloadTooLargeError, brief
from .table import TableSource

__all__ = [
    "HANDOFF_NAME", "SERVER_ID_FILE", "prepare_handoff_dir", "write_handoff", "open_handoff", "discard_handoff",
    "can_hand_off", "handoff_source",
]

#: Names of hand-off files: nothing else in the directory is ever opened.
HANDOFF_NAME = re.compile(r"^[0-9a-f]{32}\.arrow$")
#: The server writes a random id here; a kernel that reads the same id sees the server's directory.
SERVER_ID_FILE = "server-id"


def prepare_handoff_dir(path: str) -> tuple[str, str]:
    """``(real path, server id)``: create ``path`` (mode 0700, this user's) and write a fresh server id in it."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise DataError(f"hand-off directory {brief(path)} is not a directory owned by this user")
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)
    real = os.path.realpath(path)
    server_id = uuid.uuid4().hex
    tmp = os.path.join(real, f".{server_id}.tmp")
    with open(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600), "w") as f:
        f.write(server_id)
    os.replace(tmp, os.path.join(real, SERVER_ID_FILE))
    return real, server_id


def can_hand_off(directory: object, server_id: object) -> bool:
    """Whether this process sees the server's hand-off ``directory`` (same host/filesystem, same user):
    the directory's ``server-id`` file holds ``server_id`` and the directory is ours and writable."""
    if not isinstance(directory, str) or not os.path.isabs(directory) or not isinstance(server_id, str):
        return False
    try:
        st = os.stat(directory)
        with open(os.path.join(directory, SERVER_ID_FILE)) as f:
            seen = f.read(64)
    except (OSError, UnicodeDecodeError):
        return False
    return (
        seen == server_id and stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and os.access(directory, os.W_OK)
    )


def write_handoff(data: pa.RecordBatch | pa.Table, directory: str) -> str:
    """Write ``data`` as an Arrow IPC file (one record batch, uncompressed) in ``directory``; returns its name.

    One batch keeps every column contiguous, so the reader maps them without a copy. The file is
    created exclusively with mode 0600; on any failure it is removed.
    """
    batch = data.combine_chunks().to_batches()[0] if isinstance(data, pa.Table) else data
    name = f"{uuid.uuid4().hex}.arrow"
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0), 0o600)
    os.close(fd)
    try:
        with pa.OSFile(path, "w") as sink, pa.ipc.new_file(sink, batch.schema) as writer:
            writer.write_batch(batch)
    except BaseException:
        discard_handoff(directory, name)
        raise
    return name


def _path(directory: str, name: object) -> str:
    if not isinstance(name, str) or not HANDOFF_NAME.match(name):
        raise InvalidValueError(f"not a hand-off file name: {brief(name)}")
    return os.path.join(directory, name)


def open_handoff(directory: str, name: object, max_bytes: int) -> pa.Table:
    """Map hand-off file ``name`` read-only and unlink it; the table's buffers are views of the mapping.

    The file must be a regular file of this user, not writable by others, at most ``max_bytes``
    (``PayloadTooLargeError`` naming the sizes otherwise); a missing file is a ``DataError`` (the
    kernel then uploads over HTTP). The mapping lives as long as the arrays viewing it.
    """
    path = _path(directory, name)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise DataError(f"no hand-off file {brief(name)} on the server's host") from None
    try:
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
            raise DataError(f"hand-off file {brief(name)} is not a private regular file of the server's user")
        if st.st_size > max_bytes:
            raise PayloadTooLargeError(
                f"the attached data is {st.st_size:,} bytes, above the server's limit of {max_bytes:,} bytes "
                "(ReplayExtension.max_mapped_bytes); attach fewer rows or columns, or raise the limit"
            )
        try:
            source = pa.memory_map(path, "r")
            table = pa.ipc.open_file(source).read_all()
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"hand-off file {brief(name)} is not an Arrow IPC file: {brief(str(exc))}") from None
        return table
    finally:
        discard_handoff(directory, name)


def handoff_source(directory: str, name: object, max_bytes: int, time: str) -> TableSource:
    """The replay source of hand-off file ``name``: a ``TableSource`` over the read-only mapping."""
    table = open_handoff(directory, name, max_bytes)
    if time not in table.column_names:
        raise DataError(f"no time column {brief(time)} in the attached data (columns: {brief(table.column_names)})")
    return TableSource(table, time=time)


def discard_handoff(directory: str, name: object) -> None:
    """Remove a hand-off file (already gone is fine); a mapping of it stays valid."""
    try:
        os.unlink(_path(directory, name))
    except FileNotFoundError:
        pass
