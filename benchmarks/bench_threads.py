"""Benchmark: training characters a second of one network at 1 to N torch threads.

    python benchmarks/bench_threads.py                         # 1 x 512 and 1 x 1024, 1-2 threads
    python benchmarks/bench_threads.py --networks 1x768 2x256 --threads 1 2 4

What a trial gains when the search's endgame gives it the CPUs another trial freed
(docs/search.md): `model.loop.chars_per_second`, the trainer's own step timed as the search
measures the warm starts (batch 32 of 64 characters, dropout 0.3, as the long-horizon start
trains), for `--seconds` at each thread count, each thread count `--repeats` times in turn, on
the first million characters of `--corpus`. Prints the figures and writes them to
benchmarks/results/threads.json.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch

from corpora import CorpusConfig, load_corpus
from model.config import run_config_from_flat, with_vocab_size
from model.loop import chars_per_second

RESULTS = Path(__file__).resolve().parent / "results"
BATCH, SEQ = 32, 64


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--networks", nargs="+", default=["1x512", "1x1024"], help="LAYERSxUNITS")
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--seconds", type=float, default=5.0, help="timed per measurement")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--corpus", default="monte-cristo", help="registered name or a path")
    parser.add_argument("--data-dir", default=None, help="default: $CHARNN_DATA_DIR")
    args = parser.parse_args()
    corpus = load_corpus(CorpusConfig(args.corpus, args.data_dir, max_chars=1_000_000))
    figures: dict[str, dict[str, list[float]]] = {}
    for network in args.networks:
        layers, hidden = (int(x) for x in network.split("x"))
        run = with_vocab_size(run_config_from_flat({
            "num_layers": layers, "hidden_size": hidden, "dropout": 0.3, "batch_size": BATCH,
            "seq_len": SEQ, "lr": 4e-3}), len(corpus.vocab))  # fmt: skip
        runs: dict[str, list[float]] = {str(t): [] for t in args.threads}
        for _ in range(args.repeats):
            for threads in args.threads:
                torch.set_num_threads(threads)
                runs[str(threads)].append(round(chars_per_second(run, corpus, args.seconds)))
        figures[network] = runs
        print(network, json.dumps(runs), flush=True)
    result = {"machine": f"{platform.machine()}, {torch.get_num_interop_threads()} interop "
              "threads", "torch": torch.__version__, "corpus": corpus.name, "batch": BATCH,
              "seq_len": SEQ, "chars_per_s": figures}  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "threads.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
