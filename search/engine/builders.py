"""Builders of the Ray Tune pieces of a search: sampler, scheduler, trainable, callbacks, tuner.

Every builder takes the search's `SearchConfig` and its `Schedule` (from the time budget) and
returns a Tune or Optuna object; `search.engine.tuning.run_search` wires them together.

Schedulers (`--scheduler`), all on the same time axis, seconds of training steps, chosen by
the comparison in docs/search.md ("Choosing the scheduler"):

- `asha` (default): Tune's ASHA, which stops or continues a trial the moment it reaches a
  rung. The first trial at a rung always continues, so with few slots the warm starts keep
  their slots while they stay the best: on 2 cores that measured best at T = 300 s.
- `promote`: successive halving that pauses trials at rungs and promotes the best, then gives
  the end of the budget to the most promising ones (`search.engine.promotion`): it explores more,
  and its winner trains for less of the budget.
- `hyperband`: asynchronous Hyperband, Tune's ASHA with one bracket per rung, each bracket
  starting at a later rung, so fewer trials are judged on their earliest results.
- `pbt`: Population Based Training. The architecture stays fixed (the first warm-start
  configuration); the learning rate, dropout and weight decay of a population of `slots` trials
  adapt, the worst quarter cloning the best quarter's checkpoints.
- `fifo`: no early stopping; every trial trains for a ninth of the budget. With `--sampler
  random` this is plain random search, the benchmark's baseline.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from ray import tune
from ray.tune.schedulers import TrialScheduler
from ray.tune.search import ConcurrencyLimiter, Searcher

from corpora import Corpus
from model.errors import ConfigError
from search.engine.adapters import (
    METRIC,
    MODE,
    TIME_ATTR,
    BudgetAwareOptunaSearch,
    DeadlineStopper,
    LogSavingFIFO,
    LogSavingPBT,
    ProgressLines,
    RecordingASHA,
    ResumableSearch,
)
from search.engine.compat import tuner_scheduler, tuner_stopper
from search.engine.promotion import PromotionScheduler
from search.engine.trainable import MUTABLE, SCORE, TrialPlan, train_trial
from search.engine.wandb_sink import WandbSink
from search.folder.config import SearchConfig
from search.folder.schedule import Schedule
from search.folder.space import DefineByRun
from search.folder.store import SearchFolder

optuna.logging.set_verbosity(optuna.logging.WARNING)  # no line per trial: ProgressLines has it

PBT_INTERVALS = 12  # PBT perturbs every budget / PBT_INTERVALS training seconds
# The schedulers built on RecordingASHA: they run the long-horizon starts unjudged and have the
# endgame.
RECORDING_ASHA = ("asha", "hyperband")
ENDGAME_STEP = 1 / 20  # share of a trial's time between its two reports as the endgame begins
# In the endgame a trial that could take a rival's CPUs waits for the rival's report at most
# this share of the training seconds between those two reports (what it stands to train on
# more CPUs): RecordingASHA's `hold_s`.
HOLD_SHARE = 1 / 4
MAX_REPORT_GAP = 1 / 4  # share of the budget: the longest a trial trains between two reports
PROGRESS_ENV = "CHARNN_PROGRESS_S"  # seconds between progress lines when stdout is no terminal


def trial_seconds(config: SearchConfig, schedule: Schedule) -> float:
    """Training seconds of a trial that is never stopped early."""
    if config.scheduler == "fifo":
        return schedule.max_t_s / schedule.reduction_factor**2
    return schedule.max_t_s


def report_points(config: SearchConfig, schedule: Schedule) -> tuple[float, ...]:
    """Training seconds at which trials validate and report (see `report_grid`). Under `fifo`
    nothing is decided there, but each report leaves a checkpoint (a lost node costs a trial
    only what it trained since) and a point of the anytime curve: the rungs within a trial's
    length."""
    if config.scheduler == "fifo":
        end = trial_seconds(config, schedule)
        return report_grid([*(r for r in schedule.rungs_s if r < end), end],
                           schedule.budget_s * MAX_REPORT_GAP)  # fmt: skip
    if config.scheduler == "pbt":
        step = schedule.max_t_s / PBT_INTERVALS
        return tuple(step * k for k in range(1, PBT_INTERVALS))
    points = report_grid(schedule.rungs_s, schedule.budget_s * MAX_REPORT_GAP)
    if config.scheduler in RECORDING_ASHA and config.endgame_share:
        points = tuple(sorted({*points, *endgame_points(config, schedule)}))
    return points


def endgame_points(config: SearchConfig, schedule: Schedule) -> tuple[float, float]:
    """Where a trial that started with the budget reports as the endgame begins, and a
    twentieth of the budget later (`search.engine.adapters.RecordingASHA`): at the first, a
    trial behind the best stops; at the second, the trials left take the CPUs it freed. Without
    them both waited for their next report, up to a quarter of the budget later."""
    begins = schedule.max_t_s * (1 - config.endgame_share)
    return begins, begins + schedule.max_t_s * ENDGAME_STEP


def report_grid(rungs: Sequence[float], max_gap: float) -> tuple[float, ...]:
    """Where the scheduler decides (every rung but the last, which is the trial's end and
    reported anyway), and, for the trials that pass the second rung, once more between every
    two later rungs, at their geometric mean: the best model so far is then known at evenly
    spaced log-times (an anytime curve) for one validation more per rung. No two reports are
    more than `max_gap` apart, so a lost node costs a trial at most that much training (under
    `wsd`, a last report merged into the stretch before it, `model.loop.kept_stops`, can leave
    up to twice that before the trial's end)."""
    points = list(rungs)
    points += [math.sqrt(lo * hi) for lo, hi in zip(rungs[1:], rungs[2:], strict=False)]
    points.sort()
    filled = points[:1]
    for lo, hi in zip(points, points[1:], strict=False):
        parts = math.ceil((hi - lo) / max_gap - 1e-9)
        filled += [lo + (hi - lo) * k / parts for k in range(1, parts + 1)]
    return tuple(filled[:-1])


def last_start(config: SearchConfig, schedule: Schedule) -> float:
    """Seconds into the budget after which no trial starts (see search.folder.schedule)."""
    if config.scheduler == "fifo":
        return max(0.0, schedule.budget_s - trial_seconds(config, schedule) / 2)
    if config.scheduler == "promote":
        return schedule.explore_s
    if config.scheduler in RECORDING_ASHA and config.endgame_share:
        return min(schedule.last_start_s, schedule.budget_s * (1 - config.endgame_share))
    return schedule.last_start_s


def unjudged(config: SearchConfig, long_horizon: Sequence[dict[str, Any]]) -> list[dict]:
    """The `long_horizon` configurations the scheduler runs unjudged to the end of the budget:
    ASHA's and Hyperband's (`RecordingASHA`); the other schedulers judge them like any trial."""
    return list(long_horizon) if config.scheduler in RECORDING_ASHA else []


def make_searcher(
    config: SearchConfig,
    schedule: Schedule,
    warm: list[dict[str, Any]],
    long_horizon: Sequence[dict[str, Any]] = (),
) -> BudgetAwareOptunaSearch:
    if config.sampler == "random":
        sampler: optuna.samplers.BaseSampler = optuna.samplers.RandomSampler(seed=config.seed)
    else:
        # constant_liar: trials running at once are told apart, so parallel slots do not all
        # get the same suggestion while the first results are out.
        sampler = optuna.samplers.TPESampler(
            seed=config.seed,
            n_startup_trials=len(warm) + schedule.startup_trials,
            constant_liar=True,
        )
    # metric and mode go to OptunaSearch itself: the ConcurrencyLimiter around it
    # (`search_algorithm`) does not pass them on, and the first suggestion would fail.
    return BudgetAwareOptunaSearch(
        space=DefineByRun(config.space),
        metric=METRIC,
        mode=MODE,
        sampler=sampler,
        storage=study_storage(config),
        study_name=config.name,
        points_to_evaluate=warm or None,
        folder=str(config.path),
        last_start_s=last_start(config, schedule),
        search_space=config.space,
        seed=config.seed,
        mutate_every=config.mutate_every,
        long_horizon=unjudged(config, long_horizon),
    )


def search_algorithm(searcher: Searcher, slots: int | None) -> ResumableSearch:
    """The searcher as Tune wraps one for `max_concurrent_trials`: a ConcurrencyLimiter of
    `slots` (None: no limit), in a search generator, here `ResumableSearch`. Tune also reads
    the limit as how many trials may wait for their workers at once, so every slot starts
    together; it cannot add the limiter to a generator it is given."""
    limited = ConcurrencyLimiter(searcher, max_concurrent=slots) if slots else searcher
    return ResumableSearch(limited)


def study_storage(config: SearchConfig) -> optuna.storages.JournalStorage:
    """The search's Optuna study, kept in its folder in Optuna's own journal format: it
    tolerates shared filesystems, and `optuna-dashboard NAME/optuna.journal` opens it."""
    backend = optuna.storages.journal.JournalFileBackend(str(SearchFolder(config.path).study_file))
    return optuna.storages.JournalStorage(backend)


def make_scheduler(
    config: SearchConfig,
    schedule: Schedule,
    long_horizon: Sequence[dict[str, Any]] = (),
    grow_to: float | None = None,
) -> TrialScheduler:
    """The trial scheduler `config` names; ASHA runs the `long_horizon` configurations
    unjudged, and in its endgame, or once nothing is left to start, gives the CPUs that trials
    free to those left, up to `grow_to` each (see `search.engine.adapters.RecordingASHA`)."""
    if config.scheduler == "promote":
        return PromotionScheduler(
            rungs_s=schedule.rungs_s[:-1],
            reduction_factor=schedule.reduction_factor,
            slots=schedule.slots,
            folder=str(config.path),
            last_start_s=schedule.explore_s,
            min_run_s=schedule.grace_s,
        )
    if config.scheduler == "fifo":
        return LogSavingFIFO()
    if config.scheduler == "pbt":
        return LogSavingPBT(
            time_attr=TIME_ATTR,
            metric=METRIC,
            mode=MODE,
            perturbation_interval=schedule.max_t_s / PBT_INTERVALS,
            hyperparam_mutations=pbt_mutations(config),
            quantile_fraction=0.25,
        )
    brackets = len(schedule.rungs_s) - 1 if config.scheduler == "hyperband" else 1
    return RecordingASHA(
        time_attr=TIME_ATTR,
        metric=METRIC,
        mode=MODE,
        max_t=schedule.max_t_s,
        grace_period=schedule.grace_s,
        reduction_factor=schedule.reduction_factor,
        brackets=max(1, brackets),
        folder=str(config.path),
        long_horizon=unjudged(config, long_horizon),
        yardstick=config.long_horizon_yardstick,
        endgame_share=config.endgame_share,
        grow_to=growing_to(config, grow_to),
        base_cpus=config.cpus_per_trial,
        last_start_s=last_start(config, schedule),
        trials=config.trials,
        hold_s=HOLD_SHARE * ENDGAME_STEP * schedule.max_t_s,
        report_s=report_points(config, schedule),
    )


def growing_to(config: SearchConfig, machine_cpus: float | None) -> float | None:
    """Up to how many CPUs a trial grows in the endgame: the one machine's (None where the
    cluster has several), and none for trials on GPUs."""
    return machine_cpus if config.gpus_per_trial == 0 else None


def pbt_mutations(config: SearchConfig) -> dict[str, Any]:
    mutations: dict[str, Any] = {"lr": tune.loguniform(*config.space.lr)}
    for name in ("dropout", "weight_decay"):
        if getattr(config.space, name)[1] > 0:
            mutations[name] = tune.uniform(*getattr(config.space, name))
    return mutations


def pbt_space(config: SearchConfig, architecture: dict[str, Any]) -> dict[str, Any]:
    """Tune's param_space for PBT: the architecture fixed, lr and the regularisers sampled."""
    space = {k: v for k, v in architecture.items() if k not in MUTABLE}
    space["cell"] = architecture.get("cell", config.space.cell[0])
    space.update(pbt_mutations(config))
    return space


def progress_every(schedule: Schedule) -> float:
    """Seconds between two progress lines in a log: 30, or a third of the first rung's training
    seconds where that is shorter, so that the log says how the search is doing at least three
    times before any trial can first be stopped; CHARNN_PROGRESS_S overrides it."""
    given = os.environ.get(PROGRESS_ENV)
    if given:
        try:
            return max(0.1, float(given))
        except ValueError:
            raise ConfigError(f"{PROGRESS_ENV} must be seconds, got {given!r}") from None
    return min(30.0, schedule.grace_s / 3)


def make_callbacks(config: SearchConfig, schedule: Schedule) -> list[Any]:
    every_s = progress_every(schedule)
    progress = ProgressLines(config.trials, folder=str(config.path), every_s=every_s)
    if config.wandb_mode == "disabled":
        return [progress]
    os.environ["WANDB_MODE"] = config.wandb_mode  # wandb reads it: no API key check offline
    sink = WandbSink(
        project=config.wandb_project,
        group=config.name,
        mode=config.wandb_mode,
        folder=str(config.path),
    )
    return [progress, sink]


def make_trainable(
    config: SearchConfig, corpus: Corpus, schedule: Schedule, deadline: float
) -> Any:
    plan = TrialPlan(
        report_s=report_points(config, schedule),
        first_val_chars=None if config.scheduler == "pbt" else config.first_rung_val_chars,
        deadline=deadline,
        # PBT's population keeps its size: its worst members are replaced, not ended.
        plateau_share=None if config.scheduler == "pbt" else config.plateau_share or None,
    )
    base = config.base_run(trial_seconds(config, schedule))
    # with_parameters puts the encoded corpus in the object store once; trials read it there.
    trainable = tune.with_parameters(train_trial, corpus=corpus, base=base, plan=plan)
    resources = {"cpu": config.cpus_per_trial, "gpu": config.gpus_per_trial}
    return tune.with_resources(trainable, resources)


def restore_tuner(
    config: SearchConfig, path: Path, trainable: Any, machine_cpus: float | None
) -> tune.Tuner:
    """The search in `path` as Tune saved it, to go on with. Tune restores the scheduler as it
    was made, for the machine the search started on: trials grow to this run's instead (a
    search resumed on a larger machine, or on a cluster, with `--address`)."""
    tuner = tune.Tuner.restore(str(path), trainable=trainable, resume_unfinished=True,
                               resume_errored=False, restart_errored=False)  # fmt: skip
    check_not_moved(tuner, path)
    scheduler = tuner_scheduler(tuner)
    if isinstance(scheduler, RecordingASHA):
        scheduler.grow_to = growing_to(config, machine_cpus)
    return tuner


def running_long_horizon(tuner: tune.Tuner, planned: Sequence[dict[str, Any]]) -> list[dict]:
    """The long-horizon starts a restored search's scheduler runs unjudged: those it was made
    with (a search started before the budget bet on two shapes runs one), not `planned`, those
    this version would choose for it now. Another scheduler judges them all: `planned`."""
    scheduler = tuner_scheduler(tuner)
    if isinstance(scheduler, RecordingASHA):
        return [dict(p) for p in scheduler.long_horizon]
    return list(planned)


def check_not_moved(tuner: tune.Tuner, path: Path) -> None:
    """A ConfigError if the search was started in another folder than `path` (copied from a
    cluster, say): Tune's saved state holds its searcher, schedulers and callbacks as they were
    made, each naming the folder the search started in, and they would look for that search's
    run there (Tune would start the search afresh, then fail)."""
    check_started_in(path, getattr(tuner_stopper(tuner), "folder", None))


def check_started_in(path: Path, started_in: str | None) -> None:
    """A ConfigError if the search in `path` was started in the folder `started_in` (None:
    not known), somewhere else."""
    if started_in and Path(started_in).resolve() != path.resolve():
        raise ConfigError(
            f"the search in {path} was started in {started_in}, and its saved state names that "
            "folder: resume it there (copy it back), or start a new search"
        )


def make_tuner(
    config: SearchConfig,
    trainable: Any,
    schedule: Schedule,
    warm: list[dict[str, Any]],
    long_horizon: Sequence[dict[str, Any]] = (),
    grow_to: float | None = None,
) -> tune.Tuner:
    pbt = config.scheduler == "pbt"
    if pbt and not warm:
        raise_no_architecture()
    # Paused trials count as running for Tune's concurrency limiter, so a scheduler that pauses
    # would starve: its trials run as many at once as the trials' resources allow instead.
    pauses = config.scheduler == "promote"
    return tune.Tuner(
        trainable,
        param_space=pbt_space(config, warm[0]) if pbt else None,
        tune_config=tune.TuneConfig(
            search_alg=None
            if pbt
            else search_algorithm(
                make_searcher(config, schedule, warm, long_horizon),
                None if pauses else schedule.slots,
            ),
            scheduler=make_scheduler(config, schedule, long_horizon, grow_to),
            num_samples=(config.trials or schedule.slots) if pbt else (config.trials or -1),
            # PBT's trials come from Tune's own generator: the limit goes to Tune.
            max_concurrent_trials=schedule.slots if pbt else None,
            reuse_actors=True,  # no new process (and torch import) per trial or resumption
        ),
        run_config=tune.RunConfig(
            name=config.name,
            storage_path=str(config.path.parent),
            # A backstop only: trials end themselves before the deadline, and no trial starts
            # once it could not reach a rung.
            stop=DeadlineStopper(str(config.path), slack_s=schedule.budget_s * 0.1 + 30),
            callbacks=make_callbacks(config, schedule),
            # The best two on the whole validation text (a plateaued trial's best is behind it),
            # and the latest, which Tune always keeps: restores continue from it.
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=2, checkpoint_score_attribute=SCORE, checkpoint_score_order="min"
            ),
            # A crashed trial (lost node, killed worker) restarts from its last checkpoint.
            failure_config=tune.FailureConfig(max_failures=config.max_failures),
            verbose=0,  # ProgressLines shows the progress instead of Tune's tables
        ),
    )


def raise_no_architecture() -> None:
    raise ConfigError(
        "--scheduler pbt needs an architecture to keep fixed: keep the default warm starts or "
        "pass --warm-start FOLDER with a configuration inside the space"
    )
