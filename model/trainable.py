"""Ray Tune function trainable: a thin adapter over the Ray-free training loop.

    tune.with_parameters(train_trial, corpus=corpus, base=base_flat_config)

Each report of `model.loop.fit` becomes one Tune iteration with a checkpoint, so a paused,
interrupted or failed trial continues from its last report with its exact stream positions,
hidden state and RNG state. The encoded corpus arrives through Ray's object store (the
`with_parameters` argument), so workers on other nodes need no copy of the file.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from corpora import Corpus
from model.config import run_config_from_flat, with_vocab_size
from model.loop import Metrics, Trainer, fit, load_checkpoint, save_checkpoint
from model.lstm import count_parameters

CHECKPOINT_FILE = "checkpoint.pt"


# What a diverged trial reports as val_bpc: finite, and worse than any run that has not diverged
# (those stay below DIVERGED_FACTOR * log2(V) <= 3 * 20 bits, V at most all of Unicode). NaN
# would never be stopped by ASHA and would poison its rung cutoffs, and Optuna rejects it.
DIVERGED_BPC = 100.0


def assigned_cpus() -> int:
    """Whole CPUs Ray gave this trial (at least 1): the torch thread count."""
    resources = ray.get_runtime_context().get_assigned_resources()
    return max(1, int(resources.get("CPU", 1)))


def build_trainer(config: dict[str, Any], corpus: Corpus, base: dict[str, Any]) -> Trainer:
    """A fresh trainer for a sampled `config`, or the one Tune's last checkpoint holds."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            return Trainer.restore(load_checkpoint(str(Path(folder) / CHECKPOINT_FILE)), corpus)
    run = run_config_from_flat({**base, **config})
    return Trainer(with_vocab_size(run, len(corpus.vocab)), corpus)


def train_trial(config: dict[str, Any], corpus: Corpus, base: dict[str, Any]) -> None:
    torch.set_num_threads(assigned_cpus())
    trainer = build_trainer(config, corpus, base)
    where = {  # which model and which machine, for the trials table
        "num_params": count_parameters(trainer.model),
        "node_id": ray.get_runtime_context().get_node_id(),
    }

    def report(metrics: Metrics) -> None:
        if metrics["diverged"]:  # the last report: fit() returns right after it
            tune.report({**metrics, "val_bpc": DIVERGED_BPC, **where})
            return
        with tempfile.TemporaryDirectory() as folder:
            save_checkpoint(trainer.checkpoint(), str(Path(folder) / CHECKPOINT_FILE))
            tune.report(
                {**metrics, **where},
                checkpoint=tune.Checkpoint.from_directory(folder),
            )

    fit(trainer, report)
