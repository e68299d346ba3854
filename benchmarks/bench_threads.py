"""Benchmark: training characters a second of one network at 1 to N torch threads.

    python benchmarks/bench_threads.py                         # 1 x 512 and 1 x 1024, 1-2 threads
    python benchmarks/bench_threads.py --networks 1x768 2x256 --threads 1 2 4

What a trial gains when the search's endgame gives it the CPUs another trial freed
(docs/search.md): the training step loop of `model.lstm.CharLSTM` (Adam, truncated BPTT with
the state carried over, batch 32 of 64 characters, as the long-horizon start trains), timed
after a few warm-up steps, each thread count `--repeats` times in turn. Prints the figures and
writes them to benchmarks/results/threads.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from model.lstm import CharLSTM, ModelConfig, detach_state

RESULTS = Path(__file__).resolve().parent / "results"
VOCAB, BATCH, SEQ = 90, 32, 64


def chars_per_s(layers: int, hidden: int, threads: int, steps: int) -> float:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = CharLSTM(ModelConfig(vocab_size=VOCAB, hidden_size=hidden, num_layers=layers,
                                 dropout=0.3))  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), 4e-3)
    ids = torch.randint(0, VOCAB, (BATCH, SEQ + 1))
    state = model.init_state(BATCH)
    for step in range(steps + 5):
        if step == 5:  # warmed up
            started = time.perf_counter()
        logits, state = model(ids[:, :-1], state)
        state = detach_state(state)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), ids[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return steps * BATCH * SEQ / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--networks", nargs="+", default=["1x512", "1x1024"], help="LAYERSxUNITS")
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    figures: dict[str, dict[str, list[float]]] = {}
    for network in args.networks:
        layers, hidden = (int(x) for x in network.split("x"))
        runs: dict[str, list[float]] = {str(t): [] for t in args.threads}
        for _ in range(args.repeats):
            for threads in args.threads:
                runs[str(threads)].append(round(chars_per_s(layers, hidden, threads, args.steps)))
        figures[network] = runs
        print(network, json.dumps(runs), flush=True)
    result = {"machine": f"{platform.machine()}, {torch.get_num_interop_threads()} interop "
              "threads", "torch": torch.__version__, "batch": BATCH, "seq_len": SEQ,
              "chars_per_s": figures}  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "threads.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
