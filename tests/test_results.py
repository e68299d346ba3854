"""Result rows from what trials reported: statuses, best values, origins, curves, ranking."""

import json

import pyarrow as pa

from corpora.files import write_parquet
from search.folder.config import SearchConfig, load_search_config
from search.folder.results import (
    CURVES_SCHEMA,
    TRIALS_SCHEMA,
    TrialRecord,
    curve_rows,
    kept_trial,
    ranked,
    resumed_history,
    trial_row,
    trial_status,
)
from search.folder.space import SearchSpace
from search.folder.store import SETTINGS, TRIALS, SearchFolder

CORPUS = {"name": "c", "sha256": "ab", "verified": True, "n_chars": 1000, "val_chars": 100,
          "vocab_size": 20}  # fmt: skip
CONFIG = {"num_layers": 1, "hidden_size": 64, "dropout": 0.1, "seq_len": 32, "lr": 1e-2,
          "batch_size": 16, "cell": "lstm", "origin": "mutated"}  # fmt: skip


def report(chars: int, val: float, val_chars: int = 100, end: str = "", **more) -> dict:
    return {"chars_seen": chars, "val_bpc": val, "val_chars": val_chars, "end": end,
            "train_bpc": val - 0.1, "train_s": chars / 100, "elapsed_s": chars / 90,
            "diverged": False, **more}  # fmt: skip


def record(history: list[dict], **kw) -> TrialRecord:
    return TrialRecord(trial_id="t", config=CONFIG, history=history, error=kw.pop("error", None),
                       best_checkpoint="ckpt", **kw)  # fmt: skip


def test_each_way_a_trial_ends_has_its_status():
    ran = [report(100, 3.0, val_chars=10), report(200, 2.5)]
    assert trial_status(record([*ran, report(300, 2.4, end="completed")])) == "completed"
    assert trial_status(record([*ran, report(300, 2.4, end="cut")])) == "cut"
    assert trial_status(record([*ran, report(300, 2.6, end="plateaued")])) == "plateaued"
    assert trial_status(record(ran, stopped_early=True)) == "stopped"
    assert trial_status(record(ran)) == "unfinished"
    assert trial_status(record(ran, error="boom")) == "failed"
    diverged = {**report(300, 100.0), "diverged": True, "end": "diverged"}
    assert trial_status(record([*ran, diverged])) == "diverged"


def test_a_row_keeps_the_best_whole_text_value_and_where_the_trial_came_from():
    history = [report(100, 2.0, val_chars=10), report(200, 2.5), report(300, 2.6, end="plateaued")]
    row = trial_row(record(history), "s", CORPUS, "plateaued")
    assert row["best_val_bpc"] == 2.5  # the prefix's 2.0 is not comparable
    assert row["final_val_bpc"] == 2.6 and row["origin"] == "mutated"
    assert row["chars_trained"] == 300 and row["iterations"] == 3
    assert row["chars_per_s"] == 100.0
    pa.Table.from_pylist([row], schema=TRIALS_SCHEMA)  # fits the schema


def test_a_diverged_report_has_no_value_in_the_tables():
    diverged = {**report(300, 100.0), "diverged": True, "end": "diverged"}
    rows = list(curve_rows(record([report(200, 2.5), diverged]), "s"))
    assert [r["val_bpc"] for r in rows] == [2.5, None]
    assert trial_row(record([diverged]), "s", CORPUS, "diverged")["error"].startswith("training")
    pa.Table.from_pylist(rows, schema=CURVES_SCHEMA)


def test_a_restored_trial_keeps_the_reports_of_the_line_that_went_on():
    reports = [report(100, 3.0), report(200, 2.8), report(150, 2.9), report(250, 2.7)]
    assert [r["chars_seen"] for r in resumed_history(reports)] == [100, 150, 250]


def test_a_row_counts_the_times_the_trial_went_on_from_its_checkpoint():
    """Tune numbers the reports since a trial's last restore; the line that went on counts."""
    since = [1, 2, 1, 1, 2]  # restored after its second report, and again after its third
    history = [{**report(100 * i, 2.0), "iterations_since_restore": n, "training_iteration": i}
               for i, n in enumerate(since, start=1)]  # fmt: skip
    assert trial_row(record(history), "s", CORPUS, "completed")["resumes"] == 2
    assert trial_row(record(history[:2]), "s", CORPUS, "completed")["resumes"] == 0
    assert trial_row(record(history[2:]), "s", CORPUS, "completed")["resumes"] == 1
    assert trial_row(record([report(100, 2.0)]), "s", CORPUS, "completed")["resumes"] == 0


def test_a_report_point_read_again_after_a_restore_is_kept_once():
    """Restored from the first checkpoint, the trial reports its second point again, at the
    same training second but a few characters further than the first time."""
    numbered = [{**report(c, 2.0), "training_iteration": i}
                for i, c in ((1, 100), (2, 200), (2, 205), (3, 300))]  # fmt: skip
    kept = resumed_history(numbered)
    assert [r["training_iteration"] for r in kept] == [1, 2, 3]
    assert kept[1] is numbered[2]  # the run that went on


def test_ranking_puts_whole_text_values_first_then_prefixes_then_none():
    rows = [{"trial_id": "prefix", "best_val_bpc": None, "final_val_bpc": 1.0},
            {"trial_id": "worse", "best_val_bpc": 2.5, "final_val_bpc": 2.6},
            {"trial_id": "none", "best_val_bpc": None, "final_val_bpc": None},
            {"trial_id": "best", "best_val_bpc": 2.4, "final_val_bpc": 2.9}]  # fmt: skip
    table = pa.Table.from_pylist(rows)
    assert [r["trial_id"] for r in ranked(table)] == ["best", "worse", "prefix", "none"]


def test_the_kept_trial_is_the_best_with_a_checkpoint():
    """What the search keeps in best/, and what the comparison's row describes (its sample and
    test bits come from best/): the best trial that has a checkpoint of its best report."""
    rows = [{"trial_id": "top", "best_val_bpc": 2.3, "final_val_bpc": 2.3, "best_checkpoint": None},
            {"trial_id": "kept", "best_val_bpc": 2.4, "final_val_bpc": 2.4,
             "best_checkpoint": "/runs/s/train_trial_kept/checkpoint_000001"},
            {"trial_id": "prefix", "best_val_bpc": None, "final_val_bpc": 1.0,
             "best_checkpoint": "/runs/s/train_trial_prefix/checkpoint_000000"}]  # fmt: skip
    assert kept_trial(pa.Table.from_pylist(rows))["trial_id"] == "kept"
    assert kept_trial(pa.Table.from_pylist(rows[:1])) is None


def test_a_table_and_settings_from_before_weight_decay_read_as_trained_without_it(tmp_path):
    folder = SearchFolder(tmp_path)
    row = trial_row(record([report(1000, 2.0)]), "s", CORPUS, "completed")
    older = pa.Table.from_pylist([row], schema=TRIALS_SCHEMA).drop_columns(["weight_decay"])
    write_parquet(older, tmp_path / TRIALS)
    table = folder.trials()
    assert table.schema.field("weight_decay") == TRIALS_SCHEMA.field("weight_decay")
    assert table.column("weight_decay").to_pylist() == [0.0]
    assert table.drop_columns(["weight_decay"]) == older
    # Its settings: the space it searched had no weight decay, so a resume searches none.
    folder.write_settings(SearchConfig(corpus="c"))
    file = folder.state_file(SETTINGS)
    settings = json.loads(file.read_text())
    del settings["space"]["weight_decay"]
    file.write_text(json.dumps(settings))
    space = load_search_config(tmp_path).space
    assert space.weight_decay == (0.0, 0.0)
    assert space.dropout == SearchSpace().dropout  # what it saved stays
