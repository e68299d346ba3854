"""Character vocabulary: text <-> integer ids, vectorised with numpy (no per-character loop).

    vocab = Vocab.from_text(text)      # distinct code points, sorted
    ids = vocab.encode(text)           # uint8 when len(vocab) <= 256 (else int16, then int32)
    assert vocab.decode(ids) == text

A "character" is a Unicode code point (what `len(str)` counts). Text becomes code points through
UTF-32 (`np.frombuffer(text.encode("utf-32-le"), np.uint32)`), ids come from a lookup table
indexed by code point, and decoding goes back through UTF-32.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from corpora.errors import CorpusError


def codepoints(text: str) -> np.ndarray:
    """The code points of `text` as a uint32 array (lone surrogates kept as their code)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


def _describe(char: str) -> str:
    return f"{char!r} (U+{ord(char):04X})"


@dataclass(frozen=True)
class Vocab:
    """The distinct characters of a text, sorted by code point; id = position in `chars`."""

    chars: tuple[str, ...]  # single characters, strictly increasing code points

    def __post_init__(self) -> None:
        codes = [ord(c) if isinstance(c, str) and len(c) == 1 else -1 for c in self.chars]
        if any(c < 0 for c in codes) or any(a >= b for a, b in zip(codes, codes[1:], strict=False)):
            raise CorpusError("vocabulary must be distinct single characters sorted by code point")

    @classmethod
    def from_text(cls, text: str) -> Vocab:
        """The vocabulary of exactly the characters present in `text`."""
        cps = codepoints(text)
        if cps.size == 0:
            return cls(())
        present = np.flatnonzero(np.bincount(cps))  # O(n), no sort; size = max code point + 1
        return cls(tuple(map(chr, present.tolist())))

    def __len__(self) -> int:
        return len(self.chars)

    @property
    def dtype(self) -> np.dtype:
        """Smallest id dtype that holds every id: uint8, else int16, else int32."""
        n = len(self.chars)
        return np.dtype(np.uint8 if n <= 256 else np.int16 if n <= 32768 else np.int32)

    @cached_property
    def _codes(self) -> np.ndarray:
        """Code point of each id (uint32)."""
        return np.array([ord(c) for c in self.chars], dtype="<u4")

    @cached_property
    def _table(self) -> np.ndarray:
        """id of each code point 0..max, -1 where absent; one extra -1 slot for out-of-range."""
        size = int(self._codes.max()) + 2 if self.chars else 1
        table = np.full(size, -1, dtype=np.int32)
        table[self._codes] = np.arange(len(self.chars), dtype=np.int32)
        return table

    def encode(self, text: str) -> np.ndarray:
        """Ids of the characters of `text`, dtype `self.dtype` (uint8 for <= 256 characters).

        Raises CorpusError naming the first character that is not in the vocabulary. Cast to
        int64 (`torch.from_numpy(ids).long()`) where an embedding needs it.
        """
        cps = codepoints(text)
        table = self._table
        ids = table[np.minimum(cps, len(table) - 1)]  # out-of-range code points hit the -1 slot
        if ids.size and int(ids.min()) < 0:
            pos = int(np.argmax(ids < 0))
            raise CorpusError(
                f"character {_describe(text[pos])} at position {pos} is not in the vocabulary"
            )
        return ids.astype(self.dtype)

    def decode(self, ids: object) -> str:
        """Text of a sequence of ids (a list, numpy array, or CPU tensor)."""
        arr = np.asarray(ids)
        if arr.size == 0:
            return ""
        if arr.dtype.kind not in "iu":
            raise CorpusError(f"ids must be integers, not {arr.dtype}")
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= len(self.chars):
            bad = lo if lo < 0 else hi
            raise CorpusError(f"id {bad} is out of range for a vocabulary of {len(self)} chars")
        return self._codes[arr.ravel()].tobytes().decode("utf-32-le", "surrogatepass")
