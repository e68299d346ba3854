"""Benchmark: what each compression baseline costs, in bits per character and CPU seconds.

    python benchmarks/bench_baselines.py [--corpora irc,nginx] [--max-chars 2600000]

For each corpus, cut to its first `--max-chars` characters and split as a search splits it
(the last `--val-fraction` is validation), this times every codec of `search.reports.baselines` as
`compute_baselines` runs it (conditional cost and cost alone) and each PPMd order on its own
(one pass over train + val, as the order search makes it, and the validation text alone;
`--orders`, by default more than PPMD_ORDERS). Seconds are CPU seconds of this one process
(`time.process_time`), so other work on the machine inflates them less than wall time.
Writes benchmarks/results/baselines.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from corpora import CorpusConfig
from corpora.dataset import corpus_text
from search.reports.baselines import (
    CODECS,
    PPMD_MEM_SIZE,
    PPMD_ORDERS,
    compressed_size,
    conditional_bpc,
    ppmd_alone,
    ppmd_compress,
    ppmd_given_train,
    ppmd_pass,
    unigram_entropy,
)

RESULTS = Path(__file__).resolve().parent / "results"
CORPORA = ("irc", "monte-cristo", "nginx", "war-and-peace")


def timed(work: Callable[[], Any]) -> tuple[Any, float]:
    started = time.process_time()
    value = work()
    return value, time.process_time() - started


def measure(
    corpus: str,
    data_dir: str | None,
    max_chars: int,
    val_fraction: float,
    orders_timed: Sequence[int],
) -> dict:
    config = CorpusConfig(name=corpus, data_dir=data_dir, max_chars=max_chars,
                          val_fraction=val_fraction)  # fmt: skip
    train_text, val_text, _, _ = corpus_text(config)
    train, val, n = train_text.encode("utf-8"), val_text.encode("utf-8"), len(val_text)
    _, unigram_s = timed(lambda: unigram_entropy(val_text))
    codecs = {}
    for codec in CODECS:
        given, given_s = timed(lambda c=codec: conditional_bpc(c, train, val, n))
        size, alone_s = timed(lambda c=codec: compressed_size(c, val))
        codecs[codec] = {"given_train_bpc": given, "alone_bpc": 8 * size / n,
                         "seconds": given_s + alone_s}  # fmt: skip
    orders = {}
    for order in orders_timed:
        (train_size, total), pass_s = timed(lambda o=order: ppmd_pass(train, val, o))
        size, alone_s = timed(lambda o=order: len(ppmd_compress(val, o)))
        orders[order] = {"given_train_bpc": 8 * (total - train_size) / n, "pass_seconds": pass_s,
                         "alone_bpc": 8 * size / n, "alone_seconds": alone_s}  # fmt: skip
    (given, order), given_s = timed(lambda: ppmd_given_train(train, val, n))
    (alone, alone_order), alone_s = timed(lambda: ppmd_alone(val, n))
    codecs["ppmd"] = {"given_train_bpc": given, "order": order, "alone_bpc": alone,
                      "alone_order": alone_order, "seconds": given_s + alone_s}  # fmt: skip
    seconds = unigram_s + sum(c["seconds"] for c in codecs.values())
    return {"corpus": corpus, "train_chars": len(train_text), "val_chars": n,
            "codecs": codecs, "ppmd_orders": orders, "seconds": seconds}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpora", default=",".join(CORPORA), help="comma-separated names")
    parser.add_argument("--max-chars", type=int, default=2_600_000, help="prefix of each text")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="validation share")
    parser.add_argument("--orders", default="4,6,8,12,16",
                        help="PPMd orders timed one by one")  # fmt: skip
    parser.add_argument("--data-dir", default=os.environ.get("CHARNN_DATA_DIR"),
                        help="local corpus folder (default: $CHARNN_DATA_DIR)")  # fmt: skip
    args = parser.parse_args()
    rows = []
    for corpus in args.corpora.split(","):
        orders = [int(o) for o in args.orders.split(",")]
        row = measure(corpus, args.data_dir, args.max_chars, args.val_fraction, orders)
        rows.append(row)
        cells = [f"{k} {c['given_train_bpc']:.3f} ({c['seconds']:.1f} s)"
                 for k, c in row["codecs"].items()]  # fmt: skip
        print(f"{corpus}: " + ", ".join(cells) + f"; PPMd order {row['codecs']['ppmd']['order']}"
              f"; all {row['seconds']:.1f} s", flush=True)  # fmt: skip
        print("  PPMd orders: " + ", ".join(
            f"{o} {c['given_train_bpc']:.3f} ({c['pass_seconds']:.1f} s)"
            for o, c in row["ppmd_orders"].items()), flush=True)  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    settings = {"max_chars": args.max_chars, "val_fraction": args.val_fraction,
                "ppmd_orders": list(PPMD_ORDERS), "ppmd_mem_size": PPMD_MEM_SIZE}  # fmt: skip
    (RESULTS / "baselines.json").write_text(
        json.dumps({"settings": settings, "corpora": rows}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
