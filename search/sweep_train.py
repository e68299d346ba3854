"""Entry point for W&B's own sweep controller: one training run per sweep suggestion.

Every search writes `runs/NAME/sweep.yaml`, the same space as a W&B sweep. To explore it with
W&B's controller instead of Optuna + ASHA:

    wandb sweep runs/NAME/sweep.yaml          # prints a sweep id
    wandb agent ENTITY/PROJECT/SWEEP_ID       # runs this module with --hidden_size=... --lr=...

The agent passes hyperparameters as `--name=value` (W&B's `${args}`); they go through the same
validated path as every other run (`model.config.run_config_from_flat`). The W&B run's config is
the whole run configuration, typed (the sweep's values over the defaults), and every report is
logged to it; a run that diverged ends as a failed W&B run (`diverged` in its summary) and exit
status 1, as `python -m model.train` does.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from corpora import load_corpus
from corpora.errors import one_line, run_cli
from corpora.flags import OneLineParser
from model.config import FLAT_KEYS, run_config_from_flat, run_config_to_flat
from model.errors import ConfigError
from model.train import diverged_error, train_to_folder


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


def wandb_error(error: Exception) -> str:
    """W&B's error on one line; its settings' errors (pydantic's) name the setting on a line of
    their own, and end on a link."""
    lines = [line.strip() for line in str(error).splitlines()]
    kept = [line for line in lines if line and not line.startswith("For further information")]
    return "; ".join(kept) if kept else one_line(error)


def command(argv: Sequence[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m search.sweep_train", description=__doc__)
    parser.add_argument("--corpus", required=True, help="corpus name or path")
    parser.add_argument("--max-train-chars", type=int, default=None, help="training budget")
    parser.add_argument("--data-dir", default=None, help="local corpus folder")
    parser.add_argument("--out", default="runs/sweeps", help="folder for each run's checkpoints")
    args, extra = parser.parse_known_args(argv)
    given = {"corpus": args.corpus, "max_train_chars": args.max_train_chars,
             "data_dir": args.data_dir}  # fmt: skip
    flat = {**{k: v for k, v in given.items() if v is not None}, **parse_sweep_args(extra)}
    run = run_config_from_flat(flat)
    load_corpus(run.corpus)  # what a user can get wrong, before W&B
    import wandb  # only here: the sweep agent's run

    out = Path(args.out)
    made = next((p for p in [*reversed(out.parents), out] if not p.exists()), None)
    out.mkdir(parents=True, exist_ok=True)
    # W&B's own files beside the runs (OUT/wandb/), in the mode WANDB_MODE asks for.
    try:
        wandb_run = wandb.init(config=run_config_to_flat(run), dir=str(out))
    except (wandb.errors.Error, ValueError) as error:  # not logged in, a bad key or mode
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)  # the folders made for this run, empty
        raise ConfigError(f"W&B: {wandb_error(error)}") from None
    with wandb_run:  # an exception ends it as a failed run
        rows = train_to_folder(flat, out / wandb_run.id, progress=False, on_report=wandb_run.log)
        failure = diverged_error(rows, out / wandb_run.id)
        if failure:
            wandb_run.summary["diverged"] = True
            wandb_run.finish(exit_code=1)
            print(failure, file=sys.stderr)
            return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The agent's command; every expected failure is one "error:" line and exit status 2."""
    return run_cli(command, argv)


if __name__ == "__main__":
    sys.exit(main())
