"""Command line for a hyperparameter search (a thin layer over `search.engine.tuning.run_search`).

    python -m search.run --corpus irc --time-budget 2h
    python -m search.run --corpus irc --time-budget 2h --resume       # after Ctrl-C or SIGTERM
    python -m search.run --corpus notes.txt --preset small --address auto   # on a Ray cluster

Every flag but a few comes from a field of `SearchConfig` (its help is the field's comment);
a `--preset` fills the flags not given.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from corpora.dataset import lasting
from corpora.errors import run_cli
from corpora.flags import OneLineParser, add_flags, checked
from model.config import parse_duration
from model.errors import ConfigError
from search.folder.config import (
    FLAG_NAMES,
    SAMPLERS,
    SCHEDULERS,
    WANDB_MODES,
    SearchConfig,
    default_name,
    load_search_config,
)
from search.folder.presets import PRESETS, preset, preset_space
from search.folder.space import GPU_SPACE, SearchSpace, load_space_file, space_from_mapping
from search.folder.store import SETTINGS, SearchFolder

DEFAULTS = SearchConfig()
CONFIG_FIELDS = {f.name for f in fields(SearchConfig)} - {"space"}
SPACE_FLAGS = {"preset", "space_file", "cells"}  # flags (besides --range) that shape the space
PER_RUN = ("address", "data_dir", "time_budget_s")  # settings --resume may change


def build_parser() -> argparse.ArgumentParser:
    # Flags absent from the command line stay absent (SUPPRESS), so that a --preset can fill them
    # and SearchConfig's own defaults fill the rest: each default is stated once.
    p = OneLineParser(
        prog="python -m search.run",
        description="Search character-level LSTM hyperparameters within a time budget: Optuna "
        "suggests, a Ray Tune scheduler stops and promotes.",
        argument_default=argparse.SUPPRESS,
    )
    presets = "; ".join(f"{n}: {x.help}" for n, x in PRESETS.items()).replace("%", "%%")
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help=f"a named budget; flags given override it: {presets}")  # fmt: skip
    add_flags(
        p,
        SearchConfig,
        skip=("space",),
        rename=FLAG_NAMES,
        types_={"time_budget_s": checked(parse_duration)},
        metavars={"time_budget_s": "DURATION", "warm_start": "FOLDER", "storage": "FOLDER"},
        choices={"scheduler": SCHEDULERS, "sampler": SAMPLERS, "wandb_mode": WANDB_MODES},
        required=("corpus",),
    )
    p.add_argument("--resume", action="store_true", default=False,
                   help="continue an interrupted search (same --name, or the latest of this "
                   "corpus) with its saved settings; only --address, --data-dir and "
                   "--time-budget may change")  # fmt: skip
    p.add_argument("--space", dest="space_file", metavar="FILE",
                   help="YAML or TOML file overriding search ranges")  # fmt: skip
    p.add_argument("--range", action="append", default=[], metavar="FIELD=LOW,HIGH",
                   help="override one search range or choice list, e.g. hidden_size=64,512 "
                   "(repeatable)")  # fmt: skip
    p.add_argument("--cells", help="recurrent cells to search, e.g. lstm,gru,rnn (default lstm)")
    return p


def build_space(args: argparse.Namespace) -> SearchSpace:
    """Ranges: defaults (for GPUs if trials get one), then the preset's, then a --space file,
    then --range and --cells."""
    gpu = getattr(args, "gpus_per_trial", 0) > 0
    base = space_from_mapping(GPU_SPACE if gpu else {})
    space = preset_space(getattr(args, "preset", None), base)
    if "space_file" in args:
        space = load_space_file(args.space_file, space)
    overrides: dict[str, Any] = {}
    for item in args.range:
        field_name, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--range expects FIELD=VALUES, got {item!r}")
        overrides[field_name.strip()] = value
    if "cells" in args:
        overrides["cell"] = args.cells
    return space_from_mapping(overrides, space)


def latest_search(storage: str, corpus: str) -> str:
    """Name of the most recently started search of `corpus` in `storage`."""
    found = []
    folders = Path(storage).iterdir() if Path(storage).is_dir() else ()
    for folder in (SearchFolder(p) for p in folders if p.is_dir()):
        try:
            saved = folder.read_settings()
        except ConfigError:  # not a search, or its settings are unreadable
            continue
        if lasting(saved.get("corpus")) == lasting(corpus):  # a relative file made absolute
            found.append((folder.state_file(SETTINGS).stat().st_mtime, folder.path.name))
    if not found:
        raise ConfigError(f"no search of corpus {corpus!r} in {storage} to resume")
    return max(found)[1]


def config_from_args(args: argparse.Namespace) -> SearchConfig:
    if "corpus" not in args:
        raise ConfigError("--corpus is required: a registered corpus name or a text file")
    storage = getattr(args, "storage", DEFAULTS.storage)
    chosen = dict(preset(args.preset).settings) if "preset" in args else {}
    settings = {**chosen, **{k: v for k, v in vars(args).items() if k in CONFIG_FIELDS}}
    if "time_budget" in args:
        settings["time_budget_s"] = args.time_budget
    if not args.resume:
        settings.setdefault("name", default_name(args.corpus))
        return SearchConfig(**settings, space=build_space(args))

    name = getattr(args, "name", "") or latest_search(storage, args.corpus)
    path = Path(storage).resolve() / name
    if not SearchFolder(path).exists():
        raise ConfigError(f"no search named {name!r} in {storage} to resume")
    per_run = {k: settings[k] for k in PER_RUN if k in settings}
    saved = load_search_config(path, {"storage": storage, "address": None, **per_run})
    # The same command plus --resume is welcome; a changed setting is refused, not ignored.
    space_given = bool(SPACE_FLAGS & set(vars(args))) or bool(args.range)
    space = build_space(args) if space_given else saved.space
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


def command(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    from search.engine.tuning import interrupted_hint, run_search  # imports Ray: once valid
    from search.reports.render import format_ranking

    try:
        outcome = run_search(config, resume=args.resume)
    except KeyboardInterrupt:  # before Tune ran the search, or while its tables were written
        print(interrupted_hint(config), file=sys.stderr)
        return 130
    print()
    print(format_ranking(outcome.trials))
    if outcome.best:
        print(
            f"\nbest: trial {outcome.best_trial}, val_bpc {outcome.best_val_bpc:.4f}; "
            f"model in {outcome.path / 'best'}"
        )
        if "test_bpc" in outcome.best:  # scored once, on text no selection saw
            b = outcome.best
            low, high = b["test_dynamic_bpc_interval"]
            print(f"test split ({b['test_chars']:,} characters): {b['test_bpc']:.4f} bpc, "
                  f"adaptive {b['test_dynamic_bpc']:.4f} [{low:.4f}, {high:.4f}] "
                  f"({b['test_eval_s']:.0f} s)")  # fmt: skip
        print(f"\n--- sample from the best model ---\n{outcome.sample}\n---")
    print(
        f"results: {outcome.path / 'trials.parquet'}, {outcome.path / 'curves.parquet'} "
        f"({outcome.wall_s:.0f} s, of which {outcome.startup_s:.0f} s start-up)"
    )
    if outcome.interrupted:
        print(interrupted_hint(config), file=sys.stderr)
        return 130
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; every expected failure is one "error:" line and exit status 2."""
    return run_cli(command, argv)


if __name__ == "__main__":
    sys.exit(main())
