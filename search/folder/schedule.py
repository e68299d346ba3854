"""The schedule of a search, derived from its time budget and the number of trial slots.

    plan = plan_schedule(budget_s=300, slots=2)
    plan.max_t_s, plan.rungs_s, plan.last_start_s   # 296.0, (11.0, 32.9, 98.7, 296.0), 285.0

The budget is the main knob. A trial's time axis is seconds of training steps (`train_s`), so
the scheduler compares trials at equal compute whatever their size, batch or sequence length.
From the budget come:

- `max_t_s`: what one trial may train, almost the whole budget. A configuration that stays the
  best at every rung keeps its slot to the end, which is what a single well-chosen run would
  get; the other slots explore.
- rungs: ASHA's successive halving, `max_t_s / rf^k` down to a first rung (the grace period) of
  at least `MIN_GRACE_S` and `GRACE_SHARE` of the budget: per-trial costs (start-up, the first
  validation) stay small next to it, and, with rf = 3, a trial is first judged after the same
  share of its possible training (a 27th) whatever the budget, from about 140 s up (below
  that the 5 s minimum leaves one halving fewer: a 9th at 100 s). Successive halving favours what
  learns fast over what learns far (its short-horizon bias); a longer budget, which is there for
  the networks that learn far, must not judge them earlier in their training than a short one.
- `last_start_s`: no trial starts once it could not reach the first rung before the budget
  ends; those seconds go to the trials already running.
- `explore_s`: with the `promote` scheduler, new trials start only in the first third of the
  budget; the rest goes to the most promising trials, resumed from their checkpoints.
- the number of TPE's random start-up trials, from how many trials the budget can hold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from model.errors import ConfigError

REDUCTION_FACTOR = 3  # Hyperband's eta: keep the best third at every rung
MIN_GRACE_S = 5.0  # the shortest first rung, in training seconds
GRACE_SHARE = 0.03  # and at least this share of the budget: at most 3 halvings at rf 3
END_RESERVE_S = 2.0  # budget kept for the last trials' final validation and report
START_COST_S = 2.0  # a trial's start before its first training step, roughly (measured ~1 s)
MIN_BUDGET_S = 20.0  # below this no trial could reach a first rung and continue past it
MIN_STARTUP_TRIALS, MAX_STARTUP_TRIALS = 3, 10  # TPE's random start-up, besides warm starts
EXPLORE_SHARE = 1 / 3  # promote: new trials start in this first share of the budget only


@dataclass(frozen=True)
class Schedule:
    budget_s: float  # wall seconds the search may spend on trials
    slots: int  # trials at once
    max_t_s: float  # training seconds of a trial that is never stopped
    grace_s: float  # training seconds before a trial can first be stopped (first rung)
    reduction_factor: int  # keep the best 1/rf of the trials at each rung
    last_start_s: float  # seconds into the budget after which no trial could reach a rung
    explore_s: float  # promote: seconds into the budget after which no trial starts, and the
    # rest goes to continuing the most promising trials
    startup_trials: int  # TPE's random trials before it models the results

    @property
    def rungs_s(self) -> tuple[float, ...]:
        """Training seconds at which the scheduler compares trials, last = max_t_s."""
        rungs, t = [], self.grace_s
        while t < self.max_t_s * (1 - 1e-9):
            rungs.append(t)
            t *= self.reduction_factor
        return (*rungs, self.max_t_s)


def plan_schedule(
    budget_s: float,
    slots: int,
    reduction_factor: int = REDUCTION_FACTOR,
    grace_share: float = GRACE_SHARE,
) -> Schedule:
    """The schedule for `budget_s` wall seconds on `slots` trial slots (see the module doc);
    the first rung at least `grace_share` of the budget."""
    if not budget_s >= MIN_BUDGET_S or not math.isfinite(budget_s):
        raise ConfigError(f"time budget must be at least {MIN_BUDGET_S:g} s, got {budget_s:g}")
    if slots < 1:
        raise ConfigError(f"slots must be at least 1, got {slots}")
    if reduction_factor < 2:
        raise ConfigError(f"reduction_factor must be at least 2, got {reduction_factor}")
    max_t = max(1.0, budget_s - END_RESERVE_S - START_COST_S)
    floor = min(max_t, max(MIN_GRACE_S, grace_share * budget_s))
    rungs_below = int(math.log(max_t / floor) / math.log(reduction_factor) + 1e-9)
    grace = max_t / reduction_factor**rungs_below
    # Trials the budget holds if most stop at the first rung: the number TPE starts from.
    expected = slots * budget_s / (grace + START_COST_S)
    startup = min(MAX_STARTUP_TRIALS, max(MIN_STARTUP_TRIALS, round(expected / 5)))
    return Schedule(
        budget_s=budget_s,
        slots=slots,
        max_t_s=max_t,
        grace_s=grace,
        reduction_factor=reduction_factor,
        last_start_s=max(0.0, budget_s - END_RESERVE_S - START_COST_S - grace),
        explore_s=budget_s * EXPLORE_SHARE,
        startup_trials=startup,
    )
