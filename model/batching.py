"""Stateful batches: a text cut into `B` equidistant streams, read `seq_len` characters at a time.

Pairs (input, target) = (ids[i], ids[i+1]). With n pairs and B streams of length L, stream b
holds pairs b*L ... (b+1)*L - 1, so row b of batch k+1 continues exactly where row b of batch k
stopped, and the recurrent state of row b can be carried from one batch to the next:

    ids     a0 a1 a2 a3 a4 a5 a6 a7 a8 a9 a10 a11 a12      (n = 12 pairs, B = 3, L = 4)

    inputs  (B x L)          targets (B x L)         batches of seq_len T = 2
    b=0:  a0 a1 | a2  a3      a1 a2 | a3  a4          batch 0 = columns 0-1,
    b=1:  a4 a5 | a6  a7      a5 a6 | a7  a8          batch 1 = columns 2-3,
    b=2:  a8 a9 | a10 a11     a9 a10| a11 a12         then every stream wraps to column 0.

Training drops the n - B*L (< B) leftover pairs. Validation pads instead (`pad=True`): the last
stream is filled up with target `PAD`, which the loss ignores, so every validation character is
scored exactly once. The last batch of a pass is shorter when T does not divide L.
"""

from __future__ import annotations

import numpy as np

from model.errors import ConfigError

PAD = -1  # target id the loss ignores (torch cross_entropy ignore_index)


def stream_matrix(
    ids: np.ndarray, batch_size: int, *, pad: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Cut the (input, target) pairs of `ids` into `batch_size` rows, as int64 arrays."""
    n = len(ids) - 1
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    length = -(-n // batch_size) if pad else n // batch_size
    if length < 1:
        raise ConfigError(f"text of {len(ids)} characters is too short for {batch_size} streams")
    inputs = np.zeros(batch_size * length, dtype=np.int64)
    targets = np.full(batch_size * length, PAD, dtype=np.int64)
    used = min(n, batch_size * length)
    inputs[:used] = ids[:used]
    targets[:used] = ids[1 : used + 1]
    return inputs.reshape(batch_size, length), targets.reshape(batch_size, length)


def window(position: int, seq_len: int, length: int) -> slice:
    """Columns of the batch that starts at `position` in streams of `length` columns."""
    return slice(position, min(position + seq_len, length))


def next_position(position: int, seq_len: int, length: int) -> tuple[int, bool]:
    """Where the next batch starts, and whether the streams wrapped around to their start."""
    position += seq_len
    return (0, True) if position >= length else (position, False)
