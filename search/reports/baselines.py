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
64 MiB dictionary) all of it, zstd (level 22, long-distance matching, a window of the whole
input) all of it. Stream headers and trailers mostly cancel in the difference.

PPMd (variant H, as in 7-Zip's .7z; `pyppmd`) is a context-mixing statistical model, the
strongest general-purpose codec on text. Its one important setting is the model order: higher
orders win on repetitive text (code, statute), order 6-8 on prose. Each of PPMD_ORDERS is tried
and the order with the lowest conditional cost is kept and recorded (`ppmd_order`); the cost of
the validation text alone keeps its own best order (`ppmd_alone_order`). A text whose model
outgrows PPMD_MEM_SIZE restarts the model from scratch: a worse figure, not a wrong one.

The unigram entropy is that of the validation text's own character frequencies: the cost of an
order-0 model that knew them in advance (a flattering figure for an order-0 model).

A search with a test split is also scored on it: the same figures for the test text given
everything before it (training and validation text), and PPMd's cost of each stretch of
PPMD_STRETCH characters of it (`ppmd_stretch_bits`), which the report pairs with the model's
own bits for each character to put an interval on their difference.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pyppmd
import zstandard

from corpora.files import atomic_path

METHOD = 2  # bump when a figure's definition changes: older cache entries are recomputed
# 2: zstd and PPMd added (older entries lack their figures)

# The orders tried. CPU seconds of one pass over train + val, 2.6 M characters with 10%
# validation (benchmarks/bench_baselines.py, two runs): order 4 0.2-0.5, 6 0.3-1.0, 8 0.3-1.5,
# 12 0.6-1.8, 16 0.7-1.8 (prose the slowest). Best conditional order at 2.6 M characters: 8 on
# both novels, 16 on the statute and the C source; at 200 k and 1 M, 6 or 8 on the novels and 16
# on the others. 12 is never best (within 0.02 bpc of 8 or 16) and is left out; 4 is cheap and
# kept for short texts (the best order for a 200 k-character novel's validation text alone).
# With these orders all baselines of one such text take 12-20 s of one core: xz and zstd 4-7 s
# each, PPMd (passes, the chosen order's C(train), the text alone) 3-6 s.
PPMD_ORDERS = (4, 6, 8, 16)
PPMD_MEM_SIZE = 256 << 20  # model memory (bytes): order 16 on 2.6 M characters needs > 16 MiB
_PPMD_FLUSH_BYTES = 5  # what the range coder's flush writes: 5 shifts of one byte
PPMD_STRETCH = 1_000  # characters per stretch of `ppmd_stretch_bits`


def zstd_compress(data: bytes) -> bytes:
    """zstd at level 22 with long-distance matching and a window that covers all of `data`."""
    window_log = (len(data) - 1).bit_length()  # the smallest window that covers all of it
    window_log = min(max(window_log, zstandard.WINDOWLOG_MIN), zstandard.WINDOWLOG_MAX)
    params = zstandard.ZstdCompressionParameters.from_level(
        22, source_size=len(data), window_log=window_log, enable_ldm=True
    )
    return zstandard.ZstdCompressor(compression_params=params).compress(data)


def ppmd_compress(data: bytes, order: int) -> bytes:
    """PPMd variant H (7-Zip's) of model order `order` with PPMD_MEM_SIZE bytes of memory."""
    encoder = pyppmd.Ppmd7Encoder(order, PPMD_MEM_SIZE)
    return encoder.encode(data) + encoder.flush()


CODECS: dict[str, Callable[[bytes], bytes]] = {  # fixed settings; PPMd chooses its order
    "gzip": lambda data: gzip.compress(data, compresslevel=9, mtime=0),  # mtime=0: same bytes
    "bz2": lambda data: bz2.compress(data, compresslevel=9),
    "xz": lambda data: lzma.compress(data, preset=9 | lzma.PRESET_EXTREME),
    "zstd": zstd_compress,
}
COMPRESSORS = (*CODECS, "ppmd")  # every codec with a *_given_train_bpc figure


@dataclass(frozen=True)
class Baselines:
    """Bits per character of the validation text; `*_given_train` are the fair comparison."""

    val_chars: int  # characters (code points) of the validation text
    val_bytes: int  # its UTF-8 bytes
    unigram_bpc: float  # entropy of the validation text's own character frequencies
    gzip_given_train_bpc: float  # 8 * (C(train + val) - C(train)) / val_chars, gzip -9
    bz2_given_train_bpc: float  # the same with bz2 -9
    xz_given_train_bpc: float  # the same with xz (lzma preset 9 extreme)
    zstd_given_train_bpc: float  # the same with zstd level 22, long-distance matching
    ppmd_given_train_bpc: float  # the same with PPMd (variant H) of order ppmd_order
    ppmd_order: int  # the one of PPMD_ORDERS with the lowest ppmd_given_train_bpc
    gzip_alone_bpc: float  # 8 * C(val) / val_chars: the validation text compressed on its own
    bz2_alone_bpc: float
    xz_alone_bpc: float
    zstd_alone_bpc: float
    ppmd_alone_bpc: float  # with its own best order, ppmd_alone_order
    ppmd_alone_order: int

    @property
    def best(self) -> tuple[str, float]:
        """The codec with the lowest conditional cost, and that cost."""
        costs = {name: getattr(self, f"{name}_given_train_bpc") for name in COMPRESSORS}
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


def ppmd_pass(train: bytes, val: bytes, order: int) -> tuple[int, int]:
    """One PPMd pass over train + val: (C(train) read off the stream, C(train + val)).

    C(train) is read as the bytes out before val plus the 5 of a flush: exact unless a carry
    was pending in the range coder when val began (a run of 0xFF bytes held back, rare), when
    the true C(train) is a few bytes more.
    """
    encoder = pyppmd.Ppmd7Encoder(order, PPMD_MEM_SIZE)
    head = len(encoder.encode(train))
    return head + _PPMD_FLUSH_BYTES, head + len(encoder.encode(val)) + len(encoder.flush())


def ppmd_given_train(
    train: bytes, val: bytes, val_chars: int, orders: Sequence[int] = PPMD_ORDERS
) -> tuple[float, int]:
    """PPMd's lowest conditional cost over `orders` (ties: the lower order), and that order.

    The orders are compared on one pass each (`ppmd_pass`), half the work of compressing train
    and train + val apart; the chosen order's C(train) is then compressed in full, so its
    figure is exactly 8 * (C(train + val) - C(train)) / val_chars.
    """
    passes = {order: ppmd_pass(train, val, order) for order in orders}
    order = min(orders, key=lambda o: (passes[o][1] - passes[o][0], o))
    return 8 * (passes[order][1] - len(ppmd_compress(train, order))) / val_chars, order


def ppmd_stretch_bits(
    before: str, text: str, order: int, stretch: int = PPMD_STRETCH
) -> np.ndarray:
    """PPMd's bits for each character of `text` read after `before`, in one pass of model
    order `order`: each stretch of `stretch` characters is charged the bytes the coder wrote
    while reading it (the last also its flush), spread evenly over its characters.

    They sum to the conditional cost of `text` (`ppmd_given_train`, within the flush's 5
    bytes). A stretch's own figure is off by the few bytes the range coder holds back at its
    ends, which the next stretch is charged instead: an error that cancels in any sum over
    consecutive stretches, such as the report's 10,000-character bootstrap blocks.
    """
    encoder = pyppmd.Ppmd7Encoder(order, PPMD_MEM_SIZE)
    encoder.encode(before.encode("utf-8"))
    starts = range(0, len(text), stretch)
    out = [len(encoder.encode(text[i : i + stretch].encode("utf-8"))) for i in starts]
    out[-1] += len(encoder.flush())
    lengths = [min(stretch, len(text) - i) for i in starts]
    return np.repeat(8 * np.asarray(out, dtype=np.float64) / lengths, lengths)


def ppmd_alone(
    val: bytes, val_chars: int, orders: Sequence[int] = PPMD_ORDERS
) -> tuple[float, int]:
    """PPMd's lowest cost of `val` on its own over `orders` (ties: the lower order), and that
    order."""
    size, order = min((len(ppmd_compress(val, order)), order) for order in orders)
    return 8 * size / val_chars, order


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
    figures["ppmd_given_train_bpc"], figures["ppmd_order"] = ppmd_given_train(train, val, n)
    figures["ppmd_alone_bpc"], figures["ppmd_alone_order"] = ppmd_alone(val, n)
    return Baselines(**figures)


def cache_key(
    sha256: str,
    max_chars: int | None,
    val_fraction: float,
    test_fraction: float = 0.0,
    part: str = "val",
) -> str:
    """Names one scored text (`part`: "val" or "test"): the corpus file, the prefix length and
    the split, and the METHOD its figures were computed by."""
    key = f"{sha256}:{max_chars if max_chars is not None else 'all'}:{val_fraction!r}:m{METHOD}"
    return key + (f":test={test_fraction!r}:{part}" if test_fraction else "")


def read_cache(path: Path) -> dict[str, dict[str, Any]]:
    """The cache file's entries; an absent or unreadable file is an empty cache."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def from_entry(entry: Any) -> Baselines | None:
    """A cache entry as Baselines, or None if it does not hold exactly their fields (an entry
    of an older METHOD lacks the newer codecs)."""
    names = {f.name for f in fields(Baselines)}
    if not isinstance(entry, dict) or set(entry) != names:
        return None
    return Baselines(**entry)


def cached_baselines(path: Path, key: str, train_text: str, val_text: str) -> Baselines:
    """Baselines from the JSON cache at `path`, else computed and added to it (atomically).

    Entries that no longer read as Baselines (older METHODs) are dropped when it is rewritten.
    The cache is an optimisation only: a folder that cannot be written just means recomputing.
    """
    entries = read_cache(path)
    found = from_entry(entries.get(key))
    if found is not None and found.val_chars == len(val_text):
        return found
    baselines = compute_baselines(train_text, val_text)
    entries = {k: v for k, v in entries.items() if from_entry(v) is not None}
    entries[key] = asdict(baselines)
    try:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(entries, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    except OSError:
        pass  # read-only search folder: the figures are still returned
    return baselines
