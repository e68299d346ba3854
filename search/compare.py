"""Compare corpora: each search's best model against compressors, at equal length.

    python -m search.compare runs/irc-2.6M runs/mc-2.6M --out reports/equal-2.6M
    python -m search.compare --all runs --thresholds 3,2.5,2,1.5
    python -m search.demo                        # run small equal-length searches, then this

A thin command line over `search.reports.report.build_report` (which documents the report); the
demo that runs searches first is `python -m search.demo`.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence

from corpora.errors import run_cli
from corpora.flags import OneLineParser, add_flags
from model.errors import ConfigError
from search.reports.predictability import DEFAULT_THRESHOLDS
from search.reports.report import MARKDOWN_FILE, TABLE_FILE, CompareConfig, build_report
from search.reports.searches import find_searches


def parse_thresholds(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 3,2.5,2; got {text!r}") from None
    if not values or any(not (v > 0 and math.isfinite(v)) for v in values):
        raise argparse.ArgumentTypeError(f"thresholds must be positive numbers; got {text!r}")
    return tuple(sorted(set(values), reverse=True))


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m search.compare", description=__doc__.split("\n")[0])
    p.add_argument("searches", nargs="*", help="search folders (search.json and trials.parquet)")
    p.add_argument("--all", nargs="?", const="runs", default=None, metavar="STORAGE",
                   help="compare every finished search in STORAGE (default runs)")  # fmt: skip
    add_flags(p, CompareConfig, skip=("searches", "thresholds"),
              metavars={"out": "FOLDER", "data_dir": "FOLDER"},
              shown={"out": "reports/compare-DATE-TIME"})  # fmt: skip
    p.add_argument("--thresholds", type=parse_thresholds, default=argparse.SUPPRESS,
                   metavar="BPC,...", help="bpc levels the best trial is timed to "
                   f"(default: {','.join(f'{t:g}' for t in DEFAULT_THRESHOLDS)})")  # fmt: skip
    return p


def command(argv: Sequence[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    folders, storage = args.pop("searches"), args.pop("all")
    if bool(folders) == (storage is not None):
        raise ConfigError("give search folders or --all STORAGE (one of the two)")
    searches = tuple(str(p) for p in find_searches(storage)) if storage else tuple(folders)
    args.setdefault("out", f"reports/compare-{time.strftime('%Y%m%d-%H%M%S')}")
    report = build_report(CompareConfig(searches=searches, **args))
    print(report.terminal)
    print(f"\nreport: {report.out / MARKDOWN_FILE}, {report.out / TABLE_FILE} and plots")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; every expected failure is one "error:" line and exit status 2."""
    return run_cli(command, argv)


if __name__ == "__main__":
    sys.exit(main())
