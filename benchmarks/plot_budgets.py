"""One picture per text with the search (arm a) at every budget: does a longer budget end lower?

    python benchmarks/plot_budgets.py benchmarks/results/anytime-T300.json \
        benchmarks/results/anytime-T1200.json [--arms a d] [--name budgets]

Reads `bench_anytime.py` result files (any budgets, any texts) and draws, for each text found
in them, the chosen arms' best-so-far curves at every budget on one figure (log time axis),
each ending at its arm's wall time: docs/anytime-CORPUS-NAME.png (NAME: `--name`, "budgets").
Prints each final value.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def curves(files: list[Path], arms: list[str]) -> dict[str, list[tuple[str, float, dict]]]:
    """(arm, budget, its result) for every text in `files`, shortest budget first; an arm from
    a file that names its commit is called "arm (commit)", so two runs of a budget tell apart."""
    found: dict[str, list[tuple[str, float, dict]]] = defaultdict(list)
    for file in files:
        figures = json.loads(file.read_text())
        for corpus, result in figures["results"].items():
            for arm in arms:
                if isinstance(result.get(arm), dict) and result[arm]["curve"]:
                    name = f"{arm} ({figures['commit']})" if "commit" in figures else arm
                    found[corpus].append((name, figures["budget_s"], result[arm]))
    return {c: sorted(rows, key=lambda r: (r[1], r[0])) for c, rows in found.items()}


def plot(corpus: str, rows: list[tuple[str, float, dict]], name: str = "budgets") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.2))
    for arm, budget, result in rows:
        t, v = zip(*result["curve"], strict=True)
        t, v = [*t, result["wall_s"]], [*v, v[-1]]
        axes.step(t, v, where="post", label=f"{arm} at {budget:.0f} s: {v[-1]:.3f}")
    axes.set_xscale("log")
    axes.set_xlabel("wall seconds since the arm started")
    axes.set_ylabel("best validation bpc so far")
    axes.set_title(f"{corpus}: the search at every budget")
    axes.grid(alpha=0.3, which="both")
    axes.legend()
    DOCS.mkdir(exist_ok=True)
    path = DOCS / f"anytime-{corpus}-{name}.png"
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", type=Path, nargs="+", help="bench_anytime.py result files")
    parser.add_argument("--arms", nargs="+", default=["a"], help="arms to draw (default: a)")
    parser.add_argument("--name", default="budgets", help="the figure's name after the text's")
    args = parser.parse_args()
    for corpus, rows in curves(args.files, args.arms).items():
        for arm, budget, result in rows:
            print(f"{corpus} {arm} at {budget:.0f} s: {result['curve'][-1][1]:.3f}")
        print(f"wrote {plot(corpus, rows, args.name)}")


if __name__ == "__main__":
    main()
