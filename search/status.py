"""How a search is doing, from its folder alone (no Ray): from another terminal or machine.

    python -m search.status runs/NAME             # its state (running, finished...), best, trials
    python -m search.status runs/NAME --watch     # the same, refreshed every few seconds
    python -m search.status runs/NAME --json      # the same as JSON, for scripts
    python -m search.status runs/NAME --plot      # draw trials.png and best-so-far.png now

A thin command line over `search.reports.status` (`read_status`, `format_status`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

from corpora.errors import run_cli
from corpora.flags import OneLineParser
from search.folder.store import SearchFolder
from search.reports.status import STARTING, WATCH_S, format_status, read_status


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="python -m search.status",
        description="Show how a search is doing (starting, running, finished or interrupted), "
        "from its folder alone.",
    )
    p.add_argument("folder", help="the search folder, e.g. runs/NAME")
    p.add_argument(
        "--watch",
        action="store_true",
        help=f"refresh every {WATCH_S:g} s until the search stops (Ctrl-C ends)",
    )
    p.add_argument("--json", action="store_true", help="print the same as JSON")
    p.add_argument("--plot", action="store_true",
                   help="draw trials.png and best-so-far.png into the folder now")  # fmt: skip
    return p


def command(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return show(args)
    except KeyboardInterrupt:
        if not args.watch:
            raise
        return 0  # Ctrl-C is how a watch ends: the search goes on


def show(args: argparse.Namespace) -> int:
    """Print the search's status once, or (`--watch`) until it stops running."""
    while True:
        info = read_status(args.folder)
        if args.json:
            print(json.dumps(info, default=str), flush=True)
        else:
            print(format_status(info), flush=True)
        if args.plot and info["started"] is None:  # starting, or stopped before its budget
            print("nothing to draw before the budget starts", file=sys.stderr)
        elif args.plot:
            from search.reports.plots import plot_search

            running = info["state"] == "running"
            for path in plot_search(SearchFolder(args.folder), running):
                print(f"wrote {path}", file=sys.stderr if args.json else sys.stdout)
        if not args.watch or info["state"] not in ("running", STARTING):
            return 0
        time.sleep(WATCH_S)
        if not args.json:
            print()


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; every expected failure is one "error:" line and exit status 2."""
    return run_cli(command, argv)


if __name__ == "__main__":
    sys.exit(main())
