"""The training and sampling command lines, run as a user runs them: as subprocesses."""

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--hidden-size", "16", "--num-layers", "1", "--batch-size", "8", "--seq-len", "16",
        "--max-chars", "50000", "--eval-every-chars", "2048", "--device", "cpu"]  # fmt: skip


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def test_train_resume_and_sample(corpus_dir, tmp_path):
    out = tmp_path / "mc"
    first = run("model.train", "--corpus", "monte-cristo", "--data-dir", str(corpus_dir), *TINY,
                "--max-train-chars", "4096", "--out", str(out), cwd=tmp_path)  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert "val_bpc" in first.stdout
    assert {p.name for p in out.iterdir()} >= {"checkpoint.pt", "best.pt", "metrics.parquet"}
    assert pq.read_table(out / "metrics.parquet").column("chars_seen").to_pylist() == [2048, 4096]

    again = run("model.train", "--out", str(out), "--corpus", "irc", cwd=tmp_path)
    assert again.returncode == 2 and "already holds a run" in again.stderr  # nothing overwritten

    sample = run("model.sample", "--checkpoint", str(out), "--length", "60", "--seed", "7",
                 "--prime", "The ", cwd=tmp_path)  # fmt: skip
    assert sample.returncode == 0, sample.stderr
    assert sample.stdout.startswith("The ") and len(sample.stdout.rstrip("\n")) >= 60
    repeat = run("model.sample", "--checkpoint", str(out), "--length", "60", "--seed", "7",
                 "--prime", "The ", cwd=tmp_path)  # fmt: skip
    assert repeat.stdout == sample.stdout


def test_resume_of_a_finished_run_has_nothing_left_to_train(corpus_dir, tmp_path):
    out = tmp_path / "run"
    args = ["model.train", "--corpus", "monte-cristo", "--data-dir", str(corpus_dir), *TINY,
            "--out", str(out)]  # fmt: skip
    assert run(*args, "--max-train-chars", "2048", cwd=tmp_path).returncode == 0
    resumed = run("model.train", "--out", str(out), "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "completed" in resumed.stdout  # nothing left to train: the saved budget was reached


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
    ],
)
def test_bad_input_is_one_line_and_exit_2(setup, args, message, corpus_dir, tmp_path):
    files = {
        "empty.txt": b"",
        "binary.txt": b"\x00\x01\x02 binary",
        "latin1.txt": "caf\u00e9 ".encode("latin-1") * 100,
        "short.txt": b"just a few characters of text\n",
    }
    if setup:
        (tmp_path / setup).write_bytes(files[setup])
    args = [a.replace("{dir}", str(tmp_path)) for a in args]
    result = run("model.train", *args, "--data-dir", str(corpus_dir), "--out",
                 str(tmp_path / "out"), cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and message in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_sample_refuses_a_missing_checkpoint(tmp_path):
    result = run("model.sample", "--checkpoint", str(tmp_path / "nothing"), cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.startswith("error: checkpoint not found")
