"""Benchmark: a whole search on this machine, and how much of it is spent training.

    python benchmarks/bench_search.py         # 24 trials on monte-cristo, 2 M chars each
    python benchmarks/bench_search.py --trials 6 --max-chars-per-trial 200000   # a quick look

Runs `search.tuning.run_search` (what `python -m search.run` runs; W&B offline) and reports:
wall time, the best validation bpc, how many trials ASHA stopped at each rung, and the share of
the search's CPU-slot time spent inside training steps (the rest is evaluation, checkpoints,
Ray scheduling and start-up). Writes benchmarks/results/search.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from search.config import SearchConfig
from search.space import space_from_mapping
from search.tuning import run_search

RESULTS = Path(__file__).resolve().parent / "results"


def rung_of(chars: int, grace: int, factor: int) -> int:
    """The ASHA rung (in characters) at which a trial that stopped after `chars` was stopped."""
    rung = grace
    while rung * factor <= chars:
        rung *= factor
    return rung


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", default="monte-cristo", help="corpus name or path")
    parser.add_argument("--trials", type=int, default=24, help="trials")
    parser.add_argument("--max-chars-per-trial", type=int, default=2_000_000, help="ASHA max_t")
    parser.add_argument("--grace-chars", type=int, default=125_000, help="ASHA grace period")
    parser.add_argument("--reduction-factor", type=int, default=4, help="ASHA reduction factor")
    parser.add_argument("--hidden-size", default="64,384", help="hidden_size range LOW,HIGH")
    parser.add_argument("--storage", default=None, help="keep the search here (default: temp)")
    args = parser.parse_args()
    space = space_from_mapping({"hidden_size": args.hidden_size, "batch_size": [32, 64, 128]})
    with tempfile.TemporaryDirectory() as tmp:
        config = SearchConfig(
            corpus=args.corpus, trials=args.trials, max_chars_per_trial=args.max_chars_per_trial,
            grace_chars=args.grace_chars, reduction_factor=args.reduction_factor,
            name="benchmark", storage=args.storage or tmp, space=space,
        )  # fmt: skip
        started = time.perf_counter()
        outcome = run_search(config)
        wall = time.perf_counter() - started
        trials = pq.read_table(config.path / "trials.parquet").to_pylist()
        curves = pq.read_table(config.path / "curves.parquet").to_pylist()
    last = {}
    for row in curves:  # curves are in report order: keep each trial's last report
        last[row["trial_id"]] = row
    train_s = sum(r["train_s"] for r in last.values())
    slots = min(2, config.trials)  # trials at once on this 2-core machine (1 CPU each)
    stops = Counter(
        rung_of(t["chars_trained"], config.grace_chars, config.reduction_factor)
        for t in trials
        if t["status"] == "stopped"
    )
    figures = {
        "command": f"python benchmarks/bench_search.py --trials {args.trials} "
        f"--max-chars-per-trial {args.max_chars_per_trial} --corpus {args.corpus}",
        "trials": len(trials),
        "statuses": dict(Counter(t["status"] for t in trials)),
        "asha_stopped_at_rung": {f"{k:,}": v for k, v in sorted(stops.items())},
        "wall_s": wall,
        "best_val_bpc": outcome.best_val_bpc,
        "best_trial": next((t for t in trials if t["trial_id"] == outcome.best_trial), None),
        "chars_trained_total": sum(t["chars_trained"] for t in trials),
        "train_step_s_total": train_s,
        "eval_and_checkpoint_s_total": sum(r["elapsed_s"] - r["train_s"] for r in last.values()),
        "training_share_of_slot_time": train_s / (wall * slots),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "search.json").write_text(json.dumps(figures, indent=2, default=str) + "\n")
    print(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
