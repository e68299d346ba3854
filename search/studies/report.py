"""The report of a study: study.md and its curves, next to the study's tables.

- `curves.png`: validation bpc against training characters and against training seconds,
  one line per value (the mean over seeds), the seed-to-seed spread as a band;
- a table per value: final and best bpc (mean ± standard deviation over seeds), chars/s,
  characters and seconds to reach 3.0 / 2.5 / 2.0 bpc, and the generalization gap (final
  validation minus training bpc);
- each value against the first, seed by seed (the paired differences in final and best bpc);
- a sample from each value's best model.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from corpora.files import atomic_path, atomic_write
from model.loop import LN2
from model.sample import LATEST, sample_checkpoint
from search.folder.results import SPEED_LEVELS as THRESHOLDS
from search.folder.results import TrialRecord
from search.folder.store import SearchFolder
from search.reports.render import DASH, fenced, markdown_table


def by_value(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        grouped[row["value"]].append(row)
    return dict(grouped)


def mean_sd(values: Sequence[float | None]) -> str:
    """Mean ± standard deviation of the seeds that have a value; (k/n) where only k of n do."""
    kept = [v for v in values if v is not None]
    if not kept:
        return DASH
    text = f"{np.mean(kept):.3f}"
    if len(kept) > 1:  # one value has no spread to show (not a spread of 0)
        text += f" ± {float(np.std(kept, ddof=1)):.3f}"
    return text if len(kept) == len(values) else f"{text} ({len(kept)}/{len(values)})"


def paired_table(rows: Sequence[dict[str, Any]]) -> str:
    """Each value against the first, seed by seed: every value runs the same seeds (the same
    batches, and the same initial weights where the shapes allow), so the difference within a
    seed leaves out most of what varies between seeds. Mean ± standard deviation of the
    differences in final and best bpc, and in how many seeds the value was lower; seeds where
    either arm did not complete are left out. "" with fewer than two values."""
    groups = list(by_value(rows).items())
    if len(groups) < 2:
        return ""
    (reference, first), body = groups[0], []
    for value, group in groups[1:]:
        cells = [value]
        for key in ("final_val_bpc", "best_val_bpc"):
            mine = {r["seed"]: r[key] for r in group if r[key] is not None}
            theirs = {r["seed"]: r[key] for r in first if r[key] is not None}
            diffs = [mine[seed] - theirs[seed] for seed in sorted(mine.keys() & theirs.keys())]
            cells.append(signed_mean_sd(diffs))
            cells.append(f"{sum(d < 0 for d in diffs)}/{len(diffs)}" if diffs else DASH)
        body.append(cells)
    header = ["value", f"final bpc − {reference}'s", "seeds lower",
              f"best bpc − {reference}'s", "seeds lower"]  # fmt: skip
    return markdown_table(header, body)


def signed_mean_sd(values: Sequence[float]) -> str:
    """Mean (with its sign) ± standard deviation; the mean alone for one value."""
    if not values:
        return DASH
    text = f"{np.mean(values):+.3f}"
    return text + (f" ± {float(np.std(values, ddof=1)):.3f}" if len(values) > 1 else "")


def unfinished_arms(rows: Sequence[dict[str, Any]], factor: str) -> str:
    """The arms that did not train their whole budget, and why; "" if none."""
    arms = [f"{factor} = {r['value']}, seed {r['seed']}: {r['status']}"
            for r in rows if r["status"] != "completed"]  # fmt: skip
    if not arms:
        return ""
    return (
        "Not in final and best bpc, the gap or the curves, as they did not train their "
        "whole budget (a failed arm's error is in `trials.parquet`): " + "; ".join(arms) + "."
    )


def mean_of(values: Sequence[float | None], fmt: str) -> str:
    kept = [v for v in values if v is not None]
    if len(kept) < len(values) or not kept:  # a seed never got there: no mean
        return DASH if not kept else f"{fmt.format(np.mean(kept))} ({len(kept)}/{len(values)})"
    return fmt.format(np.mean(kept))


def value_table(rows: Sequence[dict[str, Any]]) -> str:
    header = ["value", "seeds", "final bpc", "best bpc", "chars/s", "gap (val − train)",
              *(f"chars to {t:g}" for t in THRESHOLDS),
              *(f"s to {t:g}" for t in THRESHOLDS)]  # fmt: skip
    body = []
    for value, group in by_value(rows).items():
        body.append([
            value, str(len(group)),
            mean_sd([r["final_val_bpc"] for r in group]),
            mean_sd([r["best_val_bpc"] for r in group]),
            mean_of([r["chars_per_s"] for r in group], "{:,.0f}"),
            mean_sd([r["gap_bpc"] for r in group]),
            *(mean_of([r[f"chars_to_{t:g}"] for r in group], "{:,.0f}") for t in THRESHOLDS),
            *(mean_of([r[f"seconds_to_{t:g}"] for r in group], "{:.1f}") for t in THRESHOLDS),
        ])  # fmt: skip
    return markdown_table(header, body)


def plot_curves(records: Sequence[TrialRecord], rows: Sequence[dict[str, Any]],
                factor: str, path: Path) -> Path:  # fmt: skip
    """Validation bpc against characters and seconds, mean over seeds with a min-max band."""
    figure = Figure(figsize=(11, 4.2))
    FigureCanvasAgg(figure)
    by_id = {r.trial_id: r for r in records}
    rows = [r for r in rows if r["status"] == "completed"]
    whole = max((h.get("val_chars") or 0 for r in records for h in r.history), default=0)
    axes_keys = zip(figure.subplots(1, 2), ("chars_seen", "train_s"),
                    ("training characters", "training seconds"), strict=True)  # fmt: skip
    for axes, key, label in axes_keys:
        for value, group in by_value(rows).items():
            curves = []
            for row in group:
                history = [
                    h for h in by_id[row["trial_id"]].history
                    if h.get("val_chars") == whole and h.get("val_bpc") is not None
                ]  # fmt: skip
                curves.append((np.array([h[key] for h in history], float),
                               np.array([h["val_bpc"] for h in history], float)))  # fmt: skip
            n = min((len(x) for x, _ in curves), default=0)
            if n == 0:
                continue
            xs = np.mean([x[:n] for x, _ in curves], axis=0)
            ys = np.array([y[:n] for _, y in curves])
            (line,) = axes.plot(xs, ys.mean(axis=0), marker=".", label=f"{factor} = {value}")
            axes.fill_between(xs, ys.min(axis=0), ys.max(axis=0), color=line.get_color(),
                              alpha=0.2)  # fmt: skip
        axes.set_xlabel(label)
        axes.set_ylabel("validation bpc")
        axes.grid(alpha=0.3)
    figure.axes[0].legend()
    figure.suptitle(f"{factor}: mean over seeds, band from the lowest to the highest seed")
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    return path


def value_samples(rows: Sequence[dict[str, Any]], records: Sequence[TrialRecord],
                  chars: int) -> dict[str, str]:  # fmt: skip
    """Text from each value's best model (its best seed's best checkpoint)."""
    checkpoints = {r.trial_id: r.best_checkpoint for r in records}
    samples = {}
    for value, group in by_value(rows).items():
        scored = [r for r in group if r["best_val_bpc"] is not None]
        folder = checkpoints.get(min(scored, key=lambda r: r["best_val_bpc"])["trial_id"]) \
            if scored else None  # fmt: skip
        if folder is None:
            samples[value] = ""
            continue
        samples[value] = sample_checkpoint(Path(folder) / LATEST, chars)
    return samples


def paired_section(rows: Sequence[dict[str, Any]], factor: str) -> list[str]:
    """The report's lines comparing each value with the first, seed by seed (none for one
    value)."""
    table = paired_table(rows)
    if not table:
        return []
    reference = next(iter(by_value(rows)))
    return [
        f"## Against {factor} = {reference}, seed by seed",
        "",
        table,
        "",
        "Each value runs the same seeds, so a difference within a seed leaves out most of what "
        "varies between seeds; a value lower in every seed, by more than the spread of the "
        "differences, is a finding, a mean difference alone is not. Seeds where either arm did "
        "not complete are left out.",
        "",
    ]


def write_report(config: Any, folder: SearchFolder, records: Sequence[TrialRecord],
                 rows: Sequence[dict[str, Any]]) -> Path:  # fmt: skip
    """study.md and curves.png in the study folder; returns the Markdown file."""
    png = plot_curves(records, rows, config.factor, folder.path / "curves.png")
    unfinished = unfinished_arms(rows, config.factor)
    budget = (f"{config.time_budget_s:g} s of training" if config.time_budget_s
              else f"{config.budget_chars:,} training characters")  # fmt: skip
    fixed = (
        f"the best configuration of {config.base}" if config.base else "search.studies.study.BASE"
    )
    if config.sets:
        fixed += ", " + ", ".join(f"{k}={v}" for k, v in config.sets)
    parts = [
        f"# Study: {config.factor} on {config.corpus}",
        "",
        f"Every arm: {budget}; {config.seeds} seed(s) per value; everything but "
        f"`{config.factor}` fixed ({fixed}). bpc is on the whole validation text.",
        "",
        "## Per value",
        "",
        value_table(rows),
        "",
        f"Mean ± standard deviation over seeds. `chars to` / `s to`: training characters and "
        f"seconds at the first validation at or below that bpc ({DASH}: never; (k/n): only k "
        f"of n seeds got there). The gap's training bpc is the mean over the last tenth of the "
        f"budget with dropout on: it reads low, the more so with more dropout. Uniform "
        f"guessing is log2(V); {1 / LN2:.3f} converts nats.",
        "",
        *([unfinished, ""] if unfinished else []),
        f"![curves]({png.name})",
        "",
        *paired_section(rows, config.factor),
        "## Samples from each value's best model",
        "",
    ]
    for value, text in value_samples(rows, records, config.sample_chars).items():
        parts += [f"### {config.factor} = {value}", "", fenced(text) if text else DASH, ""]
    return atomic_write(folder.path / "study.md", "\n".join(parts))
