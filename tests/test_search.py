"""Real searches on a local Ray: budget, schedule, warm starts, tables, best model, W&B, resume."""

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from model.errors import ConfigError
from model.sample import generate, load_model
from search.engine.builders import report_points
from search.engine.tuning import run_search
from search.engine.warm import Passes, fit_dropout, fit_weight_decay, speed_key
from search.folder.config import MAX_TRIAL_CHARS
from search.folder.results import TRIALS_SCHEMA
from search.folder.store import HOLDER, STATE_FILES, STUDY, SearchFolder
from search.reports.report import CompareConfig, build_report
from search.sweep_train import main as sweep_main
from search.sweep_train import parse_sweep_args
from tests.conftest import raw_reports, tiny_search
from tests.wandb_files import offline_runs

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # real searches on a local Ray


def test_search_spends_its_budget_and_every_trial_ends_with_a_result(searches):
    config, outcome = searches["monte-cristo"]
    trials = pq.read_table(config.path / "trials.parquet")
    assert trials.schema.equals(TRIALS_SCHEMA)
    assert trials.num_rows == outcome.trials.num_rows >= 2 and not outcome.interrupted
    rows = trials.to_pylist()
    statuses = [r["status"] for r in rows]
    assert set(statuses) <= {"completed", "cut", "plateaued", "stopped"}, statuses
    assert "cut" in statuses  # the budget ended trials that were still improving
    assert len({r["trial_id"] for r in rows}) == len(rows)
    whole = rows[0]["val_chars"]
    for row in rows:
        assert row["corpus"] == "monte-cristo" and row["corpus_chars"] == config.max_chars
        assert 16 <= row["hidden_size"] <= 48 and 8 <= row["batch_size"] <= 16
        assert Path(row["best_checkpoint"], "checkpoint.pt").is_file()
        assert row["origin"] in ("warm", "sampled", "mutated")
        if row["status"] in ("cut", "completed", "plateaued"):  # validated on all of it at the end
            assert row["final_val_chars"] == whole and row["best_val_bpc"] is not None
        else:  # stopped at the first rung, judged on a prefix, or later on all of it (a later
            # rung, or behind the best in the endgame)
            assert row["final_val_chars"] in (config.first_rung_val_chars, whole)
            assert config.first_rung_val_chars < whole


def test_the_time_budget_is_respected(searches):
    config, outcome = searches["monte-cristo"]
    clock = SearchFolder(config.path).clock()
    curves = pq.read_table(config.path / "curves.parquet").to_pylist()
    assert max(c["time"] for c in curves) <= clock["deadline"]  # every last report in time
    assert outcome.wall_s <= config.time_budget_s + outcome.startup_s + 15  # + tables, sample


def test_what_the_rungs_wrote_down_is_kept_for_a_resume(searches):
    """What ASHA wrote down, as a resumed run reads it back (state/scheduler.json): at the first
    rung each trial's first report there (its reward the negated bits per character), and
    each trial's best on the whole validation text."""
    config, outcome = searches["monte-cristo"]
    saved = SearchFolder(config.path).scheduler()
    (bracket,) = saved["asha"]["rungs"]  # ASHA: one bracket, its rungs from the last down
    milestone, recorded = bracket[-1]
    assert milestone == pytest.approx(outcome.schedule.grace_s)
    curves = pq.read_table(config.path / "curves.parquet").to_pylist()
    first, best = {}, {}
    whole = max(row["val_chars"] for row in curves)
    for row in curves:
        if row["train_s"] >= milestone and row["trial_id"] not in first:
            first[row["trial_id"]] = -row["val_bpc"]
        if row["val_chars"] == whole:
            best[row["trial_id"]] = min(row["val_bpc"], best.get(row["trial_id"], math.inf))
    # The long-horizon start's end value is no rung value, and a trial the deadline stops may
    # end without one: every value written down is a trial's first report past the rung.
    assert all(value == pytest.approx(first[trial]) for trial, value in recorded.items())
    assert saved["best"] == pytest.approx(best) and best


def test_a_search_moved_to_another_folder_is_not_resumed_there(searches, tmp_path):
    """Tune's saved state holds the searcher, schedulers and callbacks as they were made, each
    naming the folder the search started in: resumed elsewhere (copied from a cluster), Tune
    started it afresh and then failed. One line instead, and the original untouched."""
    config, _ = searches["irc"]
    moved = tmp_path / "copy"
    shutil.copytree(config.path, moved / config.name)

    def files(root):
        return {p.relative_to(root): p.read_bytes() for p in root.rglob("*")
                if p.is_file() and p.name not in (".lock", HOLDER)}  # fmt: skip

    before = files(moved / config.name)
    with pytest.raises(ConfigError, match=rf"was started in {re.escape(str(config.path))}"):
        run_search(replace(config, storage=str(moved)), resume=True)
    assert files(moved / config.name) == before  # refused before anything was written
    # A folder from before the clock named it: refused once Tune's saved state is read.
    folder = SearchFolder(moved / config.name)
    clock = folder.clock()
    del clock["folder"]
    folder.state_file("clock.json").write_text(json.dumps(clock))
    with pytest.raises(ConfigError, match=rf"was started in {re.escape(str(config.path))}"):
        run_search(replace(config, storage=str(moved)), resume=True)


def test_validation_runs_only_where_the_schedule_needs_it(searches):
    config, outcome = searches["monte-cristo"]
    points = report_points(config, outcome.schedule)
    curves = pq.read_table(config.path / "curves.parquet").to_pylist()
    by_trial: dict[str, list] = {}
    for row in curves:
        by_trial.setdefault(row["trial_id"], []).append(row)
    trials = {t["trial_id"]: t for t in pq.read_table(config.path / "trials.parquet").to_pylist()}
    for trial_id, rows in by_trial.items():
        *middle, last = rows
        passed = [p for p in points if p <= last["train_s"]]
        # One report per point passed (the first on a prefix), plus the trial's last; a last
        # point that merged into the stretch before it (too near the trial's end: no cool-down
        # of its own, `model.loop.kept_stops`) has none.
        expected = len(passed) - (trials[trial_id]["status"] == "stopped")
        if trials[trial_id]["status"] == "cut":
            # The deadline's estimate of the trial's end moves with the machine's speed, and
            # the endgame's points lie close before it: more than one of them can merge.
            assert len(middle) <= expected, (trial_id, middle, passed)
            for row in middle:  # each right after a point, one step
                assert any(p <= row["train_s"] < p + 1.0 for p in passed), (row, passed)
        else:
            assert len(middle) == expected or (
                len(middle) == expected - 1 and trials[trial_id]["status"] == "completed"
            )
            for row, point in zip(middle, passed, strict=False):
                assert point <= row["train_s"] < point + 1.0  # right after the point, one step
        if middle:
            assert middle[0]["val_chars"] == min(config.first_rung_val_chars, last["val_chars"])


def test_best_model_is_kept_and_samples_text(searches):
    config, outcome = searches["monte-cristo"]
    trials = pq.read_table(config.path / "trials.parquet").to_pylist()
    assert outcome.best_val_bpc == min(t["best_val_bpc"] for t in trials if t["best_val_bpc"])
    model, vocab = load_model(config.path / "best")
    text = generate(model, vocab, prime="The ", length=80, seed=1)
    assert len(text) == 80
    assert (config.path / "best" / "sample.txt").read_text().strip()
    assert outcome.sample


def test_the_best_model_alone_is_scored_on_the_test_split(
    searches, ray_local, corpus_dir, tmp_path
):
    config = tiny_search(
        tmp_path, "irc", "with-test", corpus_dir, wandb_mode="disabled", test_fraction=0.11,
        time_budget_s=20.0,
    )  # 22,000 test characters: the best model alone is scored on them  # fmt: skip
    outcome = run_search(config)
    row = json.loads((config.path / "best" / "trial.json").read_text())
    assert row["trial_id"] == outcome.best_trial and row["test_chars"] == 22_000
    low, high = row["test_bpc_interval"]
    assert low < row["test_bpc"] < high and row["dynamic_settings"]["method"] == "rms"
    low, high = row["test_dynamic_bpc_interval"]
    assert low < row["test_dynamic_bpc"] < high
    # trials.parquet keeps validation figures only: selection never saw the test split.
    assert "test_bpc" not in pq.read_table(config.path / "trials.parquet").column_names
    bits = pq.read_table(config.path / "best" / "test_bits.parquet")
    assert bits.num_rows == 22_000 and bits.column_names == ["static", "dynamic"]
    # The report puts them beside the compressors on the same test text.
    report = build_report(CompareConfig(searches=(str(config.path),), out=str(tmp_path / "r")))
    shown = report.table.to_pylist()[0]
    assert shown["test_chars"] == 22_000
    assert shown["test_dynamic_bpc"] == pytest.approx(row["test_dynamic_bpc"], abs=1e-5)
    assert shown["test_gain_bpc"] == pytest.approx(
        shown["test_best_compressor_bpc"] - shown["test_bpc"]
    )
    assert shown["test_best_compressor_bpc"] <= shown["test_ppmd_bpc"]
    assert shown["test_gain_bpc_low"] < shown["test_gain_bpc"] < shown["test_gain_bpc_high"]
    assert "## The test split" in report.markdown and "The test split" in report.terminal
    assert "test_bpc" not in json.loads(
        (searches["monte-cristo"][0].path / "best" / "trial.json").read_text()
    )


def test_wandb_offline_runs_are_written(searches):
    config, outcome = searches["monte-cristo"]
    folders = sorted((config.path / "wandb").glob("offline-run-*"))
    assert len(folders) == outcome.trials.num_rows
    for folder in folders:
        assert list(folder.glob("*.wandb")), f"no run file in {folder}"
    # Read back with wandb's own reader: one run per trial, in the search's group, carrying
    # the trial's configuration and its row of trials.parquet (status, figures) in its summary.
    runs = offline_runs(config.path / "wandb")
    for row in pq.read_table(config.path / "trials.parquet").to_pylist():
        run = runs[row["trial_id"]]
        assert run["group"] == config.name and run["state"] == "finished"
        assert {k: run["config"][k] for k in ("hidden_size", "lr", "origin")} == {
            k: row[k] for k in ("hidden_size", "lr", "origin")
        }
        summary = run["summary"]
        assert summary["status"] == row["status"] and summary["origin"] == row["origin"]
        for name in ("best_val_bpc", "final_val_bpc", "chars_trained", "train_s"):
            assert summary.get(name) == pytest.approx(row[name]), name
    sweep = yaml.safe_load((config.path / "sweep.yaml").read_text())
    assert sweep["metric"] == {"name": "val_bpc", "goal": "minimize"}
    assert sweep["parameters"]["hidden_size"]["min"] == 16
    irc_config, _ = searches["irc"]
    assert not (irc_config.path / "wandb").exists()  # --wandb-mode disabled


def test_no_wandb_key_is_written_anywhere(
    ray_local, corpus_dir, tmp_path, monkeypatch, fresh_wandb
):
    key = "0123456789abcdef" * 2 + "feedc0de"  # the shape of a W&B API key, 40 hex digits
    monkeypatch.setenv("WANDB_API_KEY", key)
    config = tiny_search(tmp_path, "monte-cristo", "keyed", corpus_dir, trials=2,
                         time_budget_s=20.0, wandb_mode="offline")  # fmt: skip
    run_search(config)
    files = [p for p in config.path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".wandb" for p in files)  # W&B did write its runs
    leaked = [p for p in files if key.encode() in p.read_bytes()]
    assert not leaked, leaked


def test_diverging_trials_are_recorded_and_the_search_completes(ray_local, corpus_dir, tmp_path):
    config = tiny_search(
        tmp_path, "monte-cristo", "diverge", corpus_dir, trials=2, wandb_mode="disabled",
        space={"lr": [50.0, 100.0]},
    )  # fmt: skip
    outcome = run_search(config)
    trials = pq.read_table(config.path / "trials.parquet").to_pylist()
    assert outcome.trials.num_rows == 2 and not outcome.interrupted
    assert [t["status"] for t in trials] == ["diverged", "diverged"]
    assert all(t["lr"] >= 50 and "diverged" in t["error"] for t in trials)
    assert all(t["final_val_bpc"] is None and t["num_layers"] >= 1 for t in trials)
    curves = pq.read_table(config.path / "curves.parquet").to_pylist()
    assert all(c["val_bpc"] is None for c in curves)  # no stand-in value leaks into the curves
    assert outcome.best_trial is None


def test_warm_start_runs_an_earlier_searchs_best_configurations_first(
    searches, ray_local, corpus_dir, tmp_path
):
    earlier, _ = searches["irc"]  # another corpus: configurations carry over
    config = tiny_search(
        tmp_path, "monte-cristo", "warm", corpus_dir, trials=2, wandb_mode="disabled",
        warm_start=str(earlier.path), warm_start_top=2, time_budget_s=20.0,
    )  # fmt: skip
    run_search(config)
    import optuna

    study = optuna.load_study(
        study_name=config.name,
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(config.path / STUDY))
        ),
    )
    best = sorted(
        (
            t
            for t in pq.read_table(earlier.path / "trials.parquet").to_pylist()
            if t["best_val_bpc"]
        ),
        key=lambda t: t["best_val_bpc"],
    )[:2]
    # Only trials with a value on the whole validation text count (those stopped at the first
    # rung were judged on a prefix), so the earlier search may give fewer than two.
    assert best
    first = sorted(study.trials, key=lambda t: t.number)[: len(best)]
    new = pq.read_table(config.path / "trials.parquet").to_pylist()[0]
    trial_s = json.loads((config.path / "state" / "schedule.json").read_text())["max_t_s"]
    # The speed of each configuration was measured here, before the budget started.
    speeds = json.loads((config.path / "state" / "speeds.json").read_text())
    assert set(speeds) == {speed_key(row) for row in best} and min(speeds.values()) > 0
    passes = Passes(new["corpus_chars"] - new["val_chars"], trial_s, speeds)
    for trial, row in zip(first, best, strict=True):
        assert trial.user_attrs["origin"] == "warm"
        same = [k for k in trial.params if k not in ("dropout", "weight_decay")]
        assert {k: trial.params[k] for k in same} == {k: row[k] for k in same}, (trial.params, row)
        # Its dropout and weight decay fit this text and budget, at the speed measured here.
        fitted = passes.of(speeds[speed_key(row)])
        assert trial.params["dropout"] == fit_dropout(fitted)
        assert trial.params["weight_decay"] == fit_weight_decay(fitted)


def test_sigterm_while_measuring_speeds_says_so_and_leaves_nothing_to_resume(corpus_dir, tmp_path):
    """Before its budget a search measures its warm starts' speeds, without Ray: a SIGTERM there
    is a one-line word and status 130, the folder's lock is let go, and the same command
    starts the search again (no settings were saved, so there is nothing to --resume)."""
    args = [
        sys.executable, "-m", "search.run", "--corpus", "monte-cristo", "--name", "early",
        "--storage", str(tmp_path), "--data-dir", str(corpus_dir), "--preset", "smoke",
        "--wandb-mode", "disabled",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    driver = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        for line in driver.stdout:
            if line.startswith("measuring the training speed"):
                break
        else:
            pytest.fail(f"no speed measurement: {driver.stderr.read()}")
        driver.send_signal(signal.SIGTERM)
        _, stderr = driver.communicate(timeout=60)
    finally:
        driver.kill()
    assert driver.returncode == 130, stderr
    assert stderr.strip().splitlines() == [
        "interrupted before the search started; the same command starts it again"
    ], stderr
    folder = SearchFolder(tmp_path / "early")
    assert not folder.exists() and not folder.state_file(HOLDER).exists()
    folder.release(folder.lock())  # nobody holds it


def test_sigterm_then_resume_keeps_every_trial_within_the_bound(
    ray_local, corpus_dir, tmp_path, reaped
):
    """The driver is a subprocess on the session's Ray; SIGTERM it mid-search, then --resume.

    The resumed run has the budget again; `--trials` is an upper bound (how many new trials fit
    depends on the time the restored ones take), never exceeded by counting trials twice.
    """
    args = [
        sys.executable, "-m", "search.run", "--corpus", "monte-cristo", "--name", "resumed",
        "--storage", str(tmp_path), "--data-dir", str(corpus_dir), "--address", ray_local,
        "--preset", "tiny", "--trials", "5", "--time-budget", "40", "--wandb-mode", "disabled",
        "--scheduler", "promote",
        "--range", "hidden_size=32,64",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = reaped(subprocess.Popen(
        args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ))  # fmt: skip
    search_dir = tmp_path / "resumed"
    deadline = time.monotonic() + 120
    while not list(search_dir.glob("train_trial_*/checkpoint_*")):  # a trial has reported
        assert first.poll() is None, first.stdout.read()
        assert time.monotonic() < deadline, "no trial reported within 120 s"
        time.sleep(0.2)
    first.send_signal(signal.SIGTERM)
    output, _ = first.communicate(timeout=120)
    assert first.returncode == 130, output
    interrupted = pq.read_table(search_dir / "trials.parquet").to_pylist()
    assert any(t["status"] == "unfinished" for t in interrupted), interrupted

    changed = subprocess.run([*args, "--resume", "--trials", "9"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert changed.returncode == 2 and "these differ: trials" in changed.stderr, changed.stderr

    second = subprocess.run(
        [*args, "--resume"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert second.returncode == 0, second.stdout + second.stderr
    trials = pq.read_table(search_dir / "trials.parquet").to_pylist()
    ids = [t["trial_id"] for t in trials]
    assert len(set(ids)) == len(ids) <= 5, ids
    assert {t["trial_id"] for t in interrupted if t["chars_trained"]} <= set(ids)  # none lost
    assert all(t["status"] in ("completed", "cut", "plateaued", "stopped") for t in trials), trials
    final = {t["trial_id"]: t["status"] for t in trials}
    assert all(final[t["trial_id"]] == "stopped" for t in interrupted if t["status"] == "stopped")
    # Where Tune re-copies files on a restore (the folder's top) none of the search's own are.
    assert [name for name in STATE_FILES if (search_dir / name).exists()] == []
    assert SearchFolder(search_dir).state_file("search.json").parent.name == "state"
    # The persisted Optuna study came back with the search, not as a second study.
    import optuna

    study = optuna.load_study(
        study_name="resumed",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(search_dir / STUDY))
        ),
    )
    told = {
        t.user_attrs.get("tune_trial_id")
        for t in study.trials
        if t.state != optuna.trial.TrialState.FAIL  # FAIL: suggested, never started
    }
    assert told == {t["trial_id"] for t in trials}
    # Every trial that was cut short continued from a checkpoint instead of starting over: in
    # Tune's own log of its reports, a restore goes back at most to the report before the last
    # one (Tune's saved state can lag the newest checkpoint by one), never to the beginning.
    curves = pq.read_table(search_dir / "curves.parquet").to_pylist()
    for t in trials:
        seen = [c["chars_seen"] for c in curves if c["trial_id"] == t["trial_id"]]
        assert seen == sorted(set(seen)), (t["trial_id"], seen)  # no iteration repeated
        reported = [r["chars_seen"] for r in raw_reports(search_dir, t["trial_id"])]
        for i in range(1, len(reported)):
            if reported[i] <= reported[i - 1]:  # the first report after a restore
                assert reported[i] > (reported[i - 2] if i >= 2 else 0), (t["trial_id"], reported)


def test_wandb_sweep_entry_point_trains_and_logs_offline(
    searches, corpus_dir, tmp_path, monkeypatch
):
    """The command in sweep.yaml runs as W&B's agent would run it, with its ${args} filled in."""
    config, _ = searches["monte-cristo"]
    sweep = yaml.safe_load((config.path / "sweep.yaml").read_text())
    command = sweep["command"]
    assert command[:3] == ["python", "-m", "search.sweep_train"] and command[-1] == "${args}"
    settings = parse_sweep_args([a for a in command[3:-1] if a.startswith("--") and "=" in a])
    assert int(settings["max_train_chars"]) == MAX_TRIAL_CHARS  # not TrainConfig's 5 M default
    monkeypatch.setenv("WANDB_MODE", "offline")
    args = [*command[3:-1], "--out", str(tmp_path / "sweeps"), "--max_train_chars=4096",
            "--hidden_size=16", "--batch_size=8", "--seq_len=16", "--lr=3e-3", "--num_layers=1",
            "--eval_every_chars=2048"]  # fmt: skip
    assert sweep_main(args) == 0
    (run,) = (tmp_path / "sweeps" / "wandb").glob("offline-run-*")
    assert list(run.glob("*.wandb"))
    (folder,) = (p for p in (tmp_path / "sweeps").iterdir() if p.name != "wandb")
    assert pq.read_table(folder / "metrics.parquet").num_rows == 2
    assert sweep_main([*args, "--hiden_size=16"]) == 2


def test_optuna_learns_stopped_trials_as_pruned(searches):
    """What TPE was told, read back from the search's persisted study: trials that ended their
    schedule (or were cut by the deadline) COMPLETE, trials stopped at a rung PRUNED."""
    import optuna

    config, _ = searches["monte-cristo"]
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(config.path / STUDY))
    )
    study = optuna.load_study(study_name=config.name, storage=storage)
    told = {t.user_attrs["tune_trial_id"]: t.state for t in study.trials}
    expected = {"completed": optuna.trial.TrialState.COMPLETE,
                "cut": optuna.trial.TrialState.COMPLETE,
                "plateaued": optuna.trial.TrialState.COMPLETE,
                "stopped": optuna.trial.TrialState.PRUNED}  # fmt: skip
    trials = pq.read_table(config.path / "trials.parquet").to_pylist()
    assert {told[t["trial_id"]] for t in trials} >= {optuna.trial.TrialState.COMPLETE}
    for t in trials:
        assert told[t["trial_id"]] == expected[t["status"]], t


RACE = {  # trial -> (wall seconds a report, values at 10, 20, ... 90 s of training)
    "bet": (1.0, [2.8, 2.4, 2.0, 1.9, 1.8, 1.7, 1.6, 1.5, 1.4]),  # the long-horizon start
    "fast": (0.2, [2.3, 2.6, 2.5, 2.4, 2.3, 2.2, 2.1, 2.0, 1.9]),
}


def yardstick_race_trial(config, meeting):
    """A stand-in trial on the schedulers' time axis: 10 training seconds a report, a
    checkpoint every report (so a paused trial resumes where it was); the long-horizon one
    takes longer in wall time to reach each rung. Each starts reporting once both run (a file
    each in `meeting`): the wait is for a long-horizon start that is running."""
    import tempfile

    from ray import tune

    Path(meeting, config["name"]).touch()
    deadline = time.time() + 60
    while not all(Path(meeting, name).exists() for name in RACE) and time.time() < deadline:
        time.sleep(0.05)
    wall_s, curve = RACE[config["name"]]
    step = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            step = int(Path(folder, "step").read_text())
    while step < len(curve):
        time.sleep(wall_s)
        step += 1
        with tempfile.TemporaryDirectory() as folder:
            Path(folder, "step").write_text(str(step))
            metrics = {"train_s": 10.0 * step, "val_bpc": curve[step - 1], "step": step}
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def stale_log_at_start():
    """A Tune callback that saves a trial's log to the storage as the trial first starts, with
    no report in it yet: what Tune's periodic save of its state does when it falls between a
    trial's start and its first report."""
    from ray import tune

    class StaleLogAtStart(tune.Callback):
        def on_trial_start(self, iteration, trials, trial, **info):
            log = Path(trial.path, "result.json")
            if not log.exists():
                log.parent.mkdir(parents=True, exist_ok=True)
                log.touch()

    return StaleLogAtStart()


def test_a_trial_that_reaches_a_rung_first_waits_for_the_long_horizon_start_in_tune(
    ray_local, tmp_path, monkeypatch
):
    """RecordingASHA in a real Tuner: the trial that reaches a rung before the long-horizon
    start pauses there, holding its slot, and is resumed from its checkpoint when ahead of
    it, or stopped when behind it, without training past that rung. No report is lost by the
    pause: Tune copies a resumed trial's log back from the storage, here saved as the trial
    started and not since (Tune's periodic save an hour apart)."""
    from ray import tune

    from search.engine.adapters import RecordingASHA
    from search.engine.driver import begin_run, end_run, this_run

    monkeypatch.setenv("TUNE_GLOBAL_CHECKPOINT_S", "3600")

    begin_run(tmp_path, time.time(), time.time() + 120)
    try:
        sched = RecordingASHA(time_attr="train_s", metric="val_bpc", mode="min", max_t=90.0,
                              grace_period=10.0, reduction_factor=3, folder=str(tmp_path),
                              long_horizon=[{"name": "bet"}])  # fmt: skip
        results = tune.Tuner(
            tune.with_parameters(yardstick_race_trial, meeting=str(tmp_path)),
            param_space={"name": tune.grid_search(list(RACE))},
            tune_config=tune.TuneConfig(
                scheduler=sched, max_concurrent_trials=2, reuse_actors=True
            ),
            run_config=tune.RunConfig(
                storage_path=str(tmp_path), name="race", verbose=0, callbacks=[stale_log_at_start()]
            ),
        ).fit()
        stopped = set(this_run(tmp_path).stopped)
    finally:
        end_run(tmp_path)
    steps = {r.config["name"]: r.metrics["step"] for r in results}
    # fast is ahead at 10 s (2.3 against 2.8): it waited there and was resumed; at 30 s it is
    # behind (2.5 against 2.0): it waited there and was stopped without training on.
    assert steps == {"bet": 9, "fast": 3}
    assert len(stopped) == 1 and sched.waiting == {}
    logged = {r.config["name"]: list(r.metrics_dataframe["step"]) for r in results}
    assert logged == {"bet": list(range(1, 10)), "fast": [1, 2, 3]}  # no report lost by a pause
