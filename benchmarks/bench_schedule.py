"""Benchmark: is a trial stopped at any report as good as a run that was planned to stop there?

    python benchmarks/bench_schedule.py --corpus /work/texts/reina_valera_1909.txt --budget 300

One configuration (the second default warm start, 1 x 256) trains on one thread per run, two
runs at a time, with the reports a search at `--budget` gives its trials:

- wsd: the search's schedule, cooled down before every report (`--cooldown` shares);
- cosine: the schedule before it, cosine decay over the whole of a trial's time;
- planned@R: cosine decay planned to end at report R (for R among the rungs): the best a
  run that knew it would stop there could do.

Validation is on the whole held-out text (10%) at every report. Printed and written to
benchmarks/results/schedule-T{budget}.json: each run's value at each report, and at each rung
wsd's and cosine's gap to planned@R.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CONFIG = {"num_layers": 1, "hidden_size": 256, "dropout": 0.0, "seq_len": 64, "batch_size": 32,
          "lr": 8e-3}  # fmt: skip


def train(corpus: str, data_dir: str | None, budget_s: float, decay: str, cooldown: float,
          stops: tuple[float, ...], config: dict[str, Any] = CONFIG, threads: int = 1,
          ) -> list[tuple[float, float]]:  # fmt: skip
    """(training seconds, whole-text val bpc) of `config` on `threads` threads at every one of
    `stops` and at the end."""
    import torch

    from corpora import CorpusConfig, load_corpus
    from model.config import run_config_from_flat, with_vocab_size
    from model.loop import Trainer, fit

    torch.set_num_threads(threads)
    data = load_corpus(CorpusConfig(name=corpus, data_dir=data_dir, max_chars=2_600_000,
                                    val_fraction=0.1))  # fmt: skip
    flat = {**config, "corpus": corpus, "max_train_s": budget_s, "max_train_chars": 10**15,
            "decay": decay, "cooldown": cooldown, "eval_every_chars": 0,
            "device": "cpu"}  # fmt: skip
    trainer = Trainer(with_vocab_size(run_config_from_flat(flat), len(data.vocab)), data)
    history: list[dict[str, Any]] = []
    fit(trainer, history.append, report_s=stops)
    return [(m["train_s"], m["val_bpc"]) for m in history]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", required=True, help="registered name or path")
    parser.add_argument("--data-dir", default=os.environ.get("CHARNN_DATA_DIR"))
    parser.add_argument("--budget", type=float, default=300.0, help="the search's budget, s")
    parser.add_argument("--cooldown", type=float, nargs="+", default=[0.3])
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from search.engine.builders import report_grid
    from search.folder.schedule import plan_schedule

    plan = plan_schedule(args.budget, 2)
    stops = report_grid(plan.rungs_s, args.budget / 4)
    rungs = plan.rungs_s[1:]  # the first is judged on a prefix in a search; here from the second
    runs: dict[str, tuple] = {
        **{f"wsd{c:g}": (plan.max_t_s, "wsd", c, stops) for c in args.cooldown},
        "cosine": (plan.max_t_s, "cosine", 0.3, stops),
        **{f"planned@{r:.0f}": (r, "cosine", 0.3, ()) for r in rungs[:-1]},
    }
    with ProcessPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(train, args.corpus, args.data_dir, *spec)
                   for name, spec in runs.items()}  # fmt: skip
        values = {name: future.result() for name, future in futures.items()}
    values[f"planned@{rungs[-1]:.0f}"] = values["cosine"]  # planned to the end: the same run
    gaps: dict[str, dict[str, float]] = {}
    for name, points in values.items():
        if name.startswith("planned"):
            continue
        gaps[name] = {}
        for r in rungs:
            at = min(points, key=lambda p: abs(p[0] - r))[1]
            gaps[name][f"{r:.0f}"] = at - values[f"planned@{r:.0f}"][-1][1]
    for name, row in gaps.items():
        print(f"{name:>10}: " + "  ".join(f"@{r} s {g:+.3f}" for r, g in row.items()))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"schedule-T{args.budget:.0f}.json"
    command = "python benchmarks/bench_schedule.py " + " ".join(sys.argv[1:])
    figures = {"command": command, "config": CONFIG, "stops": stops, "values": values,
               "gap_to_planned": gaps}  # fmt: skip
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"written {out}")


if __name__ == "__main__":
    main()
