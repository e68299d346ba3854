"""Benchmark: each text's best model on a test split no selection saw, against PPMd.

    python benchmarks/bench_predictability.py --keep /tmp/pred          # the four shipped texts
    python benchmarks/bench_predictability.py --budget 1200 --keep DIR --corpora irc \
        /work/texts/reina_valera_1909.txt    # a file path is a corpus too (its stem names it)

For each text, one after another on the same cores, the command a user would type:
`python -m search.run --time-budget T` on its first 2.6 M characters with 5% validation and 5%
test (`--val-fraction 0.05 --test-fraction 0.05`), defaults otherwise. The search selects on
validation only and scores its best model once on the test text, static and adaptive (dynamic
evaluation, `model.evaluate`). Then `python -m search.compare` over all the searches sets each
against PPMd and the best compressor on the same test text, with 95% block-bootstrap
intervals. With `--keep`, a search that finished is read back, one stopped halfway resumes.

Writes benchmarks/results/predictability-T{T}.json (the figures, the commands, the commit) and
prints a Markdown table. `test_eval_share` is the adaptive evaluation's seconds over the
search's wall time without them (the issue's "adds no more than about 10%").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
from bench_anytime import CORPORA, MAX_CHARS, label, run_arm

from search.folder.space import HYPERPARAMETERS

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
VAL_FRACTION = TEST_FRACTION = 0.05
FIGURES = (
    "corpus", "corpus_chars", "test_chars", "best_val_bpc",
    "test_bpc", "test_bpc_low", "test_bpc_high",
    "test_dynamic_bpc", "test_dynamic_bpc_low", "test_dynamic_bpc_high",
    "test_ppmd_bpc", "test_ppmd_order", "test_best_compressor", "test_best_compressor_bpc",
    "test_gain_bpc", "test_gain_bpc_low", "test_gain_bpc_high",
    "test_dynamic_gain_bpc", "test_dynamic_gain_bpc_low", "test_dynamic_gain_bpc_high",
    "test_gain_paired",
)  # fmt: skip


def search_command(corpus: str, budget: float, storage: Path, data_dir: str | None) -> list[str]:
    command = [sys.executable, "-m", "search.run", "--corpus", corpus,
               "--max-chars", str(MAX_CHARS), "--val-fraction", str(VAL_FRACTION),
               "--test-fraction", str(TEST_FRACTION), "--time-budget", str(budget),
               "--storage", str(storage), "--name", label(corpus)]  # fmt: skip
    return [*command, "--data-dir", data_dir] if data_dir else command


def search_facts(folder: Path, started: float, ended: float) -> dict:
    """What the search's own files say about its best model and what scoring it cost."""
    best = json.loads((folder / "best" / "trial.json").read_text())
    wall = ended - started
    evaluate = best["test_eval_s"]
    return {
        "wall_s": wall,
        "test_eval_s": evaluate,
        "test_eval_share": evaluate / (wall - evaluate),
        "best_model": {k: best.get(k) for k in HYPERPARAMETERS},
        "dynamic_settings": best.get("dynamic_settings"),
    }


def markdown(rows: list[dict]) -> str:
    def interval(row: dict, key: str, sign: str = "") -> str:
        return (f"{row[key]:{sign}.3f} [{row[key + '_low']:{sign}.3f}, "
                f"{row[key + '_high']:{sign}.3f}]")  # fmt: skip

    lines = [
        "| text | test chars | static | adaptive | PPMd (order) | best compressor "
        "| static gain | adaptive gain | eval share |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['corpus']} | {r['test_chars']:,} | {interval(r, 'test_bpc')} "
            f"| {interval(r, 'test_dynamic_bpc')} "
            f"| {r['test_ppmd_bpc']:.3f} ({r['test_ppmd_order']}) "
            f"| {r['test_best_compressor']} {r['test_best_compressor_bpc']:.3f} "
            f"| {interval(r, 'test_gain_bpc', '+')} | {interval(r, 'test_dynamic_gain_bpc', '+')} "
            f"| {100 * r['test_eval_share']:.1f}% |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=float, default=1200, help="T, seconds (default 1200)")
    parser.add_argument("--corpora", nargs="+", default=list(CORPORA),
                        help="registered names or paths to UTF-8 files")  # fmt: skip
    parser.add_argument("--data-dir", default=os.environ.get("CHARNN_DATA_DIR"),
                        help="local corpus folder (default: $CHARNN_DATA_DIR)")  # fmt: skip
    parser.add_argument("--keep", default=None, help="keep the searches in this folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        storage = Path(args.keep or scratch)
        storage.mkdir(parents=True, exist_ok=True)
        facts, commands = {}, {}
        for corpus in args.corpora:
            name = label(corpus)
            command = search_command(corpus, args.budget, storage, args.data_dir)
            if (storage / name).exists() and not (storage / f"{name}.times.json").exists():
                command.append("--resume")  # stopped halfway: go on where it stopped
            started, ended = run_arm(command, storage / f"{name}.log")
            facts[name] = search_facts(storage / name, started, ended)
            commands[name] = " ".join(command[1:]).replace(str(storage), "DIR")
            print(f"  {name}: searched in {ended - started:.0f} s", flush=True)
        out = storage / "compare"
        compare = [sys.executable, "-m", "search.compare",
                   *(str(storage / label(c)) for c in args.corpora),
                   "--allow-unequal", "--out", str(out)]  # fmt: skip
        if args.data_dir:
            compare += ["--data-dir", args.data_dir]
        subprocess.run(compare, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        table = pq.read_table(out / "predictability.parquet").to_pylist()
    rows = []
    for row in table:
        name = row["search"]
        rows.append({**{k: row.get(k) for k in FIGURES}, **facts[name], "name": name})
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    result = {
        "command": "python benchmarks/bench_predictability.py " + " ".join(sys.argv[1:]),
        "commit": commit,
        "budget_s": args.budget,
        "cores": os.cpu_count(),
        "searches": commands,
        "rows": rows,
        "table": markdown(rows),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"predictability-T{args.budget:.0f}.json").write_text(
        json.dumps(result, indent=2) + "\n"
    )
    print(result["table"])


if __name__ == "__main__":
    main()
