"""A loaded corpus: its text encoded as ids, split by position into training and validation.

    corpus = load_corpus(CorpusConfig(name="monte-cristo", max_chars=200_000))
    corpus.train_ids, corpus.val_ids, len(corpus.vocab)

    text (prefix of max_chars) -> ids: [ train ................................. | val ]
                                        first (1 - val_fraction)                  last part

Validation is the end of the text, not a random sample, so no training window overlaps it. The
vocabulary comes from the whole text used (train + val), so no validation character is unknown.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path

import numpy as np

from corpora.errors import CorpusError
from corpora.fetch import resolve_corpus
from corpora.registry import REGISTRY
from corpora.text import decode_text, read_bytes
from corpora.vocab import Vocab


@dataclass(frozen=True)
class CorpusConfig:
    """Which text to train on and how much of it."""

    name: str = "monte-cristo"  # registered name or path to a UTF-8 file
    data_dir: str | None = None  # local data folder (else $CHARNN_DATA_DIR)
    max_chars: int | None = None  # use only this prefix of the text (characters = code points)
    val_fraction: float = 0.02  # last part of the (prefix) text is validation

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise CorpusError("corpus name must be a non-empty string")
        if self.max_chars is not None and (
            isinstance(self.max_chars, bool)
            or not isinstance(self.max_chars, Integral)
            or self.max_chars <= 0
        ):
            raise CorpusError(f"max_chars must be a positive integer, not {self.max_chars!r}")
        if (
            isinstance(self.val_fraction, bool)
            or not isinstance(self.val_fraction, Real)
            or not 0 < self.val_fraction < 0.5
        ):
            raise CorpusError(f"val_fraction must be in (0, 0.5), not {self.val_fraction!r}")


@dataclass(frozen=True, eq=False)  # eq=False: arrays have no single truth value; compare sha256
class Corpus:
    """A corpus ready for batching: read-only id arrays plus what is needed to decode them."""

    name: str  # registry name, or file stem for a path
    path: str  # file it was read from
    sha256: str  # of the whole file on disk
    n_chars: int  # characters used (after max_chars)
    vocab: Vocab  # built from the text used (train + val)
    train_ids: np.ndarray  # first part, dtype vocab.dtype
    val_ids: np.ndarray  # last part, dtype vocab.dtype
    verified: bool | None = None  # file matches the registry's sha256; None: not registered


def registry_match(name: str, sha256: str) -> bool | None:
    """Whether a file read for registered corpus `name` is the registry's reference file
    (None when `name` is a path, not a registered name)."""
    spec = REGISTRY.get(name)
    return None if spec is None else sha256 == spec.sha256


def split_point(n: int, val_fraction: float) -> int:
    """Where validation starts in a text of n characters: the last round(n * val_fraction).

    CorpusError if either part would be empty.
    """
    if not 0 < val_fraction < 1:
        raise CorpusError(f"val_fraction must be in (0, 1), not {val_fraction!r}")
    n_val = round(n * val_fraction)
    if n_val < 1 or n_val >= n:
        raise CorpusError(
            f"cannot split {n} characters with val_fraction={val_fraction}: "
            "training or validation part would be empty"
        )
    return n - n_val


def split_ids(ids: np.ndarray, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) views of `ids`: val is the last round(len * val_fraction) ids."""
    cut = split_point(len(ids), val_fraction)
    return ids[:cut], ids[cut:]


def corpus_text(config: CorpusConfig, cache_dir: Path | None = None) -> tuple[str, str, str]:
    """(training text, validation text, sha256 of the file) of the corpus `config` names: the
    same split as `load_corpus`, as text (for compressors), without encoding it."""
    data_dir = Path(config.data_dir) if config.data_dir else None
    path = resolve_corpus(config.name, data_dir, cache_dir, download=False)
    data = read_bytes(path)
    text = decode_text(data, path)[: config.max_chars]
    cut = split_point(len(text), config.val_fraction)
    return text[:cut], text[cut:], hashlib.sha256(data).hexdigest()


def _display_name(name_or_path: str) -> str:
    path = Path(name_or_path).expanduser()
    return path.stem if path.is_file() else name_or_path


def load_corpus(
    config: CorpusConfig, cache_dir: Path | None = None, download: bool = True
) -> Corpus:
    """Resolve, read, encode and split the corpus that `config` names."""
    data_dir = Path(config.data_dir) if config.data_dir else None
    path = resolve_corpus(config.name, data_dir, cache_dir, download)
    data = read_bytes(path)
    text = decode_text(data, path)
    if config.max_chars is not None:
        text = text[: int(config.max_chars)]
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    ids.flags.writeable = False  # shared by train/val views (and by Ray's object store)
    train_ids, val_ids = split_ids(ids, config.val_fraction)
    sha256 = hashlib.sha256(data).hexdigest()
    return Corpus(
        name=_display_name(config.name),
        path=str(path),
        sha256=sha256,
        verified=registry_match(config.name, sha256),
        n_chars=len(text),
        vocab=vocab,
        train_ids=train_ids,
        val_ids=val_ids,
    )
