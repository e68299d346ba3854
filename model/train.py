"""Train one character-level model from the command line.

    python -m model.train --corpus monte-cristo --hidden-size 256 --num-layers 2 --dropout 0.1 \
        --seq-len 128 --batch-size 64 --lr 2e-3 --max-train-chars 5000000 --out runs/mc

Writes to `--out`: `checkpoint.pt` (latest, resumable with `--resume`), `best.pt` (lowest
validation bpc), `metrics.parquet` (one row per report) and `config.json`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import torch
from filelock import FileLock, Timeout
from tqdm import tqdm

from corpora import CorpusConfig, load_corpus
from corpora.errors import run_cli
from corpora.files import atomic_write, write_parquet
from corpora.flags import OneLineParser, add_flags, checked
from model.config import (
    TrainConfig,
    parse_duration,
    run_config_from_flat,
    run_config_to_flat,
    with_vocab_size,
)
from model.errors import ConfigError
from model.loop import Metrics, Trainer, fit, load_checkpoint, save_checkpoint
from model.lstm import ModelConfig, count_parameters
from model.sample import BEST, LATEST

OWN_FLAGS = ("out", "resume", "threads", "time_budget")  # not settings of the run itself


def build_parser() -> argparse.ArgumentParser:
    """Flags from the config dataclasses (help: their field comments), then this command's own."""
    parser = OneLineParser(
        prog="python -m model.train", description="Train a character-level LSTM on a corpus."
    )
    add_flags(parser.add_argument_group("corpus"), CorpusConfig, rename={"name": "corpus"})
    add_flags(parser.add_argument_group("model"), ModelConfig, skip=("vocab_size",))
    add_flags(parser.add_argument_group("training"), TrainConfig)
    parser.add_argument("--out", required=True, help="run folder for checkpoints and metrics")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.add_argument(
        "--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)"
    )
    parser.add_argument(
        "--time-budget",
        type=checked(parse_duration),
        default=None,
        metavar="DURATION",
        help="wall time for this command, e.g. 300, 10m or 2h: training stops in time to "
        "validate, checkpoint and report once more before it ends",
    )
    return parser


def read_metrics(path: Path) -> list[Metrics]:
    """The rows of a run's metrics.parquet; ConfigError if it cannot be read."""
    try:
        return pq.read_table(path).to_pylist()
    except (OSError, pa.ArrowException) as error:
        raise ConfigError(f"cannot read metrics {path}: {str(error).splitlines()[0]}") from None


def check_not_diverged(out: Path) -> None:
    """A diverged run is over: resuming it would diverge again (ConfigError saying so)."""
    if (out / "metrics.parquet").is_file():
        rows = read_metrics(out / "metrics.parquet")
        if rows and rows[-1]["diverged"]:
            raise ConfigError(
                f"the run in {out} diverged after {rows[-1]['chars_seen']:,} chars; resuming "
                "would diverge again. Start a new run with other settings (a lower --lr)"
            )


def write_metrics(rows: list[Metrics], path: Path) -> None:
    write_parquet(pa.Table.from_pylist(rows), path)


def train_to_folder(
    flat: dict[str, Any],
    out: Path,
    resume: bool = False,
    progress: bool = True,
    on_report: Callable[[Metrics], None] | None = None,
    deadline: float | None = None,
) -> list[Metrics]:
    """Train (or resume) a run into `out`; returns every report, earlier ones included.

    `on_report` also receives every report but a diverged one (e.g. a W&B logger of the sweep
    entry point; a diverged report's loss is no measurement).
    `deadline` (a `time.time()`) ends training early enough for a last report before it.
    """
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; name a folder for the run")
    latest = out / LATEST
    if resume:
        check_not_diverged(out)
    if resume and not latest.is_file():
        raise ConfigError(f"nothing to resume: {latest} does not exist")
    if not resume and latest.exists():
        raise ConfigError(f"{out} already holds a run; pass --resume or choose another --out")
    if not resume:  # everything a user can get wrong is checked before the folder is made
        run = run_config_from_flat(flat)
        corpus = load_corpus(run.corpus)
        trainer = Trainer(with_vocab_size(run, len(corpus.vocab)), corpus)
    out.mkdir(parents=True, exist_ok=True)
    lock = FileLock(out / ".lock", timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise ConfigError(f"{out} is in use by another training process") from None
    try:
        return _train(trainer if not resume else None, out, resume, progress, on_report, deadline)
    finally:
        lock.release()


def _train(
    trainer: Trainer | None,
    out: Path,
    resume: bool,
    progress: bool,
    on_report: Callable[[Metrics], None] | None,
    deadline: float | None,
) -> list[Metrics]:
    latest = out / LATEST
    rows: list[Metrics] = []
    if resume:
        checkpoint = load_checkpoint(str(latest))
        run = run_config_from_flat(checkpoint["run_config"])
        corpus = load_corpus(run.corpus)
        trainer = Trainer.restore(checkpoint, corpus)
        if (out / "metrics.parquet").is_file():
            rows = read_metrics(out / "metrics.parquet")
        # No row past the checkpoint: a kill between the two writes (older versions wrote the
        # metrics first) must not count those characters twice.
        rows = [r for r in rows if r["chars_seen"] <= trainer.chars_seen]
    elif latest.exists():  # another process started a run here meanwhile
        raise ConfigError(f"{out} already holds a run; pass --resume or choose another --out")
    corpus = trainer.corpus
    atomic_write(out / "config.json", json.dumps(run_config_to_flat(trainer.run), indent=2) + "\n")
    print(
        f"corpus {corpus.name}: {corpus.n_chars:,} chars, {len(corpus.vocab)} distinct, "
        f"{len(corpus.train_ids):,} train / {len(corpus.val_ids):,} val; model "
        f"{count_parameters(trainer.model):,} parameters on {trainer.device}"
        + ("; not the registry's reference file (sha256 differs)" if corpus.verified is False
           else ""),
        file=sys.stderr,
    )  # fmt: skip
    best = min((r["val_bpc"] for r in rows if not r["diverged"]), default=float("inf"))
    bar = tqdm(
        total=trainer.run.train.max_train_chars,
        initial=trainer.chars_seen,
        unit="char",
        unit_scale=True,
        disable=not progress,
        file=sys.stderr,
    )

    def report(metrics: Metrics) -> None:
        nonlocal best
        rows.append(metrics)
        if metrics["diverged"]:  # keep the last sound checkpoint, not the exploded weights
            write_metrics(rows, out / "metrics.parquet")
            bar.write(f"diverged after {metrics['chars_seen']:,} chars")
            return
        # The checkpoint first: the metrics never run ahead of it, so a kill between the two
        # writes leaves no row that --resume would write again.
        checkpoint = trainer.save(latest)
        if metrics["val_bpc"] < best:
            best = metrics["val_bpc"]
            save_checkpoint(checkpoint, str(out / BEST))
        write_metrics(rows, out / "metrics.parquet")
        bar.write(
            f"chars {metrics['chars_seen']:>11,}  train_bpc {metrics['train_bpc']:.4f}  "
            f"val_bpc {metrics['val_bpc']:.4f}  {metrics['chars_per_s']:,.0f} chars/s"
        )
        if on_report is not None:
            on_report(metrics)

    status = fit(trainer, report, deadline=deadline, on_step=bar.update)
    bar.close()
    final = rows[-1]["val_bpc"] if rows else float("nan")
    kept = f" (best {best:.4f})" if math.isfinite(best) else ""
    print(f"{status}: val_bpc {final:.4f}{kept} after {trainer.chars_seen:,} chars")
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; every expected failure is one "error:" line and exit status 2."""
    return run_cli(command, argv)


def command(argv: Sequence[str] | None = None) -> int:
    started = time.time()
    args = build_parser().parse_args(argv)
    flat = {k: v for k, v in vars(args).items() if k not in OWN_FLAGS}
    if args.threads < 0:
        raise ConfigError(f"threads must be non-negative (0: torch's default), got {args.threads}")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.resume and flat:
        raise ConfigError("--resume continues with the saved settings; drop the other flags")
    try:
        rows = train_to_folder(
            flat,
            Path(args.out),
            resume=args.resume,
            progress=sys.stderr.isatty(),
            deadline=None if args.time_budget is None else started + args.time_budget,
        )
    except KeyboardInterrupt:
        if (Path(args.out) / LATEST).is_file():
            hint = f"continue with: python -m model.train --out {args.out} --resume"
        else:  # before its first report: nothing was saved to continue from
            hint = "nothing was saved before its first report; the same command starts it again"
        print(f"interrupted; {hint}", file=sys.stderr)
        return 130
    failure = diverged_error(rows, Path(args.out))
    if failure:  # the run failed: a script must not take it for done
        print(failure, file=sys.stderr)
        return 1
    return 0


def diverged_error(rows: list[Metrics], out: Path) -> str | None:
    """The error line of a run whose last report diverged (None for any other run)."""
    if not rows or not rows[-1]["diverged"]:
        return None
    kept = f"its best model is in {out / BEST}" if (out / BEST).is_file() else "no model"
    return (f"error: the run diverged after {rows[-1]['chars_seen']:,} chars ({kept}); "
            "start a new one with a lower --lr")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
