"""Benchmark: how long a validation prefix ranks trials as the whole validation text does.

    python benchmarks/bench_prefix.py runs/SEARCH [runs/OTHER ...] [--data-dir DIR]

The first rung of a search judges most of its trials on the first `--first-rung-val-chars`
characters of the validation text. This reads each given search folder, loads every trial's
earliest kept checkpoint (for most trials, the one of its first rung), scores it on prefixes
of 8k to 64k characters and on the whole validation text, and reports per search how the
prefixes rank the trials against the whole text: Kendall's tau, and how many of the whole
text's best third each prefix's best third holds. Writes benchmarks/results/prefix.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from itertools import combinations
from pathlib import Path

import torch

from corpora import load_corpus
from model.loop import Trainer, load_checkpoint
from search.folder.config import load_search_config

RESULTS = Path(__file__).resolve().parent / "results"
PREFIXES = (8192, 16384, 32768, 65536)


def kendall_tau(a: list[float], b: list[float]) -> float:
    pairs = list(combinations(range(len(a)), 2))
    signs = [((a[i] - a[j]) * (b[i] - b[j]) > 0) - ((a[i] - a[j]) * (b[i] - b[j]) < 0)
             for i, j in pairs]  # fmt: skip
    return sum(signs) / max(1, len(pairs))


def best_third(values: list[float]) -> set[int]:
    return set(sorted(range(len(values)), key=values.__getitem__)[: max(1, len(values) // 3)])


def score_search(folder: Path, data_dir: str | None) -> dict:
    overrides = {"data_dir": data_dir} if data_dir else None
    corpus = load_corpus(load_search_config(folder, overrides).corpus_config())
    rows = []
    for trial in sorted(folder.glob("train_trial_*")):
        kept = sorted(trial.glob("checkpoint_*"))
        if not kept:
            continue
        trainer = Trainer.restore(load_checkpoint(str(kept[0] / "checkpoint.pt")), corpus)
        values = {str(n): trainer.evaluate(n) for n in PREFIXES}
        values["whole"] = trainer.evaluate()
        rows.append({"trial": trial.name.split("_")[2], "train_s": trainer.train_s, **values})
        print(f"  {folder.name} {rows[-1]['trial']}: " + ", ".join(
            f"{k} {v:.3f}" for k, v in values.items()), flush=True)  # fmt: skip
    # A model worse than uniform guessing on the whole text blew up after its prefix: it ranks
    # nothing.
    rows = [r for r in rows if r["whole"] < math.log2(len(corpus.vocab))]
    whole = [r["whole"] for r in rows]
    agreement = {
        str(n): {
            "tau": kendall_tau([r[str(n)] for r in rows], whole),
            "best_third": len(best_third([r[str(n)] for r in rows]) & best_third(whole)),
            "of": len(best_third(whole)),
        }
        for n in PREFIXES
    }
    return {"search": str(folder), "trials": rows, "agreement": agreement}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="search folders")
    parser.add_argument("--data-dir", default=os.environ.get("CHARNN_DATA_DIR"),
                        help="local corpus folder (default: $CHARNN_DATA_DIR)")  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    searches = [score_search(folder, args.data_dir) for folder in args.folders]
    print(
        "| search | trials | " + " | ".join(f"{n:,} chars: τ, best third" for n in PREFIXES) + " |"
    )
    print("|" + " --- |" * (2 + len(PREFIXES)))
    for s in searches:
        cells = [f"{a['tau']:.2f}, {a['best_third']}/{a['of']}" for a in s["agreement"].values()]
        print(f"| {Path(s['search']).name} | {len(s['trials'])} | " + " | ".join(cells) + " |")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "prefix.json").write_text(json.dumps(searches, indent=2) + "\n")


if __name__ == "__main__":
    main()
