"""The training, sampling and search command lines, called in-process as `main(argv)`; one
test runs them as real processes to show their exit status."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from corpora.cli import main as corpora_main
from model.errors import ConfigError
from model.sample import main as sample_main
from model.train import main as train_main
from search.run import main as run_main

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--hidden-size", "16", "--num-layers", "1", "--batch-size", "8", "--seq-len", "16",
        "--max-chars", "50000", "--eval-every-chars", "2048", "--device", "cpu"]  # fmt: skip


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_train_resume_and_sample(corpus_dir, tmp_path, capsys):
    out = tmp_path / "mc"
    args = ["--corpus", "monte-cristo", "--data-dir", str(corpus_dir), *TINY]
    assert train_main([*args, "--max-train-chars", "4096", "--out", str(out)]) == 0
    assert "val_bpc" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} >= {"checkpoint.pt", "best.pt", "metrics.parquet"}
    rows = pq.read_table(out / "metrics.parquet").to_pylist()
    assert [r["chars_seen"] for r in rows] == [2048, 4096]
    assert rows[0]["checkpoint_s"] == 0 < rows[1]["checkpoint_s"]  # the first save is counted

    assert train_main(["--out", str(out), "--corpus", "irc"]) == 2  # nothing overwritten
    assert "already holds a run" in one_error_line(capsys)
    assert train_main(["--out", str(out / "best.pt"), "--corpus", "irc"]) == 2
    assert "is a file; name a folder" in one_error_line(capsys)

    sample = ["--checkpoint", str(out), "--length", "60", "--seed", "7", "--prime", "The "]
    assert sample_main(sample) == 0
    text = capsys.readouterr().out
    assert text.startswith("The ") and len(text) == len("The ") + 60 + 1  # and print's newline
    assert sample_main(sample) == 0 and capsys.readouterr().out == text  # same seed, same text
    assert sample_main([*sample[:4], "--seed", str(2**70)]) == 2
    assert "seed must be in [0, 2**63)" in one_error_line(capsys)
    # A search folder's best model is in best/: the folder itself is enough.
    (tmp_path / "search" / "best").mkdir(parents=True)
    shutil.copy(out / "best.pt", tmp_path / "search" / "best" / "best.pt")
    sample[1] = str(tmp_path / "search")
    assert sample_main(sample) == 0 and capsys.readouterr().out == text


def test_resume_of_a_finished_run_has_nothing_left_to_train(corpus_dir, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--corpus", "monte-cristo", "--data-dir", str(corpus_dir), *TINY, "--out", str(out)]
    assert train_main([*args, "--max-train-chars", "2048"]) == 0
    capsys.readouterr()
    assert train_main(["--out", str(out), "--resume"]) == 0
    assert "completed" in capsys.readouterr().out  # the saved budget was reached


def test_a_time_budget_ends_training_with_a_last_report(corpus_dir, tmp_path, capsys):
    out = tmp_path / "timed"
    args = ["--corpus", "monte-cristo", "--data-dir", str(corpus_dir), *TINY, "--out", str(out),
            "--max-train-chars", "1000000000", "--eval-every-chars", "0",
            "--time-budget", "3"]  # fmt: skip
    assert train_main(args) == 0
    rows = pq.read_table(out / "metrics.parquet").to_pylist()
    assert [r["end"] for r in rows] == ["cut"] and rows[0]["chars_seen"] > 0


def test_ctrl_c_says_whether_there_is_anything_to_resume(tmp_path, capsys, monkeypatch):
    import model.train

    def interrupted(flat, out, **kwargs):
        out.mkdir(exist_ok=True)
        raise KeyboardInterrupt

    monkeypatch.setattr(model.train, "train_to_folder", interrupted)
    out = tmp_path / "run"
    assert train_main(["--corpus", "monte-cristo", "--out", str(out)]) == 130
    assert "nothing was saved before its first report" in capsys.readouterr().err
    (out / "checkpoint.pt").write_bytes(b"")
    assert train_main(["--corpus", "monte-cristo", "--out", str(out)]) == 130
    assert f"--out {out} --resume" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (None, ["--corpus", "no-such-corpus"], "unknown corpus"),
        ("empty.txt", ["--corpus", "{dir}/empty.txt"], "empty"),
        ("binary.txt", ["--corpus", "{dir}/binary.txt"], "binary"),
        ("latin1.txt", ["--corpus", "{dir}/latin1.txt"], "UTF-8"),
        ("short.txt", ["--corpus", "{dir}/short.txt"], "too short"),
        (None, ["--corpus", "monte-cristo", "--hidden-size", "0"], "hidden_size"),
        (None, ["--corpus", "monte-cristo", "--lr", "-1"], "lr must be positive"),
        (None, ["--corpus", "monte-cristo", "--dropout", "1.5"], "dropout"),
        (None, ["--corpus", "monte-cristo", "--cell", "transformer"], "cell"),
        (None, ["--corpus", "monte-cristo", "--val-fraction", "0.9"], "val_fraction"),
        (None, ["--corpus", "monte-cristo", "--seed", "1180591620717411303424"], "seed"),
        (None, ["--corpus", "monte-cristo", "--train-chars", "-5"], "train_chars must be non-"),
        (None, ["--corpus", "monte-cristo", "--device", "tpu"], "device"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(setup, args, message, corpus_dir, tmp_path, capsys):
    files = {
        "empty.txt": b"",
        "binary.txt": b"\x00\x01\x02 binary",
        "latin1.txt": "caf\u00e9 ".encode("latin-1") * 100,
        "short.txt": b"just a few characters of text\n",
    }
    if setup:
        (tmp_path / setup).write_bytes(files[setup])
    args = [a.replace("{dir}", str(tmp_path)) for a in args]
    assert train_main([*args, "--data-dir", str(corpus_dir), "--out", str(tmp_path / "out")]) == 2
    assert message in one_error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_sample_refuses_a_missing_checkpoint_and_names_a_missing_device(tmp_path, capsys):
    assert sample_main(["--checkpoint", str(tmp_path / "nothing")]) == 2
    assert one_error_line(capsys).startswith("error: checkpoint not found")
    assert sample_main(["--checkpoint", str(tmp_path)]) == 2  # a folder without one
    assert "no checkpoint (best.pt, checkpoint.pt or best/best.pt)" in one_error_line(capsys)
    (tmp_path / "x.pt").write_bytes(b"")
    assert sample_main(["--checkpoint", str(tmp_path / "x.pt"), "--device", "cuda:0"]) == 2
    assert "cuda:0" in one_error_line(capsys)


@pytest.mark.slow
def test_real_processes_exit_with_the_status_main_returns(tmp_path):
    for module, argv, code in (
        ("model.train", ["--corpus", "no-such-corpus", "--out", str(tmp_path / "o")], 2),
        ("model.sample", ["--checkpoint", str(tmp_path / "none")], 2),
        ("corpora", ["fetch", "no-such-corpus"], 2),
        ("corpora", ["list"], 0),
    ):
        done = subprocess.run([sys.executable, "-m", module, *argv], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == code, (module, done.stderr)
        if code:
            assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1


def test_corpora_cli_lists_and_refuses_in_one_line(corpus_dir, capsys):
    assert corpora_main(["list", "--data-dir", str(corpus_dir)]) == 0
    assert "monte-cristo" in capsys.readouterr().out
    assert corpora_main(["fetch", "nope", "--no-download"]) == 2
    one_error_line(capsys)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--corpus", "no-such-corpus"], "unknown corpus"),
        (["--corpus", "irc", "--trials", "-1"], "trials must be non-negative, got -1"),
        (["--corpus", "irc", "--plateau-share", "2"], "plateau_share must be in [0, 1), got 2"),
        (["--corpus", "irc", "--restart-share", "nan"], "restart_share must be non-negative"),
        (["--corpus", "irc", "--time-budget", "ten minutes"], "cannot read duration"),
        (["--corpus", "irc", "--time-budget", "0"], "must be positive"),
        (["--corpus", "irc", "--time-budget", "-5m"], "is given as --time-budget=VALUE"),
        (["--corpus", "irc", "--time-budget=-5m"], "cannot read duration '-5m'"),
        (["--corpus", "irc", "--time-budget", "10"], "at least 20 s"),
        (["--corpus", "irc", "--warm-start", "no/such/folder"], "does not exist"),
        (["--corpus", "irc", "--warm-start", "{tmp}"], "holds no search"),
        (["--corpus", "irc", "--range", "hidden_size=0,8"], "must start at 1"),
        (["--corpus", "irc", "--max-chars", "1000"], "smaller batches (--range batch_size="),
        (
            ["--corpus", "irc", "--max-chars", "200000", "--test-fraction", "0.05"],
            "test split has 10,000 characters, too few",
        ),
        (["--corpus", "irc", "--resume"], "to resume"),
    ],
)
def test_search_refuses_bad_input_in_one_line_before_ray_starts(
    argv, message, corpus_dir, tmp_path, capsys
):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code = run_main([*argv, "--storage", str(tmp_path), "--data-dir", str(corpus_dir)])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err


@pytest.mark.parametrize(("key", "message"), [
    (None, "--wandb-mode online needs W&B credentials: run `wandb login` or set WANDB_API_KEY"),
    ("short", "--wandb-mode online: WANDB_API_KEY invalid"),
    ("a" * 40, "smaller batches"),  # found (not verified): on to the next check, the corpus
])  # fmt: skip
def test_online_wandb_without_credentials_is_refused_before_the_search(
    key, message, corpus_dir, tmp_path, monkeypatch, capsys, fresh_wandb
):
    """Without credentials every trial's W&B run failed in the writer thread, said only after
    the whole search (or W&B asked for a key mid-progress). Read, never verified: no network."""
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc, no W&B settings
    for name in ("WANDB_API_KEY", "NETRC", "WANDB_CONFIG_DIR", "WANDB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")  # as CI has it: the flag's mode is checked
    if key:
        monkeypatch.setenv("WANDB_API_KEY", key)
    code = run_main(["--corpus", "irc", "--wandb-mode", "online", "--storage", str(tmp_path),
                     "--data-dir", str(corpus_dir), "--max-chars", "1000"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and message in err, err
    assert err.count("\n") == 1
    assert not [p for p in tmp_path.iterdir() if not p.name.startswith(".")]  # no search folder


def test_demo_refuses_a_bad_corpus_anywhere_in_its_list_before_searching(
    corpus_dir, tmp_path, capsys
):
    """Every corpus is checked before the first search starts, not when its turn comes."""
    from search.demo import main as demo_main

    runs = tmp_path / "runs"
    argv = ["--corpora", "irc,no-such-corpus", "--data-dir", str(corpus_dir),
            "--storage", str(runs)]  # fmt: skip
    assert demo_main(argv) == 2
    assert "unknown corpus 'no-such-corpus'" in one_error_line(capsys)
    assert not runs.exists()  # irc's search never ran
    (tmp_path / "a-file").write_text("")
    for bad, message in ((["--out", str(tmp_path / "a-file")], "is a file, not a folder"),
                         (["--out", str(tmp_path / "a-file" / "report")], "a-file is a file"),
                         (["--corpora", ","], "--corpora names no corpus")):  # fmt: skip
        assert demo_main([*argv[2:], *bad]) == 2
        assert message in one_error_line(capsys)
        assert not runs.exists()


@pytest.mark.slow  # two real searches of 20 s on one local Ray, then the report
def test_the_demo_searches_each_corpus_on_one_ray_and_ranks_them(corpus_dir, tmp_path, capsys):
    import ray

    from search.demo import main as demo_main

    runs, out = tmp_path / "runs", tmp_path / "report"
    argv = ["--corpora", "irc,monte-cristo", "--max-chars", "60000", "--time-budget", "20",
            "--data-dir", str(corpus_dir), "--storage", str(runs), "--out", str(out)]  # fmt: skip
    joined = ray.is_initialized()  # the suite's Ray, when a test before this one started it
    try:
        assert demo_main(argv) == 0
    finally:
        if not joined and ray.is_initialized():  # the demo stops a Ray it started; were it not to
            ray.shutdown()
    assert ray.is_initialized() == joined  # it started and stopped its own, or left the suite's
    searches = sorted(p.name for p in runs.iterdir())
    assert [name.split("-demo-")[0] for name in searches] == ["irc", "monte-cristo"]
    for name in searches:
        assert pq.read_table(runs / name / "trials.parquet").num_rows >= 1
    table = pq.read_table(out / "predictability.parquet").to_pylist()
    assert sorted(r["corpus"] for r in table) == ["irc", "monte-cristo"]
    assert {r["corpus_chars"] for r in table} == {60_000}
    assert f"report: {out}" in capsys.readouterr().out


def test_an_interrupted_demo_says_how_to_go_on_with_the_search_it_interrupted(tmp_path):
    """The command `search.status` gives for the interrupted search; none before it saved its
    settings, or between searches."""
    import shlex

    from search.demo import demo_configs, interrupted_text
    from search.folder.store import SearchFolder
    from search.reports.status import resume_command
    from search.run import build_parser

    storage = str(tmp_path / "my runs")
    (config,) = demo_configs("demo", storage, "stamp", ["irc"])
    assert interrupted_text(storage, str(config.path)) == interrupted_text(storage)  # no settings
    folder = SearchFolder(config.path)
    folder.path.mkdir(parents=True)
    folder.write_settings(config)
    text = interrupted_text(storage, str(config.path))
    resume = resume_command(folder)
    assert text.endswith(f"; {config.name} was interrupted, continue it with: {resume}")
    parsed = build_parser().parse_args(shlex.split(resume)[3:])
    assert parsed.resume and parsed.name == config.name and parsed.storage == storage
    assert "--resume" not in interrupted_text(storage)  # between searches: nothing to go on with


def test_a_sweep_run_checks_its_corpus_and_settings_before_w_and_b_starts(
    corpus_dir, tmp_path, capsys
):
    from search.sweep_train import main as sweep_main

    out = tmp_path / "sweeps"
    bad = [(["--corpus", "nosuch"], "unknown corpus 'nosuch'"),
           (["--corpus", "irc", "--hidden_size=-1"], "hidden_size must be at least 1")]  # fmt: skip
    for args, message in bad:
        assert sweep_main([*args, "--data-dir", str(corpus_dir), "--out", str(out)]) == 2
        assert message in one_error_line(capsys)
        assert not out.exists()  # no W&B run was made


def test_a_sweep_run_that_w_and_b_cannot_start_is_one_line_and_leaves_no_folder(
    corpus_dir, tmp_path
):
    """In a process of its own, as the agent runs it (W&B keeps its settings per process)."""
    out = tmp_path / "sweeps" / "runs"
    done = subprocess.run(
        [sys.executable, "-m", "search.sweep_train", "--corpus", "irc", "--data-dir",
         str(corpus_dir), "--out", str(out), "--max_chars=50000"],
        env={**os.environ, "WANDB_MODE": "bogus"},  # W&B refuses its own setting (pydantic)
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("error: W&B:") and "mode" in line and "bogus" in line, line
    assert not (tmp_path / "sweeps").exists()


@pytest.mark.slow  # wandb's service process
def test_a_sweep_run_that_diverged_is_a_failed_w_and_b_run_and_exit_status_1(
    corpus_dir, tmp_path, capsys, monkeypatch
):
    """As `python -m model.train`: a diverged run is no finished run. Its W&B run is marked
    failed, with `diverged` in its summary (the diverged report's loss is not logged: it is no
    measurement), and its config is the whole run configuration, typed."""
    from search.sweep_train import main as sweep_main
    from tests.wandb_files import OFFLINE, offline_run

    for key, value in OFFLINE.items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "sweeps"
    args = ["--corpus", "monte-cristo", "--data-dir", str(corpus_dir), "--out", str(out),
            "--max_chars=50000", "--max_train_chars=4096", "--hidden_size=16", "--num_layers=1",
            "--batch_size=8", "--seq_len=16", "--lr=1000000", "--grad_clip=0"]  # fmt: skip
    assert sweep_main(args) == 1
    (line,) = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error: ")]
    assert "diverged after" in line and "lower --lr" in line
    (folder,) = (out / "wandb").glob("offline-run-*")
    run = offline_run(folder)
    assert run["state"] == "failed" and run["summary"]["diverged"] is True
    assert run["config"]["lr"] == 1e6 and run["config"]["hidden_size"] == 16  # numbers, not text
    assert run["config"]["seq_len"] == 16 and "embed_dim" in run["config"]  # defaults too


def test_resume_without_a_name_finds_the_latest_search_of_its_corpus(tmp_path, monkeypatch):
    """--resume without --name takes the newest search of the corpus, also of a text file given
    by a relative path (its settings keep it absolute)."""
    from search.folder.config import SearchConfig
    from search.folder.store import SearchFolder
    from search.run import latest_search

    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("some notes\n")
    runs = tmp_path / "runs"
    for name, corpus in (("older", "notes.txt"), ("other", "irc"), ("newer", "notes.txt")):
        config = SearchConfig(corpus=corpus, name=name, storage=str(runs))
        SearchFolder(runs / name).write_settings(config)
        time.sleep(0.01)  # distinct modification times
    assert latest_search(str(runs), "notes.txt") == "newer"
    assert latest_search(str(runs), "irc") == "other"
    with pytest.raises(ConfigError, match="no search of corpus 'war-and-peace'"):
        latest_search(str(runs), "war-and-peace")
