"""Small adapters of Ray Tune and Optuna classes to how this search reports and stops trials.

- `BudgetAwareOptunaSearch`: tells Optuna how each trial really ended (a trial stopped early
  is PRUNED, not COMPLETE), explores around the best configuration so far besides TPE, and
  starts no trial once it could not reach the first rung before the search's deadline.
- `RecordingASHA`: ASHA that notes the trials it stops early (`search.engine.driver`).
- `ProgressLines`: the live progress display (bars on a terminal, a line every `every_s`
  elsewhere, a line per finished trial) and the status file `python -m search.status` reads.
"""

from __future__ import annotations

import functools
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ray import tune
from ray.tune.execution.placement_groups import PlacementGroupFactory
from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, PopulationBasedTraining
from ray.tune.search import Searcher, SearchGenerator
from ray.tune.search.optuna import OptunaSearch
from tqdm import tqdm

from search.engine.compat import (
    asha_forget,
    asha_forget_after,
    asha_known,
    asha_max_t,
    asha_place,
    asha_records,
    asha_restore_records,
    asha_rung_records,
    optuna_study,
    optuna_trials,
    save_tune_state,
    settle_restored_study,
    unfinished,
)
from search.engine.driver import this_run
from search.engine.trainable import ORIGIN
from search.engine.warm import is_point, mutate
from search.folder.space import SearchSpace
from search.folder.store import SearchFolder
from search.reports.progress import (
    RUNNING,
    Board,
    best_text,
    counts_text,
    progress_line,
    running_lines,
)

METRIC, MODE = "val_bpc", "min"
TIME_ATTR = "train_s"  # the schedulers' time axis: seconds of training steps
DIVERGED = "diverged"  # the Optuna constraint a diverged trial breaks
HEARTBEAT_S = 30.0  # status.json is rewritten at least this often, changed or not
# How long a trial that reached a rung before the long-horizon start waits for it there, at
# most: this share of its training seconds, and at least MIN_WAIT_S (RecordingASHA).
WAIT_SHARE, MIN_WAIT_S = 0.1, 30.0
# A trial takes freed CPUs only while at least this much of the budget is left: it restarts
# for them (a new process, its checkpoint loaded: a few seconds).
MIN_GROW_LEFT_S = 60.0


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
    incumbent, `search.engine.warm.mutate`), enqueued in the study as the warm starts are, so TPE
    learns from it too. Each trial's config says where it came from (`origin`: warm, sampled
    or mutated), and so does its Optuna trial (a user attribute). A `long_horizon`
    configuration the scheduler runs unjudged to the deadline is never the incumbent: a
    mutation of it starts from scratch while it trains on, so it ends behind it whatever it
    does (in an hour's search of the Python library, four such mutations trained 800 of the
    1,774 s the trials after the warm starts trained, 2 December 2026).

    Once the search is `last_start_s` into its budget (this run's clock, `search.engine.driver`,
    keyed by `folder`), no new trial could reach the first rung, so `suggest` says FINISHED and
    the running trials have the rest of the budget.

    The trials the scheduler stopped early are saved with the searcher's state, which Tune
    writes with its own record of the trials: a resumed search knows them (`save`, `restore`).
    """

    def __init__(
        self,
        *args: Any,
        folder: str,
        last_start_s: float,
        search_space: SearchSpace,
        seed: int = 0,
        mutate_every: int = 2,
        long_horizon: Sequence[dict[str, Any]] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._folder = folder
        self._long_horizon = [dict(p) for p in long_horizon]
        self._last_start_s = last_start_s
        self._search_space = search_space
        self._seed = seed
        self._mutate_every = mutate_every
        self._warm = len(kwargs.get("points_to_evaluate") or ())
        # All saved with the searcher, so a resumed search goes on where it stopped:
        self._valued: dict[str, int] = {}  # trial -> its last step told
        self._asked = 0  # new trials suggested so far
        self._incumbent: tuple[float, dict[str, Any]] | None = None  # best whole-text value
        self._stopped: list[str] = []  # the driver's early stops, as of the last save

    def save(self, checkpoint_path: str) -> None:
        self._stopped = sorted(this_run(self._folder).stopped)
        super().save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        super().restore(checkpoint_path)
        # A searcher an earlier version saved has no stops (they were in stopped.txt).
        this_run(self._folder).stopped.update(getattr(self, "_stopped", ()))
        settle_restored_study(self)  # what the study learnt after Tune's last save

    def suggest(self, trial_id: str) -> dict | str | None:
        if this_run(self._folder).past(self._last_start_s):
            return Searcher.FINISHED
        if trial_id not in optuna_trials(self):
            self._asked += 1
            every, asked = self._mutate_every, self._asked
            if self._incumbent and every and asked > self._warm and asked % every == 0:
                rng = random.Random(self._seed * 1_000_003 + self._asked)
                point = mutate(self._incumbent[1], self._search_space, rng)
                # Enqueued trials come first, in order: the next ask() is this one.
                optuna_study(self).enqueue_trial(point, user_attrs={ORIGIN: "mutated"})
        suggestion = super().suggest(trial_id)
        ot_trial = optuna_trials(self)[trial_id]
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
        if result.get("diverged") and trial_id in optuna_trials(self):
            # Infeasible to TPE, which places such trials behind every other. Told as pruned
            # at its stand-in value, it would rank by how far it got first: one that diverged
            # after the first rung ahead of every trial stopped at it, whatever their values.
            optuna_trials(self)[trial_id].set_constraint(DIVERGED, 1.0)
        if METRIC in result:  # a report without a value (none yet) teaches Optuna nothing
            self._valued[trial_id] = result.get("training_iteration", 0)
            super().on_trial_result(trial_id, result)
            self._track_incumbent(trial_id, result)

    def _track_incumbent(self, trial_id: str, result: dict) -> None:
        whole = result.get("val_chars") == result.get("val_total") and not result.get("diverged")
        value = result.get(METRIC, math.nan)
        best = math.inf if self._incumbent is None else self._incumbent[0]
        trials = optuna_trials(self)
        if not (whole and math.isfinite(value) and value < best and trial_id in trials):
            return
        params = trials[trial_id].params
        # A searcher an earlier version pickled (a resumed search) has no long-horizon list.
        if not any(is_point(params, p) for p in getattr(self, "_long_horizon", ())):
            self._incumbent = (value, dict(params))

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


class ResumableSearch(SearchGenerator):
    """Tune's wrapper of a searcher, whose "finished" (the searcher said no more trials) is
    this run's alone: a resumed run asks its searcher again, which answers by the new run's
    clock (`BudgetAwareOptunaSearch.suggest`)."""

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(unfinished(state))


class DeadlineStopper(tune.Stopper):
    """Tune's backstop, by this run's deadline (`search.engine.driver`): the experiment ends
    `slack_s` after it. The trials end themselves before the deadline; this is for one that
    does not. (Tune's `time_budget_s` counts down a timer that Tune saves with its state: a
    resumed run would get what the earlier run left of it, not its own budget.)"""

    def __init__(self, folder: str, slack_s: float) -> None:
        self._folder, self._slack_s = folder, slack_s

    @property
    def folder(self) -> str:
        """The search folder whose run's deadline it keeps."""
        return self._folder

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return time.time() > this_run(self._folder).deadline + self._slack_s


def saving_logs(choose: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """A scheduler's `choose_trial_to_run` that saves Tune's state before the trial it chose
    starts, where that trial has a checkpoint to go on from (resumed after a pause, restarted
    after a failure): Tune then copies the trial's log back from the storage
    (`search.engine.compat.save_tune_state`), and without the save that copy lacks the reports
    made since Tune's last periodic save, so curves.parquet would too.

    Once per checkpoint and report: a chosen trial waiting for its CPUs is PENDING, and Tune's
    schedulers choose a PENDING trial again at every step of the controller until it starts; it
    makes no report meanwhile, so saving again would only cost the controller a blocking write.
    (The report counts too: PBT can give a member the same checkpoint of another twice, with the
    member's own reports in between.)"""

    @functools.wraps(choose)
    def choose_trial_to_run(self: Any, tune_controller: Any) -> Any:
        trial = choose(self, tune_controller)
        if trial is not None and trial.checkpoint is not None:
            saved = self.__dict__.setdefault("logs_saved_at", {})  # trial id -> where it was
            where = (getattr(trial.checkpoint, "path", trial.checkpoint),
                     (trial.last_result or {}).get("training_iteration"))  # fmt: skip
            if saved.get(trial.trial_id) != where:
                save_tune_state(tune_controller)
                saved[trial.trial_id] = where
        return trial

    return choose_trial_to_run


class LogSavingFIFO(FIFOScheduler):
    """Tune's FIFO scheduler, saving Tune's state before a trial restarts (`saving_logs`)."""

    choose_trial_to_run = saving_logs(FIFOScheduler.choose_trial_to_run)


class LogSavingPBT(PopulationBasedTraining):
    """Tune's Population Based Training, saving Tune's state before a trial restarts from a
    checkpoint (`saving_logs`): PBT pauses a member to give it another's weights."""

    choose_trial_to_run = saving_logs(PopulationBasedTraining.choose_trial_to_run)


class RecordingASHA(ASHAScheduler):
    """ASHA that notes the trials it stops early (in the driver's record of this run of the
    search in `folder`, `search.engine.driver`), and leaves the search's long-horizon starts
    unjudged.

    Tune marks a trial ASHA stopped TERMINATED, like one that finished; this record is what
    tells "stopped" from "completed" or "cut".

    A trial whose configuration is one of `long_horizon` (the budget's bets,
    `search.engine.warm.long_horizon_starts`: a wide network the budget lets read the text many
    times, and where the budget grows it, a deeper one of the same weights) is not judged at
    the rungs, where it is behind what learns fast by design; it trains to `max_t` unless it
    plateaus, the deadline comes or (two bets) the endgame finds it behind the other. With
    `yardstick`, its values at the rungs are written down like any trial's, and a trial behind
    it at a rung stops (behind the better, with two): it is the slow starter, so a trial behind
    it at equal training time is behind the budget's bet and frees its slot (without, a lone
    trial in the other slot is first at every rung and never judged). That holds whichever of
    the two reaches the rung first: a trial that gets there before a long-horizon start (still
    running) pauses there, and its slot waits with it (paused trials count against the
    search's concurrency), until the long-horizon start's value there is written down; then it
    stops if behind it, else resumes from its checkpoint. It waits at most `WAIT_SHARE` of its
    training seconds (at least `MIN_WAIT_S`). Without the wait it trained on to its next
    report, up to a quarter of the budget later, before it was found behind. Its end value is
    never written down.

    The budget's last `endgame_share` goes to the best trials (no trial starts in it: the
    searcher's last start). At its next report there, a trial behind another live trial's best
    value on the whole text stops, a long-horizon start only behind another one; and where the
    search runs on one machine of `grow_to` CPUs, a trial that goes on takes its equal share of
    them (at least `base_cpus`): it pauses at that report and resumes from its checkpoint with
    the new CPUs as its torch threads (`trial.update_resources`, as Tune's
    ResourceChangingScheduler does, which refuses the actor reuse this search keeps). A lone
    trial on two cores trains 1.3 to 2.5 times as fast on both (`benchmarks/bench_threads.py`).
    Not in the last `MIN_GROW_LEFT_S` of the budget: the restart costs a few seconds.

    Which report comes first decides nothing, but a trial ahead that reported before a rival
    trained on with its old CPUs after the rival stopped, to its next report (a twentieth of
    the budget: on an hour, three minutes of one core idle). So a trial that goes on in the
    endgame, and would take more CPUs were the rivals behind it to stop, pauses at its report
    for those whose next report (at their next point of `report_s`) comes, at its pace, within
    `hold_s`, at most `hold_s`; then it resumes with its share of the CPUs, or stops if a
    rival's report put it behind.

    What it writes down (the values at the rungs, each trial's best on the whole text) goes to
    the folder's `state/scheduler.json` as it changes, and a resumed search reads it back at
    its first trial: Tune restores a scheduler as it was made, without its records, and the
    rungs would otherwise judge only the trials that reach them after the resume (a new trial
    at the first rung would find nobody's value there, the yardstick's included).

    The CPUs are shared the same way before the endgame once nothing is left to start: the
    searcher is past its last start (`last_start_s` into this run) or has made its `trials`.
    Without, a search of few trials (`--trials`, or the warm starts alone) left
    a slot idle from its last trial's end to the endgame. Only the sharing: the trials behind
    stop in the endgame only.
    """

    def __init__(
        self,
        *args: Any,
        folder: str,
        long_horizon: Sequence[dict[str, Any]] = (),
        yardstick: bool = True,
        endgame_share: float = 0.0,
        grow_to: float | None = None,
        base_cpus: float = 1.0,
        last_start_s: float | None = None,
        trials: int | None = None,
        hold_s: float = 0.0,
        report_s: Sequence[float] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.folder = folder
        self.long_horizon = [dict(p) for p in long_horizon]
        self.yardstick = yardstick
        self.endgame_share = endgame_share
        self.grow_to = grow_to
        self.base_cpus = base_cpus
        self.last_start_s = last_start_s
        self.trials = trials
        self.hold_s = hold_s
        self.report_s = tuple(sorted(report_s))  # training seconds at which every trial reports
        self.unjudged: set[str] = set()  # trial ids of long-horizon trials
        self.waiting: dict[str, float] = {}  # trial id -> until when it waits for the yardstick
        self.best: dict[str, float] = {}  # trial id -> its best value on the whole text
        self.regrow: dict[str, float] = {}  # trial id -> the CPUs it resumes with (endgame)
        # trial id -> (its report before the last, its last): (training seconds, time.time())
        self.reported: dict[str, tuple[tuple[float, float] | None, tuple[float, float]]] = {}
        self.held: dict[str, tuple[float, set[str]]] = {}  # trial id -> (since, rivals awaited)
        self.brackets_before: dict[str, int] | None = None  # read at the first trial
        self.written: dict[str, Any] | None = None  # what state/scheduler.json holds

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A scheduler pickled by an earlier version (a resumed search) has no endgame."""
        defaults = {"endgame_share": 0.0, "grow_to": None, "base_cpus": 1.0, "best": {},
                    "regrow": {}, "last_start_s": None, "trials": None, "hold_s": 0.0,
                    "report_s": (), "reported": {}, "held": {}, "brackets_before": None,
                    "written": None}  # fmt: skip
        self.__dict__.update({**defaults, **state})

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        if self.brackets_before is None:
            self.read_records()
        super().on_trial_add(tune_controller, trial)
        bracket = self.brackets_before.get(trial.trial_id)
        if bracket is not None:  # a trial of an earlier run: the bracket it was judged in
            asha_place(self, trial.trial_id, bracket)
            # Tune restores it as of its last save; what it wrote down since, it writes again
            asha_forget_after(self, trial.trial_id, (trial.last_result or {}).get(TIME_ATTR, 0.0))
        if any(is_point(trial.config, p) for p in self.long_horizon):
            self.unjudged.add(trial.trial_id)

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        if trial.trial_id in self.unjudged:  # its end value is not a rung value to compare with
            asha_forget(self, trial.trial_id)
        else:
            super().on_trial_complete(tune_controller, trial, result)
        self.write_records()

    def read_records(self) -> None:
        """What an earlier run of this search wrote down (`write_records`), back in place."""
        saved = SearchFolder(self.folder).scheduler() or {}
        self.brackets_before = asha_restore_records(self, saved.get("asha", {}))
        self.best.update({str(t): float(v) for t, v in saved.get("best", {}).items()})

    def write_records(self) -> None:
        """`state/scheduler.json` again where something new was written down; a failed write
        costs only what a resume would know (the search goes on)."""
        records = {"asha": asha_records(self), "best": dict(self.best)}
        if records == self.written:
            return
        try:
            SearchFolder(self.folder).write_scheduler(records)
        except OSError:
            return
        self.written = records

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if TIME_ATTR in result:
            last = self.reported.get(trial.trial_id, (None, None))[1]
            self.reported[trial.trial_id] = (last, (result[TIME_ATTR], time.time()))
        if "val_total" in result and result.get("val_chars") == result["val_total"]:
            mine = self.best.get(trial.trial_id, math.inf)
            self.best[trial.trial_id] = min(mine, result[METRIC])
        action = self.verdict(tune_controller, trial, result)
        if action == self.CONTINUE and not result.get("end"):
            if self.in_endgame():
                action = self.endgame(tune_controller, trial)
            elif self.nothing_to_start(tune_controller):
                action = self.share(tune_controller, trial)
        self.write_records()
        return action

    def verdict(self, tune_controller: Any, trial: Any, result: dict) -> str:
        """ASHA's verdict, the long-horizon starts left unjudged and the others judged by them."""
        if trial.trial_id in self.unjudged:
            if self.yardstick:  # written down at the rung; its own verdict is ignored
                super().on_trial_result(tune_controller, trial, result)
            return self.STOP if result.get(TIME_ATTR, 0.0) >= asha_max_t(self) else self.CONTINUE
        action = super().on_trial_result(tune_controller, trial, result)
        judged = self.yardstick and self.unjudged  # there is a long-horizon trial to judge by
        if action == self.CONTINUE and judged and self.behind_yardstick(trial.trial_id):
            action = self.STOP
        elif (
            action == self.CONTINUE
            and judged
            and not result.get("end")
            and self.awaits_yardstick(trial.trial_id, tune_controller.get_trials())
        ):
            wait_s = max(MIN_WAIT_S, WAIT_SHARE * result.get(TIME_ATTR, 0.0))
            self.waiting[trial.trial_id] = time.time() + wait_s
            action = self.PAUSE
        if action == self.STOP and not result.get("end"):
            this_run(self.folder).stopped.add(trial.trial_id)
        return action

    def in_endgame(self) -> bool:
        """Whether the budget's last `endgame_share` has begun in this run of the search."""
        if not self.endgame_share:
            return False
        run = this_run(self.folder)
        return time.time() >= run.deadline - self.endgame_share * (run.deadline - run.started)

    def nothing_to_start(self, tune_controller: Any) -> bool:
        """Whether the searcher will start no more trials in this run of the search: it is past
        its last start, or it has made its `trials` (one still waiting to start is live, and
        `share` counts it)."""
        if self.trials and len(tune_controller.get_trials()) >= self.trials:
            return True
        if self.last_start_s is None:
            return False
        return this_run(self.folder).past(self.last_start_s)

    def endgame(self, tune_controller: Any, trial: Any) -> str:
        """At a report in the endgame: a trial behind (`behind_in_endgame`) stops; one that goes
        on waits for the rivals about to report where their stopping would give it more CPUs
        (`due_rivals`, `released`), else takes its share of the CPUs (`share`)."""
        if self.behind_in_endgame(tune_controller, trial):
            this_run(self.folder).stopped.add(trial.trial_id)
            return self.STOP
        due = self.due_rivals(tune_controller, trial)
        if due and self.grows_without(tune_controller, trial, due):
            self.held[trial.trial_id] = (time.time(), due)
            return self.PAUSE
        return self.share(tune_controller, trial)

    def behind_in_endgame(self, tune_controller: Any, trial: Any) -> bool:
        """Whether `trial` is behind another live trial's best value on the whole text. A
        long-horizon start is the budget's bet: it is behind only another one (a budget may
        bet on two shapes, `search.engine.warm.long_horizon_starts`)."""
        mine = self.best.get(trial.trial_id, math.inf)  # none yet: not judged
        bet = trial.trial_id in self.unjudged
        others = [self.best[t.trial_id] for t in live_trials(tune_controller)
                  if t.trial_id != trial.trial_id and t.trial_id in self.best
                  and (t.trial_id in self.unjudged or not bet)]  # fmt: skip
        return math.inf > mine > min(others, default=mine)

    def due_rivals(self, tune_controller: Any, trial: Any) -> set[str]:
        """The other running trials that `trial`'s best value could stop at their next report
        (behind it now; of the long-horizon starts, only where `trial` is one) that will make
        it, at `trial`'s pace since its report before, within `hold_s`: at their next point of
        `report_s` (without, the training seconds of `trial`'s last report)."""
        if self.hold_s <= 0:
            return set()
        previous, (train_s, now) = self.reported[trial.trial_id]
        bet, mine = trial.trial_id in self.unjudged, self.best.get(trial.trial_id, math.inf)
        pace = 1.0  # wall seconds per training second: at least 1
        if previous is not None and train_s > previous[0]:
            pace = max(pace, (now - previous[1]) / (train_s - previous[0]))
        due = set()
        for other in tune_controller.get_trials():
            last = self.reported.get(other.trial_id, (None, None))[1]
            if other is trial or other.status != Trial.RUNNING or last is None:
                continue
            stoppable = bet or other.trial_id not in self.unjudged
            if not stoppable or not self.best.get(other.trial_id, -math.inf) > mine:
                continue
            ahead = [p for p in self.report_s if p > last[0]]
            reports_at = ahead[0] if ahead else train_s
            if (
                last[0] < reports_at
                and last[1] + (reports_at - last[0]) * pace <= now + self.hold_s
            ):
                due.add(other.trial_id)
        return due

    def grows_without(self, tune_controller: Any, trial: Any, rivals: set[str]) -> bool:
        """Whether `trial` would take more CPUs were `rivals` to stop (on one machine, not near
        the deadline)."""
        if not self.may_grow():
            return False
        left = [t for t in self.going_on(tune_controller) if t.trial_id not in rivals]
        return self.cpus_among(len(left)) > trial_cpus(trial)

    def going_on(self, tune_controller: Any) -> list[Any]:
        """The live trials but those this run stopped (Tune may not have ended them yet) and
        those held for a report that put them behind (`released` stops them)."""
        stopped = this_run(self.folder).stopped
        return [t for t in live_trials(tune_controller) if t.trial_id not in stopped
                and not (t.trial_id in self.held
                         and self.behind_in_endgame(tune_controller, t))]  # fmt: skip

    def may_grow(self) -> bool:
        """Whether trials take freed CPUs now: on one machine, not near the deadline."""
        left_s = this_run(self.folder).deadline - time.time()
        return self.grow_to is not None and left_s >= MIN_GROW_LEFT_S

    def cpus_among(self, live: int) -> float:
        """A trial's share of the machine's CPUs among `live` trials (at least `base_cpus`)."""
        return max(self.base_cpus, float(int(self.grow_to // max(1, live))))

    def share(self, tune_controller: Any, trial: Any) -> str:
        """On one machine, a trial that goes on pauses to resume with its equal share of the
        machine's CPUs among the live trials (at least `base_cpus`) where that changed
        (`choose_trial_to_run`); not near the deadline."""
        if not self.may_grow():
            return self.CONTINUE
        cpus = self.cpus_among(len(self.going_on(tune_controller)))
        if cpus == trial_cpus(trial):
            return self.CONTINUE
        self.regrow[trial.trial_id] = cpus
        return self.PAUSE

    @saving_logs
    def choose_trial_to_run(self, tune_controller: Any) -> Any:
        """A trial paused in the endgame resumes at once with its new CPUs, or, where it waits
        for its rivals' reports (`endgame`), once they reported, ended, or `hold_s` passed: with
        its share of the CPUs, or stopped if now behind. A trial that waited for the yardstick
        is stopped once found behind it, and resumed once it is not (or has waited long
        enough); while it waits, its slot does too. Then Tune's order: a new trial first, then
        a paused one."""
        trials = list(tune_controller.get_trials())
        for trial in trials:
            cpus = self.regrow.get(trial.trial_id)
            if cpus is not None and trial.status in (Trial.PAUSED, Trial.TERMINATED, Trial.ERROR):
                del self.regrow[trial.trial_id]
                if trial.status == Trial.PAUSED:
                    trial.update_resources(with_cpus(trial.placement_group_factory, cpus))
                    return trial
        for trial in trials:
            if trial.trial_id in self.held and self.released(tune_controller, trial):
                return trial
        for trial in trials:
            until = self.waiting.get(trial.trial_id)
            if until is None:
                continue
            if trial.status in (Trial.TERMINATED, Trial.ERROR):  # stopped meanwhile
                del self.waiting[trial.trial_id]
            elif trial.status != Trial.PAUSED:  # Tune is still pausing it
                continue
            elif self.behind_yardstick(trial.trial_id):
                del self.waiting[trial.trial_id]
                this_run(self.folder).stopped.add(trial.trial_id)
                tune_controller.stop_trial(trial)
            elif time.time() > until or not self.awaits_yardstick(trial.trial_id, trials):
                del self.waiting[trial.trial_id]
                return trial
        for status in (Trial.PENDING, Trial.PAUSED):
            for trial in trials:
                waits = trial.trial_id in self.waiting or trial.trial_id in self.held
                if trial.status == status and not waits:
                    return trial
        return None

    def released(self, tune_controller: Any, trial: Any) -> bool:
        """Whether `trial`, held in the endgame for its rivals' reports, resumes now: once they
        reported or ended, or `hold_s` passed, it resumes with its share of the CPUs, or stops
        if a rival's report put it behind."""
        since, rivals = self.held[trial.trial_id]
        if trial.status in (Trial.TERMINATED, Trial.ERROR):  # stopped meanwhile
            del self.held[trial.trial_id]
            return False
        if trial.status != Trial.PAUSED:  # Tune is still pausing it
            return False
        awaited = [t for t in tune_controller.get_trials()
                   if t.trial_id in rivals and t.status == Trial.RUNNING
                   and self.reported[t.trial_id][1][1] < since]  # fmt: skip
        if awaited and time.time() < since + self.hold_s:
            return False
        del self.held[trial.trial_id]
        if self.behind_in_endgame(tune_controller, trial):
            this_run(self.folder).stopped.add(trial.trial_id)
            tune_controller.stop_trial(trial)
            return False
        if self.may_grow():
            cpus = self.cpus_among(len(self.going_on(tune_controller)))
            if cpus != trial_cpus(trial):
                trial.update_resources(with_cpus(trial.placement_group_factory, cpus))
        return True

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        self.waiting.pop(trial.trial_id, None)
        self.regrow.pop(trial.trial_id, None)
        self.held.pop(trial.trial_id, None)
        super().on_trial_remove(tune_controller, trial)

    def behind_yardstick(self, trial_id: str) -> bool:
        """Whether the trial's value at some rung is worse than a long-horizon trial's there."""
        for recorded in asha_rung_records(self, trial_id):
            mine = recorded.get(trial_id)
            marks = [recorded[t] for t in self.unjudged if recorded.get(t) is not None]
            if mine is not None and marks and mine < max(marks):  # rewards: higher is better
                return True
        return False

    def awaits_yardstick(self, trial_id: str, trials: Sequence[Any]) -> bool:
        """Whether a running long-horizon trial has yet to write down its value at a rung the
        trial has one at (in the trial's bracket: the rungs are the same records)."""
        running = [t.trial_id for t in trials
                   if t.trial_id in self.unjudged and t.status == Trial.RUNNING]  # fmt: skip
        bets = {t: asha_rung_records(self, t) for t in running if asha_known(self, t)}
        for recorded in asha_rung_records(self, trial_id):
            if recorded.get(trial_id) is None:
                continue
            for bet, rungs in bets.items():
                if any(r is recorded for r in rungs) and recorded.get(bet) is None:
                    return True
        return False


def live_trials(tune_controller: Any) -> list[Any]:
    """The trials that have not ended: running, paused or waiting to start."""
    return [t for t in tune_controller.get_trials()
            if t.status not in (Trial.TERMINATED, Trial.ERROR)]  # fmt: skip


def trial_cpus(trial: Any) -> float:
    """The CPUs of a trial's first bundle: its process's."""
    return float(trial.placement_group_factory.bundles[0].get("CPU", 0))


def with_cpus(factory: PlacementGroupFactory, cpus: float) -> PlacementGroupFactory:
    """`factory` with `cpus` CPUs in its first bundle, as Tune's ResourceChangingScheduler
    builds its new resources (which refuses `reuse_actors`, which this search keeps)."""
    bundles = [{**factory.bundles[0], "CPU": cpus}, *factory.bundles[1:]]
    grown = PlacementGroupFactory(bundles, *factory._args, strategy=factory.strategy,
                                  **factory._kwargs)  # fmt: skip
    grown._head_bundle_is_empty = factory._head_bundle_is_empty
    return grown


def is_terminal(stream: Any) -> bool:
    """A terminal with a width: tqdm draws nothing on one without (a pty left unsized)."""
    try:
        return stream.isatty() and os.get_terminal_size(stream.fileno()).columns > 0
    except (AttributeError, OSError, ValueError):
        return False


class ProgressLines(tune.Callback):
    """The search's progress display, and its status file (see `search.reports.progress`).

    Driven by Tune's callback hooks in the driver (no thread of its own): `on_step_end`, called
    every loop of Tune's controller, checks the clock and does something only when a refresh
    is due. On a terminal, tqdm bars (the budget, then the counts and best, then one line per
    running trial) refresh every `refresh_s`; elsewhere (a log, CI) one compact line every
    `every_s`. Either way each finished trial gets a line, and `status.json` in the search
    folder is rewritten at most every `status_every_s` when something changed. `cost_s` adds up
    the driver's time spent here (also written to status.json as `display_cost_s`).
    """

    def __init__(
        self,
        total: int,
        folder: str,
        every_s: float = 30.0,
        terminal: bool | None = None,
        refresh_s: float = 2.0,
        status_every_s: float = 5.0,
    ) -> None:
        self.total = total  # trials at most; 0: as many as the budget holds
        self.folder = folder
        self.every_s = every_s
        self.terminal = terminal  # None: whether stdout is a terminal
        self.refresh_s = refresh_s
        self.status_every_s = status_every_s
        self._reset()

    def _reset(self) -> None:
        self.board: Board | None = None
        self.done = 0  # trials ended in this run
        self.cost_s = 0.0
        self._bars: list[Any] = []
        self._next_line = self._next_status = self._written = 0.0
        self._dirty = True

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles callbacks (tuner.pkl): no bars
        state = self.__dict__.copy()
        state.update(board=None, _bars=[])
        return state

    def setup(self, **info: Any) -> None:
        self._reset()
        if self.terminal is None:
            self.terminal = is_terminal(sys.stdout)
        folder, run = SearchFolder(self.folder), this_run(self.folder)
        self.board = Board(run.started, run.deadline, folder.rungs())
        if folder.has_trials():  # a resumed search: the trials of its earlier runs
            for row in folder.trials().to_pylist():
                self.board.earlier(row)
        self._next_line = time.monotonic()  # a first line at once

    # -- Tune's hooks ---------------------------------------------------------------------------

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **_: Any) -> None:
        with self._timed():
            self._board().start(trial.trial_id, trial.config or {})
            self._dirty = True

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **_: Any
    ) -> None:
        with self._timed():
            self._board().report(trial.trial_id, trial.config or {}, result)
            self._dirty = True

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **_: Any) -> None:
        with self._timed():
            if METRIC in (trial.last_result or {}):  # not a suggestion that never started
                self._ended(trial, "stopped")
            elif trial.trial_id in self._board().trials:  # started, stopped before a report
                self._board().end(trial.trial_id, trial.config or {}, "stopped")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **_: Any) -> None:
        with self._timed():
            self._ended(trial, "failed")

    def on_step_end(self, iteration: int, trials: list, **_: Any) -> None:
        with self._timed():
            self._tick(time.monotonic())

    def on_experiment_end(self, trials: list, **_: Any) -> None:
        with self._timed():
            board = self._board()
            for row in board.trials.values():
                if row["status"] == RUNNING:
                    row["status"] = "unfinished"
            self._write_status(force=True)
        for bar in self._bars:
            bar.close()
        self._bars = []

    # -- the display ------------------------------------------------------------------------------

    def _board(self) -> Board:
        if self.board is None:  # restored from tuner.pkl without setup (should not happen)
            self.setup()
        assert self.board is not None
        return self.board

    @contextmanager
    def _timed(self) -> Iterator[None]:
        """Adds the time spent inside to `cost_s`: the display's cost to the driver."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.cost_s += time.perf_counter() - started

    def _tick(self, now: float) -> None:
        if now >= self._next_status:  # also unchanged now and then: a heartbeat for readers
            self._write_status(force=now - self._written >= HEARTBEAT_S)
        if now >= self._next_line:
            self._next_line = now + (self.refresh_s if self.terminal else self.every_s)
            wall = time.time()
            snap = self._board().snapshot(wall)
            if self.terminal:
                self._draw(snap)
            else:
                print(f"[{wall - snap['started']:5.0f} s] {progress_line(snap, wall)}", flush=True)

    def _write_status(self, force: bool = False) -> None:
        if not (self._dirty or force):
            return
        self._written = time.monotonic()
        self._next_status = self._written + self.status_every_s
        self._dirty = False
        snap = self._board().snapshot(time.time())
        snap["display_cost_s"] = self.cost_s
        SearchFolder(self.folder).write_status(snap)

    def _draw(self, snap: dict[str, Any]) -> None:
        """On a terminal: the budget as a bar, then the counts and best, then one line per
        running trial, each a tqdm bar redrawn in place."""
        now = time.time()
        lines = [f"{counts_text(snap['counts'])} | {best_text(snap['best'])}"]
        lines += running_lines(snap)
        if not self._bars:
            tqdm.monitor_interval = 0  # no monitor thread: these bars are redrawn from here
            budget = round(snap["deadline"] - snap["started"])
            fmt = "{desc} |{bar}| {n:.0f}/{total:.0f} s"
            self._bars.append(self._bar(total=budget, bar_format=fmt, leave=True))
        while len(self._bars) < len(lines) + 1:
            self._bars.append(self._bar(total=0, bar_format="{desc}", leave=False))
        self._bars[0].n = round(min(self._bars[0].total, max(0.0, now - snap["started"])))
        left = max(0.0, snap["deadline"] - now)
        self._bars[0].set_description_str(f"budget, {left:.0f} s left")  # refreshes it
        for bar, line in zip(self._bars[1:], [*lines, *[""] * len(self._bars)], strict=False):
            bar.set_description_str(line)

    def _bar(self, **kwargs: Any) -> Any:
        return tqdm(position=len(self._bars), file=sys.stdout, dynamic_ncols=True, **kwargs)

    def _ended(self, trial: Any, what: str) -> None:
        """A line per finished trial, with the running best (also above the bars)."""
        last = trial.last_result or {}
        if last.get("diverged"):
            status, shown = "diverged", "loss exploded"
        else:
            status = what if what == "failed" else last.get("end") or what
            value = last.get(METRIC)
            shown = f"val_bpc {value:.4f}" if value is not None else "no report"
        board = self._board()
        if last:
            board.report(trial.trial_id, trial.config or {}, last)
        board.end(trial.trial_id, trial.config or {}, status)
        self.done += 1
        self._dirty = True
        words = {"cut": "cut by the budget", "failed": "failed", "stopped": "stopped"}
        total = f"/{self.total}" if self.total else ""
        best = board.snapshot(time.time())["best"]
        seconds = last.get(TIME_ATTR, 0.0)
        line = (
            f"[{time.time() - board.started:5.0f} s] trial {self.done}{total} {trial.trial_id} "
            f"{words.get(status, status)} after {seconds:.0f} s of training, {shown}; "
            + (f"best so far {best['val_bpc']:.4f}" if best else "best so far -")
        )
        if self._bars:
            tqdm.write(line)
        else:
            print(line, flush=True)
