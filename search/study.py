"""Controlled studies: what one factor does to learning, everything else held fixed.

    python -m search.study cell --corpus monte-cristo --max-chars 300000 --budget-chars 200000 \
        --seeds 2
    python -m search.study hidden_size --corpus irc --base runs/irc-20261129-101500 \
        --values 64,128,256 --time-budget 60
    python -m search.study max_chars --corpus irc --values 250000,1000000,4000000

A thin command line over `search.studies.study` (`run_study`, which documents a study).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from corpora.errors import run_cli
from corpora.flags import OneLineParser, checked
from model.config import parse_duration
from model.errors import ConfigError
from search.folder.config import default_name
from search.studies.study import (
    FACTORS,
    StudyConfig,
    StudyInterrupted,
    base_settings,
    parse_value,
    run_study,
)


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m search.study", description=__doc__.split("\n")[0])
    p.add_argument("factor", help=f"what varies: {', '.join(FACTORS)}")
    p.add_argument("--corpus", default=None, help="corpus name or path (required)")
    p.add_argument("--values", default=None, help="comma-separated values (default per factor)")
    p.add_argument("--base", default=None, metavar="FOLDER",
                   help="an earlier search whose best configuration fixes the rest")  # fmt: skip
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="fix one hyperparameter (repeatable)")  # fmt: skip
    p.add_argument("--seeds", type=int, default=3, help="seeds per value (default 3)")
    p.add_argument("--budget-chars", type=int, default=None, help="training characters of "
                   f"every arm (default {StudyConfig.budget_chars:,})")  # fmt: skip
    p.add_argument("--time-budget", type=checked(parse_duration), default=None, metavar="DURATION",
                   help="instead: training time of every arm, e.g. 60 or 2m")  # fmt: skip
    p.add_argument("--max-chars", type=int, default=None, help="corpus prefix length")
    p.add_argument("--val-fraction", type=float, default=0.05, help="validation share (0.05)")
    p.add_argument("--name", default="", help="study folder name "
                   "(default study-FACTOR-CORPUS-DATE-TIME-XXXXXX)")  # fmt: skip
    p.add_argument("--storage", default="runs", help="folder for studies (default runs)")
    p.add_argument("--address", default=None, help="a running Ray cluster, e.g. auto")
    p.add_argument("--data-dir", default=None, help="local corpus folder")
    return p


def config_from_args(args: argparse.Namespace) -> StudyConfig:
    if args.factor not in FACTORS:
        raise ConfigError(f"unknown factor {args.factor!r}; choose from {', '.join(FACTORS)}")
    values = tuple(parse_value(args.factor, v.strip()) for v in (args.values or "").split(",")
                   if v.strip())  # fmt: skip
    sets = []
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        sets.append((key.strip(), value.strip()))
    if args.corpus is None:
        raise ConfigError("--corpus is required: a registered corpus name or a text file")
    if args.budget_chars is not None and args.time_budget is not None:
        raise ConfigError("give --budget-chars or --time-budget (one of the two), not both")
    name = args.name or f"study-{args.factor}-{default_name(args.corpus)}"
    return StudyConfig(
        factor=args.factor, corpus=args.corpus, values=values, base=args.base, sets=tuple(sets),
        seeds=args.seeds,
        budget_chars=StudyConfig.budget_chars if args.budget_chars is None else args.budget_chars,
        time_budget_s=args.time_budget or 0.0,
        max_chars=args.max_chars, val_fraction=args.val_fraction, name=name,
        storage=args.storage, address=args.address, data_dir=args.data_dir,
    )  # fmt: skip


def command(argv: Sequence[str] | None = None) -> int:
    config = config_from_args(build_parser().parse_args(argv))
    base_settings(config)  # a bad --base or --set fails before Ray starts
    try:
        path = run_study(config)
    except StudyInterrupted as stop:
        if not stop.path.exists():  # no arm had started: nothing was kept
            print("interrupted before any arm started; the same command starts it again",
                  file=sys.stderr)  # fmt: skip
            return 130
        print(f"interrupted; what ran is in {stop.path}, without a report (a study does not "
              "resume: run it again under another --name)", file=sys.stderr)  # fmt: skip
        return 130
    sections = (path / "study.md").read_text(encoding="utf-8").split("\n## ")
    print(sections[1].split("\n", 1)[1])  # the table per value
    print("\n".join(f"{s.rstrip()}\n" for s in sections[2:] if s.startswith("Against")))
    print(f"study: {path / 'study.parquet'}, {path / 'study.md'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; every expected failure is one "error:" line and exit status 2."""
    return run_cli(command, argv)


if __name__ == "__main__":
    sys.exit(main())
