"""Controlled studies: what one factor does to learning, everything else held fixed.

    python -m search.study cell --corpus monte-cristo --max-chars 300000 --budget-chars 200000 \
        --seeds 2
    python -m search.study hidden_size --corpus irc --base runs/irc-20261129-101500 \
        --values 64,128,256 --time-budget 60
    python -m search.study max_chars --corpus irc --values 250000,1000000,4000000

A search answers "what is best"; a study answers "what does this factor do, other things equal".
FACTOR is any hyperparameter of the search space (`search.folder.space.PARAMETERS`: cell,
num_layers, hidden_size, dropout, weight_decay, seq_len, lr, batch_size) or `max_chars`, the
length of the training text (its first N characters; the validation text stays the same).
Everything else comes from the best configuration of an earlier search (`--base`) or from `BASE`
and `--set`. Each value runs with several seeds, every arm with the same training-character
budget (or the same time), reporting on the whole validation text ten times on the way; wall
time and chars/s are recorded too, so "faster per character" and "faster per second" can both be
read.

The arms run on Ray Tune as a grid (`tune.grid_search`, no early stopping) of the search's own
trainable, locally or on a cluster (`--address`). The study folder holds the search tables
(trials.parquet, curves.parquet), `study.parquet` (one row per arm and seed), and the report
`study.md` with its PNG curves (`search.studies.report`).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pyarrow as pa

from corpora import load_corpus
from corpora.files import atomic_write
from model.errors import ConfigError
from model.loop import check_corpus_fits
from search.folder.config import SearchConfig
from search.folder.results import (
    CURVES_SCHEMA,
    SPEED_LEVELS,
    TRIALS_SCHEMA,
    TrialRecord,
    as_finite,
    curve_rows,
    report_bpc,
    trial_row,
    trial_status,
)
from search.folder.space import BY_NAME, HYPERPARAMETERS
from search.folder.store import LOCK, STATE, STUDY_TABLE, SearchFolder, write_parquet

# Everything a study holds fixed unless --base or --set says otherwise: char-rnn's 2 x 128 LSTM
# at a learning rate fit for short budgets (the project's first warm start).
BASE: dict[str, Any] = {"cell": "lstm", "num_layers": 2, "hidden_size": 128, "dropout": 0.0,
                        "weight_decay": 0.0, "seq_len": 64, "batch_size": 32,
                        "lr": 4e-3}  # fmt: skip
FACTORS = (*HYPERPARAMETERS, "max_chars")
DEFAULT_VALUES: dict[str, tuple] = {
    "cell": ("lstm", "gru", "rnn"),
    "num_layers": (1, 2, 3),
    "hidden_size": (64, 128, 256),
    "dropout": (0.0, 0.25, 0.5),
    "weight_decay": (0.0, 0.1, 0.2),
    "seq_len": (16, 64, 256),
    "batch_size": (8, 32, 128),
    "lr": (1e-3, 3e-3, 1e-2),
    "max_chars": (100_000, 400_000, 1_600_000),
}
THRESHOLDS = SPEED_LEVELS
REPORTS = 10  # validations on the whole text per arm
PLAN = "study.json"  # the study's settings and arms, written when it starts


@dataclass(frozen=True)
class StudyConfig:
    factor: str  # the hyperparameter studied, or max_chars (training text length)
    corpus: str = "monte-cristo"  # registered corpus name or path to a UTF-8 file
    values: tuple = ()  # the factor's values; () for DEFAULT_VALUES
    base: str | None = None  # search folder whose best configuration the other settings copy
    sets: tuple[tuple[str, Any], ...] = ()  # fixed settings over the base, (name, value)
    seeds: int = 3  # seeds per value
    budget_chars: int = 2_000_000  # training characters of every arm
    time_budget_s: float = 0.0  # instead: training seconds of every arm (0: use budget_chars)
    max_chars: int | None = None  # corpus prefix (train + validation)
    val_fraction: float = 0.05  # held-out share of the text, from its end
    cpus_per_trial: float = 1.0  # CPU threads per arm
    name: str = ""  # study folder under storage; "" derives one
    storage: str = "runs"  # folder holding searches and studies
    address: str | None = None  # existing Ray cluster; None starts a local Ray
    data_dir: str | None = None  # local corpus folder
    sample_chars: int = 300  # characters sampled from each value's best model

    def __post_init__(self) -> None:
        if self.factor not in FACTORS:
            raise ConfigError(f"unknown factor {self.factor!r}; choose from {', '.join(FACTORS)}")
        for name in ("seeds", "budget_chars"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.time_budget_s >= 0:
            raise ConfigError(f"time_budget_s must be non-negative, got {self.time_budget_s:g}")
        repeated = [v for i, v in enumerate(self.values) if v in self.values[:i]]
        if repeated:  # its arms would run twice and pass for more seeds
            raise ConfigError(f"--values repeats {repeated[0]}; give each value once")


def parse_value(factor: str, text: str) -> Any:
    """A value of `factor` from the command line, checked against the space's kind."""
    kind = "int" if factor == "max_chars" else BY_NAME[factor].kind
    try:
        value = {"int": int, "float": float, "choice": str}[kind](text)
    except ValueError:
        raise ConfigError(f"{factor} takes {kind} values, got {text!r}") from None
    if factor == "cell" and value not in ("lstm", "gru", "rnn"):
        raise ConfigError(f"cell must be lstm, gru or rnn, got {value!r}")
    if kind != "choice" and not value >= 0:
        raise ConfigError(f"{factor} must not be negative, got {value}")
    if factor == "max_chars" and value < 1:  # 0 would be the whole text, labelled 0
        raise ConfigError(f"max_chars values are training characters, at least 1, got {value}")
    return value


def base_settings(config: StudyConfig) -> dict[str, Any]:
    """The fixed hyperparameters: --base's best configuration (or BASE), then --set."""
    settings = dict(BASE)
    if config.base:
        from search.engine.warm import top_configurations

        settings.update(top_configurations(config.base, 1)[0])
    for key, value in config.sets:
        if key not in HYPERPARAMETERS:
            raise ConfigError(f"--set {key}: not a hyperparameter ({', '.join(HYPERPARAMETERS)})")
        if key == config.factor:
            raise ConfigError(f"--set {key}: the factor this study varies; give --values instead")
        settings[key] = parse_value(key, str(value))
    return settings


def arms(config: StudyConfig) -> list[dict[str, Any]]:
    """One trial config per value and seed: the base with the factor set (and nothing else).

    Seed by seed, every value in each: Tune starts a grid's trials in order, as many at once
    as there are CPUs, and an arm trains slower beside a heavy one (about 20% on 2 cores). In
    value order, arms would mostly share the machine with arms of their own value, a bias that
    follows the factor; seed by seed, each value has neighbours of every value."""
    base = base_settings(config)
    values = config.values or DEFAULT_VALUES[config.factor]
    out = []
    for seed in range(config.seeds):
        for value in values:
            arm = {**base, "seed": seed}
            if config.factor == "max_chars":
                arm["train_chars"] = int(value)
            else:
                arm[config.factor] = value
            out.append(arm)
    return out


def search_config(config: StudyConfig) -> SearchConfig:
    """The settings the trainable shares with a search (corpus, split, device)."""
    return SearchConfig(corpus=config.corpus, name=config.name, storage=config.storage,
                        address=config.address, data_dir=config.data_dir,
                        max_chars=config.max_chars, val_fraction=config.val_fraction,
                        cpus_per_trial=config.cpus_per_trial, wandb_mode="disabled")  # fmt: skip


def study_row(record: TrialRecord, factor: str, whole_val: int) -> dict[str, Any]:
    """One arm and seed: final/best bpc, speed, characters and seconds to each threshold.

    Final and best bpc and the gap are those of an arm that trained its whole budget
    (`completed`); one that diverged or failed has none (compared at another length, or a
    diverged run's stand-in value, they would mislead), and its status says why."""
    status = trial_status(record)
    history = [h for h in record.history
               if h.get("val_chars") == whole_val and report_bpc(h) is not None]  # fmt: skip
    whole = history if status == "completed" else []
    last = record.history[-1] if record.history else {}
    value = record.config.get("train_chars" if factor == "max_chars" else factor)
    row: dict[str, Any] = {
        "factor": factor,
        "value": str(value),
        "seed": record.config.get("seed"),
        "trial_id": record.trial_id,
        "status": status,
        "final_val_bpc": whole[-1]["val_bpc"] if whole else None,
        "best_val_bpc": min((h["val_bpc"] for h in whole), default=None),
        "final_train_bpc": as_finite(last.get("train_bpc")) if whole else None,
        "chars_trained": last.get("chars_seen"),
        "train_s": last.get("train_s"),
        "wall_s": last.get("elapsed_s"),
        "chars_per_s": last["chars_seen"] / last["train_s"] if last.get("train_s") else None,
    }
    row["gap_bpc"] = (
        row["final_val_bpc"] - row["final_train_bpc"]
        if row["final_val_bpc"] is not None and row["final_train_bpc"] is not None
        else None
    )
    for t in THRESHOLDS:
        hit = next((h for h in history if h["val_bpc"] <= t), None)
        row[f"chars_to_{t:g}"] = hit["chars_seen"] if hit else None
        row[f"seconds_to_{t:g}"] = hit["train_s"] if hit else None
    return row


STUDY_SCHEMA = pa.schema(
    [("factor", pa.string()), ("value", pa.string()), ("seed", pa.int64()),
     ("trial_id", pa.string()), ("status", pa.string()), ("final_val_bpc", pa.float64()),
     ("best_val_bpc", pa.float64()), ("final_train_bpc", pa.float64()),
     ("chars_trained", pa.int64()), ("train_s", pa.float64()), ("wall_s", pa.float64()),
     ("chars_per_s", pa.float64()), ("gap_bpc", pa.float64()),
     *((f"chars_to_{t:g}", pa.int64()) for t in THRESHOLDS),
     *((f"seconds_to_{t:g}", pa.float64()) for t in THRESHOLDS)]
)  # fmt: skip


class StudyInterrupted(KeyboardInterrupt):
    """The study was stopped (Ctrl-C, SIGTERM) before every arm trained its budget: `path` holds
    what ran (the search tables, each arm's Tune folder) and no verdict."""

    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        self.path = path


def run_study(config: StudyConfig) -> Path:
    """Run every arm and seed to its budget; write the tables and the report; the folder.

    StudyInterrupted if it was stopped first: a report over arms cut short would compare them
    at different lengths, so only the tables of what ran are written. A study does not resume.
    """
    from search.engine.tuning import corpus_facts, sigterm_interrupts
    from search.studies.report import write_report

    grid = arms(config)
    sc = search_config(config)
    folder = SearchFolder(sc.path)
    if folder.path.exists():
        raise ConfigError(f"study {config.name!r} already exists in {folder.path.parent}")
    with sigterm_interrupts():  # SIGTERM outside Tune's fit: the interrupt, not a silent exit
        corpus = load_corpus(sc.corpus_config())
        base = arm_base(config, sc)
        check_arms(config, grid, base, corpus)
        folder.path.mkdir(parents=True)
        lock = folder.lock(kind="study")
        failed = False  # before any arm ran: e.g. no Ray at --address, or Ctrl-C
        try:
            write_plan(folder.path, config, grid)
            records, complete = run_arms(config, sc, folder, corpus, grid, base)
        except KeyboardInterrupt:
            failed = True
            raise StudyInterrupted(folder.path) from None
        except Exception:
            failed = True
            raise
        finally:
            folder.release(lock)
            if failed:  # a folder no arm ran in goes: the same command may take the name
                remove_if_unstarted(folder.path)
        records = [replace(r, config={**grid[r.config["arm"]], **r.config}) for r in records]
        folder.write_tables([trial_row(r, sc.name, corpus_facts(corpus), trial_status(r))
                             for r in records],
                            [c for r in records for c in curve_rows(r, sc.name)],
                            TRIALS_SCHEMA, CURVES_SCHEMA)  # fmt: skip
        if not complete:
            raise StudyInterrupted(folder.path)
    rows = [study_row(r, config.factor, len(corpus.val_ids)) for r in records]
    write_parquet(pa.Table.from_pylist(rows, schema=STUDY_SCHEMA), folder.path / STUDY_TABLE)
    write_report(config, folder, records, rows)
    return folder.path


def write_plan(path: Path, config: StudyConfig, grid: list[dict[str, Any]]) -> None:
    """`study.json`: the study's settings and its arms in Tune's order (a trial's `arm` is an
    index into `arms`), so that the tables of an interrupted study, which has no study.parquet,
    say which value and seed each trial was."""
    plan = {"factor": config.factor, "corpus": config.corpus, "seeds": config.seeds,
            "budget_chars": None if config.time_budget_s else config.budget_chars,
            "time_budget_s": config.time_budget_s or None, "arms": grid}  # fmt: skip
    atomic_write(path / PLAN, json.dumps(plan, indent=1) + "\n")


def remove_if_unstarted(path: Path) -> None:
    """The study folder, removed if it holds only what the study wrote before its first trial
    (its lock, state and plan): a start that failed leaves the name free for the retry."""
    if all(p.name in (LOCK, STATE, PLAN) for p in path.iterdir()):
        shutil.rmtree(path, ignore_errors=True)


def arm_base(config: StudyConfig, sc: SearchConfig) -> dict[str, Any]:
    """The run settings every arm shares: its budget (characters, or training seconds), ten
    reports on the whole validation text, and no learning-rate decay."""
    budget_s = config.time_budget_s
    return {**sc.base_run(budget_s), "max_train_chars": config.budget_chars if not budget_s
            else 10**15, "decay": "none", "eval_every_chars": 0 if budget_s else
            max(1, config.budget_chars // REPORTS)}  # fmt: skip


def check_arms(config: StudyConfig, grid: list[dict[str, Any]], base: dict[str, Any],
               corpus: Any) -> None:  # fmt: skip
    """What a trial would fail on, before Ray starts: a ConfigError naming the arm's value."""
    from search.engine.trainable import trial_run

    train = len(corpus.train_ids)
    shorter = ("a larger value (--values)" if config.factor == "max_chars"
               else "a smaller batch_size * seq_len (--set, --values)")  # fmt: skip
    for arm in grid:
        value = arm.get("train_chars") if config.factor == "max_chars" else arm[config.factor]
        if arm.get("train_chars", 0) > train:
            prefix = " (of the --max-chars prefix)" if config.max_chars else ""
            raise ConfigError(f"max_chars {value:,} exceeds the {train:,} training characters"
                              f"{prefix} of this corpus")  # fmt: skip
        try:
            run = trial_run(base, arm, corpus)
            check_corpus_fits(run.train.train_chars or train, len(corpus.val_ids),
                              run.train.batch_size, run.train.seq_len, shorter=shorter)  # fmt: skip
        except ConfigError as error:
            raise ConfigError(f"{config.factor} = {value}: {error}") from None


def run_arms(config: StudyConfig, sc: SearchConfig, folder: SearchFolder, corpus: Any,
             grid: list[dict[str, Any]], base: dict[str, Any],
             ) -> tuple[list[TrialRecord], bool]:  # fmt: skip
    """Every arm as one trial of a Tune grid on Ray (started here unless `config.address` names
    one); the trials, and whether each ran its budget (False: the study was interrupted)."""
    import ray
    from ray import tune

    from search.engine.cluster import start_ray
    from search.engine.trainable import SCORE, TrialPlan
    from search.engine.tuning import collect_trials, keeps_sigterm_handler, sigterm_stops_gracefully

    budget_s = config.time_budget_s
    plan = TrialPlan(report_s=tuple(budget_s * k / REPORTS for k in range(1, REPORTS)))
    # One grid axis over whole arm configs: every arm (value and seed) is exactly one trial.
    space = {"arm": tune.grid_search(list(range(len(grid))))}
    with keeps_sigterm_handler():  # ray.init's own handler exits without a word
        started = start_ray(config.address, config.cpus_per_trial)  # arms that fit it
    try:
        trainable = tune.with_parameters(study_trial, corpus=corpus, base=base, plan=plan,
                                         arms=grid)  # fmt: skip
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": config.cpus_per_trial}),
            param_space=space,
            tune_config=tune.TuneConfig(reuse_actors=True),
            run_config=tune.RunConfig(
                name=sc.name,
                storage_path=str(folder.path.parent),
                verbose=0,
                # As a search's: the best two and the latest (each a model and its optimiser
                # state), and a crashed arm (killed worker, lost node) goes on from the latest.
                checkpoint_config=tune.CheckpointConfig(
                    num_to_keep=2, checkpoint_score_attribute=SCORE, checkpoint_score_order="min"
                ),
                failure_config=tune.FailureConfig(max_failures=sc.max_failures),
            ),  # fmt: skip
        )
        # No scheduler stops an arm early: every arm trains its whole budget.
        with sigterm_stops_gracefully() as signalled:  # Tune takes Ctrl-C itself
            records = collect_trials(tuner.fit(), set(), len(corpus.val_ids))
    finally:
        if started:
            ray.shutdown()
    unfinished = any(trial_status(r) == "unfinished" for r in records)
    return records, not (signalled or unfinished or len(records) < len(grid))


def study_trial(config: dict[str, Any], corpus: Any, base: dict[str, Any], plan: Any,
                arms: list[dict[str, Any]]) -> None:  # fmt: skip
    """The search's trainable, on the arm `config["arm"]` names."""
    from search.engine.trainable import train_trial

    train_trial(arms[config["arm"]], corpus=corpus, base=base, plan=plan)
