"""The rival a Ray Tune user would build from Ray Tune's documentation: the benchmark's arm (e).

    python benchmarks/ray_recipe.py --corpus irc --max-chars 2600000 --val-fraction 0.1 \
        --time-budget 300 --out runs/irc-recipe

Ray's "Running Tune experiments with Optuna" and ASHA examples, applied to this project's own
trainable and search space: `OptunaSearch()` with its defaults (TPE), `ASHAScheduler()` with
its documented defaults (grace_period 1, reduction_factor 4) on `training_iteration`, `max_t`
the number of reports a trial makes, `TuneConfig(time_budget_s=T)`, as many trials at once as
there are CPUs, and no warm starts. What it borrows from this project is only what a user would
have to write anyway: the trainable (the same `search.engine.trainable.train_trial`, its
learning-rate schedule included), reporting every `REPORTS`-th of the budget on the whole
validation text, and the search space's ranges as Tune domains. Every report goes to
OUT/points.json as
(unix time, val_bpc) for the anytime benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

from corpora import load_corpus
from search.engine.trainable import TrialPlan, train_trial
from search.folder.config import SearchConfig
from search.folder.space import PARAMETERS, SearchSpace

REPORTS = 30  # a trial reports every budget / REPORTS seconds of training


def param_space(space: SearchSpace) -> dict[str, Any]:
    """The search space as Tune domains, the way Tune's documentation writes them."""
    domains: dict[str, Any] = {}
    for p in PARAMETERS:
        value = getattr(space, p.name)
        if p.kind == "choice":
            domains[p.name] = tune.choice(list(value))
        elif p.kind == "int":
            domains[p.name] = (tune.lograndint if p.log else tune.randint)(value[0], value[1] + 1)
        else:
            domains[p.name] = (tune.loguniform if p.log else tune.uniform)(*value)
    return domains


def run_recipe(config: SearchConfig, out: Path) -> list[tuple[float, float]]:
    corpus = load_corpus(config.corpus_config())
    ray.init(include_dashboard=False, configure_logging=False, log_to_driver=False)
    try:
        slots = int(ray.cluster_resources().get("CPU", 1))
        started = time.time()
        deadline = started + config.time_budget_s
        step = config.time_budget_s / REPORTS
        plan = TrialPlan(report_s=tuple(step * k for k in range(1, REPORTS)), deadline=deadline)
        trainable = tune.with_resources(
            tune.with_parameters(train_trial, corpus=corpus, plan=plan,
                                 base=config.base_run(config.time_budget_s)),
            {"cpu": 1},
        )  # fmt: skip
        tuner = tune.Tuner(
            trainable,
            param_space=param_space(config.space),
            tune_config=tune.TuneConfig(
                metric="val_bpc",
                mode="min",
                search_alg=OptunaSearch(),
                scheduler=ASHAScheduler(max_t=REPORTS),
                num_samples=-1,
                max_concurrent_trials=slots,
                time_budget_s=config.time_budget_s,
            ),
            run_config=tune.RunConfig(name=out.name, storage_path=str(out.parent.resolve()),
                                      verbose=0),
        )  # fmt: skip
        grid = tuner.fit()
    finally:
        ray.shutdown()
    points = []
    for result in grid:
        frame = result.metrics_dataframe
        for row in [] if frame is None else frame.to_dict("records"):
            if row.get("val_chars") == row.get("val_total") and not row.get("diverged"):
                points.append((row["time"], row["val_bpc"]))
    (out / "points.json").write_text(json.dumps({"started": started, "points": points}) + "\n")
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--data-dir", default=os.environ.get("CHARNN_DATA_DIR"))
    parser.add_argument("--max-chars", type=int, default=None)
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--time-budget", type=float, required=True, help="seconds")
    parser.add_argument("--out", required=True, help="folder for Tune's experiment and points")
    args = parser.parse_args()
    config = SearchConfig(
        corpus=args.corpus,
        data_dir=args.data_dir,
        max_chars=args.max_chars,
        val_fraction=args.val_fraction,
        time_budget_s=args.time_budget,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    points = run_recipe(config, out)
    best = min((v for _, v in points), default=None)
    print(f"{len(points)} whole-text validations; best val_bpc {best}")


if __name__ == "__main__":
    main()
