"""Benchmark: how much the validation text is worth to PPMd on a test split.

    python benchmarks/bench_test_context.py --corpora monte-cristo war-and-peace irc nginx \\
        /work/texts/reina_valera_1909.txt /work/texts/cpython_stdlib.txt

`search.compare` scores PPMd on a search's test split after all the text before it, training
and validation, while the model learnt from the training text only. For each corpus, cut and
split as the searches of docs/compare.md were (`--max-chars`, `--val-fraction`,
`--test-fraction`), this gives PPMd's bits per test character after training + validation (what
the report shows) and after the training text alone, at the order the report picks (the lowest
on the test text, `ppmd_given_train`); their difference is how far the report's figure leans
toward PPMd. Writes benchmarks/results/test-context.json (or `--out`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from corpora import CorpusConfig
from corpora.dataset import corpus_text
from search.reports.baselines import ppmd_given_train, ppmd_stretch_bits

RESULTS = Path(__file__).resolve().parent / "results"


def measure(corpus: str, data_dir: str | None, max_chars: int, val: float, test: float) -> dict:
    """PPMd's test bpc after train + val and after train alone, at the former's order."""
    config = CorpusConfig(name=corpus, data_dir=data_dir, max_chars=max_chars,
                          val_fraction=val, test_fraction=test)  # fmt: skip
    text = corpus_text(config)
    started = time.perf_counter()
    before, test_bytes = (text.train + text.val).encode("utf-8"), text.test.encode("utf-8")
    after_both, order = ppmd_given_train(before, test_bytes, len(text.test))
    after_train = ppmd_stretch_bits(text.train, text.test, order).sum() / len(text.test)
    return {"corpus": corpus, "train_chars": len(text.train), "val_chars": len(text.val),
            "test_chars": len(text.test), "ppmd_order": order,
            "after_train_and_val_bpc": after_both, "after_train_bpc": float(after_train),
            "difference_bpc": float(after_train) - after_both,
            "seconds": time.perf_counter() - started}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpora", nargs="+", required=True, help="names or files")
    parser.add_argument("--max-chars", type=int, default=2_600_000, help="prefix of each text")
    parser.add_argument("--val-fraction", type=float, default=0.05)
    parser.add_argument("--test-fraction", type=float, default=0.05)
    parser.add_argument("--data-dir", default=os.environ.get("CHARNN_DATA_DIR"),
                        help="local corpus folder (default: $CHARNN_DATA_DIR)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS / "test-context.json")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    for corpus in args.corpora:
        row = measure(corpus, args.data_dir, args.max_chars, args.val_fraction,
                      args.test_fraction)  # fmt: skip
        rows.append(row)
        print(
            f"{corpus}: order {row['ppmd_order']}, after train + val "
            f"{row['after_train_and_val_bpc']:.4f}, after train {row['after_train_bpc']:.4f}, "
            f"difference {row['difference_bpc']:+.4f} ({row['seconds']:.0f} s)",
            flush=True,
        )
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=RESULTS.parent).stdout.strip()  # fmt: skip
    settings = {"max_chars": args.max_chars, "val_fraction": args.val_fraction,
                "test_fraction": args.test_fraction, "commit": commit}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"settings": settings, "corpora": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
