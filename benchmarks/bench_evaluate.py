"""Benchmark: static against dynamic evaluation of one checkpoint (bpc, intervals, seconds).

    python benchmarks/bench_evaluate.py --checkpoint /tmp/evalrun --streams 1 16 64 \
        --segments 20 10 20 --threads 1

For each stream count K and each update (sgd, rms), the step size (and for rms the decay) is
chosen on the first half of the validation split and the figures are reported on its second
half: static and dynamic bpc with 95% block-bootstrap intervals, their paired difference, and
seconds per 100k characters of the reported dynamic pass. SGD step sizes are given for one
stream and divided by sqrt(K): the summed loss of K streams has a larger gradient, and the best
step size was measured to fall that fast (0.03 / sqrt(K) at K = 1, 16 and 64).
Prints the figures and writes them, with the command, to benchmarks/results/evaluate.json.
Seconds depend on the machine's load: measured under `nice` beside other work, they are upper
bounds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from model.evaluate import (
    EvalConfig,
    block_bootstrap,
    char_losses,
    choose_settings,
    dynamic_char_losses,
    gradient_rms,
    halves,
    load_scored_model,
    load_text,
    paired_difference,
    settings_grid,
)
from model.loop import VAL_STREAMS

RESULTS = Path(__file__).resolve().parent / "results"


def interval(values: Any) -> list[float]:
    return [round(v, 4) for v in values]


def measure(model, text, tune_ids, report_ids, method, lrs, decays, k, segment, block) -> dict:
    """One update at one stream count: settings chosen on `tune_ids`, figures on `report_ids`."""
    started = time.perf_counter()
    rms = gradient_rms(model, text.before, segment, k) if method == "rms" else None
    stats_s = time.perf_counter() - started
    grid = settings_grid(method, lrs, decays, segment, k)
    started = time.perf_counter()
    chosen, scores = choose_settings(model, tune_ids, grid, rms)
    tune_s = time.perf_counter() - started
    started = time.perf_counter()
    dynamic = dynamic_char_losses(model, report_ids, chosen, rms)
    seconds = time.perf_counter() - started
    static = char_losses(model, report_ids, segment, k)
    boot = {"block": block, "draws": 1000, "seed": 0}
    figures = {
        "lr": chosen.lr, "decay": chosen.decay,
        "grid": [[s.lr, s.decay, round(bpc, 4)] for s, bpc in scores],
        "static_bpc": round(float(static.mean()), 4),
        "dynamic": interval(block_bootstrap(dynamic, **boot)),
        "dynamic_minus_static": interval(paired_difference(dynamic, static, **boot)),
        "s_per_100k": round(1e5 * seconds / len(dynamic), 2),
        "stats_s": round(stats_s, 2), "tune_s": round(tune_s, 2),
    }  # fmt: skip
    print(f"K={k:<3} segment {segment:<3} {method}: {json.dumps(figures)}", flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="checkpoint file or run folder")
    parser.add_argument("--corpus", default=None, help="another text (default: the checkpoint's)")
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 16, 64], help="values of K")
    parser.add_argument("--segments", type=int, nargs="+", default=[20, 10, 20],
                        help="characters per stream per step, one per K (or one)")  # fmt: skip
    parser.add_argument("--sgd-lrs", type=float, nargs="+", default=[0.003, 0.01, 0.03, 0.1, 0.3],
                        help="sgd step sizes for one stream (divided by sqrt K)")  # fmt: skip
    parser.add_argument("--rms-lrs", type=float, nargs="+", default=[3e-4, 1e-3, 3e-3, 1e-2],
                        help="rms step sizes")  # fmt: skip
    parser.add_argument("--rms-decays", type=float, nargs="+", default=[0.0, 0.003, 0.01, 0.03],
                        help="rms decays toward the trained weights")  # fmt: skip
    parser.add_argument("--methods", nargs="+", default=["sgd", "rms"], choices=["sgd", "rms"])
    parser.add_argument("--block", type=int, default=10_000, help="bootstrap block, characters")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", default=str(RESULTS / "evaluate.json"), help="results file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = EvalConfig(checkpoint=args.checkpoint, corpus=args.corpus, dynamic=True,
                        other_text=args.corpus is not None)  # fmt: skip
    model, vocab, run, trained = load_scored_model(config.checkpoint, "cpu")
    text = load_text(config, run, trained, vocab)
    tune_ids, report_ids = halves(text.scored)
    whole = char_losses(model, text.scored, run.train.seq_len, VAL_STREAMS)
    results: dict[str, Any] = {
        "command": "python " + " ".join(sys.argv),
        "checkpoint": args.checkpoint, "text": text.name,
        "model": {"hidden_size": run.model.hidden_size, "num_layers": run.model.num_layers,
                  "cell": run.model.cell},
        "val_chars": len(whole), "static_val_bpc": round(float(whole.mean()), 4),
        "tune_chars": len(tune_ids) - 1, "report_chars": len(report_ids) - 1,
        "threads": args.threads, "runs": {},
    }  # fmt: skip
    segments = args.segments * len(args.streams) if len(args.segments) == 1 else args.segments
    if len(segments) != len(args.streams):
        parser.error("give one --segments value, or one per --streams value")
    for k, segment in zip(args.streams, segments, strict=True):
        for method in args.methods:
            lrs = [lr / k**0.5 for lr in args.sgd_lrs] if method == "sgd" else args.rms_lrs
            decays = [0.0] if method == "sgd" else args.rms_decays
            results["runs"][f"{method}-K{k}-seg{segment}"] = measure(
                model, text, tune_ids, report_ids, method, lrs, decays, k, segment, args.block
            )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "runs"}, indent=2))


if __name__ == "__main__":
    main()
