"""PNG figures of a corpus comparison, drawn headless (matplotlib's Agg canvas, no pyplot).

    plot_best_curves([Curve("irc", chars, bpc, reference=1.02), ...], out / "curves.png")
    plot_baselines(rows, out / "baselines.png")          # rows of the predictability table
    plot_hyperparameters(trials, space, "irc", out / "hparams-irc.png")
    plot_search(SearchFolder(path))    # a search's own: trials.png and best-so-far.png

Figures are built on `matplotlib.figure.Figure` with an explicit Agg canvas, so no display,
no global pyplot state and no figure left open; each file is written atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from matplotlib import ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from corpora.files import atomic_path
from search.folder.space import SearchSpace, searched
from search.folder.store import SearchFolder
from search.reports.progress import RUNNING

TRIALS_PNG, BEST_PNG = "trials.png", "best-so-far.png"

STATUS_COLORS = {
    "completed": "tab:blue",
    "cut": "tab:green",
    "plateaued": "tab:purple",
    "stopped": "tab:orange",
    "unfinished": "tab:gray",
    "diverged": "tab:red",
    "failed": "tab:red",
}
BASELINE_BARS = (  # (column of the predictability table, legend label)
    ("unigram_bpc", "unigram entropy"),
    ("gzip_given_train_bpc", "gzip -9 | train"),
    ("bz2_given_train_bpc", "bz2 -9 | train"),
    ("xz_given_train_bpc", "xz -9e | train"),
    ("zstd_given_train_bpc", "zstd -22 --long | train"),
    ("ppmd_given_train_bpc", "PPMd | train"),
    ("best_val_bpc", "best model"),
)


@dataclass(frozen=True)
class Curve:
    """Validation bpc of one trial against the training characters it had seen."""

    label: str  # legend entry, e.g. the corpus name
    chars: tuple[int, ...]
    bpc: tuple[float, ...]
    reference: float | None = None  # drawn dashed in the same colour: the best compressor


def save(figure: Figure, path: Path) -> Path:
    """Write `figure` as PNG atomically and return `path`."""
    FigureCanvasAgg(figure)  # headless: attach the Agg canvas explicitly
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    return path


def plot_best_curves(curves: Sequence[Curve], path: Path) -> Path:
    """One line per corpus (its best trial); dashed: that corpus's best compressor."""
    figure = Figure(figsize=(7.5, 4.5), layout="constrained")
    ax = figure.subplots()
    for i, curve in enumerate(curves):
        color = f"C{i % 10}"
        ax.plot(curve.chars, curve.bpc, marker=".", color=color, label=curve.label)
        if curve.reference is not None:
            ax.axhline(curve.reference, color=color, linestyle="--", linewidth=1)
    ax.xaxis.set_major_formatter(ticker.EngFormatter(sep=""))  # 250k, 2M
    ax.set_xlabel("training characters")
    ax.set_ylabel("validation bits per character")
    ax.set_title("Best trial of each corpus (dashed: best compressor given the training text)")
    ax.grid(alpha=0.3)
    if curves:
        ax.legend()
    return save(figure, path)


def plot_baselines(rows: Sequence[dict[str, Any]], path: Path, label: str = "label") -> Path:
    """Grouped bars per corpus: unigram entropy, the compressors, the best model."""
    figure = Figure(figsize=(max(6.0, 1.8 * len(rows) + 2), 4.5), layout="constrained")
    ax = figure.subplots()
    width = 0.8 / len(BASELINE_BARS)
    for j, (column, legend) in enumerate(BASELINE_BARS):
        xs = [i + (j - (len(BASELINE_BARS) - 1) / 2) * width for i in range(len(rows))]
        shown = [
            (x, row[column]) for x, row in zip(xs, rows, strict=True) if row[column] is not None
        ]
        hatch = "//" if column == "best_val_bpc" else None
        bars = ax.bar(
            [x for x, _ in shown], [h for _, h in shown], width, label=legend, hatch=hatch
        )
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)  # no bar where there is no value
    ax.set_xticks(range(len(rows)), [str(row[label]) for row in rows])
    ax.set_ylabel("validation bits per character")
    ax.set_title("Best model and baselines per corpus (lower: more predictable)")
    ax.grid(axis="y", alpha=0.3)
    ax.set_ylim(top=ax.get_ylim()[1] * 1.3)  # room for the legend above the bars
    ax.legend(fontsize="small", ncols=4, loc="upper center")
    return save(figure, path)


def plot_hyperparameters(trials: pa.Table, space: SearchSpace, title: str, path: Path) -> Path:
    """One panel per searched hyperparameter: each trial's best validation bpc against it (a
    trial stopped before a report on the whole validation text has none; the title counts
    them)."""
    params = searched(space) or [("lr", "log")]
    columns = min(3, len(params))
    rows_n = -(-len(params) // columns)
    figure = Figure(figsize=(4.0 * columns, 3.2 * rows_n), layout="constrained")
    axes = figure.subplots(rows_n, columns, squeeze=False).ravel()
    rows = [r for r in trials.to_pylist() if r["best_val_bpc"] is not None]
    for ax, (name, scale) in zip(axes, params, strict=False):
        position: dict[Any, int] = {}
        if scale == "category":
            categories = sorted({r[name] for r in rows}, key=lambda v: (str(type(v)), v))
            position = {c: i for i, c in enumerate(categories)}
            ax.set_xticks(range(len(categories)), [str(c) for c in categories])
        for status, color in STATUS_COLORS.items():
            mine = [r for r in rows if r["status"] == status and r[name] is not None]
            if not mine:
                continue
            xs = [position[r[name]] if scale == "category" else r[name] for r in mine]
            ax.scatter(xs, [r["best_val_bpc"] for r in mine], color=color, s=22, label=status)
        if scale == "log":
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        elif name == "num_layers":
            ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
        ax.set_xlabel(name)
        ax.set_ylabel("best validation bpc")
        ax.grid(alpha=0.3)
    for ax in axes[len(params) :]:
        ax.set_visible(False)
    if rows:
        axes[0].legend(fontsize="small", title="trial status")
    unscored = trials.num_rows - len(rows)
    figure.suptitle(
        f"{title}: best validation bpc of each trial against its hyperparameters "
        "(trials ASHA stopped reached theirs on a smaller budget"
        + (f"; {unscored} stopped before any whole-text value, not shown)" if unscored else ")")
    )
    return save(figure, path)


@dataclass(frozen=True)
class TrialCurve:
    """One trial's validation values: (training seconds, bpc, on the whole text?, Unix time)."""

    trial_id: str
    status: str
    points: tuple[tuple[float, float, bool, float | None], ...]


def table_points(folder: SearchFolder, trials: list[dict[str, Any]]) -> dict[str, list[tuple]]:
    """Each of `trials`' (rows of trials.parquet) points in curves.parquet."""
    if not trials:
        return {}
    whole = {t["trial_id"]: t["val_chars"] for t in trials}
    by_trial: dict[str, list] = {t["trial_id"]: [] for t in trials}
    for c in folder.curves().to_pylist():
        if c["val_bpc"] is not None and c["trial_id"] in by_trial:
            point = (c["train_s"] or 0.0, c["val_bpc"], c["val_chars"] == whole[c["trial_id"]],
                     c["time"])  # fmt: skip
            by_trial[c["trial_id"]].append(point)
    return by_trial


def search_curves(folder: SearchFolder, running: bool = True) -> list[TrialCurve]:
    """Every trial's curve: from the result tables once a run wrote them (and no run is writing
    status.json since), else from status.json, which a running search keeps current (the points
    of a resumed search's earlier runs are in the tables only: its status.json has this run's).
    `running`: whether its driver still runs (`search.reports.status`); if not, what status.json
    says is running did not finish."""
    status = folder.status()
    trials = folder.trials().to_pylist() if folder.has_trials() else None
    tables = table_points(folder, trials or [])
    if trials is not None and (status is None or status.get("state") != "running"):
        return [TrialCurve(t["trial_id"], t["status"], tuple(tables[t["trial_id"]]))
                for t in trials]  # fmt: skip
    curves = []
    for row in (status or {}).get("trials", []):
        earlier = tables.get(row["trial_id"], [])
        times = {p[3] for p in earlier}
        now = [tuple(p) for p in row.get("curve", []) if p[3] not in times]
        status = row["status"] if running or row["status"] != RUNNING else "unfinished"
        curves.append(TrialCurve(row["trial_id"], status, tuple(earlier) + tuple(now)))
    return curves


def plot_search(folder: SearchFolder, running: bool = True) -> list[Path]:
    """The search's own pictures, into its folder: every trial's validation curve against its
    training seconds, coloured by status, with the scheduler's rungs; and the best value so
    far against the search's wall time (the anytime curve budgets are compared by).
    `running`: as for `search_curves`."""
    curves = search_curves(folder, running)
    return [
        plot_trial_curves(curves, folder.rungs(), folder.path.name, folder.path / TRIALS_PNG),
        plot_best_so_far(
            curves, folder.clock()["started"], folder.path.name, folder.path / BEST_PNG
        ),  # fmt: skip
    ]


def plot_trial_curves(
    curves: Sequence[TrialCurve], rungs: Sequence[float], title: str, path: Path
) -> Path:
    figure = Figure(figsize=(7.5, 4.5), layout="constrained")
    ax = figure.subplots()
    for i, rung in enumerate(rungs):
        ax.axvline(rung, color="0.6", linestyle=":", linewidth=1,
                   label="rungs" if i == 0 else None)  # fmt: skip
    shown: set[str] = set()
    for curve in curves:
        if not curve.points:
            continue
        color = STATUS_COLORS.get(curve.status, "black")
        xs, ys = [p[0] for p in curve.points], [p[1] for p in curve.points]
        label = curve.status if curve.status not in shown else None
        shown.add(curve.status)
        ax.plot(xs, ys, color=color, marker=".", linewidth=1, alpha=0.8, label=label)
    ax.set_xlabel("training seconds")
    ax.set_ylabel("validation bits per character")
    ax.set_title(f"{title}: every trial (a first point may be on a prefix of the text)")
    ax.grid(alpha=0.3)
    if shown or rungs:
        ax.legend(fontsize="small", title="trial status")
    return save(figure, path)


def best_so_far(curves: Sequence[TrialCurve], started: float) -> list[tuple[float, float]]:
    """(seconds since `started`, best value so far on the whole validation text), one per
    improvement, in time order."""
    points = sorted((p[3] - started, p[1]) for c in curves for p in c.points
                    if p[2] and p[3] is not None)  # fmt: skip
    steps: list[tuple[float, float]] = []
    for t, value in points:
        if not steps or value < steps[-1][1]:
            steps.append((t, value))
    return steps


def plot_best_so_far(curves: Sequence[TrialCurve], started: float, title: str, path: Path) -> Path:
    earliest = min((p[3] for c in curves for p in c.points if p[3] is not None), default=started)
    steps = best_so_far(curves, min(started, earliest))  # a resumed search: from its first run
    figure = Figure(figsize=(7.5, 4.5), layout="constrained")
    ax = figure.subplots()
    if steps:
        ax.step([t for t, _ in steps], [v for _, v in steps], where="post", marker="o",
                color="tab:blue")  # fmt: skip
    ax.set_xlabel("seconds since the search started")
    ax.set_ylabel("best validation bpc so far")
    ax.set_title(f"{title}: the best model so far (whole validation text)")
    ax.grid(alpha=0.3)
    return save(figure, path)
