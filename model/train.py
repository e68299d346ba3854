"""Train one character-level model from the command line.

    python -m model.train --corpus monte-cristo --hidden-size 256 --num-layers 2 --dropout 0.1 \
        --seq-len 128 --batch-size 64 --lr 2e-3 --max-train-chars 5000000 --out runs/mc

Writes to `--out`: `checkpoint.pt` (latest, resumable with `--resume`), `best.pt` (lowest
validation bpc), `metrics.parquet` (one row per report) and `config.json`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tqdm import tqdm

from corpora import CorpusConfig, CorpusError, load_corpus
from model.config import (
    TrainConfig,
    parse_duration,
    run_config_from_flat,
    run_config_to_flat,
    with_vocab_size,
)
from model.errors import ConfigError
from model.files import atomic_path
from model.loop import Metrics, Trainer, fit, load_checkpoint, save_checkpoint
from model.lstm import ModelConfig, count_parameters
from model.sample import BEST, LATEST

HELP = {
    "corpus": "registered corpus name (see `python -m corpora list`) or path to a UTF-8 text file",
    "data_dir": "local folder holding corpus files (default: $CHARNN_DATA_DIR)",
    "max_chars": "use only this many leading characters of the corpus",
    "val_fraction": "fraction of the text, taken from its end, held out for validation",
    "vocab_size": None,  # derived from the corpus, not a flag
    "cell": "recurrent cell: lstm, gru or rnn",
    "embed_dim": "character embedding width",
    "hidden_size": "units per recurrent layer",
    "num_layers": "stacked recurrent layers",
    "dropout": "dropout between recurrent layers (needs num-layers > 1)",
    "batch_size": "parallel streams per batch",
    "seq_len": "characters per stream per step (backpropagation length)",
    "lr": "Adam learning rate",
    "weight_decay": "Adam weight decay",
    "grad_clip": "clip the gradient norm to this (0: no clipping)",
    "warmup_chars": "linear learning-rate warm-up, in training characters",
    "decay": "learning-rate decay after warm-up: none or cosine",
    "max_train_chars": "training budget in characters",
    "max_train_s": "training budget in seconds of training steps (0: none); the first budget "
    "used up ends training",
    "eval_every_chars": "evaluate, report and checkpoint after every this many characters",
    "seed": "random seed (weights, dropout); CPU runs repeat exactly",
    "device": "auto (CUDA when available), cpu or cuda",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m model.train", description="Train a character-level LSTM on a corpus."
    )
    defaults = {"corpus": CorpusConfig(), "model": ModelConfig(), "train": TrainConfig()}
    for part, default in defaults.items():
        group = parser.add_argument_group(part)
        for f in fields(default):
            key = "corpus" if (part, f.name) == ("corpus", "name") else f.name
            if HELP[key] is None:
                continue
            value = getattr(default, f.name)
            kind = {"max_chars": int, "data_dir": str}.get(key, type(value))
            group.add_argument(
                "--" + key.replace("_", "-"),
                type=kind,
                default=None,
                help=f"{HELP[key]} (default: {value})",
            )
    parser.add_argument("--out", required=True, help="run folder for checkpoints and metrics")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.add_argument(
        "--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)"
    )
    parser.add_argument(
        "--time-budget",
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


def write_metrics(rows: list[Metrics], path: Path) -> None:
    with atomic_path(path) as tmp:
        pq.write_table(pa.Table.from_pylist(rows), tmp)


def train_to_folder(
    flat: dict[str, Any],
    out: Path,
    resume: bool = False,
    progress: bool = True,
    on_report: Callable[[Metrics], None] | None = None,
    deadline: float | None = None,
) -> list[Metrics]:
    """Train (or resume) a run into `out`; returns every report, earlier ones included.

    `on_report` also receives every report (e.g. a W&B logger of the sweep entry point).
    `deadline` (a `time.time()`) ends training early enough for a last report before it.
    """
    latest = out / LATEST
    rows: list[Metrics] = []
    if resume:
        if not latest.is_file():
            raise ConfigError(f"nothing to resume: {latest} does not exist")
        checkpoint = load_checkpoint(str(latest))
        run = run_config_from_flat(checkpoint["run_config"])
        corpus = load_corpus(run.corpus)
        trainer = Trainer.restore(checkpoint, corpus)
        if (out / "metrics.parquet").is_file():
            rows = read_metrics(out / "metrics.parquet")
        if rows and rows[-1]["diverged"]:
            raise ConfigError(
                f"the run in {out} diverged after {rows[-1]['chars_seen']:,} chars; resuming "
                "would diverge again. Start a new run with other settings (a lower --lr)"
            )
        rows = [
            r for r in rows if r["chars_seen"] <= trainer.chars_seen
        ]  # none past the checkpoint
    else:
        if latest.exists():
            raise ConfigError(f"{out} already holds a run; pass --resume or choose another --out")
        run = run_config_from_flat(flat)
        corpus = load_corpus(run.corpus)
        run = with_vocab_size(run, len(corpus.vocab))
        trainer = Trainer(run, corpus)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(run_config_to_flat(trainer.run), indent=2) + "\n")
    print(
        f"corpus {corpus.name}: {corpus.n_chars:,} chars, {len(corpus.vocab)} distinct, "
        f"{len(corpus.train_ids):,} train / {len(corpus.val_ids):,} val; model "
        f"{count_parameters(trainer.model):,} parameters on {trainer.device}",
        file=sys.stderr,
    )
    best = min((r["val_bpc"] for r in rows), default=float("inf"))
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
        checkpoint = trainer.checkpoint()
        save_checkpoint(checkpoint, str(latest))
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
    print(f"{status}: val_bpc {final:.4f} (best {best:.4f}) after {trainer.chars_seen:,} chars")
    return rows


def main(argv: list[str] | None = None) -> int:
    started = time.time()
    args = build_parser().parse_args(argv)
    flat = {
        k: v
        for k, v in vars(args).items()
        if v is not None and k not in ("out", "resume", "threads", "time_budget")
    }
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        if args.resume and flat:
            raise ConfigError("--resume continues with the saved settings; drop the other flags")
        budget = None if args.time_budget is None else parse_duration(args.time_budget)
        train_to_folder(
            flat,
            Path(args.out),
            resume=args.resume,
            progress=sys.stderr.isatty(),
            deadline=None if budget is None else started + budget,
        )
    except (ConfigError, CorpusError, OSError) as error:  # OSError: e.g. an unwritable --out
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"interrupted; continue with: python -m model.train --out {args.out} --resume",
            file=sys.stderr,
        )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
