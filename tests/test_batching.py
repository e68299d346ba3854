"""Stateful batching on arange data, where every right answer is plain to see."""

import warnings

import numpy as np
import pytest
import torch

from model.batching import PAD, batch, next_position, stream_views, window
from model.errors import ConfigError


def test_streams_are_equidistant_and_targets_shift_by_one():
    streams = stream_views(np.arange(13), batch_size=3)
    assert streams.inputs.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert streams.targets.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]]


def test_streams_are_views_of_the_compact_ids_not_copies():
    ids = np.arange(200, dtype=np.uint8)
    ids.flags.writeable = False  # as Ray's object store hands it to a trial
    streams = stream_views(ids, batch_size=4)
    assert np.shares_memory(streams.inputs, ids) and np.shares_memory(streams.targets, ids)
    assert streams.inputs.dtype == np.uint8
    x, y = batch(streams, slice(0, 5))
    assert x.dtype == y.dtype == torch.int64
    assert x.tolist()[1] == [49, 50, 51, 52, 53] and y.tolist()[1] == [50, 51, 52, 53, 54]


@pytest.mark.parametrize("batch_size", [1, 4])
def test_a_window_of_read_only_ids_makes_no_torch_warning(batch_size):
    ids = np.arange(200, dtype=np.uint8)
    ids.flags.writeable = False
    streams = stream_views(ids, batch_size=batch_size)
    whole = slice(0, streams.length)  # contiguous: numpy would hand back the read-only view
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch: "The given NumPy array is not writable"
        x, y = batch(streams, whole)
    assert x[0, :3].tolist() == [0, 1, 2] and y[0, :3].tolist() == [1, 2, 3]


def test_training_drops_the_leftover_pairs():
    streams = stream_views(np.arange(15), batch_size=3)  # 14 pairs -> 3 x 4, 2 dropped
    assert streams.inputs.shape == (3, 4)
    assert streams.targets[-1, -1] == 12
    assert not streams.padded


def test_padding_scores_every_character_once():
    streams = stream_views(np.arange(15, dtype=np.uint8), batch_size=3, pad=True)  # 14 -> 3 x 5
    assert streams.inputs.shape == (3, 5) and streams.padded
    x, y = batch(streams, slice(0, 5))
    real = y[y != PAD]
    assert real.tolist() == list(range(1, 15))
    assert int((y == PAD).sum()) == 1
    # A window that does not start at column 0 masks the same padded position.
    _, tail = batch(streams, slice(3, 5))
    assert tail.tolist()[-1] == [14, PAD]


def test_consecutive_batches_continue_each_stream_and_wrap():
    streams = stream_views(np.arange(25), batch_size=4)  # 24 pairs -> 4 x 6
    position, seen, wraps = 0, [], 0
    for _ in range(4):  # seq_len 4 over 6 columns: widths 4, 2, then wrap, 4, 2
        cols = window(position, 4, streams.length)
        seen.append(batch(streams, cols)[0].numpy())
        position, wrapped = next_position(position, 4, streams.length)
        wraps += wrapped
    assert [b.shape[1] for b in seen] == [4, 2, 4, 2]
    # Row b of batch k+1 starts right after row b of batch k ended.
    assert (seen[1][:, 0] == seen[0][:, -1] + 1).all()
    np.testing.assert_array_equal(np.hstack(seen[:2]), streams.inputs)
    np.testing.assert_array_equal(seen[2], seen[0])  # wrapped back to column 0
    assert wraps == 2


def test_text_too_short_for_the_streams_is_a_clear_error():
    with pytest.raises(ConfigError, match="too short"):
        stream_views(np.arange(3), batch_size=4)
