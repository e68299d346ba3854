"""Benchmark: read, build the vocabulary and encode a corpus (the 10.5 M-char IRC by default).

    python benchmarks/bench_encode.py [--corpus irc] [--repeat 5]

Prints the median and best times and writes them to benchmarks/results/encode.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from corpora import Vocab, read_text, resolve_corpus

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", default="irc", help="corpus name or path")
    parser.add_argument("--repeat", type=int, default=5, help="timed repetitions")
    args = parser.parse_args()
    path = resolve_corpus(args.corpus)
    times = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        text = read_text(path)
        vocab = Vocab.from_text(text)
        ids = vocab.encode(text)
        times.append(time.perf_counter() - started)
    assert vocab.decode(ids) == text
    figures = {
        "corpus": args.corpus, "chars": len(text), "distinct": len(vocab), "dtype": str(ids.dtype),
        "median_s": statistics.median(times), "best_s": min(times),
        "chars_per_s": len(text) / statistics.median(times),
    }  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "encode.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
