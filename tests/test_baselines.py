"""Compression baselines on small made-up texts: each figure is the formula it claims to be.

Fast (no Ray, no corpus files): the texts are a few kilobytes, built from a seeded generator, so
every codec runs in milliseconds. The report-level checks on real corpora are in test_compare.
"""

import bz2
import json
import random
from dataclasses import asdict, fields

import pytest
import zstandard

import search.reports.baselines
from search.reports.baselines import (
    CODECS,
    COMPRESSORS,
    METHOD,
    PPMD_ORDERS,
    Baselines,
    cache_key,
    cached_baselines,
    compute_baselines,
    ppmd_compress,
    ppmd_pass,
    ppmd_stretch_bits,
    unigram_entropy,
    zstd_compress,
)
from search.reports.plots import BASELINE_BARS
from search.reports.predictability import predictability_schema
from search.reports.render import ALONE_COLUMNS, MAIN_COLUMNS


def random_words(n_words: int, seed: int) -> str:
    """Text of words from a fixed random vocabulary: some structure, far from repetitive."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocabulary = ["".join(rng.choices(letters, k=rng.randint(2, 9))) for _ in range(400)]
    return " ".join(rng.choices(vocabulary, k=n_words))


@pytest.fixture(scope="module")
def repeated():
    """(train, val, baselines): the validation text is a passage the training text holds."""
    train = random_words(3000, seed=0)  # about 18 k characters
    val = train[5000:9000]
    return train, val, compute_baselines(train, val)


def given(train: str, val: str, compress) -> float:
    t, v = train.encode(), val.encode()
    return 8 * (len(compress(t + v)) - len(compress(t))) / len(val)


def test_every_codec_has_both_figures_and_ppmd_its_order(repeated):
    _, val, b = repeated
    names = {f.name for f in fields(Baselines)}
    assert set(COMPRESSORS) == {"gzip", "bz2", "xz", "zstd", "ppmd"}
    for codec in COMPRESSORS:
        assert {f"{codec}_given_train_bpc", f"{codec}_alone_bpc"} <= names, codec
    assert b.ppmd_order in PPMD_ORDERS and b.ppmd_alone_order in PPMD_ORDERS
    assert isinstance(b.ppmd_order, int) and isinstance(b.ppmd_alone_order, int)
    assert b.val_chars == len(val) and b.val_bytes == len(val.encode())


def test_figures_are_the_formula_recomputed_independently(repeated):
    train, val, b = repeated
    n = len(val)
    assert b.bz2_given_train_bpc == given(train, val, lambda d: bz2.compress(d, 9))
    assert b.bz2_alone_bpc == 8 * len(bz2.compress(val.encode(), 9)) / n
    data = (train + val).encode()
    window = zstandard.get_frame_parameters(zstd_compress(data)).window_size
    assert len(data) <= window < 2 * len(data)  # zstd sees all of train + val, no more
    for codec in CODECS:  # the library's own codec through the formula
        assert getattr(b, f"{codec}_given_train_bpc") == given(train, val, CODECS[codec])
    ppmd = {o: given(train, val, lambda d, o=o: ppmd_compress(d, o)) for o in PPMD_ORDERS}
    assert b.ppmd_given_train_bpc == ppmd[b.ppmd_order] == min(ppmd.values())
    alone = {o: 8 * len(ppmd_compress(val.encode(), o)) / n for o in PPMD_ORDERS}
    assert b.ppmd_alone_bpc == alone[b.ppmd_alone_order] == min(alone.values())
    assert b.unigram_bpc == unigram_entropy(val)


def test_conditional_cost_is_far_below_the_cost_alone_on_a_repeated_passage(repeated):
    _, _, b = repeated
    # The passage costs several bits a character alone; after the training text, a fraction.
    assert b.ppmd_alone_bpc > 2.5 and b.xz_alone_bpc > 2.5
    assert b.ppmd_given_train_bpc < b.ppmd_alone_bpc / 4
    assert b.zstd_given_train_bpc < b.zstd_alone_bpc / 4
    assert b.xz_given_train_bpc < b.xz_alone_bpc / 4


def test_ppmd_picks_a_high_order_for_a_copied_passage():
    # Long contexts predict a copy almost surely; the shortest order tried is not enough.
    copy = random_words(3000, seed=1)
    b = compute_baselines(copy, copy[2000:6000])
    assert b.ppmd_order >= 8 and b.ppmd_alone_order in PPMD_ORDERS


def test_the_one_pass_reads_ppmd_training_size_off_the_stream(repeated):
    train, val, _ = repeated
    t, v = train.encode(), val.encode()
    for order in PPMD_ORDERS:
        train_size, total = ppmd_pass(t, v, order)
        assert total == len(ppmd_compress(t + v, order))
        assert train_size == len(ppmd_compress(t, order))  # no carry pending here


def test_ppmd_bits_per_stretch_add_up_to_its_conditional_cost(repeated):
    train, _, b = repeated
    text = random_words(1500, seed=1) + train[:3000]  # new words, then a copied passage
    bits = ppmd_stretch_bits(train, text, b.ppmd_order, stretch=500)
    assert bits.shape == (len(text),)
    total = 8 * (len(ppmd_compress((train + text).encode(), b.ppmd_order))
                 - len(ppmd_compress(train.encode(), b.ppmd_order)))  # fmt: skip
    assert abs(bits.sum() - total) <= 8 * 5  # the flush's bytes, charged to the last stretch
    stretches = bits[: len(text) // 500 * 500].reshape(-1, 500)
    assert (stretches == stretches[:, :1]).all()  # even within a stretch
    copied, new = bits[-3000:].mean(), bits[:6000].mean()
    assert copied < new / 2  # the copied passage costs PPMd little, stretch by stretch


def test_the_test_text_has_cache_entries_of_its_own():
    val_key = cache_key("f" * 64, None, 0.1)
    with_test = cache_key("f" * 64, None, 0.1, 0.05)
    test = cache_key("f" * 64, None, 0.1, 0.05, "test")
    assert len({val_key, with_test, test}) == 3 and val_key.endswith(f":m{METHOD}")


def test_best_is_the_minimum_over_every_codec(repeated):
    _, _, b = repeated
    costs = {f.name.removesuffix("_given_train_bpc"): getattr(b, f.name) for f in fields(b)
             if f.name.endswith("_given_train_bpc")}  # fmt: skip
    assert set(costs) == set(COMPRESSORS)
    assert b.best == min(costs.items(), key=lambda item: item[1])
    for codec in COMPRESSORS:  # whichever codec is lowest is the one named
        lowered = Baselines(**{**asdict(b), f"{codec}_given_train_bpc": -1.0})
        assert lowered.best == (codec, -1.0)


def test_reports_show_every_figure():
    schema = predictability_schema(thresholds=(2.0,), rungs=())
    names = {f.name for f in fields(Baselines)}
    assert names <= set(schema.names)
    assert {schema.field(n).type for n in ("ppmd_order", "ppmd_alone_order")} == {
        schema.field("rank").type
    }  # whole numbers
    bars = {column for column, _ in BASELINE_BARS}
    headers = " ".join(h for h, _ in (*MAIN_COLUMNS, *ALONE_COLUMNS))
    for codec in COMPRESSORS:
        assert f"{codec}_given_train_bpc" in bars, codec
        assert f"{codec} | train" in headers.lower() and f"{codec} alone" in headers.lower()


def test_an_entry_of_an_older_method_is_recomputed_not_misread(repeated, tmp_path, monkeypatch):
    train, val, b = repeated
    key = cache_key("f" * 64, 20_000, 0.02)
    assert key.endswith(f":m{METHOD}") and METHOD >= 2
    old_key = key.removesuffix(f":m{METHOD}") + f":m{METHOD - 1}"
    old = {k: v for k, v in asdict(b).items() if "zstd" not in k and "ppmd" not in k}
    cache = tmp_path / "baselines.json"
    # Method 1's figures, under its own key and (as if hand-edited) under the current one.
    cache.write_text(json.dumps({old_key: old, key: {**old, "xz_given_train_bpc": 0.0}}))
    calls = []
    monkeypatch.setattr(search.reports.baselines, "compute_baselines",
                        lambda *a: calls.append(a) or compute_baselines(*a))  # fmt: skip
    assert cached_baselines(cache, key, train, val) == b and len(calls) == 1
    assert json.loads(cache.read_text()) == {key: asdict(b)}  # the old entries are dropped
    assert cached_baselines(cache, key, train, val) == b and len(calls) == 1  # now from cache
