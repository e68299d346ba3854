"""Benchmark: resident memory per trial on the whole IRC, at 1, 2 and 4 concurrent trials.

    python benchmarks/bench_memory.py                         # this checkout
    python benchmarks/bench_memory.py --code /tmp/landed      # another checkout, same measure

N trials of one small model (1 x 32 LSTM) train at once on a local Ray (N CPUs), through the
same path as a search: the corpus encoded once in the driver, handed to each trial through the
object store (`tune.with_parameters`), the trial's `Trainer` built on it. While they train,
each trial process's memory is read with psutil: RSS, USS (pages only it holds) and PSS (its
share of the pages it shares, such as the object store's copy of the corpus). The same is
done on a 200k-character slice of IRC; the difference per trial is what the corpus costs each
trial. Writes benchmarks/results/memory.json (or memory-OTHER.json with --code).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

PROBE = r"""
import json, os, sys, threading, time
import psutil, ray
from ray import tune
from corpora import CorpusConfig, load_corpus

n, max_chars = int(sys.argv[1]), (int(sys.argv[2]) or None)
ray.init(num_cpus=n, include_dashboard=False, configure_logging=False, log_to_driver=False)
corpus = load_corpus(CorpusConfig(name="irc", max_chars=max_chars))

def trial(config, corpus):
    import torch
    from model.config import run_config_from_flat, with_vocab_size
    from model.loop import Trainer
    torch.set_num_threads(1)
    flat = {"corpus": "irc", "hidden_size": 32, "num_layers": 1, "batch_size": 64,
            "seq_len": 64, "device": "cpu"}
    trainer = Trainer(with_vocab_size(run_config_from_flat(flat), len(corpus.vocab)), corpus)
    started = time.time()
    while time.time() - started < 20:
        trainer.train_step()
    tune.report({"pid": os.getpid()})

samples = {}
stop = threading.Event()
def watch():
    while not stop.is_set():
        for p in psutil.process_iter(["cmdline"]):
            if "ImplicitFunc" in " ".join(p.info["cmdline"] or []):
                try:
                    m = p.memory_full_info()
                except psutil.Error:
                    continue
                best = samples.get(p.pid, {"rss": 0})
                if m.rss > best["rss"]:
                    samples[p.pid] = {"rss": m.rss, "uss": m.uss, "pss": m.pss}
        time.sleep(1.0)
threading.Thread(target=watch, daemon=True).start()
tuner = tune.Tuner(
    tune.with_resources(tune.with_parameters(trial, corpus=corpus), {"cpu": 1}),
    tune_config=tune.TuneConfig(num_samples=n),
    run_config=tune.RunConfig(verbose=0, storage_path="/tmp/bench-memory"),
)
tuner.fit()
stop.set()
print(json.dumps({"n_chars": corpus.n_chars, "train_chars": len(corpus.train_ids),
                  "id_bytes": corpus.train_ids.itemsize, "trials": list(samples.values())}))
"""


def measure(code: Path, n: int, max_chars: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(n), str(max_chars)],
        cwd=code, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def mb(values: list[int]) -> float:
    return sum(values) / len(values) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout to measure")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    rows = []
    for n in args.concurrency:
        whole, small = measure(args.code, n, 0), measure(args.code, n, 200_000)
        row = {
            "concurrent_trials": n,
            "rss_mb": mb([t["rss"] for t in whole["trials"]]),
            "uss_mb": mb([t["uss"] for t in whole["trials"]]),
            "pss_mb": mb([t["pss"] for t in whole["trials"]]),
            "uss_mb_small_corpus": mb([t["uss"] for t in small["trials"]]),
            "pss_mb_small_corpus": mb([t["pss"] for t in small["trials"]]),
        }
        row["corpus_uss_mb_per_trial"] = row["uss_mb"] - row["uss_mb_small_corpus"]
        row["corpus_pss_mb_per_trial"] = row["pss_mb"] - row["pss_mb_small_corpus"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    figures = {
        "command": "python benchmarks/bench_memory.py " + " ".join(sys.argv[1:]),
        "code": str(args.code),
        "irc_chars": whole["n_chars"],
        "int64_copies_mb": 2 * 8 * whole["train_chars"] / 1e6,  # the old layout, for scale
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    name = "memory.json" if args.code == ROOT else f"memory-{args.code.name}.json"
    (RESULTS / name).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
