"""Stateful batching on arange data, where every right answer is plain to see."""

import numpy as np
import pytest

from model.batching import PAD, next_position, stream_matrix, window
from model.errors import ConfigError


def test_streams_are_equidistant_and_targets_shift_by_one():
    inputs, targets = stream_matrix(np.arange(13), batch_size=3)
    assert inputs.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert targets.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]]


def test_training_drops_the_leftover_pairs():
    inputs, targets = stream_matrix(np.arange(15), batch_size=3)  # 14 pairs -> 3 x 4, 2 dropped
    assert inputs.shape == (3, 4)
    assert targets[-1, -1] == 12


def test_padding_scores_every_character_once():
    ids = np.arange(15)
    inputs, targets = stream_matrix(ids, batch_size=3, pad=True)  # 14 pairs -> 3 x 5, 1 pad
    assert inputs.shape == (3, 5)
    real = targets[targets != PAD]
    assert real.tolist() == list(range(1, 15))
    assert (targets == PAD).sum() == 1


def test_consecutive_batches_continue_each_stream_and_wrap():
    inputs, targets = stream_matrix(np.arange(25), batch_size=4)  # 24 pairs -> 4 x 6
    position, seen, wraps = 0, [], 0
    for _ in range(4):  # seq_len 4 over 6 columns: widths 4, 2, then wrap, 4, 2
        cols = window(position, 4, inputs.shape[1])
        seen.append(inputs[:, cols])
        position, wrapped = next_position(position, 4, inputs.shape[1])
        wraps += wrapped
    assert [b.shape[1] for b in seen] == [4, 2, 4, 2]
    # Row b of batch k+1 starts right after row b of batch k ended.
    assert (seen[1][:, 0] == seen[0][:, -1] + 1).all()
    np.testing.assert_array_equal(np.hstack(seen[:2]), inputs)
    np.testing.assert_array_equal(seen[2], seen[0])  # wrapped back to column 0
    assert wraps == 2


def test_text_too_short_for_the_streams_is_a_clear_error():
    with pytest.raises(ConfigError, match="too short"):
        stream_matrix(np.arange(3), batch_size=4)
