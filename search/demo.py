"""The corpus-comparison demo: small equal-length searches of bundled corpora, then the report.

    python -m search.demo                          # "demo": 3 corpora, about 2.5 min on 2 cores
    python -m search.demo --preset demo-full       # 4 corpora of 2.6 M characters, 4 min each
    python -m search.demo --corpora irc,nginx --time-budget 1m --max-chars 300000

The sizes are presets of the one registry (`search.folder.presets`); the searches run one after
another on one local Ray, and `search.reports.report` compares them (see
`python -m search.compare`).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from corpora.errors import run_cli
from corpora.flags import OneLineParser, checked
from model.config import parse_duration
from model.errors import ConfigError
from search.folder.config import SearchConfig, corpus_stem
from search.folder.presets import PRESETS, from_preset, preset
from search.folder.store import SearchFolder
from search.reports.report import CompareConfig, build_report, check_out
from search.reports.status import resume_command

DEMOS = [name for name, p in PRESETS.items() if p.corpora]


def demo_configs(
    name: str,
    storage: str,
    stamp: str,
    corpora: Sequence[str] | None = None,
    **overrides: object,
) -> list[SearchConfig]:
    """One SearchConfig per corpus of preset `name`, all cut to the same length; ConfigError
    if two corpora would share a search's name (the same corpus twice, or two files of one
    stem)."""
    chosen = preset(name)
    configs = [
        from_preset(
            name,
            corpus=corpus,
            seed=0,
            name=f"{corpus_stem(corpus)}-demo-{stamp}",
            storage=storage,
            **overrides,
        )
        for corpus in (corpora or chosen.corpora)
    ]
    names = [c.name for c in configs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"--corpora names one corpus twice: {', '.join(twice)}")
    return configs


def check_one_length(configs: Sequence[SearchConfig], lengths: Sequence[int]) -> None:
    """The report ranks texts of one length only: ConfigError, before any search, if a corpus is
    shorter than the others' cut (`lengths`: each corpus's characters after `--max-chars`)."""
    if len(set(lengths)) > 1:
        shortest = min(lengths)
        detail = ", ".join(f"{c.corpus} {n:,}" for c, n in zip(configs, lengths, strict=True))
        raise ConfigError(f"the corpora have unequal lengths after --max-chars ({detail}): the "
                          f"report compares one length; pass --max-chars {shortest}")  # fmt: skip


def run_demo(configs: Sequence[SearchConfig]) -> list[Path]:
    """Run the demo searches one after another on one local Ray; their folders, in order.

    KeyboardInterrupt (with the search's folder) if a search was interrupted (Ctrl-C, SIGTERM);
    finished ones stay on disk.
    """
    import ray  # only the demo starts searches

    from search.engine.cluster import start_ray
    from search.engine.tuning import (
        check_search,
        keeps_sigterm_handler,
        run_search,
        sigterm_interrupts,
    )

    # A bad corpus or setting fails before the first search, not after.
    check_one_length(configs, [check_search(config)[0].n_chars for config in configs])
    with sigterm_interrupts():  # between the searches too, not ray.init's silent exit
        with keeps_sigterm_handler():
            started = start_ray(None)
        paths = []
        try:
            for config in configs:
                print(f"demo: searching {config.corpus} -> {config.path}", file=sys.stderr)
                outcome = run_search(config)
                if outcome.interrupted:
                    raise KeyboardInterrupt(str(config.path))
                paths.append(outcome.path)
        finally:
            if started:
                ray.shutdown()
    return paths


def interrupted_text(storage: str, path: str | None = None) -> str:
    """What an interrupted demo says: where the finished searches are, and the command that
    resumes the search it interrupted (in `path`; None: it was between searches), as
    `search.status` gives it (none where that search had not yet saved its settings)."""
    text = f"interrupted; the demo searches that finished are in {storage}"
    if path:
        try:
            resume = resume_command(SearchFolder(Path(path)))
        except ConfigError:  # interrupted before it saved its settings: nothing to resume
            return text
        text += f"; {Path(path).name} was interrupted, continue it with: {resume}"
    return text


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m search.demo", description=__doc__.split("\n")[0])
    sizes = "; ".join(f"{n}: {PRESETS[n].help}" for n in DEMOS).replace("%", "%%")
    p.add_argument("--preset", choices=DEMOS, default="demo", help=sizes)
    p.add_argument("--corpora", default=None, help="comma-separated corpora (default: preset's)")
    p.add_argument("--max-chars", type=int, default=None,
                   help="prefix length of every corpus (default: the preset's)")  # fmt: skip
    p.add_argument("--time-budget", type=checked(parse_duration), default=None, metavar="DURATION",
                   help="time per corpus, e.g. 60 or 5m (default: the preset's)")  # fmt: skip
    p.add_argument("--data-dir", default=None, help="local corpus folder")
    p.add_argument("--storage", default="runs", help="folder for the searches (default runs)")
    p.add_argument("--out", default=None, help="report folder (default reports/demo-DATE-TIME)")
    return p


def command(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    overrides = {
        k: v
        for k, v in (
            ("max_chars", args.max_chars),
            ("time_budget_s", args.time_budget),
            ("data_dir", args.data_dir),
        )  # fmt: skip
        if v is not None
    }
    corpora = None
    if args.corpora is not None:
        corpora = [c.strip() for c in args.corpora.split(",") if c.strip()]
        if not corpora:
            raise ConfigError(f"--corpora names no corpus: {args.corpora!r}")
    out = check_out(args.out or f"reports/demo-{stamp}")  # before the searches' minutes
    configs = demo_configs(args.preset, args.storage, stamp, corpora, **overrides)
    try:
        searches = [str(p) for p in run_demo(configs)]
    except KeyboardInterrupt as interrupt:
        print(interrupted_text(args.storage, *interrupt.args[:1]), file=sys.stderr)
        return 130
    report = build_report(CompareConfig(searches=tuple(searches), out=str(out),
                                        data_dir=args.data_dir))  # fmt: skip
    print(report.terminal)
    print(f"\nreport: {report.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; every expected failure is one "error:" line and exit status 2."""
    return run_cli(command, argv)


if __name__ == "__main__":
    sys.exit(main())
