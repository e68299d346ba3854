"""Benchmark: where a search's trial-slot seconds go (training steps, validation, the rest).

    python benchmarks/bench_search.py                                   # "small": 5 minutes
    python benchmarks/bench_search.py --preset smoke --corpus irc       # a quick look

Runs `python -m search.run --preset P` (defaults: W&B offline, the default scheduler) on this
machine and splits its trial-slot seconds (slots x the seconds from the budget's start to the
last trial's end) into training steps, validation, checkpoint writing and everything else:
trial start-up, Ray, the driver, W&B, idle slots. Also reports the trials, their statuses, the
characters trained and the best result. Writes benchmarks/results/search-PRESET.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_anytime import search_points

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", default="monte-cristo", help="corpus name or path")
    parser.add_argument("--preset", default="small", help="search.folder.config preset")
    parser.add_argument("--data-dir", default=None, help="local corpus folder")
    args, extra = parser.parse_known_args()  # anything else goes to search.run
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "search.run", "--corpus", args.corpus, "--preset",
                   args.preset, "--storage", tmp, "--name", "bench", *extra]  # fmt: skip
        if args.data_dir:
            command += ["--data-dir", args.data_dir]
        started = time.time()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        wall = time.time() - started
        if done.returncode != 0:
            raise SystemExit(done.stdout[-2000:] + done.stderr[-2000:])
        points, split = search_points(Path(tmp) / "bench", started)
    figures = {
        "command": "python benchmarks/bench_search.py " + " ".join(sys.argv[1:]),
        "wall_s": wall,
        "best_val_bpc": min((v for _, v in points), default=None),
        **split,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"search-{args.preset}.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
