"""Small adapters of Ray Tune and Optuna classes to how this search reports and stops trials.

- `BudgetAwareOptunaSearch`: tells Optuna how each trial really ended (a trial stopped early
  is PRUNED, not COMPLETE), explores around the best configuration so far besides TPE, and
  starts no trial once it could not reach the first rung before the search's deadline.
- `RecordingASHA`: ASHA that writes down the trials it stops early.
- `ProgressLines`: one line per finished trial with the running best.
"""

from __future__ import annotations

import math
import random
import time
from typing import Any

from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from model.trainable import ORIGIN
from search.space import SearchSpace
from search.store import SearchFolder
from search.warm import mutate

METRIC, MODE = "val_bpc", "min"
TIME_ATTR = "train_s"  # the schedulers' time axis: seconds of training steps


class BudgetAwareOptunaSearch(OptunaSearch):
    """OptunaSearch that tells Optuna how each trial ended, and knows when to stop starting.

    Ray's OptunaSearch tells a trial ASHA stopped early as COMPLETE with its early-rung loss,
    so TPE would learn from low-budget losses as if they were final. Here such a trial is told
    as PRUNED instead: Optuna keeps the intermediate values `on_trial_result` already reported
    and TPE ranks pruned trials by how far they got and how well they did there, behind every
    trial that finished. A trial ends finished when it reached the end of its schedule or the
    search's deadline, or ended itself on a plateau (its report says `end`); it is told its
    best value on the whole validation text, the model the search keeps of it. A diverged
    trial is told as PRUNED too, with its last value the stand-in `DIVERGED_BPC`: TPE learns
    that its region is bad.

    Exploration around what works: once some trial has a value on the whole validation text,
    every `mutate_every`-th new trial (0: none) is a mutation of the best such trial so far (the
    incumbent, `search.warm.mutate`), enqueued in the study as the warm starts are, so TPE
    learns from it too. Each trial's config says where it came from (`origin`: warm, sampled
    or mutated), and so does its Optuna trial (a user attribute).

    Once the search is `last_start_s` into its budget (per the clock file in `folder`), no new
    trial could reach the first rung, so `suggest` says FINISHED and the running trials have
    the rest of the budget.
    """

    def __init__(
        self,
        *args: Any,
        folder: str,
        last_start_s: float,
        search_space: SearchSpace,
        seed: int = 0,
        mutate_every: int = 2,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._folder = folder
        self._last_start_s = last_start_s
        self._search_space = search_space
        self._seed = seed
        self._mutate_every = mutate_every
        self._warm = len(kwargs.get("points_to_evaluate") or ())
        # All saved with the searcher, so a resumed search goes on where it stopped:
        self._valued: dict[str, int] = {}  # trial -> its last step told
        self._asked = 0  # new trials suggested so far
        self._incumbent: tuple[float, dict[str, Any]] | None = None  # best whole-text value

    def suggest(self, trial_id: str) -> dict | str | None:
        clock = SearchFolder(self._folder).clock()
        if time.time() > clock["started"] + self._last_start_s:
            return Searcher.FINISHED
        if trial_id not in self._ot_trials:
            self._asked += 1
            every, asked = self._mutate_every, self._asked
            if self._incumbent and every and asked > self._warm and asked % every == 0:
                rng = random.Random(self._seed * 1_000_003 + self._asked)
                point = mutate(self._incumbent[1], self._search_space, rng)
                # Enqueued trials come first, in order: the next ask() is this one.
                self._ot_study.enqueue_trial(point, user_attrs={ORIGIN: "mutated"})
        suggestion = super().suggest(trial_id)
        ot_trial = self._ot_trials[trial_id]
        # The warm starts were enqueued first, so they hold the study's first trial numbers.
        origin = ot_trial.user_attrs.get(ORIGIN) or (
            "warm" if ot_trial.number < self._warm else "sampled"
        )
        # Which Tune trial an Optuna trial is, and where it came from: readable in the
        # persisted study (dashboard).
        ot_trial.set_user_attr("tune_trial_id", trial_id)
        ot_trial.set_user_attr(ORIGIN, origin)
        return {**suggestion, ORIGIN: origin} if isinstance(suggestion, dict) else suggestion

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if METRIC in result:  # a report without a value (none yet) teaches Optuna nothing
            self._valued[trial_id] = result.get("training_iteration", 0)
            super().on_trial_result(trial_id, result)
            self._track_incumbent(trial_id, result)

    def _track_incumbent(self, trial_id: str, result: dict) -> None:
        whole = result.get("val_chars") == result.get("val_total") and not result.get("diverged")
        value = result.get(METRIC, math.nan)
        best = math.inf if self._incumbent is None else self._incumbent[0]
        if whole and math.isfinite(value) and value < best and trial_id in self._ot_trials:
            self._incumbent = (value, dict(self._ot_trials[trial_id].params))

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        # Finished: it ended its schedule or was cut by the deadline, and its last value covers
        # the whole validation text (a trial started too late to validate it all is not).
        finished = (
            result
            and result.get("end") in ("completed", "cut", "plateaued")
            and result.get("val_chars") == result.get("val_total")
        )
        if finished and math.isfinite(result.get("best_val_bpc", math.nan)):
            result = {**result, METRIC: result["best_val_bpc"]}  # the model the search keeps
        # Tune hands a scheduler's stopping report to this method only (not on_trial_result),
        # and a trial stopped while paused (the promotion scheduler's end) with no result.
        valued = trial_id in self._valued or bool(result and METRIC in result)
        if not valued and not error:  # never reported a value (stopped before it started):
            error, result = True, None  # FAIL, which TPE ignores, rather than PRUNED
        elif result and not error and not finished:
            told = self._valued.get(trial_id, -1)  # the stopping report: the last intermediate
            if METRIC in result and result.get("training_iteration", 0) > told:
                self.on_trial_result(trial_id, result)
            result = None  # no final value: OptunaSearch tells PRUNED
        super().on_trial_complete(trial_id, result=result, error=error)


class RecordingASHA(ASHAScheduler):
    """ASHA that writes down the trials it stops early (in the search folder).

    Tune marks a trial ASHA stopped TERMINATED, like one that finished; this record is what
    tells "stopped" from "completed" or "cut".
    """

    def __init__(self, *args: Any, folder: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.folder = folder

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        action = super().on_trial_result(tune_controller, trial, result)
        if action == self.STOP and not result.get("end"):
            SearchFolder(self.folder).record_stop(trial.trial_id)
        return action


class ProgressLines(tune.Callback):
    """One line per finished trial, with the running best: the search's progress display."""

    def __init__(self, total: int) -> None:
        self.total = total  # trials at most; 0: as many as the budget holds
        self.best = math.inf  # over values on the whole validation text
        self.started = time.time()

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **_: Any
    ) -> None:
        if not result.get("diverged") and result.get("val_chars") == result.get("val_total"):
            self.best = min(self.best, result.get(METRIC, math.inf))

    def _line(self, trials: list, trial: Any, what: str) -> None:
        done = 1 + sum(
            t.status in ("TERMINATED", "ERROR") and METRIC in (t.last_result or {})
            for t in trials
            if t is not trial
        )
        last = trial.last_result or {}
        seconds, value = last.get(TIME_ATTR, 0.0), last.get(METRIC)
        if last.get("diverged"):
            what, shown = "diverged", "loss exploded"
        else:
            ends = {"completed": "completed", "cut": "cut by the budget", "plateaued": "plateaued"}
            what = ends.get(last.get("end"), what)
            shown = f"val_bpc {value:.4f}" if value is not None else "no report"
        total = f"/{self.total}" if self.total else ""
        best = f"{self.best:.4f}" if math.isfinite(self.best) else "-"
        print(
            f"[{time.time() - self.started:5.0f} s] trial {done}{total} {trial.trial_id} {what} "
            f"after {seconds:.0f} s of training, {shown}; best so far {best}",
            flush=True,
        )

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **_: Any) -> None:
        if METRIC in (trial.last_result or {}):  # not a suggestion that never started
            self._line(trials, trial, "stopped")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **_: Any) -> None:
        self._line(trials, trial, "failed")
