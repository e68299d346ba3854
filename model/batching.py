"""Stateful batches: a text cut into `B` equidistant streams, read `seq_len` characters at a time.

Pairs (input, target) = (ids[i], ids[i+1]). With n pairs and B streams of length L, stream b
holds pairs b*L ... (b+1)*L - 1, so row b of batch k+1 continues exactly where row b of batch k
stopped, and the recurrent state of row b can be carried from one batch to the next:

    ids     a0 a1 a2 a3 a4 a5 a6 a7 a8 a9 a10 a11 a12      (n = 12 pairs, B = 3, L = 4)

    inputs  (B x L)          targets (B x L)         batches of seq_len T = 2
    b=0:  a0 a1 | a2  a3      a1 a2 | a3  a4          batch 0 = columns 0-1,
    b=1:  a4 a5 | a6  a7      a5 a6 | a7  a8          batch 1 = columns 2-3,
    b=2:  a8 a9 | a10 a11     a9 a10| a11 a12         then every stream wraps to column 0.

`inputs` and `targets` are two reshaped views of the same compact id array (uint8 for up to
256 distinct characters), not copies: every trial on a machine shares the one encoded corpus
that Ray's object store holds, and `batch` widens just the B x T window it is asked for to
int64. Training drops the n - B*L (< B) leftover pairs. Validation pads instead (`pad=True`,
one small copy): pairs past the n real ones get target `PAD`, which the loss ignores, so every
validation character is scored exactly once. The last batch of a pass is shorter when T does
not divide L.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from model.errors import ConfigError

PAD = -1  # target id the loss ignores (torch cross_entropy ignore_index)


@dataclass(frozen=True, eq=False)
class Streams:
    """B streams of L (input, target) pairs, as views of one id array."""

    inputs: np.ndarray  # (B, L) view, the corpus's compact id dtype
    targets: np.ndarray  # (B, L) view of the same ids, shifted by one
    pairs: int  # real pairs; flat positions b*L + c at or past this are padding

    @property
    def batch_size(self) -> int:
        return self.inputs.shape[0]

    @property
    def length(self) -> int:
        return self.inputs.shape[1]

    @property
    def padded(self) -> bool:
        return self.pairs < self.inputs.size


def stream_views(ids: np.ndarray, batch_size: int, *, pad: bool = False) -> Streams:
    """Cut the (input, target) pairs of `ids` into `batch_size` rows without copying them.

    With `pad`, the ids are copied once into an array long enough for every pair to fit.
    """
    n = len(ids) - 1
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    length = -(-n // batch_size) if pad else n // batch_size
    if length < 1:
        raise ConfigError(f"text of {len(ids)} characters is too short for {batch_size} streams")
    cells = batch_size * length
    if cells > n:  # padding: the filler is never scored (its targets are PAD)
        ids = np.concatenate([ids, np.zeros(cells - n, dtype=ids.dtype)])
    inputs = ids[:cells].reshape(batch_size, length)
    targets = ids[1 : cells + 1].reshape(batch_size, length)
    return Streams(inputs, targets, min(n, cells))


def batch(
    streams: Streams, cols: slice, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The (inputs, targets) window `cols` of every stream, as int64 tensors on `device`.

    The window is copied (`np.array`), also where it is already contiguous (one stream, or a
    window of whole streams): torch warns about a tensor made from a read-only array, and a
    corpus's ids are read-only."""
    x = torch.from_numpy(np.array(streams.inputs[:, cols])).to(device).long()
    y = torch.from_numpy(np.array(streams.targets[:, cols])).to(device).long()
    if streams.padded:
        start, stop, _ = cols.indices(streams.length)
        flat = np.arange(streams.batch_size)[:, None] * streams.length + np.arange(start, stop)
        beyond = torch.from_numpy(flat >= streams.pairs).to(device)
        y = y.masked_fill(beyond, PAD)
    return x, y


def window(position: int, seq_len: int, length: int) -> slice:
    """Columns of the batch that starts at `position` in streams of `length` columns."""
    return slice(position, min(position + seq_len, length))


def next_position(position: int, seq_len: int, length: int) -> tuple[int, bool]:
    """Where the next batch starts, and whether the streams wrapped around to their start."""
    position += seq_len
    return (0, True) if position >= length else (position, False)
