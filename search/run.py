"""Command line for a hyperparameter search (a thin layer over `search.tuning.run_search`).

python -m search.run --corpus irc --trials 200
python -m search.run --corpus irc --trials 200 --resume        # after Ctrl-C or SIGTERM
python -m search.run --corpus notes.txt --trials 20 --address auto   # on a running Ray cluster
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from corpora import CorpusError
from model.errors import ConfigError
from search.config import WANDB_MODES, SearchConfig
from search.results import format_ranking, read_trials
from search.space import SearchSpace, load_space_file, space_from_mapping

DEFAULTS = SearchConfig()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m search.run",
        description="Search LSTM hyperparameters with Optuna (TPE) and ASHA on Ray Tune.",
    )
    add = p.add_argument
    add("--corpus", required=True, help="registered corpus name or path to a UTF-8 text file")
    add(
        "--trials",
        type=int,
        default=DEFAULTS.trials,
        help="total number of trials (default %(default)s)",
    )
    add(
        "--max-chars-per-trial",
        type=int,
        default=DEFAULTS.max_chars_per_trial,
        help="training characters of a trial ASHA never stops (max_t; default %(default)s)",
    )
    add(
        "--grace-chars",
        type=int,
        default=DEFAULTS.grace_chars,
        help="characters every trial trains before ASHA may stop it (default %(default)s)",
    )
    add(
        "--reduction-factor",
        type=int,
        default=DEFAULTS.reduction_factor,
        help="ASHA keeps the best 1/N of trials at each rung (default %(default)s)",
    )
    add(
        "--eval-every-chars",
        type=int,
        default=0,
        help="evaluate, report and checkpoint every this many characters (default: grace chars)",
    )
    add(
        "--concurrency",
        type=int,
        default=0,
        help="trials running at once (default: as many as the cluster's CPUs allow)",
    )
    add(
        "--cpus-per-trial",
        type=float,
        default=DEFAULTS.cpus_per_trial,
        help="CPUs (torch threads) per trial (default %(default)s)",
    )
    add(
        "--gpus-per-trial",
        type=float,
        default=DEFAULTS.gpus_per_trial,
        help="GPUs per trial; fractions share a GPU (default %(default)s)",
    )
    add(
        "--time-budget",
        type=float,
        default=None,
        help="stop the search cleanly after this many seconds",
    )
    add(
        "--seed",
        type=int,
        default=DEFAULTS.seed,
        help="sampler and training seed (default %(default)s)",
    )
    add(
        "--name",
        default="",
        help="search name (default: CORPUS-DATE-TIME; with --resume: the latest)",
    )
    add("--storage", default=DEFAULTS.storage, help="folder holding searches (default %(default)s)")
    add("--address", default=None, help="address of a running Ray cluster, e.g. auto or HOST:PORT")
    add(
        "--resume",
        action="store_true",
        help="continue an interrupted search (same --name, or the latest of this corpus)",
    )
    add("--wandb-project", default=DEFAULTS.wandb_project, help="W&B project (default %(default)s)")
    add(
        "--wandb-mode",
        choices=WANDB_MODES,
        default=DEFAULTS.wandb_mode,
        help="offline (default; upload later with `wandb sync`), online or disabled",
    )
    add("--data-dir", default=None, help="local corpus folder (default: $CHARNN_DATA_DIR)")
    add(
        "--max-chars",
        type=int,
        default=None,
        help="use only this many leading characters of the corpus (equal-length comparisons)",
    )
    add(
        "--val-fraction",
        type=float,
        default=DEFAULTS.val_fraction,
        help="share of the text, from its end, held out for validation (default %(default)s)",
    )
    add("--space", default=None, help="YAML or TOML file overriding search ranges")
    add(
        "--range",
        action="append",
        default=[],
        metavar="FIELD=LOW,HIGH",
        help="override one search range or choice list, e.g. hidden_size=64,512 (repeatable)",
    )
    add("--cells", default=None, help="recurrent cells to search, e.g. lstm,gru,rnn (default lstm)")
    return p


def build_space(args: argparse.Namespace) -> SearchSpace:
    space = load_space_file(args.space) if args.space else SearchSpace()
    overrides: dict[str, Any] = {}
    for item in args.range:
        field_name, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--range expects FIELD=VALUES, got {item!r}")
        overrides[field_name.strip()] = value
    if args.cells:
        overrides["cells"] = args.cells
    return space_from_mapping(overrides, space)


def default_name(corpus: str) -> str:
    stem = Path(corpus).stem if os.sep in corpus or corpus.endswith(".txt") else corpus
    return f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def latest_search(storage: str, corpus: str) -> str:
    """Name of the most recently started search of `corpus` in `storage`."""
    found = []
    for meta in Path(storage).glob("*/search.json"):
        try:
            saved = json.loads(meta.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if saved.get("corpus") == corpus:
            found.append((meta.stat().st_mtime, meta.parent.name))
    if not found:
        raise ConfigError(f"no search of corpus {corpus!r} in {storage} to resume")
    return max(found)[1]


def saved_config(path: Path, overrides: dict[str, Any]) -> SearchConfig:
    """The settings a search was started with, with a few per-run overrides (address, data dir)."""
    saved = json.loads((path / "search.json").read_text())
    saved["space"] = SearchSpace(**{k: tuple(v) for k, v in saved["space"].items()})
    known = {f.name for f in fields(SearchConfig)}
    return replace(SearchConfig(**{k: v for k, v in saved.items() if k in known}), **overrides)


def config_from_args(args: argparse.Namespace) -> SearchConfig:
    if args.resume:
        name = args.name or latest_search(args.storage, args.corpus)
        path = Path(args.storage).resolve() / name
        if not (path / "search.json").is_file():
            raise ConfigError(f"no search named {name!r} in {args.storage} to resume")
        overrides = {"address": args.address, "storage": args.storage}
        if args.data_dir:
            overrides["data_dir"] = args.data_dir
        return saved_config(path, overrides)
    return SearchConfig(
        corpus=args.corpus,
        trials=args.trials,
        max_chars_per_trial=args.max_chars_per_trial,
        grace_chars=args.grace_chars,
        reduction_factor=args.reduction_factor,
        eval_every_chars=args.eval_every_chars,
        concurrency=args.concurrency,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        time_budget_s=args.time_budget,
        seed=args.seed,
        name=args.name or default_name(args.corpus),
        storage=args.storage,
        address=args.address,
        wandb_project=args.wandb_project,
        wandb_mode=args.wandb_mode,
        data_dir=args.data_dir,
        max_chars=args.max_chars,
        val_fraction=args.val_fraction,
        space=build_space(args),
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
        from search.tuning import run_search  # imports Ray: only once the arguments are valid

        outcome = run_search(config, resume=args.resume)
    except (ConfigError, CorpusError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print()
    print(format_ranking(read_trials(outcome.path)))
    if outcome.best_trial:
        print(
            f"\nbest: trial {outcome.best_trial}, val_bpc {outcome.best_val_bpc:.4f}; "
            f"model in {outcome.path / 'best'}"
        )
        print(f"\n--- sample from the best model ---\n{outcome.sample}\n---")
    print(
        f"results: {outcome.path / 'trials.parquet'}, {outcome.path / 'curves.parquet'} "
        f"({outcome.wall_s:.0f} s)"
    )
    if outcome.interrupted:
        print(
            f"interrupted; continue with the same command plus --resume --name {config.name}",
            file=sys.stderr,
        )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
