"""Ray Tune function trainable: a thin adapter over the Ray-free training loop.

    tune.with_parameters(train_trial, corpus=corpus, base=base_flat_config, plan=TrialPlan(...))

A trial trains its sampled configuration over `base` and reports where its scheduler needs a
value: when its training seconds pass each point of `plan` (the scheduler's rungs, then a few
more for checkpoints), validated on the whole validation text except at the first rung, where
a fixed prefix of it decides, and at its end. Every report carries a checkpoint,
so a paused, interrupted or failed trial continues from its last report with its exact stream
positions, hidden state and RNG state. A trial still running as the search's deadline nears
stops itself in time for a last full validation and checkpoint, so its work counts. The
encoded corpus arrives through Ray's object store (the `with_parameters` argument), shared
by every trial on a node, so workers on other nodes need no copy of the file.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from corpora import Corpus
from model.config import RunConfig, run_config_from_flat, with_vocab_size
from model.loop import Metrics, Trainer, fit, load_checkpoint
from model.lstm import count_parameters

CHECKPOINT_FILE = "checkpoint.pt"
SCORE = "whole_val_bpc"  # Tune keeps the checkpoints best by this, and always the latest

# What a diverged trial reports as val_bpc: finite, and worse than any run that has not diverged
# (those stay below DIVERGED_FACTOR * log2(V) <= 3 * 20 bits, V at most all of Unicode). NaN
# would never be stopped by ASHA and would poison its rung cutoffs, and Optuna rejects it.
DIVERGED_BPC = 100.0
MUTABLE = ("lr", "dropout", "weight_decay")  # what a restored trial takes from its (mutated) config
ORIGIN = "origin"  # a trial's config key saying where it came from (warm, sampled, mutated)


@dataclass(frozen=True)
class TrialPlan:
    """What the search tells every trial about its schedule."""

    report_s: tuple[float, ...] = ()  # training seconds at which to validate and report
    first_val_chars: int | None = None  # characters scored at report_s[0]; None: all
    deadline: float | None = None  # time.time() by which a trial's last report is done
    plateau_share: float | None = None  # a trial whose best validation has not improved over
    # this last share of its characters trained ends itself ("plateaued"); None: never


def assigned_cpus() -> int:
    """Whole CPUs Ray gave this trial (at least 1): the torch thread count."""
    resources = ray.get_runtime_context().get_assigned_resources()
    return max(1, int(resources.get("CPU", 1)))


def trial_run(base: dict[str, Any], point: dict[str, Any], corpus: Corpus) -> RunConfig:
    """The run configuration of a trial at `point` (hyperparameters, without its origin) over
    the settings every trial shares (`base`), for `corpus`'s vocabulary."""
    flat = {**base, **{k: v for k, v in point.items() if k != ORIGIN}}
    return with_vocab_size(run_config_from_flat(flat), len(corpus.vocab))


def build_trainer(
    config: dict[str, Any], corpus: Corpus, base: dict[str, Any], plan: TrialPlan
) -> Trainer:
    """A fresh trainer for a sampled `config`, or the one Tune's last checkpoint holds.

    A fresh trial that cannot reach `max_train_s` before the deadline plans its learning-rate
    schedule for the training seconds it has. A restored trial takes its learning rate, dropout
    and weight decay from `config`: Population Based Training changes them when it clones a
    checkpoint.
    """
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            saved = load_checkpoint(str(Path(folder) / CHECKPOINT_FILE))
        mutable = {k: config[k] for k in MUTABLE if k in config}
        saved["run_config"] = {**saved["run_config"], **mutable}
        return Trainer.restore(saved, corpus)
    run = trial_run(base, config, corpus)
    if plan.deadline is not None and run.train.max_train_s > 0:
        left = max(1.0, plan.deadline - time.time())
        run = replace(run, train=replace(run.train, max_train_s=min(run.train.max_train_s, left)))
    return Trainer(run, corpus)


def train_trial(
    config: dict[str, Any], corpus: Corpus, base: dict[str, Any], plan: TrialPlan
) -> None:
    threads = assigned_cpus()  # more than the trial started with in the search's endgame
    torch.set_num_threads(threads)
    trainer = build_trainer(config, corpus, base, plan)
    where = {  # which model, which machine and which process, for the trials table
        "num_params": count_parameters(trainer.model),
        "threads": threads,
        "node_id": ray.get_runtime_context().get_node_id(),
        "pid": os.getpid(),
        "val_total": trainer.val_chars,  # a report's val_chars below this: a prefix
    }

    def score(metrics: Metrics) -> float:
        """What Tune ranks the trial's checkpoints by: the value on the whole validation text
        (a prefix's is not comparable, and ranks last)."""
        return metrics["val_bpc"] if metrics["val_chars"] == trainer.val_chars else DIVERGED_BPC

    def report(metrics: Metrics) -> None:
        if metrics["diverged"]:  # the last report: fit() returns right after it
            tune.report({**metrics, "val_bpc": DIVERGED_BPC, **where})
            return
        with tempfile.TemporaryDirectory() as folder:
            trainer.save(Path(folder) / CHECKPOINT_FILE)
            metrics["checkpoint_s"] = trainer.checkpoint_s
            tune.report(
                {**metrics, SCORE: score(metrics), **where},
                checkpoint=tune.Checkpoint.from_directory(folder),
            )

    fit(
        trainer,
        report,
        report_s=plan.report_s,
        first_val_chars=plan.first_val_chars,
        deadline=plan.deadline,
        plateau_share=plan.plateau_share,
    )
