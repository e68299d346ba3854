"""Benchmark: single-run training throughput and the validation bpc it reaches.

    python benchmarks/bench_train.py       # the issue's Monte Cristo command, 5 M chars
    python benchmarks/bench_train.py --max-train-chars 500000   # a quick look

Trains exactly what `python -m model.train --corpus monte-cristo --hidden-size 256 --num-layers 2
--dropout 0.1 --seq-len 128 --batch-size 64 --lr 2e-3 --max-train-chars 5000000` trains (through
the same library function), prints the figures and writes them to
benchmarks/results/train.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from model.train import train_to_folder

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", default="monte-cristo", help="corpus name or path")
    parser.add_argument("--max-train-chars", type=int, default=5_000_000, help="training budget")
    parser.add_argument("--eval-every-chars", type=int, default=500_000, help="report interval")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    flat = {
        "corpus": args.corpus, "hidden_size": 256, "num_layers": 2, "dropout": 0.1,
        "seq_len": 128, "batch_size": 64, "lr": 2e-3, "max_train_chars": args.max_train_chars,
        "eval_every_chars": args.eval_every_chars, "device": args.device,
    }  # fmt: skip
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        rows = train_to_folder(flat, Path(out), progress=False)
    wall = time.perf_counter() - started
    last = rows[-1]
    figures = {
        "command": "python -m model.train "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in flat.items()),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
        "torch": torch.__version__,
        "train_chars": last["chars_seen"],
        "train_chars_per_s": last["chars_seen"] / last["train_s"],
        "wall_s": wall,
        "final_val_bpc": last["val_bpc"],
        "best_val_bpc": min(r["val_bpc"] for r in rows),
        "curve": [(r["chars_seen"], round(r["val_bpc"], 4)) for r in rows],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "train.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
