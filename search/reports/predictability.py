"""The predictability table: one typed row per search, corpora side by side.

Each row: the corpus (length, distinct characters, checksums); compressor baselines on the
same validation text (`search.reports.baselines`); the best model's validation bpc and its gain over
the best compressor; where the search kept a test split, the best model's static and adaptive
bpc on it, the compressors on the same test text, and the model's gain over the best of them,
each with a block-bootstrap interval (`test_columns`); that trial's hyperparameters; the
training characters and seconds it needed to reach fixed bpc thresholds; the best and median
bpc at each rung of the scheduler (equal budgets); counts of trials by status; hyperparameter
importance; a sample of its text.
Rows are ranked by best bpc. Built from the searches' tables (`search.reports.searches`), never a
second source of truth.
"""

from __future__ import annotations

import itertools
import re
import shlex
import statistics
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa

from model.evaluate import (
    EvalConfig,
    Interval,
    block_bootstrap,
    describe_difference,
    independent_difference,
    paired_difference,
)
from search.folder.config import SearchConfig, search_argv
from search.folder.results import SPEED_LEVELS, STATUSES, TRIALS_SCHEMA, kept_trial, ranked
from search.folder.space import HYPERPARAMETERS
from search.reports.baselines import Baselines
from search.reports.importance import Importance
from search.reports.searches import Search, crossings, rung_values, status_counts, trial_curves

DEFAULT_THRESHOLDS = SPEED_LEVELS  # bpc the best trial is timed to


def search_command(config: SearchConfig) -> str:
    """The `search.run` command line that repeats a search's settings (not its Ray layout)."""
    return shlex.join(["python", "-m", "search.run", *search_argv(config)])


def threshold_label(t: float) -> str:
    return f"{t:g}"


def threshold_columns(t: float) -> tuple[str, str]:
    """(characters, seconds) columns of one learning-speed threshold."""
    return f"chars_to_bpc_{threshold_label(t)}", f"seconds_to_bpc_{threshold_label(t)}"


def rung_columns(rung: float) -> tuple[str, str, str]:
    """(trials, best bpc, median bpc) columns of one rung (training seconds, rounded)."""
    name = f"rung_{rung:.0f}s"
    return f"{name}_trials", f"{name}_best_bpc", f"{name}_median_bpc"


_HYPER_TYPES = {name: TRIALS_SCHEMA.field(name).type for name in HYPERPARAMETERS}
_BASELINE_COLUMNS = (  # bits per validation character (search.reports.baselines.Baselines)
    "unigram_bpc",
    "gzip_given_train_bpc",
    "bz2_given_train_bpc",
    "xz_given_train_bpc",
    "zstd_given_train_bpc",
    "ppmd_given_train_bpc",
    "gzip_alone_bpc",
    "bz2_alone_bpc",
    "xz_alone_bpc",
    "zstd_alone_bpc",
    "ppmd_alone_bpc",
)
_BASELINE_ORDERS = ("ppmd_order", "ppmd_alone_order")  # PPMd's model order behind each figure
_F64, _I64, _I32, _TEXT = pa.float64(), pa.int64(), pa.int32(), pa.string()


def interval_columns(figure: str) -> tuple[str, str, str]:
    """The columns of a figure with an interval: `figure`_bpc and its _low and _high ends."""
    return f"{figure}_bpc", f"{figure}_bpc_low", f"{figure}_bpc_high"


_MODEL_FIGURES = ("test", "test_dynamic")  # the best model on the test split: static, adaptive
_GAIN_FIGURES = ("test_gain", "test_dynamic_gain")  # best compressor - model; > 0: model wins
TEST_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (  # null: the search kept no test split
    ("test_chars", _I64),
    *((name, _F64) for figure in _MODEL_FIGURES for name in interval_columns(figure)),
    ("test_ppmd_bpc", _F64),  # PPMd on the test text given all the text before it
    ("test_ppmd_order", _I32),
    ("test_best_compressor", _TEXT),
    ("test_best_compressor_bpc", _F64),
    *((name, _F64) for figure in _GAIN_FIGURES for name in interval_columns(figure)),
    ("test_gain_paired", pa.bool_()),  # intervals paired with PPMd's own bits (else: the
    # compressor's figure taken as exact, the model's interval alone)
)  # fmt: skip


def predictability_schema(thresholds: Sequence[float], rungs: Sequence[int]) -> pa.Schema:
    """Columns of predictability.parquet; thresholds and rungs add columns of their own."""
    f64, i64, i32, text = pa.float64(), pa.int64(), pa.int32(), pa.string()
    columns: list[tuple[str, pa.DataType]] = [
        ("rank", i32),  # by best_val_bpc, 1 = most predictable
        ("label", text),  # corpus name (search name where a corpus appears twice)
        ("search", text),  # search folder name
        ("corpus", text),
        ("corpus_sha256", text),  # of the corpus file
        ("corpus_verified", pa.bool_()),  # the registry's reference file; null: a file path
        ("text_sha256", text),  # of the UTF-8 training and validation text (not test)
        ("max_chars", i64),  # --max-chars of the search (null: whole text)
        ("corpus_chars", i64),  # characters (code points) used: train, validation, test
        ("train_chars", i64),
        ("val_chars", i64),
        ("val_bytes", i64),  # UTF-8 bytes of the validation text
        ("val_fraction", f64),
        ("distinct_chars", i32),  # vocabulary size
        *((name, f64) for name in _BASELINE_COLUMNS),  # bits per validation character
        *((name, i32) for name in _BASELINE_ORDERS),
        ("best_compressor", text),  # lowest *_given_train_bpc
        ("best_compressor_bpc", f64),
        ("best_val_bpc", f64),  # lowest validation bpc of any trial
        ("gain_bpc", f64),  # best_compressor_bpc - best_val_bpc; > 0: the model wins
        ("gain_pct", f64),  # the same, in percent of best_compressor_bpc
        ("best_trial", text),
        ("best_status", text),
        *_HYPER_TYPES.items(),
        ("num_params", i64),
        ("best_chars_trained", i64),
        ("best_wall_s", f64),
        *TEST_COLUMNS,
    ]
    for t in thresholds:
        chars, seconds = threshold_columns(t)
        columns += [(chars, i64), (seconds, f64)]  # null: never reached
    for rung in rungs:
        n, best, median = rung_columns(rung)
        columns += [(n, i32), (best, f64), (median, f64)]  # null: not a rung of this search
    columns += [("trials", i32), *((status, i32) for status in STATUSES)]
    columns += [("time_budget_s", f64), ("scheduler", text), ("reduction_factor", i32)]
    columns += [("search_command", text)]  # search.run command repeating the search
    columns += [(f"importance_{name}", f64) for name in HYPERPARAMETERS]
    columns += [
        ("importance_note", text),
        ("sample", text),  # generated by the best model
        ("sample_seed", i64),
        ("sample_temperature", f64),
    ]
    return pa.schema(columns)


class Sample(NamedTuple):
    """Text generated by a search's best model, and how."""

    text: str  # "" where the search kept no best model
    seed: int
    temperature: float


def search_row(
    search: Search,
    text_sha256: str,
    train_chars: int,
    baselines: Baselines,
    importance: Importance,
    sample: Sample,
    thresholds: Sequence[float],
    test: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One search's row of the predictability table (rank and label are set later): the best
    trial timed to `thresholds` (bpc); `test`: its `test_columns`, where it kept a test split."""
    trials, sc = search.trials, search.config
    first = trials.slice(0, 1).to_pylist()[0]
    top = kept_trial(trials) or ranked(trials)[0]  # the trial behind the sample and test bits
    best = top if top["best_val_bpc"] is not None else dict.fromkeys(top)  # none reported
    best_bpc = best["best_val_bpc"]
    compressor, compressor_bpc = baselines.best
    gain = compressor_bpc - best_bpc if best_bpc is not None else None
    row: dict[str, Any] = {
        "rank": None,
        "label": first["corpus"],
        "search": search.name,
        "corpus": first["corpus"],
        "corpus_sha256": first["corpus_sha256"],
        "corpus_verified": first.get("corpus_verified"),
        "text_sha256": text_sha256,
        "max_chars": sc.max_chars,
        "corpus_chars": first["corpus_chars"],
        "train_chars": train_chars,
        "val_chars": first["val_chars"],
        "val_bytes": baselines.val_bytes,
        "val_fraction": sc.val_fraction,
        "distinct_chars": first["vocab_size"],
        **{name: getattr(baselines, name) for name in (*_BASELINE_COLUMNS, *_BASELINE_ORDERS)},
        "best_compressor": compressor,
        "best_compressor_bpc": compressor_bpc,
        "best_val_bpc": best_bpc,
        "gain_bpc": gain,
        "gain_pct": 100 * gain / compressor_bpc if gain is not None else None,
        "best_trial": best["trial_id"],
        "best_status": best["status"],
        **{name: best[name] for name in HYPERPARAMETERS},
        "num_params": best["num_params"],
        "best_chars_trained": best["chars_trained"],
        "best_wall_s": best["wall_s"],
        **(test or {}),
    }
    reports = [
        r
        for r in trial_curves(search.curves).get(best["trial_id"], [])
        if r["val_chars"] == best["val_chars"]
    ]  # on the whole text, not a rung's prefix
    for t, hit in crossings(reports, thresholds).items():
        chars, seconds = threshold_columns(t)
        row[chars], row[seconds] = hit if hit else (None, None)
    for rung in search.folder.rungs():
        n, best_col, median = rung_columns(rung)
        values = rung_values(search.curves, rung)
        row[n] = len(values)
        row[best_col] = min(values) if values else None
        row[median] = statistics.median(values) if values else None
    counts = status_counts(trials)
    row.update({"trials": trials.num_rows, **counts})
    row.update(
        time_budget_s=sc.time_budget_s,
        scheduler=sc.scheduler,
        reduction_factor=sc.reduction_factor,
        search_command=search_command(sc),
    )
    for name in HYPERPARAMETERS:
        row[f"importance_{name}"] = importance.values.get(name)
    row.update(
        importance_note=importance.note,
        sample=sample.text,
        sample_seed=sample.seed,
        sample_temperature=sample.temperature,
    )
    return row


def _gain(compressor_bpc: float, model: Interval, paired: Interval | None) -> Interval:
    """compressor - model with an interval: from the paired difference (compressor's bits -
    model's, re-centred on the exact figures), else the model's own interval mirrored."""
    gain = compressor_bpc - model.mean
    if paired is None:
        return Interval(gain, compressor_bpc - model.high, compressor_bpc - model.low)
    return Interval(gain, gain - (paired.mean - paired.low), gain + (paired.high - paired.mean))


def test_columns(
    static_bits: np.ndarray,
    dynamic_bits: np.ndarray,
    baselines: Baselines,
    ppmd_bits: np.ndarray,
    boot: EvalConfig,
) -> dict[str, Any]:
    """The test columns of a search's row: the best model's bits for each test character
    (static, adaptive), the compressors on the same text (`baselines`) and PPMd's bits for
    each of its characters (`search.reports.baselines.ppmd_stretch_bits`), with `boot`'s block
    bootstrap (block, draws, seed, level) for every interval.

    The gain over the best compressor is paired when that compressor is PPMd: the same blocks
    are drawn for both, so what makes a stretch hard for both cancels. Another codec has no
    figure per stretch; its total is then taken as exact (`test_gain_paired` false).
    """
    settings = boot.bootstrap
    compressor, compressor_bpc = baselines.best
    paired = compressor == "ppmd"
    row: dict[str, Any] = {
        "test_chars": len(static_bits),
        "test_ppmd_bpc": baselines.ppmd_given_train_bpc,
        "test_ppmd_order": baselines.ppmd_order,
        "test_best_compressor": compressor,
        "test_best_compressor_bpc": compressor_bpc,
        "test_gain_paired": paired,
    }
    for figure, gain_figure, bits in zip(
        _MODEL_FIGURES, _GAIN_FIGURES, (static_bits, dynamic_bits), strict=True
    ):
        model = block_bootstrap(bits, **settings)
        difference = paired_difference(ppmd_bits, bits, **settings) if paired else None
        gain = _gain(compressor_bpc, model, difference)
        row.update(zip(interval_columns(figure), model, strict=True))
        row.update(zip(interval_columns(gain_figure), gain, strict=True))
    return row


def ranking_differences(
    table: pa.Table, bits: dict[str, np.ndarray], boot: EvalConfig
) -> list[str]:
    """One line for each two neighbours in the ranking whose best models were both scored on
    a test split: their adaptive test bpc's difference, with an interval (each text resampled
    on its own), and which is lower or that they are not distinguishable. `bits`: search name
    -> the adaptive bits of each of its test characters."""
    rows = [r for r in table.to_pylist() if r["search"] in bits]
    return [
        describe_difference(
            independent_difference(bits[a["search"]], bits[b["search"]], **boot.bootstrap),
            a["label"],
            b["label"],
        )
        for a, b in itertools.pairwise(rows)
    ]


def rank_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows best first (lowest best_val_bpc, none last), with rank and unique labels set."""
    order = sorted(rows, key=lambda r: (r["best_val_bpc"] is None, r["best_val_bpc"] or 0.0))
    seen = [r["corpus"] for r in rows]
    return [
        {
            **row,
            "rank": i,
            "label": row["corpus"] if seen.count(row["corpus"]) == 1 else row["search"],
        }
        for i, row in enumerate(order, start=1)
    ]


def predictability_table(rows: Sequence[dict[str, Any]], thresholds: Sequence[float]) -> pa.Table:
    """The rows as one typed Arrow table, ranked; rung columns are the union over searches."""
    rungs = sorted(
        {int(m[1]) for row in rows for k in row if (m := re.fullmatch(r"rung_(\d+)s_trials", k))}
    )
    schema = predictability_schema(thresholds, rungs)
    ranked_rows = rank_rows(rows)
    return pa.Table.from_pylist(
        [{name: row.get(name) for name in schema.names} for row in ranked_rows], schema=schema
    )
