"""Atomic file writes, for every package: a reader never sees half a file, a crash leaves the
old one, and two writers of one file never share a temporary file.

    with atomic_path(out / "model.pt") as tmp:
        torch.save(state, tmp)
    atomic_write(out / "search.json", text)
    write_parquet(table, out / "trials.parquet"); read_parquet(out / "trials.parquet")

The temporary file has a unique name beside the target (so the rename stays on one
filesystem); its contents are flushed to disk before the rename, and the folder after it, so
that a power cut cannot leave a renamed but empty file. The last writer wins, whole.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from corpora.errors import UserError


def fsync_path(path: Path) -> None:
    """Flush a file's (or folder's) contents and metadata to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary path beside `path`; when the block succeeds, move it onto `path`.

    The block writes the temporary file by any means (pyarrow, torch.save, shutil.copyfile).
    If it fails, the temporary file is removed and `path` is untouched.
    """
    path = Path(path)
    # A unique name, created by the block itself with the usual permissions.
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        yield tmp
        fsync_path(tmp)
        tmp.replace(path)
        fsync_path(path.parent)
    finally:
        tmp.unlink(missing_ok=True)  # left behind only when the block failed


def atomic_write(path: str | Path, data: str | bytes) -> Path:
    """Write text (UTF-8) or bytes to `path` atomically; returns `path`."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
    return path


def write_parquet(table: Any, path: Path) -> Path:
    """Write an Arrow `table` atomically (`atomic_path`); returns `path`."""
    import pyarrow.parquet as pq

    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def read_parquet(path: Path) -> Any:
    """An Arrow table from a Parquet file; UserError naming the file if it is missing or
    unreadable."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path)
    except (OSError, pa.ArrowException) as error:
        raise UserError(f"cannot read {path}: {str(error).splitlines()[0]}") from None
