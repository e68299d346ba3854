"""Every use of a Ray Tune, Optuna or W&B internal, in one place.

Where the libraries have no public way to do what the search needs, it reaches into them
here and nowhere else. Each use names the version it was read from; `tests/test_compat.py`
runs each against the installed library and fails when an upgrade changes it (pyproject.toml
bounds the versions to those tested).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# -- Ray Tune's OptunaSearch (ray 2.60, ray/tune/search/optuna/optuna_search.py) ---------------


def optuna_trials(searcher: Any) -> dict[str, Any]:
    """Tune trial id -> the Optuna trial an `OptunaSearch` asked for it (`_ot_trials`)."""
    return searcher._ot_trials


def optuna_study(searcher: Any) -> Any:
    """The Optuna study behind an `OptunaSearch` (`_ot_study`), to enqueue trials into."""
    return searcher._ot_study


def settle_restored_study(searcher: Any) -> None:
    """After `OptunaSearch.restore` from Tune's last save (at least 10 s old when a SIGKILL
    ended the driver), bring the searcher in line with its study, which the journal holds as
    it was at the kill: a trial the study finished since is finished to the searcher too
    (`_completed_trials`: reporting to it would raise UpdateFinishedTrialError when Tune runs
    it again), and a trial asked for since, which Tune's saved state does not know (its folder
    is set aside), is told FAIL instead of staying RUNNING in the study, where TPE's constant
    liar would count it for the rest of the search."""
    from optuna.trial import TrialState

    study, known = searcher._ot_study, searcher._ot_trials
    storage = study._storage
    for tune_id, trial in known.items():
        if storage.get_trial(trial._trial_id).state.is_finished():
            searcher._completed_trials.add(tune_id)
    asked = {trial._trial_id for trial in known.values()}
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if frozen._trial_id not in asked:
            study.tell(frozen.number, state=TrialState.FAIL)


# -- Ray Tune's search generator (ray 2.60, ray/tune/search/search_generator.py) --------------


def unfinished(state: dict[str, Any]) -> dict[str, Any]:
    """A `SearchGenerator`'s saved state without its "finished" flag: an earlier run's searcher
    said it was finished (past that run's last start), and restored as it is the flag would
    keep a resumed run, which has a budget of its own, from starting any trial."""
    return {**state, "finished": False}


# -- Ray Tune's schedulers (ray 2.60, ray/tune/schedulers/) ------------------------------------


def set_objective(scheduler: Any, metric: str, mode: str) -> None:
    """Give a scheduler its metric and mode (`_metric`, `_mode`); `set_search_properties`,
    the public way, sets the metric only."""
    scheduler._metric, scheduler._mode = metric, mode


def asha_max_t(scheduler: Any) -> float:
    """The training time at which an `ASHAScheduler` stops every trial (`_max_t`)."""
    return scheduler._max_t


def asha_rung_records(scheduler: Any, trial_id: str) -> list[dict[str, float]]:
    """What an `ASHAScheduler` wrote down at each rung of a trial's bracket (`_trial_info`,
    `_Bracket._rungs`): trial id -> reward (the metric times +1 for max, -1 for min)."""
    return [recorded for _, recorded in scheduler._trial_info[trial_id]._rungs]


def asha_known(scheduler: Any, trial_id: str) -> bool:
    """Whether an `ASHAScheduler` has put the trial in a bracket (`_trial_info`)."""
    return trial_id in scheduler._trial_info


def asha_forget(scheduler: Any, trial_id: str) -> None:
    """Drop a trial from an `ASHAScheduler`'s brackets (`_trial_info`) without recording it:
    its end value is then no rung value."""
    scheduler._trial_info.pop(trial_id, None)


def asha_records(scheduler: Any) -> dict[str, Any]:
    """What an `ASHAScheduler` wrote down at the rungs of each bracket (`_brackets`,
    `_Bracket._rungs`: milestone, trial id -> reward) and the bracket of each trial it knows
    (`_trial_info`), as JSON. Tune saves neither with its state (it never calls the
    scheduler's `save`), so a resumed search would judge at its rungs from scratch."""
    brackets = scheduler._brackets
    index = {id(bracket): i for i, bracket in enumerate(brackets)}
    rungs = [
        [[float(m), {t: float(r) for t, r in recorded.items()}] for m, recorded in bracket._rungs]
        for bracket in brackets
    ]
    return {
        "rungs": rungs,
        "trials": {t: index[id(b)] for t, b in scheduler._trial_info.items() if id(b) in index},
    }


def asha_restore_records(scheduler: Any, saved: dict[str, Any]) -> dict[str, int]:
    """Write what `asha_records` returned back into a scheduler made with the same rungs (a
    milestone it lacks is skipped). Returns the bracket of each trial, for `asha_place`."""
    for bracket, rungs in zip(scheduler._brackets, saved.get("rungs", []), strict=False):
        for milestone, recorded in bracket._rungs:
            for saved_milestone, values in rungs:
                if abs(saved_milestone - milestone) <= 1e-9 * max(1.0, abs(milestone)):
                    recorded.update({str(t): float(r) for t, r in values.items()})
    count = len(scheduler._brackets)
    return {str(t): int(i) for t, i in saved.get("trials", {}).items() if 0 <= int(i) < count}


def asha_place(scheduler: Any, trial_id: str, bracket: int) -> None:
    """Put a trial in the `ASHAScheduler` bracket it was in before (`_trial_info`; `on_trial_add`
    draws one at random where there are several)."""
    scheduler._trial_info[trial_id] = scheduler._brackets[bracket]


def asha_forget_after(scheduler: Any, trial_id: str, time: float) -> None:
    """Drop what an `ASHAScheduler` wrote down for a trial at rungs past `time`: a trial Tune
    restores from an earlier checkpoint reaches them again and is judged again there (ASHA
    skips a rung that already holds the trial's value, and would let it go on)."""
    for bracket in scheduler._brackets:
        for milestone, recorded in bracket._rungs:
            if milestone > time:
                recorded.pop(trial_id, None)


# -- Ray Tune's Tuner and trial folders (ray 2.60, ray/tune/tuner.py, ray/tune/experiment/) ----


def tuner_scheduler(tuner: Any) -> Any | None:
    """The scheduler a local Tuner runs with (`_local_tuner._tune_config.scheduler`); after
    `Tuner.restore`, the one pickled as the search started."""
    internal = getattr(tuner, "_local_tuner", None)
    return getattr(getattr(internal, "_tune_config", None), "scheduler", None)


def ray_target(address: str | None) -> str | None:
    """The address `ray.init(address)` joins: `address` itself, or for None and "auto" the
    cluster RAY_ADDRESS names or one started on this machine with `ray start`; None where it
    starts a new local Ray (Ray's `get_ray_address_from_environment`). ConnectionError for
    "auto" with no cluster to find."""
    if address is not None and address != "auto":
        return address
    from ray._private.services import get_ray_address_from_environment

    return get_ray_address_from_environment(address, None)


def wandb_credentials_found() -> bool:
    """Whether W&B finds credentials for its server on this machine (WANDB_API_KEY, an identity
    token file, ~/.netrc, its settings file), read as `wandb.init` would, without the network,
    a message, or a change to the session (`wandb.login` would verify who the key belongs to,
    print it, and answer False whenever WANDB_MODE is offline). AuthenticationError for a
    source that is there but malformed (a key of the wrong length)."""
    from wandb.sdk import wandb_setup
    from wandb.sdk.lib.wbauth import authenticate

    host = wandb_setup.singleton().settings.base_url
    found = authenticate.authenticate_session(
        host=host, source="search.run", prompt=False, update_session=False
    )
    return found is not None


def tuner_stopper(tuner: Any) -> Any | None:
    """The stopper a local Tuner runs with (`_local_tuner._run_config.stop`); after
    `Tuner.restore`, the one pickled as the search started."""
    internal = getattr(tuner, "_local_tuner", None)
    return getattr(getattr(internal, "_run_config", None), "stop", None)


def experiment_analysis(tuner: Any) -> Any | None:
    """The analysis a local `Tuner.fit` built before failing (`_local_tuner.
    _experiment_analysis`), or None."""
    return getattr(getattr(tuner, "_local_tuner", None), "_experiment_analysis", None)


def saved_trial_folders(path: str | Path) -> set[str]:
    """Names of the trial folders that Tune's last saved experiment state at `path` knows
    (`Trial.storage.trial_dir_name`, set when a trial first starts: a trial suggested but not
    started has none). A trial started after that save is not among them."""
    from ray import tune

    trials = tune.ExperimentAnalysis(str(path)).trials
    return {t.storage.trial_dir_name for t in trials if t.storage.trial_dir_name}


def trial_id_from_folder(path: str | Path) -> str:
    """The trial id in the name of a trial's folder, `TRAINABLE_ID_INDEX_CONFIG...` (Tune's
    default dirname creator): the third part, for a trainable whose name has one underscore
    (`train_trial`, search/engine/trainable.py) and the ids trials of a search algorithm get (eight
    hex digits; a grid's `ID_00001` would not do)."""
    return Path(path).name.split("_")[2]


# -- Ray Tune's TuneController (ray 2.60, ray/tune/execution/tune_controller.py) --------------


def save_tune_state(tune_controller: Any) -> None:
    """Save Tune's experiment state and copy its driver's folder, the trials' logs with it, to
    the storage now, and wait until it is there (`TuneController.checkpoint(force=True,
    wait=True)`; Tune itself saves every 10 s or more). Tune copies a paused trial's log
    (`result.json`) back from the storage when it resumes the trial (`_restore_from_remote`),
    and between two saves that copy lacks the reports made since, the one the trial paused at
    among them. A scheduler is handed Tune's `TrialRunnerWrapper`, which warns on any
    attribute outside its short list (`checkpoint` among them): the save goes to the
    controller it wraps."""
    controller = getattr(tune_controller, "_tune_controller", tune_controller)
    controller.checkpoint(force=True, wait=True)


# -- W&B's settings (wandb 0.31, wandb/sdk/wandb_settings.py) -----------------------------------

# No system-metrics sampling, no metadata or package inventory: settings with an x_ prefix,
# which W&B documents as experimental.
WANDB_QUIET_EXPERIMENTAL = {
    "x_disable_stats": True,
    "x_disable_meta": True,
    "x_save_requirements": False,
}
