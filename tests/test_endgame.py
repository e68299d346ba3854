"""The search's endgame on a real local Ray: a trial left alone resumes with the freed CPUs,
with Tune's actor reuse on as the search runs it."""

import json
import tempfile
import time
from pathlib import Path

import pytest
from ray import tune

from search.engine.adapters import RecordingASHA
from search.engine.driver import begin_run, end_run, this_run
from search.engine.trainable import assigned_cpus

pytestmark = pytest.mark.slow  # a real Tune run on a local Ray

STEPS = 30


def steady(config):
    """Reports a fixed `quality` (lower is better) every 0.2 s with a checkpoint, and the CPUs
    Ray gave its process, for `steps` reports; restored, it goes on from its checkpoint."""
    config, step = config["q"], 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            step = json.loads((Path(folder) / "step.json").read_text())["step"]
    while step < config["steps"]:
        step += 1
        time.sleep(0.2)
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "step.json").write_text(json.dumps({"step": step}))
            tune.report(
                {"train_s": float(step), "val_bpc": config["quality"], "val_chars": 10,
                 "val_total": 10, "cpus": assigned_cpus()},
                checkpoint=tune.Checkpoint.from_directory(folder),
            )  # fmt: skip


def race(path, configs, **scheduler):
    """Trials of `configs`, two at once on two CPUs, under RecordingASHA with actor reuse as
    the search runs them: their reports by quality, and the trials the scheduler stopped."""
    folder = path / "race"
    begin_run(folder, time.time(), time.time() + 120)
    try:
        sched = RecordingASHA(time_attr="train_s", metric="val_bpc", mode="min", max_t=1000.0,
                              grace_period=500.0, folder=str(folder), grow_to=2,
                              **scheduler)  # fmt: skip
        tuner = tune.Tuner(
            tune.with_resources(steady, {"cpu": 1}),
            param_space={"q": tune.grid_search(configs)},
            tune_config=tune.TuneConfig(
                scheduler=sched, max_concurrent_trials=2, reuse_actors=True, time_budget_s=90
            ),  # fmt: skip
            run_config=tune.RunConfig(storage_path=str(path), name="race", verbose=0),
        )
        results = {r.config["q"]["quality"]: r.metrics_dataframe for r in tuner.fit()}
        return results, set(this_run(folder).stopped)
    finally:
        end_run(folder)


def test_a_trial_left_alone_in_the_endgame_trains_on_every_cpu(ray_local, tmp_path):
    trials = [{"quality": 2.0, "steps": STEPS}, {"quality": 3.0, "steps": STEPS}]
    results, stopped = race(tmp_path, trials, endgame_share=0.99)  # at once in the endgame
    best, behind = results[2.0], results[3.0]
    assert len(behind) < STEPS and len(stopped) == 1  # stopped at a report behind the best
    assert best["train_s"].max() == STEPS  # it went on to its end, from its checkpoints
    assert best["cpus"].iloc[0] == 1 and best["cpus"].iloc[-1] == 2


def test_once_the_last_trial_is_made_a_trial_left_alone_trains_on_every_cpu(ray_local, tmp_path):
    trials = [{"quality": 2.0, "steps": STEPS}, {"quality": 3.0, "steps": STEPS // 3}]
    results, stopped = race(tmp_path, trials, trials=2)  # no endgame: nothing stops
    best, short = results[2.0], results[3.0]
    assert len(short) == STEPS // 3 and not stopped
    assert best["train_s"].max() == STEPS
    assert best["cpus"].iloc[0] == 1 and best["cpus"].iloc[-1] == 2
