"""Where data files live: local paths and object-storage URLs, resolved to a pyarrow filesystem.

``s3://``, ``gs://``/``gcs://``, ``hdfs://`` and ``file://`` URLs go to pyarrow's own filesystems
(credentials, region and endpoint from the standard environment: ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, ``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL``,
``GOOGLE_APPLICATION_CREDENTIALS``...); other schemes (or a pyarrow built without one) go through
fsspec when it is installed (``s3fs``, ``gcsfs``, ...). An fsspec or pyarrow filesystem object can
also be passed explicitly.
"""

from __future__ import annotations

import fnmatch
import os
import re
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from ..exceptions import DataError, InvalidValueError, brief

__all__ = ["is_url", "resolve_filesystem", "list_files", "has_glob", "PARQUET_SUFFIXES"]

#: File name endings taken as Parquet when listing a directory or a glob.
PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_GLOB = re.compile(r"[*?\[]")


def is_url(path: Any) -> bool:
    """Whether ``path`` is a URL (``scheme://...``) rather than a local path."""
    return isinstance(path, str) and bool(_URL.match(path))


def has_glob(path: str) -> bool:
    """Whether ``path`` holds glob characters (``*``, ``?``, ``[``)."""
    return bool(_GLOB.search(path))


def _as_pyarrow_fs(filesystem: Any) -> pafs.FileSystem:
    if isinstance(filesystem, pafs.FileSystem):
        return filesystem
    if hasattr(filesystem, "ls") and hasattr(filesystem, "open"):  # an fsspec filesystem
        return pafs.PyFileSystem(pafs.FSSpecHandler(filesystem))
    raise InvalidValueError(
        f"filesystem must be a pyarrow.fs.FileSystem or an fsspec filesystem, got {type(filesystem).__name__}"
    )


def resolve_filesystem(path: str | os.PathLike, filesystem: Any = None) -> tuple[pafs.FileSystem, str]:
    """``(filesystem, path inside it)`` for a local path or URL; ``filesystem`` overrides the scheme's.

    A URL whose scheme neither pyarrow nor an installed fsspec implementation knows raises
    ``InvalidValueError`` naming the scheme.
    """
    raw = os.fspath(path)
    if not isinstance(raw, str) or not raw or "\0" in raw:
        raise InvalidValueError(f"a data path must be a non-empty string, got {brief(raw)}")
    if filesystem is not None:
        fs = _as_pyarrow_fs(filesystem)
        if is_url(raw):
            raw = raw.split("://", 1)[1]
        return fs, raw
    if not is_url(raw):
        return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(raw))
    if raw.lower().startswith("file://"):
        return pafs.LocalFileSystem(), raw[len("file://"):] or "/"
    glob_at = _GLOB.search(raw)
    head = raw[: glob_at.start()] if glob_at else raw  # from_uri must not see glob characters
    try:
        fs, inner = pafs.FileSystem.from_uri(head)
        return fs, inner + (raw[glob_at.start():] if glob_at else "")
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
        pa_error = exc
    except OSError as exc:  # e.g. the bucket's region could not be resolved
        raise DataError(f"cannot open {brief(raw)}: {brief(str(exc))}") from None
    try:
        import fsspec.core  # type: ignore[import-untyped]
    except ImportError:
        fsspec = None
    if fsspec is not None:
        try:
            fs_spec, inner = fsspec.core.url_to_fs(raw)
            return _as_pyarrow_fs(fs_spec), inner
        except (ImportError, ValueError) as exc:
            pa_error = exc
    scheme = raw.split("://", 1)[0]
    raise InvalidValueError(
        f"cannot read {scheme}:// URLs: {brief(str(pa_error))}; install the fsspec implementation for it "
        "(e.g. s3fs, gcsfs) or pass filesystem=..."
    )


def list_files(fs: pafs.FileSystem, path: str) -> tuple[list[str], str]:
    """``(Parquet files, base directory)`` of a file, a directory (recursively) or a glob pattern.

    Hidden entries (names starting with ``.`` or ``_``, e.g. ``_SUCCESS``) are skipped; a directory or
    glob without Parquet files raises ``DataError``. Files are sorted by path.
    """
    if has_glob(path):
        base = path[: _GLOB.search(path).start()]  # type: ignore[union-attr]
        base = base.rsplit("/", 1)[0] if "/" in base else ""
        pattern = path
    else:
        try:
            info = fs.get_file_info(path)
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"cannot read {brief(path)}: {brief(str(exc))}") from None
        if info.type == pafs.FileType.File:
            return [path], os.path.dirname(path) if path.startswith("/") else path.rsplit("/", 1)[0]
        if info.type != pafs.FileType.Directory:
            raise DataError(f"no such file or directory: {brief(path)}")
        base, pattern = path.rstrip("/"), None
    try:
        infos = fs.get_file_info(pafs.FileSelector(base or "/", recursive=True, allow_not_found=True))
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"cannot list {brief(base)}: {brief(str(exc))}") from None
    files = []
    for info in infos:
        if info.type != pafs.FileType.File:
            continue
        rel = info.path[len(base):].lstrip("/") if base else info.path
        if any(part[:1] in "._" for part in rel.split("/")):
            continue
        if pattern is not None:
            if not fnmatch.fnmatchcase(info.path, pattern):
                continue
        elif not info.path.lower().endswith(PARQUET_SUFFIXES):
            continue
        files.append(info.path)
    if not files:
        what = "matches" if pattern is not None else f"Parquet files ({', '.join(PARQUET_SUFFIXES)})"
        raise DataError(f"no {what} under {brief(path)}")
    return sorted(files), base
