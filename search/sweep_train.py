"""Entry point for W&B's own sweep controller: one training run per sweep suggestion.

Every search writes `runs/NAME/sweep.yaml`, the same space as a W&B sweep. To explore it with
W&B's controller instead of Optuna + ASHA:

    wandb sweep runs/NAME/sweep.yaml          # prints a sweep id
    wandb agent ENTITY/PROJECT/SWEEP_ID       # runs this module with --hidden_size=... --lr=...

The agent passes hyperparameters as `--name=value` (W&B's `${args}`); they go through the same
validated path as every other run (`model.config.run_config_from_flat`), and every report is
logged to the sweep's W&B run.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from corpora import load_corpus
from corpora.errors import one_line, run_cli
from corpora.flags import OneLineParser
from model.config import FLAT_KEYS, run_config_from_flat
from model.errors import ConfigError
from model.train import train_to_folder


def parse_sweep_args(extra: list[str]) -> dict[str, Any]:
    """`--hidden_size=128 --lr=2e-3` -> {"hidden_size": "128", "lr": "2e-3"}; unknown keys fail."""
    flat: dict[str, Any] = {}
    for item in extra:
        key, sep, value = item.removeprefix("--").partition("=")
        if not item.startswith("--") or not sep:
            raise ConfigError(f"expected --name=value, got {item!r}")
        if key not in FLAT_KEYS:
            raise ConfigError(f"unknown setting {key!r}")
        flat[key] = value  # a string: run_config_from_flat converts it to the field's type
    return flat


def command(argv: Sequence[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m search.sweep_train", description=__doc__)
    parser.add_argument("--corpus", required=True, help="corpus name or path")
    parser.add_argument("--max-train-chars", type=int, default=None, help="training budget")
    parser.add_argument("--data-dir", default=None, help="local corpus folder")
    parser.add_argument("--out", default="runs/sweeps", help="folder for each run's checkpoints")
    args, extra = parser.parse_known_args(argv)
    flat = {
        "corpus": args.corpus,
        **({"max_train_chars": args.max_train_chars} if args.max_train_chars else {}),
        **({"data_dir": args.data_dir} if args.data_dir else {}),
        **parse_sweep_args(extra),
    }
    load_corpus(run_config_from_flat(flat).corpus)  # what a user can get wrong, before W&B
    import wandb  # only here: the sweep agent's run

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # W&B's own files beside the runs (OUT/wandb/), in the mode WANDB_MODE asks for.
    try:
        run = wandb.init(config=flat, dir=str(out), mode=os.environ.get("WANDB_MODE"))
    except wandb.errors.UsageError as error:  # not logged in, a bad mode
        raise ConfigError(f"W&B: {one_line(error)}") from None
    with run:
        train_to_folder(flat, out / run.id, progress=False, on_report=run.log)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The agent's command; every expected failure is one "error:" line and exit status 2."""
    return run_cli(command, argv)


if __name__ == "__main__":
    sys.exit(main())
