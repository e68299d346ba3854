"""Benchmark: does a search beat one well-chosen run in the same wall time? Anytime curves.

    python benchmarks/bench_anytime.py --budget 300                       # every corpus, a b c
    python benchmarks/bench_anytime.py --budget 1200 --corpora monte-cristo irc --arms a c
    python benchmarks/bench_anytime.py --budget 300 --corpora /work/texts/reina_valera_1909.txt \
        --arms a c d e --keep /tmp/bench      # a file path is a corpus too (its stem names it)

Each corpus is cut to its first 2.6 M characters with 10% validation. The arms run one after
another on the same cores, each as the command a user would type:

- a: `python -m search.run --time-budget T` with its defaults (W&B offline);
- b: random search over the same space, no early stopping, same T
  (`--sampler random --scheduler fifo --no-warm-start-defaults`);
- c: `python -m model.train` with karpathy/char-rnn's defaults (2 x 128 LSTM, 50 streams of
  50 characters, lr 2e-3) on all the machine's cores (`--threads`), given the same wall time
  as arm a took from its start to its end (start-up and wrap-up included), validating every
  2 M characters;
- d: the warm starts alone, under the same scheduler and budget (`--trials` the number of
  warm starts the search makes, `warm_starts`): what the search adds by exploring;
- e: the recipe a Ray Tune user would write from Tune's documentation (`OptunaSearch` +
  `ASHAScheduler` with their defaults, no warm starts), over the same space and trainable
  (benchmarks/ray_recipe.py);
- a:NAME: the search with `--scheduler NAME` (promote, asha, hyperband, pbt), to compare
  schedulers (optional);
- a--FLAG: the search with one more flag (`a--no-fit-warm-starts`, `a--decay=cosine`,
  `a--plateau-share=0`, `a--mutate-every=0`, `a--first-rung-share=0.01`): an ablation of the
  mechanism the flag turns off (optional).

Every arm's best-so-far `val_bpc` on the whole validation text is recorded against wall
seconds since its process started (an anytime curve). The figures go to
benchmarks/results/anytime-T{T}.json, one PNG per corpus to docs/, and a Markdown table is
printed. Searches also report how their trial-slot seconds split into training steps,
validation, checkpoints and the rest, and what share of slot time went to plateaus: the
training a trial did while its validation had not improved over the last third of its time
(from 1.5 times the training seconds of its best whole-text validation to its end).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from search.folder.store import SearchFolder

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs"
CORPORA = ("monte-cristo", "war-and-peace", "irc", "nginx")
MAX_CHARS, VAL_FRACTION = 2_600_000, 0.1
CHAR_RNN = ["--hidden-size", "128", "--num-layers", "2", "--batch-size", "50", "--seq-len", "50",
            "--lr", "2e-3", "--dropout", "0"]  # fmt: skip
ARM_NAMES = {
    "a": "search (defaults)",
    "b": "random search, no early stopping",
    "c": "char-rnn defaults, one run",
    "d": "warm starts alone",
    "e": "Ray Tune docs recipe (OptunaSearch + ASHA)",
}


def label(corpus: str) -> str:
    """A registered name as it is, a file by its stem."""
    return Path(corpus).stem.replace("_", "-") if "/" in corpus else corpus


def corpus_args(corpus: str, data_dir: str | None) -> list[str]:
    args = ["--corpus", corpus, "--max-chars", str(MAX_CHARS), "--val-fraction", str(VAL_FRACTION)]
    return [*args, "--data-dir", data_dir] if data_dir else args


def warm_starts(corpus: str, data_dir: str | None, budget: float) -> int:
    """How many warm starts the search of `corpus` at `budget` makes (arm d runs them alone):
    the defaults, and the long-horizon starts where the budget gives them (at the speeds
    measured here, as the search measures them)."""
    from corpora import load_corpus
    from search.engine.tuning import measure_rule_speeds, passes
    from search.engine.warm import grown_space, rule_points, warm_points
    from search.folder.config import SearchConfig

    config = SearchConfig(corpus=corpus, data_dir=data_dir, max_chars=MAX_CHARS,
                          val_fraction=VAL_FRACTION, time_budget_s=budget)  # fmt: skip
    text = load_corpus(config.corpus_config())
    speeds = measure_rule_speeds(config, text, rule_points(defaults=True))
    fit = passes(config, len(text.train_ids), speeds)
    return len(warm_points(grown_space(config.space, fit), defaults=True, fit=fit))


def run_arm(command: list[str], log: Path) -> tuple[float, float]:
    """Run one arm to its end; returns its start and end (time.time()).

    The times are kept next to the log: with `--keep`, an arm that already ran to its end is
    read back instead of run again (a benchmark stopped halfway goes on where it stopped).
    """
    times = log.with_suffix(".times.json")
    if times.exists():
        done = json.loads(times.read_text())
        return done["started"], done["ended"]
    started = time.time()
    with open(log, "w") as out:
        done = subprocess.run(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise SystemExit(f"arm failed ({done.returncode}): {' '.join(command)}; see {log}")
    ended = time.time()
    times.write_text(json.dumps({"started": started, "ended": ended}) + "\n")
    return started, ended


def search_points(folder: Path, started: float) -> tuple[list[tuple[float, float]], dict]:
    """(seconds since start, val_bpc) of every whole-text validation, and the time split."""
    store = SearchFolder(folder)
    trials, curves = store.trials().to_pylist(), store.curves().to_pylist()
    whole = trials[0]["val_chars"]
    points = [
        (c["time"] - started, c["val_bpc"])
        for c in curves
        if c["val_bpc"] is not None and c["val_chars"] == whole
    ]
    clock, search = store.clock(), store.read_settings()
    whole_curves: dict[str, list[tuple[float, float]]] = {}
    for c in curves:
        if c["val_bpc"] is not None and c["val_chars"] == whole:
            whole_curves.setdefault(c["trial_id"], []).append((c["train_s"], c["val_bpc"]))
    plateau = 0.0
    for trial in trials:
        seen = whole_curves.get(trial["trial_id"])
        if seen and trial["train_s"]:
            best_s = min(seen, key=lambda p: p[1])[0]
            plateau += max(0.0, trial["train_s"] - 1.5 * best_s)
    end = max(c["time"] for c in curves)
    slots = search["concurrency"] or os.cpu_count() // int(search["cpus_per_trial"])
    slot_s = slots * (end - clock["started"])
    train = sum(t["train_s"] or 0 for t in trials)
    evals = sum(t["eval_s"] or 0 for t in trials)
    ckpt = sum(t["checkpoint_s"] or 0 for t in trials)
    split = {
        "slots": slots,
        "slot_s": slot_s,
        "train": train / slot_s,
        "eval": evals / slot_s,
        "checkpoint": ckpt / slot_s,
        "other": 1 - (train + evals + ckpt) / slot_s,
        "plateau": plateau / slot_s,
        "origins": {
            str(o): sum(t.get("origin") == o for t in trials)
            for o in {t.get("origin") for t in trials}
        },
        "trials": len(trials),
        "statuses": {
            s: sum(t["status"] == s for t in trials) for s in {t["status"] for t in trials}
        },
        "chars_trained": sum(t["chars_trained"] for t in trials),
        "startup_s": clock["started"] - started,
    }
    return points, split


def run_points(folder: Path, started: float) -> tuple[list[tuple[float, float]], dict]:
    rows = pq.read_table(folder / "metrics.parquet").to_pylist()
    points = [(r["time"] - started, r["val_bpc"]) for r in rows if r["val_bpc"] == r["val_bpc"]]
    return points, {"chars_trained": rows[-1]["chars_seen"] if rows else 0}


def best_so_far(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    curve, best = [], float("inf")
    for t, v in sorted(points):
        if v < best:
            best = v
            curve.append((t, v))
    return curve


def value_at(curve: list[tuple[float, float]], t: float) -> float | None:
    values = [v for s, v in curve if s <= t]
    return min(values) if values else None


def first_reach(curve: list[tuple[float, float]], target: float) -> float | None:
    return next((t for t, v in curve if v <= target), None)


def bench_corpus(corpus: str, budget: float, arms: list[str], args: Any, tmp: Path) -> dict:
    common = corpus_args(corpus, args.data_dir)
    out: dict[str, Any] = {}
    wall_a = None
    tag = label(corpus)
    for arm in arms:
        log = tmp / f"{tag}-{slug(arm)}.log"
        if arm == "e":
            folder = tmp / f"{tag}-e"
            command = [sys.executable, "benchmarks/ray_recipe.py", *common,
                       "--time-budget", str(budget), "--out", str(folder)]  # fmt: skip
            started, ended = run_arm(command, log)
            recorded = json.loads((folder / "points.json").read_text())["points"]
            points, split = [(t - started, v) for t, v in recorded], {}
        elif arm[0] in ("a", "b", "d"):
            extra = {"a": [], "b": ["--sampler", "random", "--scheduler", "fifo",
                                    "--no-warm-start-defaults"],
                     "d": ["--trials", str(warm_starts(corpus, args.data_dir, budget))],
                     }.get(arm)  # fmt: skip
            if extra is None and arm.startswith("a--"):  # a--FLAG[=VALUE]
                extra = arm[1:].split("=", 1)
            elif extra is None:  # a:NAME
                extra = ["--scheduler", arm.split(":", 1)[1]]
            name = f"{tag}-{slug(arm)}"
            command = [sys.executable, "-m", "search.run", *common, "--time-budget", str(budget),
                       "--storage", str(tmp), "--name", name, *extra]  # fmt: skip
            started, ended = run_arm(command, log)
            points, split = search_points(tmp / name, started)
            if arm == "a":
                wall_a = ended - started
        else:
            wall = wall_a or budget
            command = [sys.executable, "-m", "model.train", *common, *CHAR_RNN,
                       "--threads", str(os.cpu_count()), "--time-budget", str(wall),
                       "--max-train-chars", str(10**12), "--eval-every-chars", "2000000",
                       "--out", str(tmp / f"{tag}-{arm}")]  # fmt: skip
            started, ended = run_arm(command, log)
            points, split = run_points(tmp / f"{tag}-{arm}", started)
        curve = best_so_far(points)
        out[arm] = {
            "command": " ".join(command[1:]).replace(str(tmp), "TMP"),
            "wall_s": ended - started,
            "curve": curve,
            "final": curve[-1][1] if curve else None,
            **split,
        }
        print(f"  {tag} {arm}: final {out[arm]['final']} after {ended - started:.0f} s", flush=True)
    equal = min(out[a]["wall_s"] for a in arms)  # every arm's best so far at the same second
    for arm in arms:
        out[arm]["at_equal_wall"] = value_at(out[arm]["curve"], equal)
    if "a" in out and "b" in out and out["b"]["final"] is not None:
        out["a"]["reaches_b_final_s"] = first_reach(out["a"]["curve"], out["b"]["final"])
    out["equal_wall_s"] = equal
    return out


def plot(corpus: str, budget: float, result: dict) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.2))
    for arm in result:
        if not isinstance(result[arm], dict) or not result[arm]["curve"]:
            continue
        label = arm_name(arm)
        t, v = zip(*result[arm]["curve"], strict=True)
        t, v = [*t, result[arm]["wall_s"]], [*v, v[-1]]
        axes.step(t, v, where="post", label=f"{arm}: {label}")
    axes.set_xlabel("wall seconds since the arm started")
    axes.set_ylabel("best validation bpc so far")
    axes.set_title(
        f"{corpus}, at most 2.6 M characters, T = {budget:.0f} s, {os.cpu_count()} cores"
    )
    axes.grid(alpha=0.3)
    axes.legend()
    DOCS.mkdir(exist_ok=True)
    path = DOCS / f"anytime-{corpus}-T{budget:.0f}.png"
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def arm_name(arm: str) -> str:
    if arm.startswith("a--"):
        return f"search, {arm[1:].replace('=', ' ')}"
    return ARM_NAMES.get(arm) or f"search, --scheduler {arm.split(':', 1)[1]}"


def slug(arm: str) -> str:
    """The arm as part of a file name."""
    return arm.replace(":", "-").replace("=", "-").replace(",", "_").replace(".", "p")


def arm_order(arm: str) -> tuple[str, str]:
    return arm[0], arm  # a, then a:NAME, then b, c, d, e: c needs a's wall time


def markdown(budget: float, results: dict) -> str:
    arms = sorted({a for r in results.values() for a in r if a != "equal_wall_s"}, key=arm_order)
    header = ["corpus", *(f"{a}: {arm_name(a)}" for a in arms), "a − c", "a reaches b's final"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for corpus, r in results.items():
        cells = [corpus]
        for a in arms:
            v = r.get(a, {}).get("at_equal_wall")
            cells.append("–" if v is None else f"{v:.3f}")
        a, c = r.get("a", {}).get("at_equal_wall"), r.get("c", {}).get("at_equal_wall")
        cells.append("–" if a is None or c is None else f"{a - c:+.3f}")
        reach = r.get("a", {}).get("reaches_b_final_s")
        cells.append("–" if reach is None else f"{reach:.0f} s ({reach / budget:.0%} of T)")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=float, required=True, help="T, seconds")
    parser.add_argument("--corpora", nargs="+", default=list(CORPORA),
                        help="registered names or paths to UTF-8 files")  # fmt: skip
    parser.add_argument("--arms", nargs="+", default=["a", "b", "c"],
                        help="a b c d e, or a:SCHEDULER")  # fmt: skip
    parser.add_argument("--data-dir", default=os.environ.get("CHARNN_DATA_DIR"),
                        help="local corpus folder (default: $CHARNN_DATA_DIR)")  # fmt: skip
    parser.add_argument("--keep", default=None, help="keep the runs in this folder")
    args = parser.parse_args()
    arms = sorted(args.arms, key=arm_order)
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(args.keep or scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        for corpus in args.corpora:
            results[label(corpus)] = bench_corpus(corpus, args.budget, arms, args, tmp)
            plot(label(corpus), args.budget, results[label(corpus)])
    table = markdown(args.budget, results)
    RESULTS.mkdir(exist_ok=True)
    name = f"anytime-T{args.budget:.0f}"
    command = "python benchmarks/bench_anytime.py " + " ".join(sys.argv[1:])
    figures = {"command": command, "budget_s": args.budget, "cores": os.cpu_count(),
               "results": results, "table": table}  # fmt: skip
    (RESULTS / f"{name}.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(table)


if __name__ == "__main__":
    main()
