"""Controlled studies: arms differ only in the factor; a tiny study on a real local Ray."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from search.folder.results import TrialRecord
from search.folder.space import HYPERPARAMETERS
from search.reports.render import DASH
from search.studies.report import paired_table, unfinished_arms, value_table
from search.studies.study import BASE, StudyConfig, arms, run_study, study_row
from search.study import build_parser, config_from_args, main


def test_arms_differ_only_in_the_factor_and_the_seed():
    grid = arms(StudyConfig(factor="hidden_size", values=(32, 64), seeds=2,
                            sets=(("lr", "0.01"),)))  # fmt: skip
    # Seed by seed: arms that run at once (in Tune's order) have different values.
    assert [(a["hidden_size"], a["seed"]) for a in grid] == [(32, 0), (64, 0), (32, 1), (64, 1)]
    for arm in grid:
        assert {k: v for k, v in arm.items() if k not in ("hidden_size", "seed")} == {
            **{k: v for k, v in BASE.items() if k != "hidden_size"},
            "lr": 0.01,
        }
    data = arms(StudyConfig(factor="max_chars", values=(1000, 2000), seeds=1))
    assert [a["train_chars"] for a in data] == [1000, 2000]  # the training text only
    assert all(a["hidden_size"] == BASE["hidden_size"] for a in data)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["colour", "--corpus", "irc"], "unknown factor 'colour'"),
        (["cell", "--corpus", "irc", "--values", "lstm,transformer"], "cell must be lstm, gru"),
        (["hidden_size", "--corpus", "irc", "--values", "64,wide"], "hidden_size takes int"),
        (["lr", "--corpus", "irc", "--set", "hidden=3"], "not a hyperparameter"),
        (["lr", "--corpus", "irc", "--base", "{tmp}"], "holds no search"),
        (["lr", "--corpus", "irc", "--seeds", "0"], "seeds must be at least 1, got 0"),
        (["cell"], "--corpus is required"),
        (["cell", "--corpus", "irc", "--set", "cell=gru"], "--set cell: the factor this study"),
        (["cell", "--corpus", "irc", "--budget-chars", "9", "--time-budget", "9"], "not both"),
        (["max_chars", "--corpus", "monte-cristo", "--values", "100,200"], "too short for"),
        (["max_chars", "--corpus", "irc", "--values", "0,1000"], "at least 1, got 0"),
        (
            ["dropout", "--corpus", "monte-cristo", "--values", "0.25,1"],
            "dropout = 1.0: dropout must be in [0, 1)",
        ),
        (
            ["hidden_size", "--corpus", "monte-cristo", "--values", "0,64"],
            "hidden_size = 0: hidden_size must be at least 1",
        ),
        (["batch_size", "--corpus", "monte-cristo", "--values", "8,0"], "batch_size = 0: "),
        (["lr", "--corpus", "irc", "--values", "0.001,3e-3,1e-3"], "--values repeats 0.001"),
        (["cell", "--corpus", "irc", "--address", "ray://127.0.0.1:10001"], "Ray Client"),
    ],
)
def test_bad_studies_are_one_line(argv, message, corpus_dir, tmp_path, capsys):
    """...and leave no study folder behind: the corrected command may take the same name. (The
    corpora from the suite's folder: a study may download a registered one otherwise.)"""
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    before = set(tmp_path.iterdir())
    local = ["--data-dir", str(corpus_dir), "--storage", str(tmp_path), "--name", "s1"]
    assert main([*argv, *local]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert set(tmp_path.iterdir()) == before


def test_a_studys_default_name_takes_a_files_stem():
    args = build_parser().parse_args(["cell", "--corpus", f"data{os.sep}book.md"])
    assert re.fullmatch(r"study-cell-book-\d{8}-\d{6}-[0-9a-f]{6}", config_from_args(args).name)


def arm(value, seed, history, error=None):
    return TrialRecord(trial_id=f"t{value}{seed}", config={"hidden_size": value, "seed": seed},
                       history=history, error=error, best_checkpoint=None)  # fmt: skip


def test_only_arms_that_trained_their_budget_count_in_final_and_best():
    """A diverged arm's stand-in value (100 bpc) or a failed arm's last validation, from
    another length, would be averaged with the finished seeds: they count only as (k/n)."""
    done = [{"val_chars": 10, "val_bpc": 2.5, "chars_seen": 50, "train_s": 1.0},
            {"val_chars": 10, "val_bpc": 2.0, "chars_seen": 100, "train_s": 2.0,
             "train_bpc": 1.9, "end": "completed"}]  # fmt: skip
    diverged = [done[0], {"val_chars": 10, "val_bpc": 100.0, "chars_seen": 60, "train_s": 1.2,
                          "train_bpc": float("nan"), "diverged": True}]  # fmt: skip
    rows = [
        study_row(arm(64, 0, done), "hidden_size", 10),
        study_row(arm(64, 1, diverged), "hidden_size", 10),
        study_row(arm(64, 2, done[:1], error="ConfigError: no"), "hidden_size", 10),
    ]
    assert [r["status"] for r in rows] == ["completed", "diverged", "failed"]
    assert rows[0]["final_val_bpc"] == 2.0 and rows[0]["best_val_bpc"] == 2.0
    assert rows[0]["gap_bpc"] == pytest.approx(0.1)
    for row in rows[1:]:
        assert row["final_val_bpc"] is None and row["best_val_bpc"] is None
        assert row["gap_bpc"] is None
        assert row["chars_to_2.5"] == 50  # reached before it ended: a real measurement
    table = value_table(rows)
    assert "| 2.000 (1/3) |" in table.replace("  ", " ")  # one value: no spread to show
    assert unfinished_arms(rows, "hidden_size") == (
        "Not in final and best bpc, the gap or the curves, as they did not train their whole "
        "budget (a failed arm's error is in `trials.parquet`): hidden_size = 64, seed 1: "
        "diverged; hidden_size = 64, seed 2: failed."
    )
    assert unfinished_arms(rows[:1], "hidden_size") == ""


def test_values_are_compared_seed_by_seed_with_the_first():
    """The paired differences from the first value: seeds where either arm did not complete
    are left out, and a single difference has no spread."""

    def row(value, seed, final, best):
        return {"value": value, "seed": seed, "final_val_bpc": final, "best_val_bpc": best}

    rows = [row("64", 0, 2.0, 1.9), row("128", 0, 1.9, 1.85), row("256", 0, 2.1, None),
            row("64", 1, 2.2, 2.1), row("128", 1, 2.0, 1.95),
            row("256", 1, None, None)]  # fmt: skip
    lines = {r.split("|")[1].strip(): [c.strip() for c in r.split("|")[2:-1]]
             for r in paired_table(rows).splitlines()[2:]}  # fmt: skip
    assert lines["128"] == ["-0.150 ± 0.071", "2/2", "-0.100 ± 0.071", "2/2"]
    assert lines["256"] == ["+0.100", "0/1", DASH, DASH]
    assert "64" not in lines and "final bpc − 64's" in paired_table(rows)
    assert paired_table([r for r in rows if r["value"] == "64"]) == ""  # one value: no pairs


@pytest.mark.slow
def test_a_tiny_cell_study_writes_every_arm_and_its_report(ray_local, corpus_dir, tmp_path):
    config = StudyConfig(
        factor="cell", corpus="monte-cristo", seeds=2, budget_chars=30_000, max_chars=100_000,
        sets=(("hidden_size", "32"), ("batch_size", "16"), ("seq_len", "32")),
        name="cells", storage=str(tmp_path), data_dir=str(corpus_dir), sample_chars=40,
    )  # fmt: skip
    path = run_study(config)
    study = pq.read_table(path / "study.parquet").to_pylist()
    assert sorted((r["value"], r["seed"]) for r in study) == [
        (cell, seed) for cell in ("gru", "lstm", "rnn") for seed in (0, 1)
    ]
    assert all(r["chars_trained"] >= 30_000 and r["final_val_bpc"] for r in study)
    assert {r["status"] for r in study} == {"completed"}
    trials = pq.read_table(path / "trials.parquet").to_pylist()
    assert len(trials) == 6
    for name in HYPERPARAMETERS:  # arms differ in the factor only, as recorded
        if name != "cell":
            assert len({t[name] for t in trials}) == 1, name
    assert {t["cell"] for t in trials} == {"lstm", "gru", "rnn"}
    report = (path / "study.md").read_text(encoding="utf-8")
    for cell in ("lstm", "gru", "rnn"):
        assert re.search(rf"^\|\s*{cell}\s*\|", report, re.M) and f"cell = {cell}" in report
    assert (path / "curves.png").read_bytes().startswith(b"\x89PNG")
    assert "## Against cell = lstm, seed by seed" in report
    plan = json.loads((path / "study.json").read_text(encoding="utf-8"))
    assert plan["factor"] == "cell" and plan["seeds"] == 2 and len(plan["arms"]) == 6
    # The best two checkpoints of each arm and the latest, as a search keeps (not all ten).
    assert all(len(list(d.glob("checkpoint_*"))) <= 3 for d in path.glob("study_trial_*"))


@pytest.mark.slow
def test_sigterm_mid_study_keeps_what_ran_and_gives_no_verdict(ray_local, corpus_dir, tmp_path):
    """Arms cut short would be compared at different lengths: an interrupted study says so in
    one line, exits 130, and keeps its tables (the arms unfinished) but writes no report."""
    args = [
        sys.executable, "-m", "search.study", "hidden_size", "--corpus", "monte-cristo",
        "--values", "32,48", "--seeds", "1", "--time-budget", "90", "--max-chars", "200000",
        "--name", "cut", "--storage", str(tmp_path), "--data-dir", str(corpus_dir),
        "--address", ray_local,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    study = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    path = tmp_path / "cut"
    try:
        deadline = time.monotonic() + 300  # a loaded machine: its first report at 9 s
        while not list(path.glob("study_trial_*/checkpoint_*")):  # an arm has reported
            assert study.poll() is None, study.communicate()
            assert time.monotonic() < deadline, "no arm reported within 300 s"
            time.sleep(0.2)
        study.send_signal(signal.SIGTERM)
        _, stderr = study.communicate(timeout=120)
    finally:
        study.kill()
    assert study.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == (
        f"interrupted; what ran is in {path}, without a report (a study does not resume: run "
        "it again under another --name)"
    ), stderr
    assert not (path / "study.md").exists() and not (path / "study.parquet").exists()
    trials = pq.read_table(path / "trials.parquet").to_pylist()
    assert "unfinished" in {t["status"] for t in trials}, trials
