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
from model.config import parse_duration
from model.errors import ConfigError
from search.config import (
    PRESETS,
    SAMPLERS,
    SCHEDULERS,
    WANDB_MODES,
    SearchConfig,
    load_search_config,
)
from search.results import format_ranking, read_trials
from search.space import GPU_SPACE, SearchSpace, load_space_file, space_from_mapping

DEFAULTS = SearchConfig()
CONFIG_FIELDS = {f.name for f in fields(SearchConfig)} - {"space"}
SPACE_FLAGS = {"preset", "space_file", "cells"}  # flags (besides --range) that shape the space
PER_RUN = ("address", "data_dir", "time_budget_s")  # settings --resume may change


def build_parser() -> argparse.ArgumentParser:
    # Flags absent from the command line stay absent (SUPPRESS), so that a --preset can fill them
    # and SearchConfig's own defaults fill the rest: each default is stated once.
    p = argparse.ArgumentParser(
        prog="python -m search.run",
        description="Search LSTM hyperparameters with Optuna (TPE) and ASHA on Ray Tune.",
        argument_default=argparse.SUPPRESS,
    )
    d = DEFAULTS
    add = p.add_argument
    add("--corpus", required=True, help="registered corpus name or path to a UTF-8 text file")
    add("--preset", choices=sorted(PRESETS), help="a named search size; explicit flags override it")
    add(
        "--time-budget",
        dest="time_budget_s",
        metavar="DURATION",
        help="wall time the search spends on trials, e.g. 300, 10m or 2h; the schedule is "
        f"derived from it (default {d.time_budget_s:g} s; with --resume: a new budget)",
    )
    add("--trials", type=int, help="at most this many trials, over all resumes (default: no cap)")
    add(
        "--scheduler",
        choices=SCHEDULERS,
        help="asha (default), hyperband (asynchronous, several brackets), pbt (lr and dropout "
        "adapt, architecture fixed) or fifo (no early stopping)",
    )
    add("--sampler", choices=SAMPLERS, help="tpe (default) or random")
    add(
        "--reduction-factor",
        type=int,
        help=f"asha/hyperband keep the best 1/N of trials per rung (default {d.reduction_factor})",
    )
    add(
        "--first-rung-val-chars",
        type=int,
        help="validation characters scored at the first rung, where most trials are judged; "
        "later reports score the whole validation text "
        f"(default {d.first_rung_val_chars:,})",
    )
    add(
        "--warm-start",
        metavar="FOLDER",
        help="an earlier search folder (any corpus) whose best configurations run first",
    )
    add("--warm-start-top", type=int, help=f"how many of them (default {d.warm_start_top})")
    add(
        "--no-warm-start-defaults",
        dest="warm_start_defaults",
        action="store_false",
        help="do not run the documented known-good configurations first",
    )
    add(
        "--concurrency",
        type=int,
        help="trials running at once (default: as many as the cluster's CPUs allow)",
    )
    add(
        "--cpus-per-trial",
        type=float,
        help=f"CPUs (torch threads) per trial (default {d.cpus_per_trial:g})",
    )
    add(
        "--gpus-per-trial",
        type=float,
        help=f"GPUs per trial; fractions share a GPU (default {d.gpus_per_trial:g})",
    )
    add(
        "--max-failures",
        type=int,
        help=f"restarts of a crashed trial from its last checkpoint (default {d.max_failures})",
    )
    add("--seed", type=int, help=f"sampler and training seed (default {d.seed})")
    add("--name", help="search name (default: CORPUS-DATE-TIME; with --resume: the latest)")
    add("--storage", help=f"folder holding searches (default {d.storage})")
    add("--address", help="address of a running Ray cluster, e.g. auto or HOST:PORT")
    add(
        "--resume",
        action="store_true",
        default=False,
        help="continue an interrupted search (same --name, or the latest of this corpus) with "
        "its saved settings; only --address, --data-dir and --time-budget may change",
    )
    add("--wandb-project", help=f"W&B project (default {d.wandb_project})")
    add(
        "--wandb-mode",
        choices=WANDB_MODES,
        help="offline (default; upload later with `wandb sync`), online or disabled",
    )
    add("--data-dir", help="local corpus folder (default: $CHARNN_DATA_DIR)")
    add(
        "--max-chars",
        type=int,
        help="use only this many leading characters of the corpus (equal-length comparisons)",
    )
    add(
        "--val-fraction",
        type=float,
        help=f"share of the text, from its end, held out for validation (default {d.val_fraction})",
    )
    add("--space", dest="space_file", help="YAML or TOML file overriding search ranges")
    add(
        "--range",
        action="append",
        default=[],
        metavar="FIELD=LOW,HIGH",
        help="override one search range or choice list, e.g. hidden_size=64,512 (repeatable)",
    )
    add("--cells", help="recurrent cells to search, e.g. lstm,gru,rnn (default lstm)")
    return p


def build_space(args: argparse.Namespace, preset: dict[str, Any]) -> SearchSpace:
    """Ranges: defaults (for GPUs if trials get one), then the preset's, then a --space file,
    then --range and --cells."""
    gpu = getattr(args, "gpus_per_trial", 0) > 0
    space = space_from_mapping({**(GPU_SPACE if gpu else {}), **preset.get("space", {})})
    if "space_file" in args:
        space = load_space_file(args.space_file, space)
    overrides: dict[str, Any] = {}
    for item in args.range:
        field_name, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--range expects FIELD=VALUES, got {item!r}")
        overrides[field_name.strip()] = value
    if "cells" in args:
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


def config_from_args(args: argparse.Namespace) -> SearchConfig:
    storage = getattr(args, "storage", DEFAULTS.storage)
    preset = dict(PRESETS[args.preset]) if "preset" in args else {}
    settings = {k: v for k, v in preset.items() if k != "space"}
    settings.update({k: v for k, v in vars(args).items() if k in CONFIG_FIELDS})
    if isinstance(settings.get("time_budget_s"), str):
        settings["time_budget_s"] = parse_duration(settings["time_budget_s"])
    if not args.resume:
        settings.setdefault("name", default_name(args.corpus))
        return SearchConfig(**settings, space=build_space(args, preset))

    name = getattr(args, "name", "") or latest_search(storage, args.corpus)
    path = Path(storage).resolve() / name
    if not (path / "search.json").is_file():
        raise ConfigError(f"no search named {name!r} in {storage} to resume")
    per_run = {k: settings[k] for k in PER_RUN if k in settings}
    saved = load_search_config(path, {"storage": storage, "address": None, **per_run})
    # The same command plus --resume is welcome; a changed setting is refused, not ignored.
    space_given = bool(SPACE_FLAGS & set(vars(args))) or bool(args.range)
    space = build_space(args, preset) if space_given else saved.space
    given = replace(saved, **settings, space=space)
    changed = [
        f.name for f in fields(SearchConfig) if getattr(given, f.name) != getattr(saved, f.name)
    ]
    if changed:
        raise ConfigError(
            f"--resume continues search {name!r} with its saved settings; these differ: "
            f"{', '.join(changed)}"
        )
    return saved


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
        f"({outcome.wall_s:.0f} s, of which {outcome.startup_s:.0f} s start-up)"
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
