"""Benchmark: which network does a long trial on a small text need?

    python benchmarks/bench_width.py --corpus /work/texts/reina_valera_1909.txt --budget 1200

Configurations (`--configs`, JSON objects; by default the 1 x 256 warm start with the dropout
its passes get, the 2 x 256 warm start and a 1 x 512, both with more dropout) train side by side,
all at once, each on one thread (`--threads`), for the training time a trial that runs to the
end of a search of `--budget` gets, with that search's reports and the search's learning-rate
schedule (wsd). More runs than cores share the cores evenly: the comparison is at equal
compute, not at the search's.

Printed and written to benchmarks/results/width-T{budget}.json (or `--out`): each run's
whole-text val bpc at every report and its best.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_schedule import RESULTS, ROOT, train  # noqa: E402

CONFIGS = [
    {"num_layers": 1, "hidden_size": 256, "dropout": 0.27, "seq_len": 64, "batch_size": 32,
     "lr": 8e-3},
    {"num_layers": 2, "hidden_size": 256, "dropout": 0.3, "seq_len": 100, "batch_size": 64,
     "lr": 5e-3},
    {"num_layers": 1, "hidden_size": 512, "dropout": 0.35, "seq_len": 64, "batch_size": 32,
     "lr": 5e-3},
]  # fmt: skip


def name(config: dict) -> str:
    decay = f" weight_decay={config['weight_decay']:g}" if config.get("weight_decay") else ""
    return f"{config['num_layers']}x{config['hidden_size']} d{config['dropout']:g}{decay}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", required=True, help="registered name or path")
    parser.add_argument("--data-dir", default=os.environ.get("CHARNN_DATA_DIR"))
    parser.add_argument("--budget", type=float, default=1200.0, help="the search's budget, s")
    parser.add_argument("--configs", type=json.loads, nargs="+", default=CONFIGS)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each run")
    parser.add_argument("--out", default=None, help="results file (default width-T{budget})")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from search.engine.builders import report_grid
    from search.folder.schedule import plan_schedule

    plan = plan_schedule(args.budget, 2)
    stops = report_grid(plan.rungs_s, args.budget / 4)
    with ProcessPoolExecutor(max_workers=len(args.configs)) as pool:
        futures = {name(c): pool.submit(train, args.corpus, args.data_dir, plan.max_t_s, "wsd",
                                        0.5, stops, c, args.threads)
                   for c in args.configs}  # fmt: skip
        values = {n: future.result() for n, future in futures.items()}
    best = {n: min(v for _, v in points) for n, points in values.items()}
    for n, points in values.items():
        print(f"{n:>14}: best {best[n]:.3f}  " + "  ".join(f"{t:.0f}s {v:.3f}" for t, v in points))
    RESULTS.mkdir(exist_ok=True)
    out = Path(args.out) if args.out else RESULTS / f"width-T{args.budget:.0f}.json"
    command = "python benchmarks/bench_width.py " + " ".join(sys.argv[1:])
    figures = {"command": command, "cores": os.cpu_count(), "threads": args.threads,
               "configs": args.configs, "stops": stops, "values": values,
               "best": best}  # fmt: skip
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"written {out}")


if __name__ == "__main__":
    main()
