"""The predictability report's pure parts, fast (no search, no corpus): the test-split columns
and the ranking's stated differences on made-up per-character bits, the Markdown table, the
demo's searches. The report over real searches is checked in test_compare, the test columns
on a real search's test split in test_search."""

from dataclasses import fields

import numpy as np
import pyarrow as pa
import pytest

from model.errors import ConfigError
from model.evaluate import EvalConfig, block_bootstrap
from search.demo import build_parser as demo_parser
from search.demo import demo_configs
from search.folder.presets import PRESETS
from search.reports.baselines import Baselines
from search.reports.predictability import (
    TEST_COLUMNS,
    interval_columns,
    predictability_table,
    ranking_differences,
)
from search.reports.predictability import test_columns as split_columns  # (pytest collects test_*)
from search.reports.render import TEST_COLUMNS as TEST_VIEW
from search.reports.render import has_test, markdown_table
from search.reports.render import test_section as split_section
from search.reports.render import test_table as split_table

BOOT = EvalConfig(block=1_000, draws=400)
N = 40_000


def hardness(seed: int, n: int = N) -> np.ndarray:
    """Bits a text makes every predictor pay: stretches of 500 characters, easy and hard."""
    rng = np.random.default_rng(seed)
    return np.repeat(rng.gamma(4.0, 0.5, n // 500), 500)


def baselines(ppmd: float, xz: float) -> Baselines:
    figures = {f.name: 3.0 for f in fields(Baselines)}
    figures.update(val_chars=N, val_bytes=N, ppmd_order=8, ppmd_alone_order=8,
                   ppmd_given_train_bpc=ppmd, xz_given_train_bpc=xz)  # fmt: skip
    return Baselines(**figures)


@pytest.fixture(scope="module")
def bits():
    """(static, dynamic, ppmd): three predictors of one text; adaptation saves 0.1 bpc."""
    rng = np.random.default_rng(1)
    text = hardness(0)
    static = text + rng.normal(0.1, 0.5, N)
    return static, static - 0.1, text + rng.normal(0.05, 0.5, N)


def test_paired_with_ppmd_when_it_is_the_best_compressor(bits):
    static, dynamic, ppmd = bits
    row = split_columns(static, dynamic, baselines(ppmd.mean(), 9.0), ppmd, BOOT)
    assert {name for name, _ in TEST_COLUMNS} == set(row)
    assert row["test_best_compressor"] == "ppmd" and row["test_gain_paired"]
    assert row["test_bpc"] == pytest.approx(static.mean())
    assert row["test_gain_bpc"] == pytest.approx(ppmd.mean() - static.mean())
    assert row["test_dynamic_gain_bpc"] == pytest.approx(row["test_gain_bpc"] + 0.1)
    for figure in ("test", "test_dynamic", "test_gain", "test_dynamic_gain"):
        mean, low, high = (row[c] for c in interval_columns(figure))
        assert low < mean < high, figure
    # What makes a stretch hard for both cancels: the paired gain is known far better than
    # either figure alone.
    gain = row["test_gain_bpc_high"] - row["test_gain_bpc_low"]
    assert gain < (row["test_bpc_high"] - row["test_bpc_low"]) / 3
    assert row["test_dynamic_gain_bpc_low"] > 0 > row["test_gain_bpc_high"]  # wins adapted


def test_another_best_compressor_is_taken_as_exact(bits):
    static, dynamic, ppmd = bits
    row = split_columns(static, dynamic, baselines(ppmd.mean(), 1.0), ppmd, BOOT)
    assert row["test_best_compressor"] == "xz" and not row["test_gain_paired"]
    model = block_bootstrap(static, BOOT.block, BOOT.draws, BOOT.seed, BOOT.level)
    assert (row["test_gain_bpc_low"], row["test_gain_bpc_high"]) == pytest.approx(
        (1.0 - model.high, 1.0 - model.low)
    )


def test_the_ranking_states_each_difference_or_that_there_is_none():
    rng = np.random.default_rng(2)
    a, b, c = (hardness(s) + rng.normal(0, 0.3, N) for s in (3, 4, 4))
    bits = {"s-a": a - 1.0, "s-b": b, "s-c": c}  # b and c: the same text
    table = pa.table({"search": ["s-a", "s-b", "s-none", "s-c"],
                      "label": ["alpha", "beta", "none", "gamma"]})  # fmt: skip
    first, second = ranking_differences(table, bits, BOOT)
    assert first.startswith("alpha - beta: -") and first.endswith("alpha is lower")
    assert second.startswith("beta - gamma:") and second.endswith("not distinguishable")


def test_the_report_shows_the_test_split_only_where_there_is_one(bits):
    static, dynamic, ppmd = bits
    scored = split_columns(static, dynamic, baselines(ppmd.mean(), 9.0), ppmd, BOOT)
    rows = [
        {"corpus": "kept", "search": "s1", "best_val_bpc": 1.0, **scored},
        {"corpus": "none", "search": "s2", "best_val_bpc": 2.0},
    ]
    table = predictability_table(rows, thresholds=(2.0,))
    assert has_test(table) and not has_test(table.slice(1))
    shown = split_table(table)
    assert "kept" in shown and "none" not in shown and len(TEST_VIEW) == 9
    assert "model lower" in shown and f"{scored['test_dynamic_bpc']:.3f} [" in shown
    assert "ppmd" in shown and f"{ppmd.mean():.3f} (8)" in shown
    assert split_section(predictability_table(rows[1:], thresholds=(2.0,)), ["a line"]) == []
    markdown = "\n".join(split_section(table, ["kept - none: (a line)"]))
    assert markdown.startswith("## The test split") and "- kept - none: (a line)" in markdown


def test_markdown_table_escapes_and_aligns():
    table = markdown_table(["name", "bpc"], [["a|b", "1.5"], ["c", "–"]])
    lines = table.splitlines()
    assert [c.strip() for c in lines[0].strip("|").split("|")] == ["name", "bpc"]
    rules = [r.strip() for r in lines[1].strip("|").split("|")]
    assert not rules[0].endswith(":") and rules[1].endswith(":")  # text left, numbers right
    assert "a\\|b" in lines[2] and lines[2].rstrip("|").rstrip().endswith("1.5")


def test_the_length_note_says_when_equal_lengths_hide_other_splits():
    from search.reports.render import length_note

    def note(lengths, fractions):
        return length_note(pa.table({"corpus_chars": lengths, "val_fraction": fractions}))

    same = "Every corpus is cut to the same length: 1,000 characters."
    assert note([1000, 1000], [0.1, 0.1]) == same
    assert "**the validation splits differ** (0.05, 0.1)" in note([1000, 1000], [0.1, 0.05])
    assert note([1000, 2000], [0.1, 0.1]).startswith("**Unequal lengths** (1,000, 2,000")


def test_demo_searches_are_equal_length_and_valid(tmp_path):
    args = demo_parser().parse_args(["--corpora", "irc,nginx", "--time-budget", "1m"])
    assert args.corpora == "irc,nginx" and args.time_budget == 60
    for name in ("demo", "demo-full"):
        configs = demo_configs(name, str(tmp_path), "stamp", time_budget_s=60.0)
        assert [c.corpus for c in configs] == list(PRESETS[name].corpora)
        assert {c.max_chars for c in configs} == {PRESETS[name].settings["max_chars"]}
        assert {c.time_budget_s for c in configs} == {60.0}
        assert len({c.name for c in configs}) == len(configs)
    text = tmp_path / "my book.txt"
    (config,) = demo_configs("demo", str(tmp_path), "stamp", [str(text)])
    assert config.name == "my-book-demo-stamp" and config.corpus == str(text)  # a valid name
    with pytest.raises(ConfigError, match="names one corpus twice: irc-demo-stamp"):
        demo_configs("demo", str(tmp_path), "stamp", ["irc", "irc"])


def test_the_demo_refuses_corpora_of_unequal_lengths_before_searching(tmp_path):
    from search.demo import check_one_length

    configs = demo_configs("demo", str(tmp_path), "stamp", ["irc", "nginx"])
    check_one_length(configs, [500_000, 500_000])
    with pytest.raises(ConfigError, match=r"irc 500,000, nginx 321,000.*--max-chars 321000"):
        check_one_length(configs, [500_000, 321_000])
