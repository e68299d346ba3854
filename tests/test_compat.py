"""search.engine.compat against the installed Ray Tune, Optuna and W&B: each internal it reaches is
still where it was read from. A failure here means an upgrade moved one (pyproject.toml bounds
the versions to those tested)."""

import inspect
import json
from pathlib import Path

import optuna
import pytest
import wandb
from ray import tune
from ray.tune.schedulers import ASHAScheduler, TrialScheduler
from ray.tune.search.optuna import OptunaSearch

from search.engine.compat import (
    WANDB_QUIET_EXPERIMENTAL,
    asha_forget,
    asha_known,
    asha_max_t,
    asha_place,
    asha_records,
    asha_restore_records,
    asha_rung_records,
    experiment_analysis,
    optuna_study,
    optuna_trials,
    save_tune_state,
    saved_trial_folders,
    set_objective,
    settle_restored_study,
    trial_id_from_folder,
    unfinished,
)
from tests.test_schedule import Controller, Stub


def test_optuna_search_keeps_its_study_and_a_trial_per_tune_trial():
    searcher = OptunaSearch(space={"x": tune.uniform(0.0, 1.0)}, metric="v", mode="min", seed=0)
    study = optuna_study(searcher)
    assert isinstance(study, optuna.Study)
    study.enqueue_trial({"x": 0.25})
    assert searcher.suggest("t1") == {"x": 0.25}  # the enqueued point comes first
    trial = optuna_trials(searcher)["t1"]
    assert isinstance(trial, optuna.Trial) and trial.params == {"x": 0.25}


def test_a_searcher_restored_after_a_kill_agrees_with_its_journal(tmp_path):
    """Tune's last save came before a kill; the journal holds what happened after it: a trial
    told (Tune runs it again, and reporting to it would fail) and a trial asked (lost)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState

    def searcher() -> OptunaSearch:
        storage = JournalStorage(JournalFileBackend(str(tmp_path / "optuna.journal")))
        return OptunaSearch(space={"x": tune.uniform(0.0, 1.0)}, metric="v", mode="min", seed=0,
                            study_name="s", storage=storage)  # fmt: skip

    before = searcher()
    before.suggest("t1")
    before.suggest("t2")
    before.save(str(tmp_path / "searcher.pkl"))  # Tune's last save
    before.on_trial_complete("t1", {"v": 1.0, "training_iteration": 3})
    before.suggest("t3")  # then the kill
    restored = searcher()
    restored.restore(str(tmp_path / "searcher.pkl"))
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        optuna_trials(restored)["t1"].report(0.9, 4)  # what OptunaSearch would do unsettled
    settle_restored_study(restored)
    restored.on_trial_result("t1", {"v": 0.9, "training_iteration": 4})  # ignored, no error
    states = [t.state for t in optuna_study(restored).get_trials(deepcopy=False)]
    assert states == [TrialState.COMPLETE, TrialState.RUNNING, TrialState.FAIL]


def test_the_search_algorithm_limits_and_starts_trials_as_tunes_own_wrapping_does():
    """Tune adds the limiter for `max_concurrent_trials` only around a Searcher (a generator
    it is given is used as it is), and reads it as how many trials may wait for their workers
    at once: every slot starts together. `search_algorithm` does the same by hand."""
    from ray.tune.execution.tune_controller import _get_max_pending_trials
    from ray.tune.search import ConcurrencyLimiter

    from search.engine.builders import search_algorithm

    def searcher() -> OptunaSearch:
        return OptunaSearch(space={"x": tune.uniform(0.0, 1.0)}, metric="v", mode="min")

    limited = search_algorithm(searcher(), 2)
    assert isinstance(limited.searcher, ConcurrencyLimiter) and limited.searcher.max_concurrent == 2
    assert _get_max_pending_trials(limited) == 2
    assert _get_max_pending_trials(search_algorithm(searcher(), None)) == 1  # promote: no limit


def test_a_search_generators_saved_state_holds_its_finished_flag():
    from ray.tune.search import SearchGenerator

    generator = SearchGenerator(OptunaSearch(space={"x": tune.uniform(0.0, 1.0)}, metric="v",
                                             mode="min"))  # fmt: skip
    generator.set_finished()
    state = {**generator.get_state(), "total_samples": 10}  # as Tune sets it: trials to make
    assert state["finished"] and not unfinished(state)["finished"]
    generator.set_state(unfinished(state))
    assert not generator.is_finished()


def test_asha_keeps_its_horizon_and_a_bracket_per_trial():
    sched = ASHAScheduler(time_attr="s", metric="v", mode="min", max_t=9.0, grace_period=1.0)
    assert asha_max_t(sched) == 9.0
    trial = Stub("a")
    sched.on_trial_add(Controller([trial]), trial)
    sched.on_trial_result(Controller([trial]), trial, {"s": 1.0, "v": 2.5})  # the first rung
    assert [r for r in asha_rung_records(sched, "a") if r] == [{"a": -2.5}]  # reward: -value
    assert asha_known(sched, "a") and not asha_known(sched, "b")
    asha_forget(sched, "a")
    assert not asha_known(sched, "a")
    with pytest.raises(KeyError):  # forgotten: ASHA no longer knows the trial
        sched.on_trial_result(Controller([trial]), trial, {"s": 2.0, "v": 1.0})
    asha_forget(sched, "never-added")  # nothing to forget: no error


def test_what_asha_wrote_down_goes_into_a_scheduler_made_the_same_way():
    def made():
        return ASHAScheduler(time_attr="s", metric="v", mode="min", max_t=27.0,
                             grace_period=1.0, brackets=3)  # fmt: skip

    sched, trials = made(), [Stub(f"t{i}") for i in range(6)]
    for i, trial in enumerate(trials):
        sched.on_trial_add(Controller(trials), trial)
        sched.on_trial_result(Controller(trials), trial, {"s": 9.0, "v": 3.0 - i / 10})
    saved = json.loads(json.dumps(asha_records(sched)))  # as the folder keeps it
    again = made()
    placed = asha_restore_records(again, saved)
    assert placed == {t.trial_id: saved["trials"][t.trial_id] for t in trials}
    for trial in trials:
        again.on_trial_add(Controller(trials), trial)  # a bracket drawn at random
        asha_place(again, trial.trial_id, placed[trial.trial_id])
        assert asha_rung_records(again, trial.trial_id) == asha_rung_records(sched, trial.trial_id)
    assert asha_records(again) == saved
    assert asha_restore_records(made(), {}) == {}  # nothing written down: nothing put back


def test_tune_saves_its_state_when_told_to_and_can_wait_for_it():
    """What `save_tune_state` calls; its effect is checked in a real Tuner by
    tests/test_search.py (a paused trial's log keeps its reports when it resumes)."""
    from ray.tune.execution.tune_controller import TuneController

    assert {"force", "wait"} <= set(inspect.signature(TuneController.checkpoint).parameters)
    controller = Controller([])  # its checkpoint() asserts force and wait
    save_tune_state(controller)
    assert controller.saves == [{}]


def test_the_save_goes_past_the_wrapper_tune_hands_schedulers(monkeypatch):
    """Tune hands a scheduler a `TrialRunnerWrapper` that logs a warning (once a process) when
    an attribute outside its list is read: a search's log would show it at its first save."""
    from ray.tune.execution import tune_controller

    warned = []
    monkeypatch.setattr(tune_controller, "log_once", lambda key: True)  # every time, not once
    monkeypatch.setattr(tune_controller.logger, "warning", warned.append)
    controller = Controller([])
    wrapper = tune_controller.TrialRunnerWrapper(
        controller, trial_executor=None, runner_whitelist_attr={"get_trials"}
    )
    wrapper.checkpoint  # noqa: B018 -- what a save through the wrapper would read
    assert len(warned) == 1 and "restricted" in warned.pop()
    save_tune_state(wrapper)
    assert controller.saves == [{}] and warned == []


def test_a_scheduler_takes_its_metric_and_mode():
    sched = TrialScheduler()
    set_objective(sched, "v", "min")
    assert sched.metric == "v" and sched._mode == "min"


def test_quiet_wandb_settings_are_still_settings():
    settings = wandb.Settings(**WANDB_QUIET_EXPERIMENTAL)
    for name, value in WANDB_QUIET_EXPERIMENTAL.items():
        assert getattr(settings, name) == value, name


def train_trial(config):  # named like search.engine.trainable's: folder names of the same shape
    tune.report({"v": config["x"]})


@pytest.mark.slow
def test_a_tuner_keeps_its_analysis_and_names_trial_folders_by_id(ray_local, tmp_path):
    tuner = tune.Tuner(
        train_trial,
        param_space={"x": tune.uniform(0.0, 1.0)},
        tune_config=tune.TuneConfig(
            search_alg=OptunaSearch(metric="v", mode="min", seed=0), num_samples=2
        ),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="compat", verbose=0),
    )
    results = tuner.fit()
    analysis = experiment_analysis(tuner)
    assert analysis is not None and len(analysis.trials) == 2
    ids = {t.trial_id for t in analysis.trials}
    assert {trial_id_from_folder(r.path) for r in results} == ids
    assert saved_trial_folders(tmp_path / "compat") == {Path(r.path).name for r in results}


def test_a_restored_search_grows_its_trials_to_this_runs_machine(tmp_path):
    """Tune restores the scheduler pickled as the search started (tuner.pkl): its machine's
    CPUs. Resumed on another machine (or a cluster), trials grow to this run's instead."""
    from search.engine.adapters import RecordingASHA
    from search.engine.builders import restore_tuner
    from search.engine.compat import tuner_scheduler
    from search.folder.config import SearchConfig

    def trainable(config):
        pass

    sched = RecordingASHA(time_attr="train_s", metric="val_bpc", mode="min", max_t=900.0,
                          grace_period=300.0, folder=str(tmp_path), grow_to=2)  # fmt: skip
    tune.Tuner(trainable, tune_config=tune.TuneConfig(scheduler=sched),
               run_config=tune.RunConfig(name="s", storage_path=str(tmp_path)))  # fmt: skip
    assert tuner_scheduler(tune.Tuner.restore(str(tmp_path / "s"), trainable)).grow_to == 2
    cpu, gpu = SearchConfig(corpus="irc"), SearchConfig(corpus="irc", gpus_per_trial=1.0)
    assert tuner_scheduler(restore_tuner(cpu, tmp_path / "s", trainable, 16.0)).grow_to == 16.0
    assert tuner_scheduler(restore_tuner(cpu, tmp_path / "s", trainable, None)).grow_to is None
    assert tuner_scheduler(restore_tuner(gpu, tmp_path / "s", trainable, 16.0)).grow_to is None


def test_a_restored_search_says_the_long_horizon_starts_its_scheduler_runs(tmp_path):
    """A search started before the budget bet on two shapes runs the one its scheduler was
    made with; the line a resume prints names that one, not the two this version would choose."""
    from search.engine.adapters import RecordingASHA
    from search.engine.builders import restore_tuner, running_long_horizon
    from search.engine.tuning import long_horizon_line
    from search.folder.config import SearchConfig

    def trainable(config):
        pass

    wide = {"num_layers": 1, "hidden_size": 1024, "dropout": 0.3}
    deep = {"num_layers": 2, "hidden_size": 576, "dropout": 0.3}
    sched = RecordingASHA(time_attr="train_s", metric="val_bpc", mode="min", max_t=900.0,
                          grace_period=300.0, folder=str(tmp_path),
                          long_horizon=[wide])  # fmt: skip
    tune.Tuner(trainable, tune_config=tune.TuneConfig(scheduler=sched),
               run_config=tune.RunConfig(name="s", storage_path=str(tmp_path)))  # fmt: skip
    tuner = restore_tuner(SearchConfig(corpus="irc"), tmp_path / "s", trainable, None)
    bets = running_long_horizon(tuner, [wide, deep])
    assert bets == [wide]
    assert long_horizon_line(bets, 2) == (
        "; the first (1 x 1024) is a long-horizon start that runs unjudged"
    )
    plain = tune.Tuner(trainable, run_config=tune.RunConfig(name="f", storage_path=str(tmp_path)))
    assert running_long_horizon(plain, [wide, deep]) == [wide, deep]  # no RecordingASHA
