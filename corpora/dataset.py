"""A loaded corpus: its text encoded as ids, split by position into training, validation
and (optionally) test.

    corpus = load_corpus(CorpusConfig(name="monte-cristo", max_chars=200_000))
    corpus.train_ids, corpus.val_ids, corpus.test_ids, len(corpus.vocab)

    text (prefix of max_chars) -> ids: [ train ........................... | val | test ]
                                                                 val_fraction  test_fraction

Validation and test are the end of the text, not random samples, so no training window
overlaps them. Validation is what a search selects on (ranks, stops, picks the best); the test
part, when `test_fraction` > 0, is scored once, for the chosen model only, so its figure is not
flattered by the selection. The vocabulary comes from the whole text used, so no held-out
character is unknown.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from numbers import Integral, Real
from pathlib import Path
from typing import NamedTuple

import numpy as np

from corpora.errors import CorpusError
from corpora.fetch import resolve_corpus
from corpora.registry import REGISTRY
from corpora.text import decode_text, read_bytes
from corpora.vocab import Vocab


def lasting(name: str | None, folder: bool = False) -> str | None:
    """A corpus file (or, `folder`, a data folder) given by a relative path, made absolute: a
    checkpoint or a search's settings keep it, and are read from other working folders. A
    registered name, or a path to nothing, is returned as it is."""
    if not name:
        return name
    path = Path(name).expanduser()
    if path.is_absolute() or not (path.is_dir() if folder else path.is_file()):
        return name
    return str(path.absolute())


@dataclass(frozen=True)
class CorpusConfig:
    """Which text to train on and how much of it."""

    name: str = "monte-cristo"  # registered name or path to a UTF-8 file
    data_dir: str | None = None  # local data folder (else $CHARNN_DATA_DIR)
    max_chars: int | None = None  # use only this prefix of the text (characters = code points)
    val_fraction: float = 0.02  # validation: this share of the (prefix) text, before the test
    test_fraction: float = 0.0  # test: the last share of it, scored once for the chosen model

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise CorpusError("corpus name must be a non-empty string")
        object.__setattr__(self, "name", lasting(self.name))
        object.__setattr__(self, "data_dir", lasting(self.data_dir, folder=True))
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
        if (
            isinstance(self.test_fraction, bool)
            or not isinstance(self.test_fraction, Real)
            or not 0 <= self.test_fraction < 0.5 - self.val_fraction
        ):
            raise CorpusError(
                f"test_fraction must be at least 0 and leave val_fraction + test_fraction below "
                f"0.5, not {self.test_fraction!r}"
            )


@dataclass(frozen=True, eq=False)  # eq=False: arrays have no single truth value; compare sha256
class Corpus:
    """A corpus ready for batching: read-only id arrays plus what is needed to decode them."""

    name: str  # registry name, or file stem for a path
    path: str  # file it was read from
    sha256: str  # of the whole file on disk
    n_chars: int  # characters used (after max_chars)
    vocab: Vocab  # built from the text used (train + val)
    train_ids: np.ndarray  # first part, dtype vocab.dtype
    val_ids: np.ndarray  # the part after training, dtype vocab.dtype
    verified: bool | None = None  # file matches the registry's sha256; None: not registered
    test_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))  # last part;
    # empty without a test split


def registry_match(name: str, sha256: str) -> bool | None:
    """Whether a file read for registered corpus `name` is the registry's reference file
    (None when `name` is a path, not a registered name)."""
    spec = REGISTRY.get(name)
    return None if spec is None else sha256 == spec.sha256


def split_points(n: int, val_fraction: float, test_fraction: float = 0.0) -> tuple[int, int]:
    """Where validation and test start in a text of n characters: test is the last
    round(n * test_fraction), validation the round(n * val_fraction) before it.

    CorpusError if a part would be empty (the test part only when asked for).
    """
    if not 0 < val_fraction < 1 or not 0 <= test_fraction < 1 - val_fraction:
        raise CorpusError(
            f"val_fraction must be in (0, 1) and test_fraction in [0, 1 - val_fraction), not "
            f"{val_fraction!r} and {test_fraction!r}"
        )
    n_val, n_test = round(n * val_fraction), round(n * test_fraction)
    if n_val < 1 or n_val + n_test >= n or (test_fraction > 0 and n_test < 1):
        raise CorpusError(
            f"cannot split {n} characters with val_fraction={val_fraction}"
            + (f" and test_fraction={test_fraction}" if test_fraction else "")
            + ": training, validation or test part would be empty"
        )
    return n - n_test - n_val, n - n_test


def split_ids(
    ids: np.ndarray, val_fraction: float, test_fraction: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, val, test) views of `ids`, as `split_points` cuts them."""
    val_start, test_start = split_points(len(ids), val_fraction, test_fraction)
    return ids[:val_start], ids[val_start:test_start], ids[test_start:]


class SplitText(NamedTuple):
    """A corpus's parts as text (for compressors and evaluation) and its file's checksum."""

    train: str
    val: str
    test: str  # "" without a test split
    sha256: str


def corpus_text(config: CorpusConfig, cache_dir: Path | None = None) -> SplitText:
    """The corpus `config` names, split as `load_corpus` splits it, as text, not encoded."""
    data_dir = Path(config.data_dir) if config.data_dir else None
    path = resolve_corpus(config.name, data_dir, cache_dir, download=False)
    data = read_bytes(path)
    text = decode_text(data, path)[: config.max_chars]
    val_start, test_start = split_points(len(text), config.val_fraction, config.test_fraction)
    return SplitText(text[:val_start], text[val_start:test_start], text[test_start:],
                     hashlib.sha256(data).hexdigest())  # fmt: skip


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
    train_ids, val_ids, test_ids = split_ids(ids, config.val_fraction, config.test_fraction)
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
        test_ids=test_ids,
    )
