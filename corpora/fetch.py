"""Finding a corpus file: a path, the local data folder, the cache, or a verified download.

    path = resolve_corpus("monte-cristo")   # or a path to any UTF-8 text file

Resolution order: an existing file path -> <data dir>/<filename> (argument, else $CHARNN_DATA_DIR)
-> <cache dir>/<filename> -> download into the cache. A download runs under a file lock, so many
processes (Ray workers) sharing a cache download once; the prepared text is checked against the
registry's sha256 and only then moved into place atomically. A cached file is therefore a
verified one, and is never downloaded again; its checksum is checked again whenever it is found
(about 10 ms for 10 MB), and a copy that no longer matches (damaged on disk, left by an older
release whose text was prepared differently) is downloaded again and replaced.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path

from filelock import FileLock, Timeout
from tqdm import tqdm

from corpora.errors import CorpusError
from corpora.files import atomic_write
from corpora.registry import REGISTRY, CorpusSpec
from corpora.text import file_sha256

DATA_DIR_ENV = "CHARNN_DATA_DIR"
DOWNLOAD_TIMEOUT_S = 60.0  # per socket operation, not for the whole download
MAX_DOWNLOAD_BYTES = 512 * 2**20  # the largest source (Title 26 XML, zipped) is far below
LOCK_TIMEOUT_S = 600.0  # waiting for another process's download of the same corpus
_USER_AGENT = "char-rnn-search (corpus fetch)"


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/char-rnn-search, else ~/.cache/char-rnn-search."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "char-rnn-search"


def data_dir_from_env() -> Path | None:
    """The local data folder named by $CHARNN_DATA_DIR, if set."""
    value = os.environ.get(DATA_DIR_ENV)
    return Path(value).expanduser() if value else None


def _checked_data_dir(data_dir: Path | None) -> Path | None:
    """`data_dir`, else the environment's; CorpusError if one is named but is not a folder."""
    source = "data folder"
    if data_dir is None:
        data_dir, source = data_dir_from_env(), DATA_DIR_ENV
    if data_dir is None:
        return None
    folder = Path(data_dir).expanduser()
    if not folder.is_dir():
        raise CorpusError(f"{source} {folder} is not an existing folder")
    return folder


def cached(spec: CorpusSpec, cache_dir: Path) -> Path | None:
    """`spec`'s file in `cache_dir` if it is there and still matches the registry's checksum.

    Only a verified download is ever installed there, so a mismatch means the copy changed
    since (damaged on disk, copied in by hand, or installed by a release that prepared the text
    differently): it is not used, and the next fetch replaces it.
    """
    path = Path(cache_dir) / spec.filename
    return path if path.is_file() and file_sha256(path) == spec.sha256 else None


def local_path(
    spec: CorpusSpec, data_dir: Path | None = None, cache_dir: Path | None = None
) -> Path | None:
    """Where `spec`'s file is already on disk (data folder first, then a verified copy in the
    cache), else None. A file in the data folder is the user's and is used as it is."""
    folder = _checked_data_dir(data_dir)
    if folder and (folder / spec.filename).is_file():
        return folder / spec.filename
    return cached(spec, cache_dir or default_cache_dir())


def resolve_corpus(
    name_or_path: str,
    data_dir: Path | None = None,
    cache_dir: Path | None = None,
    download: bool = True,
) -> Path:
    """Path of a corpus file: an existing file, else a registered name found locally or fetched."""
    as_path = Path(name_or_path).expanduser()
    if as_path.is_file():
        return as_path
    spec = REGISTRY.get(name_or_path)
    if spec is None:
        if as_path.is_dir():
            raise CorpusError(f"{as_path} is a directory, not a corpus file")
        names = ", ".join(REGISTRY)
        raise CorpusError(
            f"unknown corpus {name_or_path!r}: not a registered name ({names}) nor a file"
        )
    found = local_path(spec, data_dir, cache_dir)
    if found is not None:
        return found
    if not download:
        raise CorpusError(
            f"corpus {spec.name!r} is not available locally and downloading is off; put "
            f"{spec.filename} in your data folder ({DATA_DIR_ENV} / --data-dir)"
        )
    return fetch(spec, cache_dir or default_cache_dir())


class _NoDowngrade(urllib.request.HTTPRedirectHandler):
    """Follows redirects, but never from https to anything else."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[override]
        if req.full_url.startswith("https://") and not newurl.startswith("https://"):
            raise urllib.error.URLError(f"refused redirect from https to {newurl}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _download(url: str, timeout: float = DOWNLOAD_TIMEOUT_S) -> bytes:
    """The body at `url` (redirects followed, never from https to http), at most
    `MAX_DOWNLOAD_BYTES`, with a progress bar on a terminal."""
    max_bytes = MAX_DOWNLOAD_BYTES
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    opener = urllib.request.build_opener(_NoDowngrade)
    with opener.open(request, timeout=timeout) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        if total is not None and total > max_bytes:
            raise urllib.error.URLError(f"{total:,} bytes is over the {max_bytes:,}-byte cap")
        received = 0
        chunks = []
        with tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            desc=url.rsplit("/", 1)[-1],
            disable=None,
            leave=False,
        ) as bar:  # disable=None: silent when not a tty
            for chunk in iter(lambda: response.read(1 << 20), b""):
                received += len(chunk)
                if received > max_bytes:
                    raise urllib.error.URLError(f"more than the {max_bytes:,}-byte cap")
                chunks.append(chunk)
                bar.update(len(chunk))
    if total is not None and received != total:  # the server closed the connection early
        raise urllib.error.URLError(f"connection closed after {received:,} of {total:,} bytes")
    return b"".join(chunks)


def _install(data: bytes, target: Path) -> None:
    """Write `data` to a temporary file beside `target`, then rename it into place atomically."""
    atomic_write(target, data)


def _local_hint(spec: CorpusSpec) -> str:
    return f"put {spec.filename} in your data folder ({DATA_DIR_ENV} / --data-dir) instead"


def _download_raw(spec: CorpusSpec) -> bytes:
    """`spec.url`'s body; CorpusError (one line, with the local-file hint) on any network error."""
    try:
        return _download(spec.url)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        is_http = isinstance(e, urllib.error.HTTPError)  # str(): "HTTP Error 404: Not Found"
        reason = e if is_http else getattr(e, "reason", None) or e
        raise CorpusError(
            f"could not download corpus {spec.name!r} from {spec.url} ({reason}); "
            f"you can {_local_hint(spec)}"
        ) from None


def _verified_text(spec: CorpusSpec, raw: bytes) -> bytes:
    """`spec.prepare(raw)` as UTF-8 bytes; CorpusError naming both checksums on a mismatch, or
    the corpus and its source where the download is not what `prepare` reads (an error page,
    a truncated archive)."""
    try:
        data = spec.prepare(raw).encode("utf-8")
    except CorpusError as error:
        raise CorpusError(
            f"could not prepare corpus {spec.name!r} from {spec.url}: {error}; nothing was "
            f"installed. You can {_local_hint(spec)}."
        ) from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != spec.sha256:
        note = f" {spec.note}" if spec.note else ""
        raise CorpusError(
            f"checksum mismatch for corpus {spec.name!r} from {spec.url}: expected {spec.sha256}, "
            f"got {actual}; nothing was installed.{note} You can {_local_hint(spec)}."
        )
    return data


def fetch(spec: CorpusSpec, cache_dir: Path) -> Path:
    """Download, prepare, verify and install `spec` into `cache_dir`; return the file's path.

    A verified file already in the cache is returned as is; one that no longer matches its
    checksum is downloaded again and replaced. Concurrent callers serialise on
    `<cache_dir>/<filename>.lock`; whoever waited finds the file and returns.
    """
    cache_dir = Path(cache_dir)
    target = cache_dir / spec.filename
    if cached(spec, cache_dir):
        return target
    lock_file = cache_dir / f"{spec.filename}.lock"
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(lock_file, timeout=LOCK_TIMEOUT_S):
            if cached(spec, cache_dir):  # another process installed it while we waited
                return target
            _install(_verified_text(spec, _download_raw(spec)), target)
    except Timeout:  # the lock is the kernel's (fcntl): it is held by a live process
        raise CorpusError(
            f"another process has been downloading corpus {spec.name!r} into {cache_dir} for "
            f"{LOCK_TIMEOUT_S:.0f} s; wait for it, or {_local_hint(spec)}"
        ) from None
    except OSError as e:  # cache folder not writable, disk full, ...
        raise CorpusError(f"cannot write corpus {spec.name!r} into {cache_dir}: {e}") from None
    return target
