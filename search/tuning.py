"""Run a hyperparameter search: Optuna's TPE sampler and ASHA early stopping on Ray Tune.

    outcome = run_search(SearchConfig(corpus="irc", trials=200), resume=False)

The driver loads and encodes the corpus once and puts it in Ray's object store; every trial
trains `model.trainable.train_trial` on it. ASHA's time axis is training characters, so rungs
compare trials fairly across batch sizes and sequence lengths. When the search ends (all
trials done, the time budget spent, or the driver interrupted) the result tables are written,
the best trial's best checkpoint is copied to `NAME/best/`, and text is sampled from it.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import optuna
import ray
import yaml
from ray import tune
from ray.air.integrations.wandb import WandbLoggerCallback
from ray.autoscaler.sdk import request_resources
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from corpora import Corpus, load_corpus
from model.config import run_config_from_flat, with_vocab_size
from model.errors import ConfigError
from model.files import atomic_path
from model.loop import check_corpus_fits
from model.sample import default_prime, generate, load_model
from model.trainable import CHECKPOINT_FILE, train_trial
from search.config import SearchConfig
from search.results import (
    CURVES_SCHEMA,
    TRIALS_SCHEMA,
    TrialRecord,
    curve_rows,
    ranked,
    read_trials,
    resumed_history,
    trial_row,
    trial_status,
    write_table,
)
from search.space import DefineByRun, wandb_sweep

METRIC, MODE = "val_bpc", "min"
ASHA_STOPPED = "asha_stopped.txt"  # trial ids ASHA stopped early, one per line


class BudgetAwareOptunaSearch(OptunaSearch):
    """OptunaSearch that tells Optuna how each trial really ended.

    Ray's OptunaSearch tells a trial ASHA stopped early as COMPLETE with its early-rung loss,
    so TPE would learn from low-budget losses as if they were final. Here such a trial is told
    as PRUNED instead: Optuna keeps the intermediate values `on_trial_result` already reported
    and TPE ranks pruned trials by how far they got and how well they did there, behind every
    trial that finished its budget. A diverged trial is told as PRUNED too, with its last value
    the stand-in `DIVERGED_BPC`: TPE learns that its region is bad instead of ignoring it.
    """

    def __init__(self, *args: Any, budget: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._budget = budget

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        if (
            result
            and not error
            and (result.get("diverged") or result.get("chars_seen", 0) < self._budget)
        ):
            result = None  # no final value: OptunaSearch tells PRUNED
        super().on_trial_complete(trial_id, result=result, error=error)


class RecordingASHA(ASHAScheduler):
    """ASHA that writes down the trials it stops early.

    Tune marks a trial ASHA stopped TERMINATED, like one that finished its budget or one cut
    short by the time budget; this record is what tells "stopped" from "unfinished".
    """

    def __init__(self, *args: Any, record: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.record = record

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        action = super().on_trial_result(tune_controller, trial, result)
        if action == self.STOP and result.get("chars_seen", 0) < self._max_t:
            with open(self.record, "a", encoding="utf-8") as f:
                f.write(trial.trial_id + "\n")
        return action


class ProgressLines(tune.Callback):
    """One line per finished trial, with the running best: the search's progress display."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.best = math.inf

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **_: Any
    ) -> None:
        if not result.get("diverged"):
            self.best = min(self.best, result.get(METRIC, math.inf))

    def _line(self, trials: list, trial: Any, what: str) -> None:
        done = 1 + sum(t.status in ("TERMINATED", "ERROR") for t in trials if t is not trial)
        last = trial.last_result or {}
        chars, value = last.get("chars_seen", 0), last.get(METRIC)
        if last.get("diverged"):
            what, shown = "diverged", "loss exploded"
        else:
            shown = f"val_bpc {value:.4f}" if value is not None else "no report"
        print(
            f"[{done}/{self.total}] trial {trial.trial_id} {what} at {chars:,} chars, {shown}; "
            f"best so far {self.best:.4f}",
            flush=True,
        )

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **_: Any) -> None:
        self._line(trials, trial, "ended")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **_: Any) -> None:
        self._line(trials, trial, "failed")


@dataclass(frozen=True)
class SearchOutcome:
    path: Path  # the search folder
    trials: int  # rows in trials.parquet
    best_val_bpc: float | None
    best_trial: str | None
    sample: str  # text generated by the best model ("" when no trial reported)
    wall_s: float
    interrupted: bool  # the driver was stopped (Ctrl-C, SIGTERM) before the search finished


def check_trainable(config: SearchConfig, corpus: Corpus) -> None:
    """Fail in the driver, with one clear line, on settings no trial could train with."""
    with_vocab_size(run_config_from_flat(config.base_run()), len(corpus.vocab))
    check_corpus_fits(
        len(corpus.train_ids),
        len(corpus.val_ids),
        max(config.space.batch_size),
        config.space.seq_len[1],
    )


@contextmanager
def sigterm_stops_gracefully() -> Iterator[None]:
    """Inside: SIGTERM ends the search like Ctrl-C, saving Tune's state for --resume.

    Tune catches SIGINT and SIGUSR1 during `fit` and stops cleanly; SIGTERM would otherwise hit
    Ray's native handler and kill the driver mid-write. Must be entered after `ray.init`.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop_gracefully(*_: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the driver at once
        signal.raise_signal(signal.SIGUSR1)

    previous = signal.signal(signal.SIGTERM, stop_gracefully)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def start_ray(address: str | None) -> bool:
    """Connect to `address`, or start a local Ray; returns whether this call started it."""
    if ray.is_initialized():
        return False
    try:
        ray.init(
            address=address, include_dashboard=False, configure_logging=False, log_to_driver=False
        )
    except ConnectionError as error:
        raise ConfigError(f"cannot reach a Ray cluster at {address!r}: {error}") from None
    return True


def default_concurrency(config: SearchConfig) -> int:
    """As many trials at once as the cluster's CPUs (and GPUs, if asked for) allow."""
    resources = ray.cluster_resources()
    fit = int(resources.get("CPU", 1) // config.cpus_per_trial)
    if config.gpus_per_trial > 0:
        fit = min(fit, int(resources.get("GPU", 0) // config.gpus_per_trial))
    return max(1, min(fit, config.trials))


def request_workers(config: SearchConfig) -> None:
    """On an existing cluster, ask its autoscaler for room for `--concurrency` trials at once.

    Tune only asks for the trials it has started; with the head node alone able to hold them
    all, an autoscaling cluster would otherwise never grow. A no-op without an autoscaler.
    """
    if config.address and config.concurrency:
        bundle = {"CPU": config.cpus_per_trial, "GPU": config.gpus_per_trial}
        request_resources(bundles=[{k: v for k, v in bundle.items() if v}] * config.concurrency)


def make_searcher(config: SearchConfig) -> BudgetAwareOptunaSearch:
    # metric and mode go to OptunaSearch itself: with max_concurrent_trials Tune wraps it in a
    # ConcurrencyLimiter that does not pass them on, and the first suggestion would fail.
    return BudgetAwareOptunaSearch(
        space=DefineByRun(config.space),
        metric=METRIC,
        mode=MODE,
        sampler=optuna.samplers.TPESampler(seed=config.seed),
        budget=config.max_chars_per_trial,
    )


def make_scheduler(config: SearchConfig) -> RecordingASHA:
    return RecordingASHA(
        time_attr="chars_seen",  # training characters: rungs are equal budgets for every trial
        metric=METRIC,
        mode=MODE,
        max_t=config.max_chars_per_trial,
        grace_period=config.grace_chars,
        reduction_factor=config.reduction_factor,
        record=str(config.path / ASHA_STOPPED),
    )


def make_callbacks(config: SearchConfig) -> list[Any]:
    progress = ProgressLines(config.trials)
    if config.wandb_mode == "disabled":
        return [progress]
    # Ray's callback checks for an API key in the driver unless WANDB_MODE says offline.
    os.environ["WANDB_MODE"] = config.wandb_mode
    # mode and dir reach wandb.init inside each trial's logging actor through these kwargs.
    return [
        progress,
        WandbLoggerCallback(
            project=config.wandb_project,
            group=config.name,
            mode=config.wandb_mode,
            dir=str(config.path),
            log_config=True,
        ),
    ]


def make_trainable(config: SearchConfig, corpus: Corpus) -> Any:
    resources = {"cpu": config.cpus_per_trial, "gpu": config.gpus_per_trial}
    # with_parameters puts the encoded corpus in the object store once; trials fetch it from there.
    trainable = tune.with_parameters(train_trial, corpus=corpus, base=config.base_run())
    return tune.with_resources(trainable, resources)


def make_tuner(config: SearchConfig, corpus: Corpus) -> tune.Tuner:
    return tune.Tuner(
        make_trainable(config, corpus),
        tune_config=tune.TuneConfig(
            search_alg=make_searcher(config),
            scheduler=make_scheduler(config),
            num_samples=config.trials,
            max_concurrent_trials=config.concurrency or default_concurrency(config),
            time_budget_s=config.time_budget_s,
        ),
        run_config=tune.RunConfig(
            name=config.name,
            storage_path=str(config.path.parent),
            callbacks=make_callbacks(config),
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=2,
                checkpoint_score_attribute=METRIC,
                checkpoint_score_order=MODE,
            ),
            # A crashed trial (lost node, killed worker) restarts from its last checkpoint.
            failure_config=tune.FailureConfig(max_failures=config.max_failures),
            verbose=0,  # ProgressLines prints one line per trial instead of Tune's tables
        ),
    )


def collect_trials(config: SearchConfig) -> list[TrialRecord]:
    """Every trial of the search folder, read back through Tune's public ExperimentAnalysis."""
    analysis = tune.ExperimentAnalysis(str(config.path), default_metric=METRIC, default_mode=MODE)
    record = config.path / ASHA_STOPPED
    stopped = set(record.read_text().split()) if record.exists() else set()
    records = []
    for trial in analysis.trials:
        frame = analysis.trial_dataframes.get(trial.trial_id)
        history = [] if frame is None or frame.empty else resumed_history(frame.to_dict("records"))
        best = analysis.get_best_checkpoint(trial, METRIC, MODE) if history else None
        error = trial.get_error() if trial.status == "ERROR" else None
        records.append(
            TrialRecord(
                trial_id=trial.trial_id,
                config=dict(trial.config),
                history=history,
                error=str(error or "unknown error") if trial.status == "ERROR" else None,
                best_checkpoint=best.path if best is not None else None,
                stopped_early=trial.trial_id in stopped,
            )
        )
    return records


def corpus_facts(corpus: Corpus) -> dict[str, Any]:
    return {
        "name": corpus.name,
        "sha256": corpus.sha256,
        "n_chars": corpus.n_chars,
        "val_chars": len(corpus.val_ids),
        "vocab_size": len(corpus.vocab),
    }


def write_results(config: SearchConfig, corpus: Corpus, records: list[TrialRecord]) -> None:
    facts = corpus_facts(corpus)
    budget = config.max_chars_per_trial
    rows = [trial_row(r, config.name, facts, trial_status(r, budget)) for r in records]
    write_table(rows, TRIALS_SCHEMA, config.path / "trials.parquet")
    curves = [row for r in records for row in curve_rows(r, config.name)]
    write_table(curves, CURVES_SCHEMA, config.path / "curves.parquet")


def keep_best(config: SearchConfig) -> tuple[dict[str, Any] | None, str]:
    """Copy the best trial's best checkpoint to NAME/best/ and sample text from it."""
    trials = read_trials(config.path)
    best = next(
        (r for r in ranked(trials) if r["best_checkpoint"] and r["best_val_bpc"] is not None), None
    )
    if best is None:
        return None, ""
    target = config.path / "best"
    target.mkdir(exist_ok=True)
    with atomic_path(target / "best.pt") as tmp:
        shutil.copyfile(Path(best["best_checkpoint"]) / CHECKPOINT_FILE, tmp)
    (target / "trial.json").write_text(json.dumps(best, indent=2, default=str) + "\n")
    model, vocab = load_model(target)
    sample = generate(
        model,
        vocab,
        prime=default_prime(vocab),
        length=config.sample_chars,
        temperature=0.8,
        seed=config.seed,
    )
    (target / "sample.txt").write_text(sample + "\n", encoding="utf-8")
    return best, sample


def save_search_files(config: SearchConfig) -> None:
    """The search's own settings (for --resume) and the same space as a W&B sweep file."""
    config.path.mkdir(parents=True, exist_ok=True)
    with atomic_path(config.path / "search.json") as tmp:
        tmp.write_text(json.dumps(asdict(config), indent=2) + "\n")
    base = {k: v for k, v in config.base_run().items() if v is not None and k != "corpus"}
    command = [
        "python", "-m", "search.sweep_train", "--corpus", config.corpus,
        "--max-train-chars", str(config.max_chars_per_trial),
        *(f"--{key}={value}" for key, value in base.items() if key != "max_train_chars"),
        "${args}",
    ]  # fmt: skip
    sweep = wandb_sweep(config.space, METRIC, command=command)
    (config.path / "sweep.yaml").write_text(yaml.safe_dump(sweep, sort_keys=False))


def run_search(config: SearchConfig, resume: bool = False) -> SearchOutcome:
    """Run (or resume) the search described by `config` to the end; see the module docstring."""
    started = time.perf_counter()
    corpus = load_corpus(config.corpus_config())
    check_trainable(config, corpus)
    path = config.path
    if resume and not tune.Tuner.can_restore(str(path)):
        raise ConfigError(f"nothing to resume at {path}")
    if not resume and (path / "search.json").exists():
        raise ConfigError(f"search {config.name!r} already exists in {path.parent}; pass --resume")
    # Tune warns whenever checkpoints come faster than one per 5 s; small trials always do.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    started_ray = start_ray(config.address)
    try:
        save_search_files(config)
        request_workers(config)
        if resume:
            tuner = tune.Tuner.restore(
                str(path),
                trainable=make_trainable(config, corpus),
                resume_unfinished=True,
                resume_errored=False,
                restart_errored=False,
            )
        else:
            tuner = make_tuner(config, corpus)
        with sigterm_stops_gracefully():
            tuner.fit()
        records = collect_trials(config)
    finally:
        if started_ray:
            ray.shutdown()
    write_results(config, corpus, records)
    best, sample = keep_best(config)
    wall_s = time.perf_counter() - started
    statuses = [trial_status(r, config.max_chars_per_trial) for r in records]
    finished = len(records) >= config.trials and "unfinished" not in statuses
    out_of_time = config.time_budget_s is not None and wall_s >= config.time_budget_s
    return SearchOutcome(
        path=path,
        trials=len(records),
        best_val_bpc=best["best_val_bpc"] if best else None,
        best_trial=best["trial_id"] if best else None,
        sample=sample,
        wall_s=wall_s,
        interrupted=not finished and not out_of_time,
    )
