"""The W&B sink: one run per trial, grouped by search, with the trial's configuration, status and
final figures in its summary, checked on the offline run files with wandb's own reader."""

import json
import time
from types import SimpleNamespace

import pytest

from search.engine.driver import begin_run, end_run
from search.engine.trainable import DIVERGED_BPC
from search.engine.wandb_sink import KEPT, WandbSink, earlier_reports, run_summary
from search.folder.results import TrialRecord, trial_row, trial_status
from tests.wandb_files import OFFLINE, offline_runs

WHOLE = 1000  # validation characters of the whole text; the first rung validates a prefix
PREFIX = 100


def report(val_bpc, chars_seen, val_chars=WHOLE, **more):
    return {"val_bpc": val_bpc, "val_chars": val_chars, "val_total": WHOLE, "train_bpc": 3.0,
            "chars_seen": chars_seen, "train_s": chars_seen / 100, "elapsed_s": chars_seen / 90,
            "num_params": 5000, "diverged": False, **more}  # fmt: skip


# (reports, error, stopped early) -> status, as search.folder.results decides it for trials.parquet
CASES = {
    "cut": ([report(3.1, 1000, PREFIX), report(2.6, 2000), report(2.7, 3000, end="cut")],
            None, False),
    "plateaued": ([report(2.9, 1000), report(2.8, 2000, end="plateaued")], None, False),
    "stopped": ([report(3.3, 1000, PREFIX)], None, True),  # at the first rung, on a prefix
    "diverged": ([report(3.2, 1000), report(DIVERGED_BPC, 2000, diverged=True)], None, False),
    "failed": ([report(3.4, 1000)], "RuntimeError: lost node", False),
    "unfinished": ([report(3.0, 1000)], None, False),  # the search was interrupted
}  # fmt: skip


@pytest.mark.parametrize("status", list(CASES))
def test_a_runs_summary_is_the_trials_row_of_trials_parquet(status):
    reports, error, stopped = CASES[status]
    config = {"hidden_size": 32, "lr": 0.01, "origin": "sampled"}
    summary = run_summary("t1", config, reports, error=error, stopped_early=stopped)
    record = TrialRecord("t1", config, reports, error, None, stopped_early=stopped)
    corpus = {"name": "c", "sha256": "", "n_chars": 0, "val_chars": WHOLE, "vocab_size": 0}
    row = trial_row(record, "search", corpus, trial_status(record))
    assert summary["status"] == status == row["status"]
    for name, value in summary.items():  # every figure under its trials.parquet name
        if name != "val_bpc":
            assert value == row[name], name
    for name in ("best_val_bpc", "final_val_bpc", "chars_trained", "train_s", "origin", "resumes"):
        assert summary.get(name) == row[name], name  # and none left out that the row has
    # val_bpc, the sweep's metric: the value the search ranks the trial by.
    assert summary.get("val_bpc") == (row["best_val_bpc"] or row["final_val_bpc"])


def test_a_runs_summary_leaves_out_what_a_trial_does_not_have():
    summary = run_summary("t1", {"lr": 0.01}, [], error="it never started")
    assert summary == {"status": "failed", "iterations": 0, "resumes": 0}


def test_a_report_replayed_after_a_restore_counts_once_in_the_summary(tmp_path):
    """A trial restored from a checkpoint older than its last report reports that point again,
    a few characters further on: Tune's report number, kept with the reports, tells them apart
    (by characters alone both would count, and the summary would disagree with trials.parquet)."""
    from search.folder.results import resumed_history

    reports = [
        report(3.0, 1000, training_iteration=1, iterations_since_restore=1),
        report(2.6, 2000, training_iteration=2, iterations_since_restore=2),
        report(2.61, 2010, training_iteration=2, iterations_since_restore=1),
        report(2.5, 3000, training_iteration=3, iterations_since_restore=2),
    ]
    kept = earlier_reports(tune_log(tmp_path / "t1", reports))
    line = resumed_history(kept)
    assert [r["chars_seen"] for r in line] == [1000, 2010, 3000]
    summary = run_summary("t1", {}, line)
    assert summary["iterations"] == 3 and summary["resumes"] == 1


def trial(trial_id, local_path=None, **config):
    return SimpleNamespace(trial_id=trial_id, config=config, local_path=local_path)


def tune_log(folder, reports):
    """A trial folder as Tune leaves it: one JSON report per line in result.json, the last one
    cut short by a kill."""
    folder.mkdir(parents=True)
    lines = [json.dumps({**r, "time": 1.0, "config": {}}) for r in reports]
    (folder / "result.json").write_text("\n".join(lines) + '\n{"val_bpc": 2.')
    return str(folder)


def test_a_resumed_trials_earlier_reports_come_from_its_tune_folder(tmp_path):
    earlier = [report(3.0, 1000), report(2.5, 2000)]
    assert earlier_reports(tune_log(tmp_path / "t1", earlier)) == [
        {k: r[k] for k in KEPT if k in r} for r in earlier
    ]
    assert earlier_reports(str(tmp_path / "new")) == [] and earlier_reports(None) == []


@pytest.mark.slow  # wandb's service process, one offline run per trial, and its reader
def test_each_trial_is_a_run_of_the_searchs_group_with_its_status_and_figures(
    tmp_path, monkeypatch
):
    for key, value in OFFLINE.items():  # W&B stays on this machine
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    folder = tmp_path / "runs" / "mc-search"
    folder.mkdir(parents=True)  # the search's folder, which it makes before Tune starts
    sink = WandbSink(project="char-rnn", group="mc-search", mode="offline", folder=str(folder))
    driver = begin_run(folder, time.time(), time.time() + 60)  # as the search begins its run
    trials = {
        status: trial(f"t-{status}", hidden_size=16 + i, lr=0.01, origin="sampled")
        for i, status in enumerate(CASES)
    }
    # A trial that --resume continues: two reports before the resume, one after.
    before, after = [report(2.9, 1000), report(2.4, 2000)], [report(2.6, 3000, end="cut")]
    resumed = trial("t-resumed", tune_log(tmp_path / "t-resumed", before), hidden_size=8, lr=0.01)
    sink.on_trial_start(0, [], resumed)
    sink.on_trial_result(0, [], resumed, {**after[0], "time": 2.0})
    sink.on_trial_complete(0, [], resumed)
    for status, (reports, error, stopped) in CASES.items():
        t = trials[status]
        sink.on_trial_start(0, [], t)
        for result in reports:
            sink.on_trial_result(0, [], t, {**result, "time": 1.0, "config": t.config})
        if stopped:
            driver.stopped.add(t.trial_id)  # as RecordingASHA does
        if status == "cut":  # PBT-style: the configuration changed while the trial ran
            t.config = {**t.config, "lr": 0.005}
        if error:
            sink.on_trial_error(0, [], t)
        elif status != "unfinished":
            sink.on_trial_complete(0, [], t)
    # The writer lags (each W&B run takes a while to open): the driver's run may end before it
    # finished the runs; what they need from it was read as the events were queued. Here it
    # starts only after the run ended, so it has every event still to write.
    end_run(folder)
    sink.setup()
    sink.on_experiment_end([])  # the unfinished trial's run is finished here
    assert sink.errors == []

    runs = offline_runs(folder / "wandb")
    assert sorted(runs) == sorted([resumed.trial_id, *(t.trial_id for t in trials.values())])
    whole_trial = run_summary(resumed.trial_id, resumed.config, before + after)
    assert whole_trial["iterations"] == 3 and whole_trial["val_bpc"] == 2.4
    assert {k: runs["t-resumed"]["summary"][k] for k in whole_trial} == pytest.approx(whole_trial)
    # Its rows go on from its two earlier reports (offline, a folder of their own: numbered
    # from 0 again, `wandb sync` would drop them as steps gone back).
    assert runs["t-resumed"]["steps"] == [2]
    for status, (reports, error, stopped) in CASES.items():
        t = trials[status]
        run = runs[t.trial_id]
        assert run["group"] == "mc-search" and run["project"] == "char-rnn"
        assert run["id"] == f"mc-search-{t.trial_id}"
        assert run["state"] == ("failed" if error else "finished")  # W&B's own run state
        assert run["config"] == t.config  # the last configuration, origin included
        expected = run_summary(t.trial_id, t.config, reports, error=error, stopped_early=stopped)
        assert expected["status"] == status
        # What W&B shows: the figures above, over what the logged history left there.
        assert {k: run["summary"][k] for k in expected} == pytest.approx(expected)
        logged = [row.get("val_bpc") for row in run["history"]]
        assert len(logged) == len(reports) and run["steps"] == list(range(len(reports)))
        # Curves against characters trained: a replayed report lands on the point it repeats.
        assert run["x_axes"]["val_bpc"] == run["x_axes"]["train_bpc"] == "chars_seen"
        assert DIVERGED_BPC not in logged  # the stand-in is for the searcher, not a curve
    assert runs["t-cut"]["summary"]["val_bpc"] == 2.6  # its best on the whole text, not its last
    assert runs["t-cut"]["config"]["lr"] == 0.005


@pytest.mark.slow  # wandb's service process
def test_the_writer_tune_restores_from_its_pickle_logs_the_resumed_trials(tmp_path, monkeypatch):
    import pickle

    for key, value in OFFLINE.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    sink = WandbSink(project="p", group="g", mode="offline", folder=str(tmp_path))
    begin_run(tmp_path, time.time(), time.time() + 60)  # one process runs both, as in a test
    sink.setup()
    first = trial("t-first", hidden_size=8, lr=0.01)
    sink.on_trial_start(0, [], first)
    sink.on_trial_result(0, [], first, {**report(2.9, 1000), "time": 1.0})
    copy = pickle.loads(pickle.dumps(sink))  # what Tuner.restore reads from tuner.pkl, mid-run
    sink.on_experiment_end([])  # the interrupted run's writer ends
    assert copy.settings == sink.settings and copy.errors == [] and copy._thread is None
    copy.setup()  # a fresh writer in the resumed run
    second = trial("t-second", hidden_size=16, lr=0.02)
    copy.on_trial_start(0, [], second)
    copy.on_trial_result(0, [], second, {**report(2.5, 2000), "time": 2.0})
    copy.on_trial_complete(0, [], second)
    copy.on_experiment_end([])
    assert copy.errors == []
    runs = offline_runs(tmp_path / "wandb")
    assert runs["t-second"]["summary"]["val_bpc"] == 2.5
    assert [row.get("val_bpc") for row in runs["t-second"]["history"]] == [2.5]
    assert "t-first" in runs  # the first run's writer finished its run too
    end_run(tmp_path)
