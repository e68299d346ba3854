"""The corpus predictability report over the two real small searches of conftest.

Both searches cut their corpus to the same 200,000 characters; the report is built once into a
temporary folder and every test reads it. Searches of another length are made by copying the
IRC search's tables and changing its length, not by running a third search.
"""

import bz2
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import search.reports.baselines
from model.errors import ConfigError
from search.compare import main
from search.folder.store import SearchFolder
from search.reports.baselines import (
    COMPRESSORS,
    METHOD,
    PPMD_ORDERS,
    cache_key,
    cached_baselines,
    compute_baselines,
    ppmd_compress,
    unigram_entropy,
)
from search.reports.importance import study_importances
from search.reports.predictability import rung_columns, search_command, threshold_columns
from search.reports.report import BASELINES_FILE, CompareConfig, build_report
from search.reports.searches import find_searches, read_search, rung_values, search_text
from search.run import build_parser as run_parser
from search.run import config_from_args

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # real searches on Ray
HEADER = re.compile(r"\|\s*rank\s*\|\s*corpus\s*\|")  # the ranking's first columns
THRESHOLDS = (4.5, 0.5)  # tiny models reach the first within their budget, never the second
COLUMNS = [
    "rank", "corpus", "corpus_chars", "distinct_chars", "corpus_sha256", "text_sha256",
    "unigram_bpc", "gzip_given_train_bpc", "bz2_given_train_bpc", "xz_given_train_bpc",
    "zstd_given_train_bpc", "ppmd_given_train_bpc", "ppmd_order", "gzip_alone_bpc",
    "bz2_alone_bpc", "xz_alone_bpc", "zstd_alone_bpc", "ppmd_alone_bpc", "ppmd_alone_order",
    "best_compressor", "best_compressor_bpc",
    "best_val_bpc", "gain_bpc", "best_trial", "hidden_size", "lr", "batch_size", "seq_len",
    "trials", "completed", "cut", "stopped", "diverged", "importance_note", "sample",
]  # fmt: skip


@pytest.fixture(scope="module")
def report(searches, tmp_path_factory):
    folders = tuple(str(config.path) for config, _ in searches.values())
    out = tmp_path_factory.mktemp("report")
    return build_report(CompareConfig(searches=folders, out=str(out), thresholds=THRESHOLDS))


@pytest.fixture(scope="module")
def rows(report):
    return {r["corpus"]: r for r in report.table.to_pylist()}


def copy_search(source: Path, target: Path, **trial_changes) -> Path:
    """The result tables and settings of `source` (no Tune files, no best model) in `target`."""
    (target / "state").mkdir(parents=True)
    for name in ("state/search.json", "trials.parquet", "curves.parquet"):
        shutil.copy(source / name, target / name)
    if trial_changes:
        trials = pq.read_table(target / "trials.parquet")
        for column, value in trial_changes.items():
            i = trials.schema.get_field_index(column)
            trials = trials.set_column(
                i, column, pa.array([value] * trials.num_rows, trials.schema.field(i).type)
            )
        pq.write_table(trials, target / "trials.parquet")
    return target


def test_one_row_per_search_with_every_column(report, rows, searches):
    assert report.table.num_rows == 2 and set(rows) == {"irc", "monte-cristo"}
    assert set(COLUMNS) <= set(report.table.schema.names)
    assert sorted(r["rank"] for r in rows.values()) == [1, 2]
    ranking = sorted(rows.values(), key=lambda r: r["rank"])
    assert ranking[0]["best_val_bpc"] <= ranking[1]["best_val_bpc"]
    written = pq.read_table(report.out / "predictability.parquet")
    assert written.equals(report.table)
    for corpus, (config, outcome) in searches.items():
        row = rows[corpus]
        trials = pq.read_table(config.path / "trials.parquet").to_pylist()
        statuses = Counter(t["status"] for t in trials)
        assert row["corpus_chars"] == config.max_chars == 200_000
        assert row["train_chars"] + row["val_chars"] == row["corpus_chars"]
        assert row["distinct_chars"] == trials[0]["vocab_size"]
        assert row["corpus_sha256"] == trials[0]["corpus_sha256"]
        assert row["trials"] == len(trials)
        for status in ("completed", "cut", "stopped", "diverged"):
            assert row[status] == statuses[status], status
        assert row["best_trial"] == outcome.best_trial
        assert row["best_val_bpc"] == pytest.approx(outcome.best_val_bpc)
        best = next(t for t in trials if t["trial_id"] == row["best_trial"])
        assert (row["hidden_size"], row["lr"], row["seq_len"]) == (
            best["hidden_size"],
            best["lr"],
            best["seq_len"],
        )
        compressors = {c: row[f"{c}_given_train_bpc"] for c in COMPRESSORS}
        assert set(compressors) == {"gzip", "bz2", "xz", "zstd", "ppmd"}
        assert row["best_compressor_bpc"] == min(compressors.values())
        assert compressors[row["best_compressor"]] == row["best_compressor_bpc"]
        assert row["ppmd_order"] in PPMD_ORDERS and row["ppmd_alone_order"] in PPMD_ORDERS
        assert row["gain_bpc"] == pytest.approx(row["best_compressor_bpc"] - row["best_val_bpc"])


def test_compressor_figure_recomputed_independently(rows, corpus_dir):
    """bz2 -9 on the validation text given the training text, from the file's own bytes."""
    text = (corpus_dir / "irc.txt").read_bytes().decode("utf-8")[:200_000]
    n_val = round(len(text) * 0.02)
    train, val = text[:-n_val].encode("utf-8"), text[-n_val:].encode("utf-8")
    conditional = 8 * (len(bz2.compress(train + val, 9)) - len(bz2.compress(train, 9))) / n_val
    row = rows["irc"]
    assert row["val_chars"] == n_val
    assert row["bz2_given_train_bpc"] == pytest.approx(conditional, rel=1e-12)
    assert row["bz2_alone_bpc"] == pytest.approx(8 * len(bz2.compress(val, 9)) / n_val)
    counts = Counter(text[-n_val:])
    entropy = -sum(k / n_val * math.log2(k / n_val) for k in counts.values())
    assert row["unigram_bpc"] == pytest.approx(entropy)
    # PPMd of the recorded order, through the same formula.
    order = row["ppmd_order"]
    ppmd = 8 * (len(ppmd_compress(train + val, order)) - len(ppmd_compress(train, order))) / n_val
    assert row["ppmd_given_train_bpc"] == pytest.approx(ppmd, rel=1e-12)
    # Statute is more predictable than a novel for every compressor, as the issue reports.
    for codec in COMPRESSORS:
        assert row[f"{codec}_given_train_bpc"] < rows["monte-cristo"][f"{codec}_given_train_bpc"]
        assert row[f"{codec}_given_train_bpc"] <= row[f"{codec}_alone_bpc"] + 0.05
    # PPMd models both texts best (0.89 and 1.87 bpc here; the next best, bz2, 1.11 and 2.39),
    # and having seen the training text is worth more than a bit a character to it.
    for r in rows.values():
        assert r["best_compressor"] == "ppmd"
        assert r["ppmd_given_train_bpc"] < r["ppmd_alone_bpc"] - 1


def test_learning_speed_and_rungs_are_views_of_the_curves(rows, searches):
    for corpus, (config, _) in searches.items():
        row = rows[corpus]
        curves = pq.read_table(config.path / "curves.parquet").to_pylist()
        trial = next(t for t in pq.read_table(config.path / "trials.parquet").to_pylist()
                     if t["trial_id"] == row["best_trial"])  # fmt: skip
        best = sorted(
            (c for c in curves if c["trial_id"] == row["best_trial"]
             and c["val_chars"] == trial["val_chars"]),  # whole-text values, not a prefix's
            key=lambda c: c["iteration"],
        )  # fmt: skip
        reached, never = threshold_columns(4.5), threshold_columns(0.5)
        assert row[never[0]] is None and row[never[1]] is None
        # The best trial ends near 3.6 on a quiet machine; on a loaded one it may have trained
        # too little to get below 4.5, and then the columns say it never did.
        first = next((c for c in best if c["val_bpc"] <= 4.5), None)
        expected = (first["chars_seen"], first["elapsed_s"]) if first else (None, None)
        assert (row[reached[0]], row[reached[1]]) == expected
        rungs = SearchFolder(config.path).rungs()
        schedule = json.loads((config.path / "state" / "schedule.json").read_text())
        assert rungs == schedule["rungs_s"][:-1] and rungs  # in training seconds
        counts = [row[rung_columns(r)[0]] for r in rungs]
        assert counts == sorted(counts, reverse=True)  # fewer trials at every rung
        assert counts[0] == len({c["trial_id"] for c in curves if c["train_s"] >= rungs[0]})
        for r in rungs:
            n, best_bpc, median = rung_columns(r)
            values = rung_values(pq.read_table(config.path / "curves.parquet"), r)
            assert row[n] == len(values)
            if not values:  # no trial got that far (a loaded machine, trials ending early)
                assert row[best_bpc] is None and row[median] is None
                continue
            assert row[best_bpc] == min(values) and row[best_bpc] <= row[median]


def test_plots_are_written_and_non_empty(report):
    pngs = sorted(p for p in report.files if p.suffix == ".png")
    names = {p.name for p in pngs}
    assert {"curves.png", "baselines.png"} <= names
    assert {"hparams-irc-tiny.png", "hparams-monte-cristo-tiny.png"} <= names
    for png in pngs:
        data = png.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5_000, png


def test_markdown_holds_tables_importance_samples_and_plot_links(report, rows):
    text = (report.out / "predictability.md").read_text(encoding="utf-8")
    assert text == report.markdown
    assert HEADER.search(text) and "|---" in text.replace(" ", "").replace(":", "")
    for corpus, row in rows.items():
        assert re.search(rf"\|\s*{row['rank']}\s*\|\s*{corpus}\s*\|", text)
        assert row["sample"] and row["sample"] in text  # the paragraph of its best model
        assert row["importance_note"]
    for section in ("## Learning speed", "## Equal budgets", "## Hyperparameter importance"):
        assert section in text
    for png in ("curves.png", "baselines.png", "hparams-irc-tiny.png"):
        assert f"]({png})" in text and (report.out / png).is_file()
    assert HEADER.search(report.terminal)


def test_importance_sums_to_one_or_says_why_not(rows, searches):
    config, _ = searches["irc"]
    for row in rows.values():
        shares = [v for k, v in row.items() if k.startswith("importance_") and isinstance(v, float)]
        if row["importance_note"].startswith("PED-ANOVA"):
            assert sum(shares) == pytest.approx(1)
        else:
            assert row["importance_note"].startswith("not computed") and not shares
    missing = study_importances(config.path / "no-such.journal", config.name)
    assert not missing.values and missing.note.startswith("not computed")


def test_baselines_are_cached_in_the_search_folder(rows, searches, monkeypatch):
    config, _ = searches["irc"]
    cache = config.path / BASELINES_FILE
    assert cache.is_file() and len(json.loads(cache.read_text())) == 1
    train, val, _, _ = search_text(read_search(config.path))

    def never(*_):
        raise AssertionError("baselines recomputed despite the cache")

    monkeypatch.setattr(search.reports.baselines, "compute_baselines", never)
    sha256 = pq.read_table(config.path / "trials.parquet").column("corpus_sha256")[0].as_py()
    key = cache_key(sha256, config.max_chars, config.val_fraction)
    assert key.endswith(f":m{METHOD}") and set(json.loads(cache.read_text())) == {key}
    cached = cached_baselines(cache, key, train, val)
    assert cached.xz_given_train_bpc == rows["irc"]["xz_given_train_bpc"]
    assert (cached.ppmd_given_train_bpc, cached.ppmd_order) == (
        rows["irc"]["ppmd_given_train_bpc"],
        rows["irc"]["ppmd_order"],
    )
    monkeypatch.undo()
    assert compute_baselines(train, val) == cached
    assert unigram_entropy("aabb") == 1.0


def test_unequal_lengths_are_refused_unless_allowed(searches, tmp_path, capsys):
    irc, mc = searches["irc"][0].path, searches["monte-cristo"][0].path
    short = copy_search(irc, tmp_path / "irc-short", corpus_chars=150_000, val_chars=3_000)
    settings = json.loads((short / "state" / "search.json").read_text())
    (short / "state" / "search.json").write_text(json.dumps({**settings, "max_chars": 150_000}))
    config = CompareConfig(searches=(str(mc), str(short)), out=str(tmp_path / "out"))
    with pytest.raises(ConfigError, match=r"unequal corpus lengths.*--allow-unequal"):
        build_report(config)
    assert main([str(mc), str(short), "--out", str(tmp_path / "cli")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: searches used unequal corpus lengths")
    assert not (tmp_path / "cli").exists()

    allowed = build_report(replace(config, allow_unequal=True))
    assert sorted(allowed.table.column("corpus_chars").to_pylist()) == [150_000, 200_000]
    assert "Unequal lengths" in allowed.markdown
    no_model = next(r for r in allowed.table.to_pylist() if r["corpus_chars"] == 150_000)
    assert no_model["sample"] == "" and no_model["val_chars"] == 3_000


def test_a_different_corpus_file_is_refused(searches, tmp_path):
    changed = copy_search(searches["irc"][0].path, tmp_path / "irc", corpus_sha256="0" * 64)
    with pytest.raises(ConfigError, match="sha256"):
        search_text(read_search(changed))


def test_all_finds_the_searches_of_a_storage_folder(searches, tmp_path):
    folders = {config.path for config, _ in searches.values()}
    assert folders <= set(find_searches(next(iter(folders)).parent))
    with pytest.raises(ConfigError, match="no finished searches"):
        find_searches(tmp_path)


def test_all_leaves_out_folders_with_tables_but_no_search(searches, tmp_path):
    """A study's folder (`search.study`) has trials.parquet but no search settings: `--all`
    compares the searches beside it instead of failing on it."""
    irc = copy_search(searches["irc"][0].path, tmp_path / "irc")
    study = tmp_path / "cell-study"
    study.mkdir()
    shutil.copy(irc / "trials.parquet", study / "trials.parquet")
    assert find_searches(tmp_path) == [irc]


def test_the_curves_figure_draws_only_whole_text_scores(searches, report, tmp_path, monkeypatch):
    import search.reports.report as report_module
    from search.reports.searches import trial_curves

    drawn = {}

    def capture(curves, path):
        drawn.update({c.label: c for c in curves})
        return path

    monkeypatch.setattr(report_module, "plot_best_curves", capture)
    loaded = [read_search(config.path) for config, _ in searches.values()]
    report_module.write_plots(loaded, report.table, tmp_path)
    for one in loaded:
        row = next(r for r in report.table.to_pylist() if r["search"] == one.name)
        reports = trial_curves(one.curves)[row["best_trial"]]
        whole = [r["val_bpc"] for r in reports if r["val_chars"] == row["val_chars"]]
        assert list(drawn[row["label"]].bpc) == whole and whole


def test_no_samples_section_when_none_was_asked(report):
    from search.reports.render import render_markdown

    asked = render_markdown(report.table, THRESHOLDS, {}, [])
    assert "## Samples from the best models" in asked
    assert "Samples from" not in render_markdown(report.table, THRESHOLDS, {}, [], samples=False)


def test_reproduce_command_repeats_the_search_settings(rows, searches):
    config, _ = searches["irc"]
    assert rows["irc"]["search_command"] == search_command(config)
    words = shlex.split(search_command(config))
    assert words[:3] == ["python", "-m", "search.run"]
    again = config_from_args(run_parser().parse_args(words[3:]))
    for name in ("corpus", "max_chars", "val_fraction", "time_budget_s", "scheduler", "seed"):
        assert getattr(again, name) == getattr(config, name), name
    assert again.space == config.space


def test_command_line_writes_the_report_and_refuses_a_bad_path(searches, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    folders = [str(config.path) for config, _ in searches.values()]
    out = tmp_path / "report"
    done = subprocess.run(
        [sys.executable, "-m", "search.compare", *folders, "--out", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert HEADER.search(done.stdout) and "irc" in done.stdout
    assert (out / "predictability.md").is_file() and (out / "predictability.parquet").is_file()
    bad = subprocess.run(
        [sys.executable, "-m", "search.compare", str(tmp_path / "no-such-search")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        f"error: search folder not found: {tmp_path / 'no-such-search'}"
    ]


def test_bad_search_folders_and_outputs_are_one_line(searches, tmp_path, capsys):
    irc = searches["irc"][0].path
    no_sum = copy_search(irc, tmp_path / "irc-nosum", corpus_sha256=None)
    assert main([str(no_sum), "--out", str(tmp_path / "a")]) == 2
    assert "without a corpus checksum" in capsys.readouterr().err
    bare = copy_search(irc, tmp_path / "irc-bare")
    (bare / "best").mkdir()
    import torch

    torch.save(torch.zeros(2), bare / "best" / "best.pt")
    assert main([str(bare), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "not a checkpoint of this project" in err and err.count("\n") == 1
    taken = tmp_path / "report.md"
    taken.write_text("mine")
    assert main([str(irc), "--out", str(taken)]) == 2
    assert "is a file" in capsys.readouterr().err and taken.read_text() == "mine"
    plain = tmp_path / "plain"  # never a search: not told to resume it
    plain.mkdir()
    assert main([str(plain), "--out", str(tmp_path / "c")]) == 2
    assert "holds no search (no search.json)" in capsys.readouterr().err
    unfinished = copy_search(irc, tmp_path / "irc-unfinished")
    (unfinished / "trials.parquet").unlink()
    assert main([str(unfinished), "--out", str(tmp_path / "d")]) == 2
    assert "not a finished search (finish it with search.run --resume)" in capsys.readouterr().err
