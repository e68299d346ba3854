"""Command line: list the registered corpora and where they come from, or fetch one.

    python -m corpora list [--data-dir DIR] [--cache-dir DIR]
    python -m corpora fetch NAME [--data-dir DIR] [--cache-dir DIR] [--no-download]

A CorpusError (or OSError) becomes one "error: ..." line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tabulate import tabulate

from corpora.errors import CorpusError, run_cli
from corpora.fetch import DATA_DIR_ENV, default_cache_dir, local_path, resolve_corpus
from corpora.flags import OneLineParser
from corpora.registry import REGISTRY, CorpusSpec
from corpora.text import file_sha256, read_text
from corpora.vocab import Vocab


@dataclass(frozen=True)
class CorpusStatus:
    """One row of `list`: where a corpus would come from and, if present, its size."""

    name: str
    source: str  # "data dir: PATH", "cache: PATH" or "download: URL"
    present: bool
    n_bytes: int | None  # None when not present
    n_chars: int | None
    n_distinct: int | None
    title: str
    checksum: str = "-"  # "ok": the registry's reference file; "differs"; "-": not present
    problem: str | None = None  # why a present file cannot be read ("unreadable" above)


def corpus_status(spec: CorpusSpec, data_dir: Path | None, cache_dir: Path | None) -> CorpusStatus:
    """Where `spec` resolves without downloading, with sizes when the file is present."""
    cache_dir = cache_dir or default_cache_dir()
    path = local_path(spec, data_dir, cache_dir)
    if path is None:
        return CorpusStatus(spec.name, f"download: {spec.url}", False, None, None, None, spec.title)
    kind = "cache" if path.parent == cache_dir else "data dir"
    try:
        text = read_text(path)
    except CorpusError as error:  # one bad file spoils its own row, not the table
        return CorpusStatus(
            spec.name, f"{kind}: {path}", True, path.stat().st_size, None, None, spec.title,
            "unreadable", str(error),
        )  # fmt: skip
    return CorpusStatus(
        spec.name,
        f"{kind}: {path}",
        True,
        path.stat().st_size,
        len(text),
        len(Vocab.from_text(text)),
        spec.title,
        "ok" if file_sha256(path) == spec.sha256 else "differs",
    )


def format_table(rows: Sequence[CorpusStatus]) -> str:
    """A plain-text table, one corpus a line; `checksum` says whether the local file is the
    registry's reference file."""

    def number(value: int | None) -> str:
        return "-" if value is None else f"{value:,}"

    header = ("name", "source", "local", "MB", "chars", "distinct", "checksum", "title")
    body = [
        (
            r.name,
            r.source,
            "yes" if r.present else "no",
            "-" if r.n_bytes is None else f"{r.n_bytes / 1e6:.2f}",
            number(r.n_chars),
            number(r.n_distinct),
            r.checksum,
            r.title,
        )
        for r in rows
    ]
    align = ("left", "left", "left", "right", "right", "right", "left", "left")
    return tabulate(body, headers=header, tablefmt="plain", colalign=align, disable_numparse=True)


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m corpora", description=__doc__.split("\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"folder holding prepared corpus files (default: ${DATA_DIR_ENV})",
    )
    common.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"download cache (default: {default_cache_dir()})",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "list",
        parents=[common],
        help="show registered corpora and their sources",
        description="Show each registered corpus, where it would come from "
        "(data folder, cache or URL) and, if present, its size.",
    )
    fetch = commands.add_parser(
        "fetch",
        parents=[common],
        help="find or download one corpus",
        description="Resolve one corpus (downloading it into the cache "
        "if needed) and print its path.",
    )
    fetch.add_argument(
        "name",
        metavar="NAME",
        help=f"registered name ({', '.join(REGISTRY)}) or path to a text file",
    )
    fetch.add_argument(
        "--no-download",
        action="store_true",
        help="fail instead of downloading when the corpus is not on disk",
    )
    return parser


def command(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "list":
        rows = [corpus_status(s, args.data_dir, args.cache_dir) for s in REGISTRY.values()]
        print(format_table(rows))
        for row in rows:
            if row.problem:
                print(f"warning: {row.problem}", file=sys.stderr)
    else:
        download = not args.no_download
        path = resolve_corpus(args.name, args.data_dir, args.cache_dir, download=download)
        read_text(path)  # refuses an empty, binary or non-UTF-8 file, as training does
        spec = REGISTRY.get(args.name)
        if spec is not None and file_sha256(path) != spec.sha256:
            print(f"warning: {path} is not the registry's reference file (sha256 differs); "
                  "results name it by its own checksum", file=sys.stderr)  # fmt: skip
        print(path)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; every expected failure is one "error:" line and exit status 2."""
    return run_cli(command, argv)
