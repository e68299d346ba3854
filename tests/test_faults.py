"""Faults a long search must survive, on a real local Ray: a trial that raises, a driver killed
with SIGKILL and resumed, a full disk. (A lost worker node: tests/test_cluster.py.)"""

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from ray import tune

import search.engine.builders
from search.engine.compat import trial_id_from_folder
from search.engine.tuning import run_search
from tests.conftest import raw_reports, tiny_search, wait_for

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def check_no_row_lost_or_repeated(search_dir: Path, trials: int) -> list[dict]:
    """One row per trial that ran, at most `trials`; each trial's reports strictly advance.

    A trial that ran is one with a report in its folder. Under a budget `--trials` is an upper
    bound: a suggestion still waiting for a slot when the exploration window closes is ended
    by the scheduler unstarted (a folder without a report: Tune writes an empty result.json as
    a trial starts), and has no row by design.
    """
    rows = pq.read_table(search_dir / "trials.parquet").to_pylist()
    logs = [log for log in search_dir.glob("train_trial_*/result.json") if log.read_text().strip()]
    ran = {trial_id_from_folder(log.parent) for log in logs}
    assert len(rows) <= trials and {r["trial_id"] for r in rows} == ran, (rows, ran)
    assert len({r["trial_id"] for r in rows}) == len(rows), rows
    curves = pq.read_table(search_dir / "curves.parquet").to_pylist()
    for row in rows:
        seen = [c["chars_seen"] for c in curves if c["trial_id"] == row["trial_id"]]
        # Tune's own log, every attempt: a point reported again after a restore is the later
        logged = raw_reports(search_dir, row["trial_id"])
        last = {r["training_iteration"]: r["chars_seen"] for r in logged}
        assert seen == [last[i] for i in sorted(last)], (row["trial_id"], seen, last)
        assert row["iterations"] == len(last)
    return rows


def test_a_failing_trial_is_retried_then_recorded_and_the_search_completes(
    ray_local, corpus_dir, tmp_path, monkeypatch
):
    def failing_trial(config, corpus, base, plan):
        """The search's trainable, raising where it first reports, every attempt. Defined here,
        so that Ray pickles it by value into the workers."""
        from ray import tune as worker_tune

        from search.engine.trainable import train_trial

        def refuse(*args, **kwargs):
            raise RuntimeError("a failure the test suite asked for")

        report, worker_tune.report = worker_tune.report, refuse
        try:
            train_trial(config, corpus=corpus, base=base, plan=plan)
        finally:
            worker_tune.report = report

    monkeypatch.setattr(search.engine.builders, "train_trial", failing_trial)
    config = tiny_search(tmp_path, "monte-cristo", "failing", corpus_dir, trials=2,
                         max_failures=1, wandb_mode="disabled")  # fmt: skip
    outcome = run_search(config)
    rows = pq.read_table(config.path / "trials.parquet").to_pylist()
    assert len(rows) == 2 and not outcome.interrupted and outcome.best is None
    assert all(r["status"] == "failed" and "test suite asked" in r["error"] for r in rows), rows
    attempts = {
        t.trial_id: t.num_failures for t in tune.ExperimentAnalysis(str(config.path)).trials
    }
    assert attempts == {r["trial_id"]: 2 for r in rows}  # the first run and one retry each


def search_command(tmp_path: Path, corpus_dir: Path, address: str) -> list[str]:
    return [sys.executable, "-m", "search.run", "--corpus", "monte-cristo", "--name", "killed",
            "--storage", str(tmp_path), "--data-dir", str(corpus_dir), "--address", address,
            "--preset", "tiny", "--trials", "4", "--time-budget", "60", "--wandb-mode",
            "disabled", "--scheduler", "promote"]  # fmt: skip


def test_sigkill_of_the_driver_then_resume(ray_local, corpus_dir, tmp_path, reaped):
    """SIGKILL, not SIGTERM: nothing is written on the way out. The same command plus --resume
    ends with a row for every trial that ran, those cut short continuing from their checkpoints,
    and never more than the requested trials."""
    args = search_command(tmp_path, corpus_dir, ray_local)  # promote: every trial starts early
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    driver = reaped(subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL))  # fmt: skip
    search_dir = tmp_path / "killed"
    wait_for(lambda: len(list(search_dir.glob("train_trial_*/checkpoint_*"))) >= 2, 120,
             "two checkpoints", process=driver)  # fmt: skip
    checkpoints = list(search_dir.glob("train_trial_*/checkpoint_*"))
    checkpointed = {trial_id_from_folder(p.parent) for p in checkpoints}
    # --resume restores Tune's last saved experiment state, which knows a checkpoint only once
    # the driver has registered it and saved again (every 10 s or more; a fixed wait was too
    # short on a loaded machine): kill after a save to the storage that came after them all.
    newest = max(p.stat().st_mtime for p in checkpoints) + 2.0

    def saved_after() -> bool:
        states = search_dir.glob("experiment_state-*.json")
        return any(f.stat().st_mtime > newest for f in states)

    wait_for(saved_after, 60, "Tune's state saved after the checkpoints", process=driver)
    time.sleep(1.0)  # the copy to the storage ends
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=30)
    assert not (search_dir / "trials.parquet").exists()  # killed: nothing written on the way out
    # A trial that started after Tune's last save (it may or may not have happened here): one.
    unsaved = search_dir / "train_trial_0000dead_00009_9_origin=sampled"
    unsaved.mkdir()
    (unsaved / "result.json").write_text('{"training_iteration": 1, "chars_seen": 512}\n')

    resumed = subprocess.run([*args, "--resume"], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=300)  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    rows = check_no_row_lost_or_repeated(search_dir, trials=4)
    assert all(r["status"] in ("completed", "cut", "plateaued", "stopped") for r in rows), rows
    # A trial started after Tune's last save is unknown to the resumed search: set aside, named.
    lost = [trial_id_from_folder(p) for p in (search_dir / "lost").glob("train_trial_*")]
    assert "0000dead" in lost and not {r["trial_id"] for r in rows} & set(lost), (rows, lost)
    assert all(trial_id in resumed.stdout for trial_id in lost), (lost, resumed.stdout[-3000:])
    went_on = 0
    for trial_id in checkpointed:  # each attempt after the first continues from a checkpoint
        assert any(r["trial_id"] == trial_id for r in rows)
        raw = raw_reports(search_dir, trial_id)
        later = [r for r in raw if r["pid"] != raw[0]["pid"]]  # a new process: restored
        if later:
            went_on += 1  # a restart would report Tune's number 1 and the first characters again
            assert later[0]["training_iteration"] > 1, (trial_id, later[0])
            assert later[0]["chars_seen"] > raw[0]["chars_seen"], (trial_id, raw)
            row = next(r for r in rows if r["trial_id"] == trial_id)
            assert row["resumes"] >= 1, (trial_id, row["resumes"], raw)
    assert went_on, "no trial with a checkpoint trained again after --resume"


def test_a_full_disk_is_one_line_and_leaves_nothing_half_written(corpus_dir, tmp_path):
    """Under RLIMIT_FSIZE a checkpoint cannot be written: one line, exit 2, no partial file."""
    out = tmp_path / "run"
    args = [sys.executable, "-m", "model.train", "--corpus", "monte-cristo", "--data-dir",
            str(corpus_dir), "--max-chars", "50000", "--hidden-size", "256", "--num-layers", "2",
            "--batch-size", "8", "--seq-len", "16", "--max-train-chars", "2048",
            "--eval-every-chars", "1024", "--device", "cpu", "--out", str(out)]  # fmt: skip

    def small_files() -> None:  # checkpoints of this model are ~7 MB; metrics are tiny
        resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))

    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120,
                          preexec_fn=small_files)  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and "Traceback" not in done.stderr, done.stderr
    assert "checkpoint" in lines[-1] or "too large" in lines[-1].lower(), lines[-1]
    leftovers = [p.name for p in out.iterdir() if p.name.endswith(".tmp")] if out.exists() else []
    assert not leftovers and not (out / "checkpoint.pt").exists()
    assert json.loads((out / "config.json").read_text())["hidden_size"] == 256
