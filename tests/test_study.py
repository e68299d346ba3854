"""Controlled studies: arms differ only in the factor; a tiny study on a real local Ray."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from search.folder.space import HYPERPARAMETERS
from search.studies.study import BASE, StudyConfig, arms, run_study
from search.study import main


def test_arms_differ_only_in_the_factor_and_the_seed():
    grid = arms(StudyConfig(factor="hidden_size", values=(32, 64), seeds=2,
                            sets=(("lr", "0.01"),)))  # fmt: skip
    assert [(a["hidden_size"], a["seed"]) for a in grid] == [(32, 0), (32, 1), (64, 0), (64, 1)]
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
    ],
)
def test_bad_studies_are_one_line(argv, message, tmp_path, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main([*argv, "--storage", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err


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


@pytest.mark.slow
def test_sigterm_mid_study_keeps_what_ran_and_gives_no_verdict(ray_local, corpus_dir, tmp_path):
    """Arms cut short would be compared at different lengths: an interrupted study says so in
    one line, exits 130, and keeps its tables (the arms unfinished) but writes no report."""
    args = [
        sys.executable, "-m", "search.study", "hidden_size", "--corpus", "monte-cristo",
        "--values", "32,48", "--seeds", "1", "--time-budget", "120", "--max-chars", "200000",
        "--name", "cut", "--storage", str(tmp_path), "--data-dir", str(corpus_dir),
        "--address", ray_local,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    study = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    path = tmp_path / "cut"
    try:
        deadline = time.monotonic() + 120
        while not list(path.glob("study_trial_*/checkpoint_*")):  # an arm has reported
            assert study.poll() is None, study.communicate()
            assert time.monotonic() < deadline, "no arm reported within 120 s"
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
