"""Compression baselines: how many bits per character general-purpose codecs need for a text.

    baselines = compute_baselines(train_text, val_text)       # pure; seconds on megabytes
    baselines = cached_baselines(folder / "baselines.json", key, train_text, val_text)

A model that trained on `train_text` and is scored on `val_text` is fairly compared with a
compressor that has also seen the training text: the conditional cost

    8 * (C(train + val) - C(train)) / len(val)        bits per character

where C is the compressed size in bytes of the UTF-8 text and len counts characters (code
points). The plain cost 8 * C(val) / len(val) is also kept, labelled as such. Shortcut
admitted: the conditional figure is only as conditional as the codec's memory. gzip sees the
last 32 KiB of the training text, bz2 the rest of its 900 kB block, xz (preset 9 extreme, a
64 MiB dictionary) all of it. Stream headers and trailers mostly cancel in the difference.

The unigram entropy is that of the validation text's own character frequencies: the cost of an
order-0 model that knew them in advance (a flattering figure for an order-0 model).
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from corpora.files import atomic_path

METHOD = 1  # bump when a figure's definition changes: older cache entries are recomputed
CODECS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": lambda data: gzip.compress(data, compresslevel=9, mtime=0),  # mtime=0: same bytes
    "bz2": lambda data: bz2.compress(data, compresslevel=9),
    "xz": lambda data: lzma.compress(data, preset=9 | lzma.PRESET_EXTREME),
}


@dataclass(frozen=True)
class Baselines:
    """Bits per character of the validation text; `*_given_train` are the fair comparison."""

    val_chars: int  # characters (code points) of the validation text
    val_bytes: int  # its UTF-8 bytes
    unigram_bpc: float  # entropy of the validation text's own character frequencies
    gzip_given_train_bpc: float  # 8 * (C(train + val) - C(train)) / val_chars, gzip -9
    bz2_given_train_bpc: float  # the same with bz2 -9
    xz_given_train_bpc: float  # the same with xz (lzma preset 9 extreme)
    gzip_alone_bpc: float  # 8 * C(val) / val_chars: the validation text compressed on its own
    bz2_alone_bpc: float
    xz_alone_bpc: float

    @property
    def best(self) -> tuple[str, float]:
        """The codec with the lowest conditional cost, and that cost."""
        costs = {name: getattr(self, f"{name}_given_train_bpc") for name in CODECS}
        name = min(costs, key=costs.__getitem__)
        return name, costs[name]


def unigram_entropy(text: str) -> float:
    """Shannon entropy (bits per character) of the character frequencies of `text`."""
    if not text:
        raise ValueError("unigram entropy of an empty text")
    n = len(text)
    return -sum(k / n * math.log2(k / n) for k in Counter(text).values())


def compressed_size(codec: str, data: bytes) -> int:
    """Bytes of `data` compressed by one of CODECS."""
    return len(CODECS[codec](data))


def conditional_bpc(codec: str, train: bytes, val: bytes, val_chars: int) -> float:
    """Bits per character of `val` given `train`: 8 * (C(train + val) - C(train)) / val_chars."""
    return 8 * (compressed_size(codec, train + val) - compressed_size(codec, train)) / val_chars


def compute_baselines(train_text: str, val_text: str) -> Baselines:
    """Every baseline of `val_text` (after `train_text`); see the module docstring."""
    if not val_text:
        raise ValueError("validation text is empty")
    train, val = train_text.encode("utf-8"), val_text.encode("utf-8")
    n = len(val_text)
    figures: dict[str, Any] = {"val_chars": n, "val_bytes": len(val)}
    figures["unigram_bpc"] = unigram_entropy(val_text)
    for codec in CODECS:
        figures[f"{codec}_given_train_bpc"] = conditional_bpc(codec, train, val, n)
        figures[f"{codec}_alone_bpc"] = 8 * compressed_size(codec, val) / n
    return Baselines(**figures)


def cache_key(sha256: str, max_chars: int | None, val_fraction: float) -> str:
    """Names one validation text: the corpus file, the prefix length and the split."""
    return f"{sha256}:{max_chars if max_chars is not None else 'all'}:{val_fraction!r}:m{METHOD}"


def read_cache(path: Path) -> dict[str, dict[str, Any]]:
    """The cache file's entries; an absent or unreadable file is an empty cache."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def from_entry(entry: Any) -> Baselines | None:
    """A cache entry as Baselines, or None if it does not hold exactly their fields."""
    names = {f.name for f in fields(Baselines)}
    if not isinstance(entry, dict) or set(entry) != names:
        return None
    return Baselines(**entry)


def cached_baselines(path: Path, key: str, train_text: str, val_text: str) -> Baselines:
    """Baselines from the JSON cache at `path`, else computed and added to it (atomically).

    The cache is an optimisation only: a folder that cannot be written just means recomputing.
    """
    entries = read_cache(path)
    found = from_entry(entries.get(key))
    if found is not None and found.val_chars == len(val_text):
        return found
    baselines = compute_baselines(train_text, val_text)
    entries[key] = asdict(baselines)
    try:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(entries, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    except OSError:
        pass  # read-only search folder: the figures are still returned
    return baselines
