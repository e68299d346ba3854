"""Reading corpus files: strict UTF-8 text with clear errors, and file checksums.

`read_text(path)` is what every loader uses; it refuses anything that is not a non-empty UTF-8
text file with a one-line CorpusError naming the path, instead of failing later in training.
"""

from __future__ import annotations

import codecs
import hashlib
from pathlib import Path

from corpora.errors import CorpusError


def read_bytes(path: Path) -> bytes:
    """The bytes of a non-empty regular file; CorpusError if missing, a directory or empty."""
    path = Path(path)
    if path.is_dir():
        raise CorpusError(f"{path} is a directory, not a text file")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CorpusError(f"{path}: no such file") from None
    except OSError as e:
        raise CorpusError(f"{path}: cannot read ({e.strerror or e})") from None
    if not data:
        raise CorpusError(f"{path} is empty")
    return data


def decode_text(data: bytes, path: Path) -> str:
    """Strict UTF-8 decoding; CorpusError if binary (NUL bytes) or not valid UTF-8.

    A leading byte-order mark (which editors on Windows write) is not part of the text: it is
    dropped, so that it is neither a character of the alphabet nor the first one predicted.
    """
    nul = data.find(b"\0")
    if nul >= 0:
        raise CorpusError(f"{path} looks binary (NUL byte at offset {nul}), not UTF-8 text")
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    if start == len(data):
        raise CorpusError(f"{path} is empty (a byte-order mark only)")
    try:
        return data[start:].decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorpusError(
            f"{path} is not valid UTF-8 (bad byte at offset {start + e.start})"
        ) from None


def read_text(path: Path) -> str:
    """The UTF-8 text of `path`, strictly decoded (no newline translation)."""
    return decode_text(read_bytes(path), Path(path))


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
