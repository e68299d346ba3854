"""The schedule derived from a time budget, and the promotion scheduler's decisions (no Ray)."""

import pickle
import time
from dataclasses import dataclass, replace

import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from model.config import parse_duration
from model.errors import ConfigError
from search.engine.adapters import LogSavingFIFO, RecordingASHA
from search.engine.builders import report_grid, unjudged
from search.engine.compat import optuna_study
from search.engine.driver import begin_run, end_run, this_run
from search.engine.promotion import PromotionScheduler
from search.folder.config import SearchConfig
from search.folder.schedule import MIN_GRACE_S, plan_schedule
from search.folder.space import DefineByRun, SearchSpace
from search.folder.store import SCHEDULER, SearchFolder


@pytest.fixture
def driver_run(tmp_path):
    """A run of a search in tmp_path, as the driver holds it (clock, early stops)."""
    yield begin_run(tmp_path, time.time(), time.time() + 60)
    end_run(tmp_path)


@pytest.mark.parametrize("budget", [20, 75, 300, 1200, 7200, 86400])
def test_the_schedule_grows_from_the_budget(budget):
    plan = plan_schedule(budget, slots=2)
    rungs = plan.rungs_s
    assert rungs[-1] == plan.max_t_s < budget  # one trial may train almost the whole budget
    assert rungs[0] == pytest.approx(plan.grace_s)
    assert plan.grace_s >= min(MIN_GRACE_S, plan.max_t_s) and plan.grace_s >= budget / 100
    for low, high in zip(rungs, rungs[1:], strict=False):
        assert high == pytest.approx(low * plan.reduction_factor)
    assert plan.explore_s == pytest.approx(budget / 3) and plan.last_start_s < budget
    assert 3 <= plan.startup_trials <= 10


def test_longer_budgets_get_more_rungs_and_more_random_start_up_trials():
    short, long = plan_schedule(60, 2), plan_schedule(3600, 2)
    assert len(short.rungs_s) < len(long.rungs_s)
    assert short.startup_trials <= long.startup_trials


@pytest.mark.parametrize("budget", [300, 1200, 3600, 86400])
def test_a_longer_budget_judges_trials_no_earlier_in_their_training(budget):
    # Short-horizon bias: the first rung is the same share of a trial's time at every budget.
    plan = plan_schedule(budget, slots=2)
    assert len(plan.rungs_s) == 4  # three halvings at rf 3
    assert plan.grace_s == pytest.approx(plan.max_t_s / 27)
    assert plan.grace_s >= 0.03 * budget


@pytest.mark.parametrize("budget", [20, 60, 300, 1200, 86400])
def test_trials_report_at_every_rung_between_later_rungs_and_never_far_apart(budget):
    plan = plan_schedule(budget, slots=2)
    rungs, gap = plan.rungs_s, budget / 4
    points = report_grid(rungs, gap)
    assert list(points) == sorted(set(points)) and points[-1] < plan.max_t_s
    assert set(rungs[:-1]) <= set(points)  # the scheduler's decisions, the end excepted
    for low, high in zip(rungs[1:], rungs[2:], strict=False):  # a value between later rungs
        assert any(low < p < high for p in points)
    if rungs[1] - rungs[0] <= gap:  # most trials end at the first rung: nothing more before
        assert not any(rungs[0] < p < rungs[1] for p in points)
    ends = (*points, plan.max_t_s)
    assert all(b - a <= gap + 1e-9 for a, b in zip(ends, ends[1:], strict=False))


@pytest.mark.parametrize(
    ("text", "seconds"), [("300", 300), ("90s", 90), ("10m", 600), ("2h", 7200), ("1h30m", 5400)]
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "ten", "10x", "-5", "0", "1h30", "inf", "nan"])
def test_bad_durations_are_one_clear_error(text):
    with pytest.raises(ConfigError, match="duration"):
        parse_duration(text)


def test_bad_budgets_and_slots_are_refused():
    with pytest.raises(ConfigError, match="at least 20 s"):
        plan_schedule(10, 2)
    with pytest.raises(ConfigError, match="slots"):
        plan_schedule(60, 0)


# -- the promotion scheduler, driven by hand ---------------------------------------------------


@dataclass
class Stub:
    """What the scheduler reads of a Tune trial and of the controller."""

    trial_id: str
    status: str = Trial.RUNNING
    last_result: dict | None = None
    num_failures: int = 0
    checkpoint: str | None = None  # what Tune would restore it from


class Controller:
    def __init__(self, trials):
        self.trials = trials
        self.stopped = []
        self.saves = []  # the statuses of the trials at each save of Tune's state

    def get_trials(self):
        return self.trials

    def stop_trial(self, trial):
        trial.status = Trial.TERMINATED
        self.stopped.append(trial.trial_id)

    def checkpoint(self, force=False, wait=False):
        assert force and wait  # saved now, and there before the trial resumes
        self.saves.append({t.trial_id: t.status for t in self.trials})


def test_tune_saves_its_state_before_a_trial_restarts_from_a_checkpoint():
    """A trial restarted after a failure has its log copied back from the storage by Tune:
    saved first, it holds every report. A new trial has no log to copy back: no save."""
    restarted = Stub("t0", status=Trial.PENDING, num_failures=1, checkpoint="t0 at 30 s")
    new = Stub("t1", status=Trial.PENDING)
    controller, sched = Controller([restarted, new]), LogSavingFIFO()
    assert sched.choose_trial_to_run(controller) is restarted
    assert controller.saves == [{"t0": Trial.PENDING, "t1": Trial.PENDING}]
    # Waiting for its CPUs it is chosen again at every step: saved once is enough.
    assert sched.choose_trial_to_run(controller) is restarted
    assert len(controller.saves) == 1
    restarted.status = Trial.RUNNING
    assert sched.choose_trial_to_run(controller) is new
    assert len(controller.saves) == 1
    # Failed again later, from a newer checkpoint: its newer reports are saved first.
    restarted.status, restarted.checkpoint = Trial.PENDING, "t0 at 60 s"
    assert sched.choose_trial_to_run(controller) is restarted
    assert len(controller.saves) == 2
    # Given the same checkpoint again after reports of its own (PBT cloning one member twice
    # from another's unchanged checkpoint): those reports are saved too.
    restarted.last_result = {"training_iteration": 7}
    assert sched.choose_trial_to_run(controller) is restarted
    assert len(controller.saves) == 3
    assert sched.choose_trial_to_run(controller) is restarted
    assert len(controller.saves) == 3


def scheduler(tmp_path, elapsed: float, budget: float = 300.0) -> PromotionScheduler:
    started = time.time() - elapsed
    begin_run(tmp_path, started, started + budget)
    return PromotionScheduler(
        rungs_s=(10.0, 30.0), reduction_factor=3, slots=2, folder=str(tmp_path),
        last_start_s=100.0, min_run_s=10.0,
    )  # fmt: skip


def report(sched, controller, trial, seconds, value):
    decision = sched.on_trial_result(controller, trial, {"train_s": seconds, "val_bpc": value})
    if decision == TrialScheduler.PAUSE:  # Tune saves a checkpoint, then pauses
        trial.status, trial.checkpoint = Trial.PAUSED, f"{trial.trial_id} at {seconds:g} s"
    return decision


def test_the_first_trials_at_a_rung_wait_until_a_third_of_them_can_be_promoted(tmp_path):
    sched = scheduler(tmp_path, elapsed=20)
    trials = [Stub(f"t{i}") for i in range(4)]
    controller = Controller(trials)
    # Two trials reach the first rung: nothing to compare them with yet, so both wait.
    assert report(sched, controller, trials[0], 10.1, 2.5) == TrialScheduler.PAUSE
    assert report(sched, controller, trials[1], 10.2, 2.4) == TrialScheduler.PAUSE
    assert sched.choose_trial_to_run(controller) is None  # no new trial pending, none promotable
    # A third, worse one: the best of three (t1) is promoted, resumed from its checkpoint.
    assert report(sched, controller, trials[2], 10.1, 2.9) == TrialScheduler.PAUSE
    assert controller.saves == []
    assert sched.choose_trial_to_run(controller) is trials[1]
    # Tune's state was saved first: the log Tune copies back for it holds its reports.
    assert [save["t1"] for save in controller.saves] == [Trial.PAUSED]
    trials[1].status = Trial.RUNNING
    # A fourth, best of all: the quota is still one in three, but the best is t3 now, which
    # continues in its own slot, no pause and resume.
    assert report(sched, controller, trials[3], 10.3, 2.0) == TrialScheduler.CONTINUE
    assert sched.promoted[0] == {"t1", "t3"} and set(sched.waiting) == {"t0", "t2"}


def test_a_resumed_search_keeps_its_paused_trials_waiting_at_their_rungs(tmp_path):
    """Tune hands every restored trial over as PENDING, paused ones too: those that reported at
    a rung wait there to be promoted, rather than all starting again as new trials; one that
    reported before the first rung continues."""
    sched = scheduler(tmp_path, elapsed=20)
    restored = [Stub("t0", Trial.PENDING, {"train_s": 10.1, "val_bpc": 2.5}),
                Stub("t1", Trial.PENDING, {"train_s": 10.2, "val_bpc": 2.4}),
                Stub("t2", Trial.PENDING, {"train_s": 5.0, "val_bpc": 3.1})]  # fmt: skip
    controller = Controller(restored)
    for trial in restored:
        sched.on_trial_add(controller, trial)
    assert sched.waiting == {"t0": 0, "t1": 0} and sched.recorded[0] == {"t0": 2.5, "t1": 2.4}
    assert sched.choose_trial_to_run(controller) is restored[2]  # not at a rung: it goes on
    restored[2].status = Trial.RUNNING
    assert sched.choose_trial_to_run(controller) is None  # two at rung 0: none promotable yet
    this_run(tmp_path).started = time.time() - 150  # the end game: the best resumes
    assert sched.choose_trial_to_run(controller) is restored[1]


def test_a_promoted_trial_holds_its_slot_until_it_runs(tmp_path):
    """Tune keeps a trial it resumes PENDING until its actor starts: the slot it was promoted
    into is taken, not handed to the next paused trial too."""
    sched = scheduler(tmp_path, elapsed=20)
    trials = [Stub("run"), Stub("p1"), Stub("p2")]
    controller = Controller(trials)
    for trial, value in ((trials[1], 2.4), (trials[2], 2.6)):
        assert report(sched, controller, trial, 10.0, value) == TrialScheduler.PAUSE
        trial.last_result = {"train_s": 10.0, "val_bpc": value}
    this_run(tmp_path).started = time.time() - 150  # the end game: any paused trial may resume
    assert sched.choose_trial_to_run(controller) is trials[1]
    trials[1].status = Trial.PENDING  # as Tune sets it, until it runs
    assert sched.choose_trial_to_run(controller) is None  # both slots taken
    assert sched.waiting == {"p2": 0}
    trials[1].status = Trial.RUNNING
    assert sched.choose_trial_to_run(controller) is None


def test_a_trial_that_is_the_best_promotable_keeps_its_slot(tmp_path):
    sched = scheduler(tmp_path, elapsed=20)
    trials = [Stub(f"t{i}") for i in range(3)]
    controller = Controller(trials)
    report(sched, controller, trials[0], 10.0, 2.5)
    report(sched, controller, trials[1], 10.0, 2.6)
    assert report(sched, controller, trials[2], 10.0, 2.0) == TrialScheduler.CONTINUE
    assert sched.promoted[0] == {"t2"} and set(sched.waiting) == {"t0", "t1"}


def test_the_end_game_resumes_the_most_promising_paused_trials(tmp_path):
    sched = scheduler(tmp_path, elapsed=20)
    trials = [Stub(f"t{i}") for i in range(3)]
    controller = Controller(trials)
    for trial, value in zip(trials, (2.5, 2.4, 2.9), strict=True):
        report(sched, controller, trial, 10.0, value)
    assert sched.choose_trial_to_run(controller) is trials[1]  # promoted from rung 0
    trials[1].status = Trial.RUNNING
    report(sched, controller, trials[1], 30.0, 2.1)  # alone at rung 1: waits
    assert trials[1].status == Trial.PAUSED
    this_run(tmp_path).started = time.time() - 150  # past exploration
    # Highest rung first, whatever the quota; then the best of the lower rung.
    assert sched.choose_trial_to_run(controller) is trials[1]
    trials[1].status = Trial.RUNNING
    assert sched.choose_trial_to_run(controller) is trials[0]
    trials[0].status = Trial.RUNNING
    assert sched.choose_trial_to_run(controller) is None  # both slots busy
    # A running trial reaching a rung yields its slot to a better paused one...
    trials.append(Stub("t3"))
    assert report(sched, controller, trials[3], 10.0, 3.0) == TrialScheduler.PAUSE
    # ... and with too little time left, the trials still paused are stopped and recorded.
    this_run(tmp_path).started, this_run(tmp_path).deadline = time.time() - 295, time.time() + 5
    assert sched.choose_trial_to_run(controller) is None
    assert sorted(controller.stopped) == ["t2", "t3"]
    assert this_run(tmp_path).stopped == {"t2", "t3"}


def test_a_resumed_run_keeps_the_schedule_its_scheduler_and_searcher_were_made_for(tmp_path):
    """Tune restores the scheduler and searcher with the rungs and last start of the budget the
    search started with; the trials' report points must be those too, whatever this run's
    --time-budget (which sets only its deadline)."""
    from search.engine.tuning import run_schedule
    from search.folder.store import SearchFolder

    config = SearchConfig(corpus="irc", name="s", storage=str(tmp_path), time_budget_s=300.0,
                          concurrency=2)  # fmt: skip
    folder = SearchFolder(config.path)
    folder.path.mkdir()
    first = run_schedule(config, folder, restore=False)
    assert first == plan_schedule(300.0, 2)
    folder.write_schedule(first)
    hour = replace(config, time_budget_s=3600.0)
    assert folder.schedule() == first
    assert run_schedule(hour, folder, restore=True) == first
    assert run_schedule(hour, folder, restore=False) == plan_schedule(3600.0, 2)
    folder.state_file("schedule.json").write_text("{")  # unreadable: planned afresh
    assert run_schedule(hour, folder, restore=True) == plan_schedule(3600.0, 2)


def test_a_resumed_run_asks_its_searcher_again_and_stops_by_its_own_deadline(tmp_path):
    """Tune restores its wrapper of the searcher and its stopper with the rest of its state:
    the earlier run's "finished" (its searcher was past that run's last start) and time left
    must not decide the resumed run, which has a budget of its own."""
    from ray import tune

    from search.engine.adapters import BudgetAwareOptunaSearch, DeadlineStopper, ResumableSearch

    first = begin_run(tmp_path, time.time() - 100, time.time() + 200)
    generator = ResumableSearch(BudgetAwareOptunaSearch(
        space={"lr": tune.loguniform(1e-3, 1e-2)}, metric="val_bpc", mode="min",
        folder=str(tmp_path), last_start_s=60, search_space=SearchSpace()))  # fmt: skip
    generator.set_finished()  # as Tune does when its searcher says FINISHED
    assert generator.is_finished()
    state = {**generator.get_state(), "total_samples": 10}  # as Tune set it: trials to make
    assert state["finished"]  # saved as it was
    generator.set_state(state)  # Tuner.restore
    assert not generator.is_finished()

    stopper = pickle.loads(pickle.dumps(DeadlineStopper(str(tmp_path), slack_s=5.0)))
    assert not stopper("t1", {}) and not stopper.stop_all()
    first.deadline = time.time() - 6.0  # five seconds of slack past the deadline
    assert stopper.stop_all()
    begin_run(tmp_path, time.time(), time.time() + 300)  # the resumed run: its own clock
    assert not stopper.stop_all()


def test_a_restored_searcher_keeps_the_stops_and_reads_the_clock_of_the_run_now(tmp_path):
    """As Tune saves the searcher with its trials and `Tuner.restore` brings it back: the early
    stops of the earlier run come back, and the clock is the new run's, not the pickled one."""
    from ray import tune

    from search.engine.adapters import BudgetAwareOptunaSearch

    def searcher() -> BudgetAwareOptunaSearch:
        return BudgetAwareOptunaSearch(
            space={"lr": tune.loguniform(1e-3, 1e-2)}, metric="val_bpc", mode="min",
            folder=str(tmp_path), last_start_s=60, search_space=SearchSpace(),
        )  # fmt: skip

    first = begin_run(tmp_path, time.time() - 100, time.time() + 200)  # exploration is over
    saved = searcher()
    assert saved.suggest("late") == saved.FINISHED
    first.stopped.add("t1")
    saved.save(str(tmp_path / "searcher.pkl"))

    second = begin_run(tmp_path, time.time(), time.time() + 300)  # the resumed run
    restored = searcher()
    restored.restore(str(tmp_path / "searcher.pkl"))
    assert second.stopped == {"t1"}
    assert isinstance(restored.suggest("new"), dict)  # its clock starts now
    # A searcher an earlier version pickled and saved has no stops of its own.
    old = {k: v for k, v in saved.__dict__.items() if k != "_stopped"}
    (tmp_path / "old.pkl").write_bytes(pickle.dumps(old))
    legacy = searcher()
    del legacy._stopped
    legacy.restore(str(tmp_path / "old.pkl"))
    assert second.stopped == {"t1"}
    end_run(tmp_path)


def test_optuna_is_told_how_each_trial_ended(tmp_path, driver_run):
    """As Tune calls the searcher: a scheduler's stopping report comes only to
    on_trial_complete, a trial stopped while paused comes with no result. Finished (its
    schedule, the deadline, or a plateau): COMPLETE with its best value; stopped early (at any
    report, or while paused): PRUNED with its last value; never ran: FAIL."""
    import optuna
    from ray import tune

    from search.engine.adapters import BudgetAwareOptunaSearch

    searcher = BudgetAwareOptunaSearch(
        space={"lr": tune.loguniform(1e-3, 1e-2)}, metric="val_bpc", mode="min",
        folder=str(tmp_path), last_start_s=60, search_space=SearchSpace(),
    )  # fmt: skip
    trials = ("done", "stopped", "stopped_first", "paused", "never", "plateau", "diverged")
    for trial in trials:
        searcher.suggest(trial)
    whole = {"val_chars": 100, "val_total": 100}
    for trial in ("done", "stopped", "paused"):
        searcher.on_trial_result(trial, {"val_bpc": 2.5, "training_iteration": 1, **whole})
    searcher.on_trial_complete(
        "done", {"val_bpc": 2.0, "training_iteration": 2, "end": "completed", **whole}
    )
    searcher.on_trial_complete("stopped", {"val_bpc": 2.4, "training_iteration": 2, **whole})
    searcher.on_trial_complete("stopped_first", {"val_bpc": 2.9, "training_iteration": 1, **whole})
    searcher.on_trial_complete("paused")
    searcher.on_trial_complete("never")
    searcher.on_trial_result("plateau", {"val_bpc": 2.2, "training_iteration": 1, **whole})
    searcher.on_trial_complete(
        "plateau",
        {"val_bpc": 2.3, "best_val_bpc": 2.2, "training_iteration": 2, "end": "plateaued", **whole},
    )
    searcher.on_trial_result("diverged", {"val_bpc": 2.2, "training_iteration": 1, **whole})
    searcher.on_trial_complete("diverged", {"val_bpc": 100.0, "training_iteration": 2,
                                            "diverged": True, **whole})  # fmt: skip
    trials = optuna_study(searcher).get_trials(deepcopy=False)
    told = {t.user_attrs["tune_trial_id"]: t for t in trials}
    state = optuna.trial.TrialState
    assert {k: t.state for k, t in told.items()} == {
        "done": state.COMPLETE, "stopped": state.PRUNED, "stopped_first": state.PRUNED,
        "paused": state.PRUNED, "never": state.FAIL, "plateau": state.COMPLETE,
        "diverged": state.PRUNED,
    }  # fmt: skip
    # TPE's split: the diverged trial (pruned at step 2) is bad, behind the trial stopped at
    # step 1, not ahead of it as a pruned trial's step would rank it.
    from optuna.samplers._tpe.sampler import _split_trials

    pruned = [told[k] for k in ("stopped_first", "diverged")]
    below, above = _split_trials(optuna_study(searcher), pruned, n_below=1)
    assert [t.user_attrs["tune_trial_id"] for t in below] == ["stopped_first"]
    assert told["diverged"].constraints == {"diverged": 1.0} and told["done"].constraints == {}
    assert told["done"].value == 2.0
    assert told["plateau"].value == 2.2  # its best, the model the search keeps
    assert told["stopped"].intermediate_values == {1: 2.5, 2: 2.4}
    assert told["stopped_first"].intermediate_values == {1: 2.9}
    assert told["paused"].intermediate_values == {1: 2.5}


def test_trials_say_where_they_came_from_and_mutations_explore_around_the_best(
    tmp_path, driver_run
):
    """Warm starts first; once a trial has a whole-text value, every second new trial is a
    mutation of the best so far (two parameters moved, inside the space); the rest are TPE's."""
    from search.engine.adapters import BudgetAwareOptunaSearch

    space = SearchSpace()
    warm = {"num_layers": 1, "hidden_size": 256, "dropout": 0.0, "seq_len": 64, "lr": 8e-3,
            "batch_size": 32}  # fmt: skip
    searcher = BudgetAwareOptunaSearch(
        space=DefineByRun(space), metric="val_bpc", mode="min", points_to_evaluate=[warm],
        folder=str(tmp_path), last_start_s=60, search_space=space, seed=1,
    )  # fmt: skip
    first = searcher.suggest("t1")
    assert first["origin"] == "warm" and first["hidden_size"] == 256
    before = searcher.suggest("t2")  # no whole-text value yet: nothing to mutate
    assert before["origin"] == "sampled"
    prefix = {"val_chars": 10, "val_total": 100, "training_iteration": 1}
    searcher.on_trial_result("t1", {"val_bpc": 2.0, **prefix})
    assert searcher.suggest("t3")["origin"] == "sampled"  # a prefix value does not count
    searcher.on_trial_result("t1", {"val_bpc": 2.0, "val_chars": 100, "val_total": 100,
                                    "training_iteration": 2})  # fmt: skip
    mutant, sampled = searcher.suggest("t4"), searcher.suggest("t5")
    assert mutant["origin"] == "mutated" and sampled["origin"] == "sampled"
    moved = [k for k in warm if mutant[k] != warm[k]]
    assert 1 <= len(moved) <= 2
    for k in moved:
        low, high = getattr(space, k)
        assert low <= mutant[k] <= high
    told = {t.user_attrs["tune_trial_id"]: t.user_attrs["origin"]
            for t in optuna_study(searcher).get_trials(deepcopy=False)}  # fmt: skip
    assert told == {"t1": "warm", "t2": "sampled", "t3": "sampled", "t4": "mutated",
                    "t5": "sampled"}  # fmt: skip


def test_mutations_leave_the_long_horizon_start_alone(tmp_path, driver_run):
    """The long-horizon start trains to the deadline: a mutation of it starts from scratch and
    ends behind it. Mutations explore around the best of the other trials, once there is one."""
    from search.engine.adapters import BudgetAwareOptunaSearch

    space = SearchSpace()
    wide = {"num_layers": 1, "hidden_size": 512, "dropout": 0.3, "seq_len": 64, "lr": 5e-3,
            "batch_size": 32}  # fmt: skip
    warm = {"num_layers": 2, "hidden_size": 128, "dropout": 0.1, "seq_len": 50, "lr": 8e-3,
            "batch_size": 50}  # fmt: skip
    searcher = BudgetAwareOptunaSearch(
        space=DefineByRun(space), metric="val_bpc", mode="min", points_to_evaluate=[wide, warm],
        folder=str(tmp_path), last_start_s=60, search_space=space, seed=1, long_horizon=[wide],
    )  # fmt: skip
    assert [searcher.suggest(t)["origin"] for t in ("t1", "t2")] == ["warm", "warm"]
    whole = {"val_chars": 100, "val_total": 100, "training_iteration": 1}
    searcher.on_trial_result("t1", {"val_bpc": 1.9, **whole})  # the best, but long-horizon
    assert [searcher.suggest(t)["origin"] for t in ("t3", "t4")] == ["sampled", "sampled"]
    searcher.on_trial_result("t2", {"val_bpc": 2.1, **whole})
    assert searcher.suggest("t5")["origin"] == "sampled"
    mutant = searcher.suggest("t6")
    assert mutant["origin"] == "mutated"
    assert sum(mutant[k] != warm[k] for k in warm) <= 2  # around t2, not t1


def test_only_asha_and_hyperband_run_the_long_horizon_start_unjudged():
    wide = {"num_layers": 1, "hidden_size": 512}
    for scheduler, expected in [("asha", [wide]), ("hyperband", [wide]), ("promote", []),
                                ("fifo", []), ("pbt", [])]:  # fmt: skip
        config = SearchConfig(scheduler=scheduler)
        assert unjudged(config, [wide]) == expected, scheduler


def test_asha_runs_the_long_horizon_start_to_the_end_and_judges_the_others(tmp_path, driver_run):
    wide = {"num_layers": 1, "hidden_size": 512, "dropout": 0.28, "lr": 5e-3}
    sched = RecordingASHA(time_attr="train_s", metric="val_bpc", mode="min", max_t=90.0,
                          grace_period=10.0, reduction_factor=3, folder=str(tmp_path),
                          long_horizon=[wide])  # fmt: skip
    fast, slow = Stub("fast"), Stub("slow")
    fast.config = {"num_layers": 1, "hidden_size": 256, "dropout": 0.0, "lr": 8e-3,
                   "origin": "warm"}  # fmt: skip
    slow.config = {**wide, "origin": "warm"}
    late = Stub("late")
    late.config = {**fast.config, "hidden_size": 300}
    controller = Controller([fast, slow, late])
    for trial in (fast, slow, late):
        sched.on_trial_add(controller, trial)
    assert sched.unjudged == {"slow"}
    # At the first rung the wide network is far behind: unjudged, it goes on to max_t.
    assert report(sched, controller, fast, 10.0, 2.3) == TrialScheduler.PAUSE  # waits for it
    assert report(sched, controller, slow, 10.0, 2.8) == TrialScheduler.CONTINUE
    assert sched.choose_trial_to_run(controller) is fast  # ahead of it there: resumed
    assert [save["fast"] for save in controller.saves] == [Trial.PAUSED]  # its log saved first
    fast.status = Trial.RUNNING
    assert report(sched, controller, slow, 30.0, 2.4) == TrialScheduler.CONTINUE
    assert report(sched, controller, slow, 90.0, 1.9) == TrialScheduler.STOP  # its end
    sched.on_trial_complete(controller, slow, {"train_s": 90.0, "val_bpc": 1.9})
    # The others are judged against its values at the rungs, not against its final value.
    assert report(sched, controller, late, 10.0, 2.5) == TrialScheduler.STOP
    assert report(sched, controller, fast, 30.0, 2.45) == TrialScheduler.STOP  # behind it
    assert this_run(tmp_path).stopped == {"late", "fast"}


def test_without_the_yardstick_a_lone_trial_beside_the_long_horizon_start_is_never_judged(
    tmp_path, driver_run
):
    trials = {}
    for yardstick in (False, True):
        SearchFolder(tmp_path).state_file(SCHEDULER).unlink(missing_ok=True)  # a search anew
        sched, controller, slow, other = race(tmp_path, yardstick=yardstick)
        assert report(sched, controller, slow, 10.0, 2.8) == TrialScheduler.CONTINUE
        assert report(sched, controller, other, 10.0, 2.3) == TrialScheduler.CONTINUE  # ahead
        assert report(sched, controller, slow, 30.0, 2.2) == TrialScheduler.CONTINUE
        trials[yardstick] = report(sched, controller, other, 30.0, 2.25)  # now behind it
    assert trials == {False: TrialScheduler.CONTINUE, True: TrialScheduler.STOP}


def race(tmp_path, yardstick=True, restored=None):
    """A long-horizon start and another trial, each RUNNING, under RecordingASHA; `restored`:
    the training seconds of each trial's last result as Tune saved it (a resumed search)."""
    wide = {"num_layers": 1, "hidden_size": 512}
    sched = RecordingASHA(time_attr="train_s", metric="val_bpc", mode="min", max_t=90.0,
                          grace_period=10.0, reduction_factor=3, folder=str(tmp_path),
                          long_horizon=[wide], yardstick=yardstick)  # fmt: skip
    slow, other = Stub("slow"), Stub("other")
    slow.config, other.config = dict(wide), {**wide, "hidden_size": 128}
    controller = Controller([slow, other])
    for trial in (slow, other):
        if restored:
            trial.last_result = {"train_s": restored[trial.trial_id]}
        sched.on_trial_add(controller, trial)
    return sched, controller, slow, other


def test_a_trial_at_a_rung_before_the_long_horizon_start_waits_there_and_stops_if_behind(
    tmp_path, driver_run
):
    sched, controller, slow, other = race(tmp_path)
    assert report(sched, controller, slow, 10.0, 2.8) == TrialScheduler.CONTINUE
    assert report(sched, controller, other, 10.0, 2.3) == TrialScheduler.CONTINUE  # ahead
    # At the next rung the other trial is first: it waits there, and so does its slot (a
    # paused trial counts against the search's concurrency: no new trial takes it).
    assert report(sched, controller, other, 30.0, 2.3) == TrialScheduler.PAUSE
    assert sched.choose_trial_to_run(controller) is None
    newcomer = Stub("new", status=Trial.PENDING)  # with a slot of its own: it starts
    controller.trials.append(newcomer)
    assert sched.choose_trial_to_run(controller) is newcomer
    newcomer.status = Trial.RUNNING
    assert report(sched, controller, slow, 30.0, 2.2) == TrialScheduler.CONTINUE  # ahead of it
    assert sched.choose_trial_to_run(controller) is None  # the other one stopped
    assert controller.stopped == ["other"] and this_run(tmp_path).stopped == {"other"}
    assert sched.waiting == {}


def test_a_trial_that_waited_for_the_long_horizon_start_resumes_if_ahead_or_after_its_wait(
    tmp_path, driver_run
):
    sched, controller, slow, other = race(tmp_path)
    report(sched, controller, slow, 10.0, 2.8)
    report(sched, controller, other, 10.0, 2.3)
    assert report(sched, controller, other, 30.0, 2.1) == TrialScheduler.PAUSE
    report(sched, controller, slow, 30.0, 2.2)  # behind it: the other trial goes on
    assert sched.choose_trial_to_run(controller) is other and controller.stopped == []
    # A long-horizon start that does not come: the wait ends all the same.
    sched2, controller2, slow2, other2 = race(tmp_path / "b")
    report(sched2, controller2, slow2, 10.0, 2.8)
    report(sched2, controller2, other2, 10.0, 2.3)
    assert report(sched2, controller2, other2, 30.0, 2.1) == TrialScheduler.PAUSE
    assert sched2.choose_trial_to_run(controller2) is None
    sched2.waiting["other"] = time.time() - 1  # its wait is over
    assert sched2.choose_trial_to_run(controller2) is other2


def test_a_resumed_search_judges_by_what_its_rungs_wrote_down_before(tmp_path, driver_run):
    """Tune restores a scheduler as it was made, without what it wrote down: RecordingASHA
    reads that back from the folder at its first trial, so a trial of the resumed run is
    judged by the long-horizon start's values at the rungs it passed before the interruption
    (without them it would wait there for a value that never comes), and the endgame knows
    each trial's best."""
    sched, controller, slow, other = race(tmp_path)
    report(sched, controller, slow, 10.0, 2.8)
    report(sched, controller, slow, 30.0, 2.2)
    whole = {"train_s": 10.0, "val_bpc": 2.3, "val_chars": 9, "val_total": 9}
    assert sched.on_trial_result(controller, other, whole) == TrialScheduler.CONTINUE
    # The driver stops; the resumed run gets a scheduler as it was made, and the same trials.
    again, controller, slow, other = race(tmp_path, restored={"slow": 30.0, "other": 10.0})
    assert again.best == {"other": 2.3}
    late = Stub("late")
    late.config = {**other.config, "hidden_size": 64}
    controller.trials.append(late)
    again.on_trial_add(controller, late)
    assert report(again, controller, late, 10.0, 2.9) == TrialScheduler.STOP  # behind 2.8
    assert report(again, controller, other, 30.0, 2.3) == TrialScheduler.STOP  # behind 2.2
    assert this_run(tmp_path).stopped == {"late", "other"}


def test_a_trial_restored_from_before_its_stop_is_judged_again(tmp_path, driver_run):
    """Stopped at a rung after Tune's last save, then SIGKILL: Tune restores the trial as of
    that save and runs it again; at the rung it is judged again, not waved through (ASHA
    skips a rung that holds the trial's value)."""

    def made():
        return RecordingASHA(time_attr="train_s", metric="val_bpc", mode="min", max_t=90.0,
                             grace_period=10.0, reduction_factor=3,
                             folder=str(tmp_path))  # fmt: skip

    sched, ahead, behind = made(), Stub("ahead"), Stub("behind")
    ahead.config, behind.config = {"hidden_size": 64}, {"hidden_size": 32}
    controller = Controller([ahead, behind])
    for trial in (ahead, behind):
        sched.on_trial_add(controller, trial)
    assert report(sched, controller, ahead, 10.0, 2.0) == TrialScheduler.CONTINUE
    assert report(sched, controller, behind, 10.0, 2.5) == TrialScheduler.STOP
    again = made()
    ahead.last_result, behind.last_result = {"train_s": 10.0}, {"train_s": 5.0}  # Tune's save
    for trial in (ahead, behind):
        trial.status = Trial.RUNNING
        again.on_trial_add(controller, trial)
    assert report(again, controller, behind, 10.0, 2.5) == TrialScheduler.STOP


def test_no_wait_without_a_running_long_horizon_start_or_without_the_yardstick(
    tmp_path, driver_run
):
    for yardstick, status in ((False, Trial.RUNNING), (True, Trial.PAUSED)):
        sched, controller, slow, other = race(tmp_path / f"{yardstick}", yardstick=yardstick)
        report(sched, controller, slow, 10.0, 2.8)
        report(sched, controller, other, 10.0, 2.3)
        slow.status = status
        assert report(sched, controller, other, 30.0, 2.1) == TrialScheduler.CONTINUE
        assert sched.waiting == {}


# -- the endgame: the budget's last share goes to the best trials -------------------------------


@dataclass
class Sized(Stub):
    """A trial stub with resources, as Tune's trials have."""

    cpus: float = 1.0

    @property
    def placement_group_factory(self):
        from ray.tune.execution.placement_groups import PlacementGroupFactory

        return PlacementGroupFactory([{"CPU": self.cpus}])

    def update_resources(self, factory):
        assert self.status != Trial.RUNNING  # as Tune's Trial.update_resources demands
        self.cpus = factory.bundles[0]["CPU"]


def endgame_race(tmp_path, share, left_s=100.0, grow_to=2):
    """The long-horizon start and two others, RUNNING, half of a budget gone."""
    begin_run(tmp_path, time.time() - 100, time.time() + left_s)
    wide = {"num_layers": 1, "hidden_size": 512}
    sched = RecordingASHA(time_attr="train_s", metric="val_bpc", mode="min", max_t=900.0,
                          grace_period=300.0, reduction_factor=3, folder=str(tmp_path),
                          long_horizon=[wide], endgame_share=share, grow_to=grow_to)  # fmt: skip
    trials = {name: Sized(name) for name in ("slow", "fast", "other")}
    trials["slow"].config = dict(wide)
    trials["fast"].config = trials["other"].config = {**wide, "hidden_size": 128}
    controller = Controller(list(trials.values()))
    for trial in trials.values():
        sched.on_trial_add(controller, trial)
    return sched, controller, trials


def whole(sched, controller, trial, seconds, value):
    """A report validated on the whole text (below the first rung: ASHA lets it go on)."""
    result = {"train_s": seconds, "val_bpc": value, "val_chars": 10, "val_total": 10}
    decision = sched.on_trial_result(controller, trial, result)
    if decision == TrialScheduler.PAUSE:
        trial.status = Trial.PAUSED
    elif decision == TrialScheduler.STOP:
        trial.status = Trial.TERMINATED
    return decision


def test_the_endgame_stops_what_is_behind_and_gives_its_cpus_to_what_is_left(tmp_path):
    go = TrialScheduler.CONTINUE
    sched, controller, t = endgame_race(tmp_path, share=0.4)  # the last 80 s: not yet
    assert [whole(sched, controller, t[n], 10.0, v)
            for n, v in (("fast", 1.9), ("slow", 2.1), ("other", 2.0))] == [go] * 3  # fmt: skip
    sched.endgame_share = 0.6  # the last 120 s: now
    # The long-horizon start is the budget's bet: behind, it goes on. Three live trials on two
    # CPUs: no more than one each.
    assert whole(sched, controller, t["slow"], 20.0, 2.05) == go
    assert whole(sched, controller, t["other"], 20.0, 1.95) == TrialScheduler.STOP  # behind
    assert this_run(tmp_path).stopped == {"other"}
    assert whole(sched, controller, t["fast"], 20.0, 1.85) == go  # two live: one CPU each
    t["fast"].status = Trial.TERMINATED  # ended (e.g. on a plateau)
    # Alone, the long-horizon start pauses at its report and resumes at once with both CPUs.
    assert whole(sched, controller, t["slow"], 30.0, 1.99) == TrialScheduler.PAUSE
    assert sched.choose_trial_to_run(controller) is t["slow"] and t["slow"].cpus == 2
    t["slow"].status = Trial.RUNNING
    assert whole(sched, controller, t["slow"], 40.0, 1.9) == go and sched.regrow == {}


def test_of_two_long_horizon_starts_the_endgame_keeps_the_one_ahead(tmp_path):
    """A budget that bets on two shapes (`long_horizon_starts`): in the endgame the bet behind
    the other stops, and a trial behind a bet stops as before; the bet ahead takes the CPUs."""
    begin_run(tmp_path, time.time() - 100, time.time() + 100)
    wide, deep = {"num_layers": 1, "hidden_size": 768}, {"num_layers": 2, "hidden_size": 448}
    sched = RecordingASHA(time_attr="train_s", metric="val_bpc", mode="min", max_t=900.0,
                          grace_period=300.0, reduction_factor=3, folder=str(tmp_path),
                          long_horizon=[wide, deep], endgame_share=0.4, grow_to=2)  # fmt: skip
    t = {name: Sized(name) for name in ("wide", "deep", "other")}
    t["wide"].config, t["deep"].config = dict(wide), dict(deep)
    t["other"].config = {"num_layers": 2, "hidden_size": 128}
    controller = Controller(list(t.values()))
    for trial in t.values():
        sched.on_trial_add(controller, trial)
    go = TrialScheduler.CONTINUE
    # Before the endgame nothing stops; the short-budget trial is ahead of both bets here.
    assert [whole(sched, controller, t[n], 10.0, v)
            for n, v in (("wide", 2.0), ("deep", 1.9), ("other", 1.8))] == [go] * 3  # fmt: skip
    sched.endgame_share = 0.6
    # The bet behind the other stops; the one ahead goes on though the short-budget trial is
    # ahead of it, and that one goes on while it is ahead, and stops once it is not.
    assert whole(sched, controller, t["wide"], 20.0, 1.95) == TrialScheduler.STOP
    assert whole(sched, controller, t["deep"], 20.0, 1.85) == go  # two live: one CPU each
    assert whole(sched, controller, t["other"], 20.0, 1.86) == go  # its best, 1.8, is ahead
    assert whole(sched, controller, t["deep"], 30.0, 1.75) == go
    assert whole(sched, controller, t["other"], 30.0, 1.79) == TrialScheduler.STOP
    assert this_run(tmp_path).stopped == {"wide", "other"}
    # Alone, the bet ahead pauses and resumes with both CPUs.
    assert whole(sched, controller, t["deep"], 40.0, 1.7) == TrialScheduler.PAUSE
    assert sched.choose_trial_to_run(controller) is t["deep"] and t["deep"].cpus == 2


def bets_in_the_endgame(tmp_path, hold_s, report_s=()):
    """Two long-horizon starts, RUNNING on one CPU each, both reported at 10 s of training,
    with the endgame begun."""
    begin_run(tmp_path, time.time() - 100, time.time() + 100)
    wide, deep = {"num_layers": 1, "hidden_size": 768}, {"num_layers": 2, "hidden_size": 448}
    sched = RecordingASHA(time_attr="train_s", metric="val_bpc", mode="min", max_t=900.0,
                          grace_period=300.0, reduction_factor=3, folder=str(tmp_path),
                          long_horizon=[wide, deep], endgame_share=0.9, grow_to=2,
                          hold_s=hold_s, report_s=report_s)  # fmt: skip
    t = {"wide": Sized("wide"), "deep": Sized("deep")}
    t["wide"].config, t["deep"].config = dict(wide), dict(deep)
    controller = Controller(list(t.values()))
    for trial in t.values():
        sched.on_trial_add(controller, trial)
        assert whole(sched, controller, trial, 10.0, 2.0) == TrialScheduler.CONTINUE
    return sched, controller, t


def test_in_the_endgame_the_trial_ahead_waits_for_its_rivals_report_to_take_its_cpus(tmp_path):
    """The trial that reports first goes on; where its rival, due to report there soon, may
    stop and leave it both CPUs, it waits for that report instead of training on one CPU to its
    next report (on an hour, three minutes of a core idle)."""
    sched, controller, t = bets_in_the_endgame(tmp_path / "ahead", hold_s=15.0)
    assert whole(sched, controller, t["deep"], 20.0, 1.8) == TrialScheduler.PAUSE  # waits
    assert sched.choose_trial_to_run(controller) is None and t["deep"].cpus == 1
    assert whole(sched, controller, t["wide"], 20.0, 1.9) == TrialScheduler.STOP  # behind
    assert sched.choose_trial_to_run(controller) is t["deep"] and t["deep"].cpus == 2
    assert sched.held == {} and this_run(tmp_path / "ahead").stopped == {"wide"}

    # The rival's report can put the waiting trial behind: it stops, the rival takes the CPUs.
    sched, controller, t = bets_in_the_endgame(tmp_path / "behind", hold_s=15.0)
    assert whole(sched, controller, t["deep"], 20.0, 1.8) == TrialScheduler.PAUSE
    assert whole(sched, controller, t["wide"], 20.0, 1.7) == TrialScheduler.PAUSE  # to grow
    assert sched.choose_trial_to_run(controller) is t["wide"] and t["wide"].cpus == 2
    t["wide"].status = Trial.RUNNING
    assert sched.choose_trial_to_run(controller) is None
    assert t["deep"].status == Trial.TERMINATED and controller.stopped == ["deep"]
    assert this_run(tmp_path / "behind").stopped == {"deep"}

    # It waits at most hold_s: then it goes on with the CPUs it had.
    sched, controller, t = bets_in_the_endgame(tmp_path / "late", hold_s=15.0)
    assert whole(sched, controller, t["deep"], 20.0, 1.8) == TrialScheduler.PAUSE
    since, rivals = sched.held["deep"]
    sched.held["deep"] = (since - 16.0, rivals)
    assert sched.choose_trial_to_run(controller) is t["deep"] and t["deep"].cpus == 1

    # A rival not due within hold_s at this trial's pace (10 s of training to go, not 5): no
    # wait, and nothing to wait for where no CPU would come free (near the deadline), or
    # without hold_s (a scheduler pickled before it).
    sched, controller, t = bets_in_the_endgame(tmp_path / "far", hold_s=5.0)
    assert whole(sched, controller, t["deep"], 20.0, 1.8) == TrialScheduler.CONTINUE
    # Unless the rival reports sooner, at its own next point (a trial started later).
    sched, controller, t = bets_in_the_endgame(tmp_path / "near", hold_s=5.0, report_s=(10, 13))
    assert whole(sched, controller, t["deep"], 20.0, 1.8) == TrialScheduler.PAUSE
    sched, controller, t = bets_in_the_endgame(tmp_path / "none", hold_s=0.0)
    sched.reported["wide"] = (None, (10.0, time.time() - 20.0))  # its report is overdue
    assert whole(sched, controller, t["deep"], 20.0, 1.8) == TrialScheduler.CONTINUE
    sched, controller, t = bets_in_the_endgame(tmp_path / "deadline", hold_s=15.0)
    begin_run(tmp_path / "deadline", time.time() - 100, time.time() + 30)
    assert whole(sched, controller, t["deep"], 20.0, 1.8) == TrialScheduler.CONTINUE
    assert sched.held == {}


def test_no_cpus_change_hands_near_the_deadline_or_on_several_machines(tmp_path):
    for case, left_s, grow_to in (("late", 50.0, 2), ("cluster", 100.0, None)):
        sched, controller, t = endgame_race(tmp_path / case, 0.9, left_s, grow_to)
        t["fast"].status = t["other"].status = Trial.TERMINATED
        assert whole(sched, controller, t["slow"], 10.0, 2.0) == TrialScheduler.CONTINUE
        assert t["slow"].cpus == 1, case


def test_once_nothing_is_left_to_start_the_trials_left_share_the_cpus_before_the_endgame(
    tmp_path,
):
    go = TrialScheduler.CONTINUE
    for case in ("searcher done", "all trials made", "neither"):
        sched, controller, t = endgame_race(tmp_path / case, share=0.1)  # not in the endgame
        sched.last_start_s = 50.0 if case == "searcher done" else 1000.0  # 100 s gone
        sched.trials = 3 if case == "all trials made" else None
        # Two live on two CPUs: one each; the one behind is not stopped before the endgame.
        t["other"].status = Trial.TERMINATED
        assert whole(sched, controller, t["fast"], 10.0, 1.9) == go, case
        assert whole(sched, controller, t["slow"], 10.0, 2.1) == go, case
        t["fast"].status = Trial.TERMINATED
        grows = whole(sched, controller, t["slow"], 20.0, 2.0) == TrialScheduler.PAUSE
        assert grows == (case != "neither"), case
        if grows:
            assert sched.choose_trial_to_run(controller) is t["slow"] and t["slow"].cpus == 2
        assert this_run(tmp_path / case).stopped == set(), case


def test_a_scheduler_pickled_before_the_endgame_has_none(tmp_path, driver_run):
    sched = RecordingASHA(time_attr="train_s", metric="val_bpc", mode="min", max_t=90.0,
                          grace_period=10.0, folder=str(tmp_path))  # fmt: skip
    old = {k: v for k, v in vars(sched).items()
           if k not in ("endgame_share", "grow_to", "base_cpus", "best", "regrow", "last_start_s",
                        "trials")}  # fmt: skip
    restored = RecordingASHA.__new__(RecordingASHA)
    restored.__setstate__(old)
    assert not restored.in_endgame() and restored.regrow == {}
    assert pickle.loads(pickle.dumps(sched)).best == {}


def test_no_trial_starts_in_the_endgame_of_asha_and_hyperband():
    from search.engine.builders import last_start

    schedule = plan_schedule(3600, 2)
    for scheduler, share, expected in (("asha", 1 / 3, 2400.0), ("hyperband", 0.5, 1800.0),
                                       ("asha", 0.0, schedule.last_start_s),
                                       ("fifo", 1 / 3, 3600 - schedule.max_t_s / 18)):  # fmt: skip
        config = SearchConfig(scheduler=scheduler, endgame_share=share)
        assert last_start(config, schedule) == pytest.approx(expected), scheduler
    with pytest.raises(ConfigError, match="endgame_share"):
        SearchConfig(endgame_share=1.0)


def test_trials_report_as_the_endgame_begins_and_soon_after():
    from search.engine.builders import report_points

    schedule = plan_schedule(3600, 2)
    extra = sorted(set(report_points(SearchConfig(), schedule))
                   - set(report_points(SearchConfig(endgame_share=0), schedule)))  # fmt: skip
    assert extra == pytest.approx([schedule.max_t_s * 2 / 3, schedule.max_t_s * (2 / 3 + 1 / 20)])
    fifo = SearchConfig(scheduler="fifo")
    assert report_points(fifo, schedule) == report_points(replace(fifo, endgame_share=0), schedule)
