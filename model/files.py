"""Atomic file writes: a reader never sees half a file, and a crash leaves the old one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; once the block succeeds, rename it onto `path`.

    with atomic_path(out / "trials.parquet") as tmp:
        pq.write_table(table, tmp)
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)  # only left behind when the block failed
