"""Successive halving by promotion, within a time budget (`--scheduler promote`).

Ray Tune's `ASHAScheduler` decides the moment a trial reaches a rung: it continues if it is
in the best 1/rf of the trials recorded there so far, else it stops for good. The first trial
at a rung has nothing to be compared with and always continues. With many workers that is a
small price; with the few trial slots of one machine it decides the whole search: the first
two trials (the warm starts) pass every rung while they stay the best and keep both slots to
the end, and little else is tried (docs/search.md, "Choosing the scheduler": at 5 minutes on 2 cores
that exploitation measured better than this scheduler's exploration).

This scheduler is ASHA as its paper gives it (Li et al., "A System for Massively Parallel
Hyperparameter Tuning", 2020, Algorithm 2): a trial that reaches a rung is paused with its
checkpoint, and a free slot goes to the best promotable trial, one in the top 1/rf of those
recorded at its rung and not yet promoted, highest rung first; only when there is none does a
new trial start. Tune pauses and resumes the trials (`PAUSE`, `choose_trial_to_run`), which
continue from their rung checkpoints.

The time budget adds an end game. New trials start only in the first third of the budget
(`Schedule.explore_s`); after that, paused trials are resumed best first (highest rung, then
lowest value), whatever the quota, so the rest of the budget goes to continuing the most
promising trials from their checkpoints; a trial reaching a rung then continues unless a paused
one ranks above it. Trials still paused when too little time is left for them to
train are stopped, and recorded as stopped at their rung.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from search.engine.adapters import METRIC, MODE, TIME_ATTR, saving_logs
from search.engine.compat import set_objective
from search.engine.driver import this_run


class PromotionScheduler(FIFOScheduler):
    """Pause at rungs, promote the best; see the module docstring."""

    def __init__(
        self,
        *,
        rungs_s: Sequence[float],
        reduction_factor: int,
        slots: int,
        folder: str,
        last_start_s: float,
        min_run_s: float,
    ) -> None:
        super().__init__()
        set_objective(self, METRIC, MODE)
        self.rungs_s = tuple(rungs_s)  # training seconds, ascending; a trial's end is not one
        self.reduction_factor = reduction_factor
        self.slots = slots
        self.folder = folder  # the search's folder: names this run's clock and early stops
        self.last_start_s = last_start_s  # no new trial after this: the end game
        self.min_run_s = min_run_s  # resuming a trial with less time left is not worth it
        self.recorded: list[dict[str, float]] = [{} for _ in self.rungs_s]
        self.promoted: list[set[str]] = [set() for _ in self.rungs_s]
        self.waiting: dict[str, int] = {}  # paused trial id -> the rung it waits at
        # Promoted, handed to Tune, not running yet (Tune keeps a resumed trial PENDING until
        # its actor starts): each holds the slot it was promoted into.
        self.resuming: set[str] = set()

    # -- decisions ---------------------------------------------------------------------------

    def _rung(self, trial_id: str, seconds: float) -> int | None:
        """The rung a report after `seconds` of training records, if any: the highest passed,
        when this trial has no value there yet."""
        passed = [k for k, r in enumerate(self.rungs_s) if seconds >= r]
        if passed and trial_id not in self.recorded[passed[-1]]:
            return passed[-1]
        return None

    def _promotable(self, k: int) -> list[str]:
        """Trials of rung k in its best 1/rf that were not promoted yet, best first."""
        ranked = sorted(self.recorded[k], key=self.recorded[k].__getitem__)
        quota = len(ranked) // self.reduction_factor
        return [t for t in ranked[:quota] if t not in self.promoted[k]]

    def _candidates(self, end_game: bool) -> list[tuple[int, str]]:
        """(rung, trial id) of paused trials to resume, best first."""
        found = []
        for k in reversed(range(len(self.rungs_s))):
            if end_game:  # any paused trial, by rung then value
                waiting = [t for t, r in self.waiting.items() if r == k]
                found += [(k, t) for t in sorted(waiting, key=self.recorded[k].__getitem__)]
            else:
                found += [(k, t) for t in self._promotable(k) if self.waiting.get(t) == k]
        return found

    def _clock(self) -> tuple[float, float]:
        """Seconds since this run of the search started, and seconds left to its deadline."""
        run, now = this_run(self.folder), time.time()
        return now - run.started, run.deadline - now

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        # A search resumed after an interruption: a trial that reported at a rung waits there
        # again, to be promoted by the same rules. Tune hands restored trials over as PENDING,
        # paused ones too, so the status says nothing; nor does a promoted trial differ here
        # from one waiting at its last rung (this scheduler keeps no state across runs).
        last = trial.last_result or {}
        if trial.status in (Trial.PENDING, Trial.PAUSED) and METRIC in last and not last.get("end"):
            k = self._rung(trial.trial_id, last.get(TIME_ATTR, 0.0))
            if k is not None:
                self.recorded[k][trial.trial_id] = last[METRIC]
                self.waiting[trial.trial_id] = k

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        if result.get("end") or result.get("diverged") or METRIC not in result:
            return TrialScheduler.CONTINUE
        k = self._rung(trial.trial_id, result.get(TIME_ATTR, 0.0))
        if k is None:
            return TrialScheduler.CONTINUE  # a checkpoint between rungs
        self.recorded[k][trial.trial_id] = result[METRIC]
        elapsed, _ = self._clock()
        if elapsed > self.last_start_s:  # end game: keep the slot unless a paused one is better
            value = result[METRIC]
            better = [
                (r, t) for r, t in self._candidates(end_game=True)
                if r > k or (r == k and self.recorded[r][t] < value)
            ]  # fmt: skip
            if not better:
                self.promoted[k].add(trial.trial_id)
                return TrialScheduler.CONTINUE
            self.waiting[trial.trial_id] = k
            return TrialScheduler.PAUSE
        best = self._candidates(end_game=False)
        if trial.trial_id in self._promotable(k) and (not best or best[0][0] <= k):
            # It is the best use of its own slot: no pause and resume.
            others = [t for r, t in best if r == k]
            if not others or self.recorded[k][trial.trial_id] <= self.recorded[k][others[0]]:
                self.promoted[k].add(trial.trial_id)
                return TrialScheduler.CONTINUE
        self.waiting[trial.trial_id] = k
        return TrialScheduler.PAUSE

    @saving_logs
    def choose_trial_to_run(self, tune_controller: Any) -> Trial | None:
        trials = {t.trial_id: t for t in tune_controller.get_trials()}
        elapsed, left = self._clock()
        end_game = elapsed > self.last_start_s
        if end_game and (self.waiting or left < self.min_run_s):
            # A new trial suggested before the end game but still waiting for a slot: the slot
            # goes to a paused trial, or there is no time for a new one to reach a rung.
            for trial in trials.values():
                never_ran = METRIC not in (trial.last_result or {}) and not trial.num_failures
                if trial.status == Trial.PENDING and never_ran:
                    tune_controller.stop_trial(trial)
        if end_game and left < self.min_run_s:
            self._stop_waiting(tune_controller, trials)
            return None
        # A scheduler pickled by an earlier version (a resumed search) has no such set.
        resuming = self.__dict__.setdefault("resuming", set())
        resuming &= {i for i, t in trials.items() if t.status in (Trial.PENDING, Trial.PAUSED)}
        running = sum(t.status == Trial.RUNNING for t in trials.values()) + len(resuming)
        if running < self.slots:  # a slot is free: promotions first
            for k, trial_id in self._candidates(end_game):
                trial = trials.get(trial_id)
                if trial is not None and trial.status in (Trial.PAUSED, Trial.PENDING):
                    self.promoted[k].add(trial_id)
                    del self.waiting[trial_id]
                    resuming.add(trial_id)
                    return trial
        # Then a new trial, if the searcher gave one; paused trials wait for promotion.
        return next((t for i, t in trials.items() if t.status == Trial.PENDING and
                     i not in self.waiting and i not in resuming), None)  # fmt: skip

    def _stop_waiting(self, tune_controller: Any, trials: dict[str, Trial]) -> None:
        """Stop the trials still paused: too little time is left to resume them."""
        for trial_id in list(self.waiting):
            trial = trials.get(trial_id)
            del self.waiting[trial_id]
            if trial is not None and trial.status in (Trial.PAUSED, Trial.PENDING):
                this_run(self.folder).stopped.add(trial_id)
                tune_controller.stop_trial(trial)

    def on_trial_remove(self, tune_controller: Any, trial: Trial) -> None:
        self.waiting.pop(trial.trial_id, None)
        self.__dict__.get("resuming", set()).discard(trial.trial_id)

    def debug_string(self) -> str:
        counts = ", ".join(f"{r:.0f} s: {len(v)}" for r, v in zip(self.rungs_s, self.recorded,
                                                                  strict=True))  # fmt: skip
        return f"PromotionScheduler: trials recorded per rung {counts}; {len(self.waiting)} paused"
