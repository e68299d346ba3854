"""The search's endgame on a real local Ray: a trial left alone resumes with the freed CPUs,
with Tune's actor reuse on as the search runs it."""

import json
import math
import tempfile
import time
from pathlib import Path

import pytest
from ray import tune

from search.engine.adapters import RecordingASHA
from search.engine.driver import begin_run, end_run, this_run
from search.engine.trainable import assigned_cpus
from search.folder.results import resumes
from tests.conftest import wait_for

pytestmark = pytest.mark.slow  # a real Tune run on a local Ray

STEPS = 30


def steady(config):
    """Reports a fixed `quality` (lower is better; `later` from report `turn` on) every
    `period` seconds (0.2) with a checkpoint, and the CPUs Ray gave its process, for `steps`
    reports; restored, it goes on from its checkpoint. With `lead`, a folder, it leaves a file
    there as it makes each report; with `follow`, it makes each report `period` after the trial
    that leads there made the same one, and with `after`, up to report `turn`, `period` after
    the one that leads there made the report before."""
    config, step = config["q"], 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            step = json.loads((Path(folder) / "step.json").read_text())["step"]
    while step < config["steps"]:
        step += 1
        if "follow" in config:
            led = Path(config["follow"]) / str(step)
            wait_for(led.exists, 30.0, f"report {step} of the trial it follows", every=0.05)
        if "after" in config and 1 < step <= config.get("turn", math.inf):
            led = Path(config["after"]) / str(step - 1)
            wait_for(led.exists, 30.0, f"report {step - 1} of the trial it waits for", every=0.05)
        time.sleep(config.get("period", 0.2))
        if "lead" in config:
            (Path(config["lead"]) / str(step)).touch()
        quality = config["later"] if step >= config.get("turn", math.inf) else config["quality"]
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "step.json").write_text(json.dumps({"step": step}))
            tune.report(
                {"train_s": float(step), "val_bpc": quality, "val_chars": 10,
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
        assert all(len(frame) for frame in results.values())
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
    assert resumes(best.to_dict("records")) >= 1  # its row says it went on from a checkpoint


def test_once_the_last_trial_is_made_a_trial_left_alone_trains_on_every_cpu(ray_local, tmp_path):
    trials = [{"quality": 2.0, "steps": STEPS}, {"quality": 3.0, "steps": STEPS // 3}]
    results, stopped = race(tmp_path, trials, trials=2)  # no endgame: nothing stops
    best, short = results[2.0], results[3.0]
    assert len(short) == STEPS // 3 and not stopped
    assert best["train_s"].max() == STEPS
    assert best["cpus"].iloc[0] == 1 and best["cpus"].iloc[-1] == 2


def test_in_the_endgame_the_trial_ahead_waits_for_its_rival_and_takes_its_cpu(ray_local, tmp_path):
    """The budget's bet turns ahead at its 4th report, made before its rival's 4th (the two
    alternate, a second apart): it waits there for the rival's report, which stops the rival,
    and trains on both CPUs from its 5th report on (without the wait, from its 6th: its 5th on
    one CPU, the other idle)."""
    bets, rivals = tmp_path / "bet", tmp_path / "rival"
    bets.mkdir(), rivals.mkdir()
    bet = {"quality": 2.0, "later": 1.0, "turn": 4, "steps": 12, "period": 0.4,
           "lead": str(bets), "after": str(rivals)}  # fmt: skip
    rival = {"quality": 1.5, "steps": 12, "period": 1.0, "lead": str(rivals), "follow": str(bets)}
    results, stopped = race(tmp_path, [bet, rival], endgame_share=0.99, long_horizon=[{"q": bet}],
                            hold_s=5.0)  # fmt: skip
    ahead, behind = results[2.0], results[1.5]
    assert len(behind) < 12 and len(stopped) == 1  # stopped behind the bet
    assert ahead["train_s"].max() == 12
    assert list(ahead["cpus"]) == [1] * 4 + [2] * 8
