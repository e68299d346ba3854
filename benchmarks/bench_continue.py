"""Benchmark: from one checkpoint of a search's trial, which schedule trains on best?

    python benchmarks/bench_continue.py CHECKPOINT --stops 134,400,692,1199,2076,2398,2577,2836
        --end 3474 --arms restart_share=0 restart_share=0.5 --name code-hour-leader

The trial's checkpoint (a `checkpoint.pt` from its folder in a search's `--out`) continues
once per arm, side by side, one thread each, from where it stopped to `--end` training seconds:
the same weights, optimizer state, stream position and RNG state in every arm, so the arms
differ only in their settings (`KEY=VALUE` run settings over the checkpoint's, for instance
`restart_share`, `lr`, `dropout`, `cooldown`; several in one arm joined by commas). The run
validates on the whole held-out text at each of `--stops` after the checkpoint (the reports
the search gave the trial; its earlier stops shape the wsd stretches) and at `--end`.

Printed and written to benchmarks/results/continue-NAME.json: every arm's reports (training
seconds, validation and training bpc, rate), with the command and commit.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def arm_settings(text: str) -> dict[str, str]:
    """`KEY=VALUE[,KEY=VALUE...]` as a dict (values as written: the run config coerces them)."""
    pairs = [part.split("=", 1) for part in text.split(",") if part]
    if not pairs or any(len(p) != 2 or not p[0] for p in pairs):
        raise SystemExit(f"an arm is KEY=VALUE[,KEY=VALUE...], got {text!r}")
    return dict(pairs)


def continue_run(
    checkpoint: str,
    data_dir: str | None,
    settings: dict[str, str],
    stops: tuple[float, ...],
    end: float,
    threads: int,
) -> list[dict[str, Any]]:
    """The reports of the run `checkpoint` holds, continued with `settings` to `end`."""
    import torch

    from corpora import CorpusConfig, load_corpus
    from model.config import run_config_from_flat, run_config_to_flat
    from model.loop import Trainer, fit, load_checkpoint

    torch.set_num_threads(threads)
    saved = load_checkpoint(checkpoint)
    flat = {**saved["run_config"], **settings, "max_train_s": end}
    if data_dir:
        flat["data_dir"] = data_dir
    run = run_config_from_flat(flat)  # checked and coerced
    saved["run_config"] = run_config_to_flat(run)
    text = load_corpus(CorpusConfig(name=run.corpus.name, data_dir=run.corpus.data_dir,
                                    max_chars=run.corpus.max_chars,
                                    val_fraction=run.corpus.val_fraction))  # fmt: skip
    trainer = Trainer.restore(saved, text)
    history: list[dict[str, Any]] = []
    fit(trainer, history.append, report_s=stops)
    keys = ("train_s", "val_bpc", "train_bpc", "lr", "chars_seen")
    return [{k: m[k] for k in keys} for m in history]


def commit() -> str:
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=False)  # fmt: skip
    return done.stdout.strip() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", help="a trial's checkpoint.pt")
    parser.add_argument("--stops", required=True, help="the trial's report seconds, a,b,c")
    parser.add_argument("--end", type=float, required=True, help="training seconds to end at")
    parser.add_argument("--arms", nargs="+", required=True, help="KEY=VALUE[,KEY=VALUE] each")
    parser.add_argument("--name", required=True, help="names the results file")
    parser.add_argument("--data-dir", default=None, help="where the corpus is, if moved")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per arm")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    try:
        stops = tuple(float(s) for s in args.stops.split(","))
    except ValueError:
        raise SystemExit(f"--stops is seconds joined by commas, got {args.stops!r}") from None
    arms = {arm: arm_settings(arm) for arm in args.arms}
    started = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    with ProcessPoolExecutor(max_workers=2) as pool:
        futures = {arm: pool.submit(continue_run, args.checkpoint, args.data_dir, settings,
                                    stops, args.end, args.threads)
                   for arm, settings in arms.items()}  # fmt: skip
        reports = {arm: future.result() for arm, future in futures.items()}
    for arm, rows in reports.items():
        values = "  ".join(f"{r['train_s']:.0f} s {r['val_bpc']:.4f}" for r in rows)
        print(f"{arm}: {values}  (best {min(r['val_bpc'] for r in rows):.4f})")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"continue-{args.name}.json"
    figures = {"command": "python benchmarks/bench_continue.py " + " ".join(sys.argv[1:]),
               "commit": commit(), "started_utc": started, "checkpoint": args.checkpoint,
               "stops": stops, "end": args.end, "reports": reports}  # fmt: skip
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"written {out}")


if __name__ == "__main__":
    main()
