"""Text views of the result tables: the Markdown report and the terminal tables.

`markdown_table` (tabulate's pipe format, numbers aligned right) is the one table renderer;
`format_ranking` is what `search.run` prints at the end, `render_markdown` the corpus
comparison's predictability.md. Every column is a view of a table row; a value that does not
exist shows as a dash.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from tabulate import tabulate

from search.folder.results import STATUSES, finite, ranked
from search.folder.space import FORMATS, HYPERPARAMETERS
from search.reports.baselines import PPMD_MEM_SIZE
from search.reports.predictability import (
    interval_columns,
    rung_columns,
    threshold_columns,
    threshold_label,
)

DASH = "–"  # shown for a value that does not exist (threshold never reached, no trial)

Cell = Callable[[dict[str, Any]], str]  # a row of the predictability table -> one table cell
_NUMBER = re.compile(r"(?=.*\d)[-+\d.,e%/() –]+|–")  # 1,234  -0.5  4.1e-03  2.1 / 2.3 (4)  –
BPC, INT, SECONDS = "{:.3f}".format, "{:,}".format, "{:.1f}".format


def col(name: str, fmt: Callable[[Any], str] = str) -> Cell:
    """The cell of column `name`, formatted; DASH where the value does not exist."""
    return lambda row: fmt(row[name]) if isinstance(row[name], str) or finite(row[name]) else DASH


def ppmd_cell(row: dict[str, Any], bpc: str, order: str) -> str:
    """PPMd's bpc with the model order that reached it: `1.706 (8)`."""
    return f"{row[bpc]:.3f} ({row[order]})" if finite(row[bpc]) else DASH


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown (pipe) table, readable as plain text too; numeric columns align right."""
    cells = [[str(c).replace("|", "\\|").replace("\n", " ") for c in r] for r in rows]
    align = [
        "right" if cells and all(_NUMBER.fullmatch(r[i]) for r in cells) else "left"
        for i in range(len(header))
    ]
    return tabulate(cells, headers=list(header), tablefmt="pipe", colalign=align,
                    disable_numparse=True)  # fmt: skip


def view(table: pa.Table, columns: Sequence[tuple[str, Cell]]) -> str:
    """`table` as a Markdown table of the given (header, cell) columns, one line per row."""
    rows = table.to_pylist()
    return markdown_table([h for h, _ in columns], [[cell(r) for _, cell in columns] for r in rows])


MAIN_COLUMNS: tuple[tuple[str, Cell], ...] = (  # the ranking, also printed to the terminal
    ("rank", col("rank")),
    ("corpus", col("label")),
    ("characters", col("corpus_chars", INT)),
    ("distinct", col("distinct_chars")),
    ("sha256", col("corpus_sha256", lambda v: v[:12])),
    ("best model", col("best_val_bpc", BPC)),
    ("best compressor", lambda r: f"{r['best_compressor']} {r['best_compressor_bpc']:.3f}"),
    ("gain", col("gain_bpc", "{:+.3f}".format)),
    ("gain %", col("gain_pct", "{:+.1f}".format)),
    ("PPMd | train (order)", lambda r: ppmd_cell(r, "ppmd_given_train_bpc", "ppmd_order")),
    ("xz | train", col("xz_given_train_bpc", BPC)),
    ("zstd | train", col("zstd_given_train_bpc", BPC)),
    ("bz2 | train", col("bz2_given_train_bpc", BPC)),
    ("gzip | train", col("gzip_given_train_bpc", BPC)),
    ("unigram", col("unigram_bpc", BPC)),
)
ALONE_COLUMNS: tuple[tuple[str, Cell], ...] = (
    ("corpus", col("label")),
    ("val chars", col("val_chars", INT)),
    ("val bytes", col("val_bytes", INT)),
    ("gzip alone", col("gzip_alone_bpc", BPC)),
    ("bz2 alone", col("bz2_alone_bpc", BPC)),
    ("xz alone", col("xz_alone_bpc", BPC)),
    ("zstd alone", col("zstd_alone_bpc", BPC)),
    ("PPMd alone (order)", lambda r: ppmd_cell(r, "ppmd_alone_bpc", "ppmd_alone_order")),
)
HYPER_COLUMNS: tuple[tuple[str, Cell], ...] = tuple(  # one per search.folder.space parameter
    (name, col(name, FORMATS[name].format)) for name in HYPERPARAMETERS
)
BEST_COLUMNS: tuple[tuple[str, Cell], ...] = (
    ("corpus", col("label")),
    ("trial", col("best_trial")),
    ("status", col("best_status")),
    ("best bpc", col("best_val_bpc", BPC)),
    *HYPER_COLUMNS,
    ("parameters", col("num_params", INT)),
    ("chars trained", col("best_chars_trained", INT)),
    ("seconds", col("best_wall_s", SECONDS)),
)
TRIALS_COLUMNS: tuple[tuple[str, Cell], ...] = (
    ("corpus", col("label")),
    ("trials", col("trials")),
    *((("stopped early" if s == "stopped" else s), col(s)) for s in STATUSES),
    ("budget", col("time_budget_s", SECONDS)),
    ("scheduler", col("scheduler")),
    ("reduction", col("reduction_factor")),
)
REPRODUCE_COLUMNS: tuple[tuple[str, Cell], ...] = (
    ("corpus", col("label")),
    ("search", col("search")),
    ("corpus file sha256", col("corpus_sha256", "`{}`".format)),
    ("registry's file", lambda r: {True: "yes", False: "**no**"}.get(r["corpus_verified"], DASH)),
    ("text sha256", col("text_sha256", "`{}`".format)),
    ("max_chars", col("max_chars", INT)),
    ("val_fraction", col("val_fraction", "{:g}".format)),
)


def interval_cell(figure: str, fmt: str = "{:.3f}") -> Cell:
    """A figure with its interval: `1.706 [1.690, 1.722]`."""
    mean, low, high = interval_columns(figure)

    def cell(row: dict[str, Any]) -> str:
        if not finite(row[mean]):
            return DASH
        return f"{fmt.format(row[mean])} [{fmt.format(row[low])}, {fmt.format(row[high])}]"

    return cell


def verdict_cell(figure: str) -> Cell:
    """Whether a gain's interval says the model wins, loses, or cannot be told apart."""
    mean, low, high = interval_columns(figure)

    def cell(row: dict[str, Any]) -> str:
        if not finite(row[mean]):
            return DASH
        if row[low] > 0:
            return "model lower"
        return "compressor lower" if row[high] < 0 else "not distinguishable"

    return cell


TEST_COLUMNS: tuple[tuple[str, Cell], ...] = (  # the test split, where a search kept one
    ("corpus", col("label")),
    ("test chars", col("test_chars", INT)),
    ("static", interval_cell("test")),
    ("adaptive", interval_cell("test_dynamic")),
    ("PPMd | before (order)", lambda r: ppmd_cell(r, "test_ppmd_bpc", "test_ppmd_order")),
    ("best compressor", lambda r: f"{r['test_best_compressor']} "
     f"{r['test_best_compressor_bpc']:.3f}" if r["test_best_compressor"] else DASH),
    ("gain static", interval_cell("test_gain", "{:+.3f}")),
    ("gain adaptive", interval_cell("test_dynamic_gain", "{:+.3f}")),
    ("adaptive vs compressor", verdict_cell("test_dynamic_gain")),
)  # fmt: skip


def has_test(table: pa.Table) -> bool:
    return any(n is not None for n in table.column("test_chars").to_pylist())


def test_table(table: pa.Table) -> str:
    """The test-split view of the searches that kept one."""
    return view(table.filter(pc.is_valid(table.column("test_chars"))), TEST_COLUMNS)


def test_section(table: pa.Table, differences: Sequence[str]) -> list[str]:
    """predictability.md's test-split section; none where no search kept a test split."""
    if not has_test(table):
        return []
    return [
        "## The test split: the best model against compressors, with intervals",
        "",
        "The end of each text, which no trial was ranked, stopped or chosen on, scored once for "
        "the best model: `static` as trained, `adaptive` with dynamic evaluation (each segment "
        "predicted, then learnt from; its settings chosen on validation; `model.evaluate`). "
        "Compressors read the test text after all the text before it. `gain` is the best "
        "compressor's bpc minus the model's, positive when the model wins. Intervals are 95% "
        "block-bootstrap intervals (blocks of 10,000 characters); a gain over PPMd is paired with "
        "PPMd's own bits for each 1,000 characters, so what is hard for both cancels.",
        "",
        test_table(table),
        "",
        *(
            [
                "Neighbours in the ranking, adaptive test bpc (each text resampled on its own):",
                "",
                *(f"- {line}" for line in differences),
                "",
            ]
            if differences
            else []
        ),
    ]


def speed_columns(thresholds: Sequence[float]) -> list[tuple[str, Cell]]:
    columns: list[tuple[str, Cell]] = [("corpus", col("label"))]
    for t in thresholds:
        chars, seconds = threshold_columns(t)
        label = threshold_label(t)
        columns += [
            (f"chars to {label}", col(chars, INT)),
            (f"s to {label}", col(seconds, SECONDS)),
        ]
    return columns


def table_rungs(table: pa.Table) -> list[int]:
    """The rungs (training seconds) that have columns in `table`, ascending."""
    return [int(m[1]) for n in table.schema.names if (m := re.fullmatch(r"rung_(\d+)s_trials", n))]


def rung_cell(rung: int) -> Cell:
    n, best, median = rung_columns(rung)
    return lambda r: f"{BPC(r[best])} / {BPC(r[median])} ({r[n]})" if r[n] else DASH


def importance_columns(table: pa.Table) -> list[tuple[str, Cell]]:
    rows = table.to_pylist()
    names = [p for p in HYPERPARAMETERS if any(r[f"importance_{p}"] is not None for r in rows)]
    return [
        ("corpus", col("label")),
        *((p, col(f"importance_{p}", "{:.2f}".format)) for p in names),
        ("how", col("importance_note")),
    ]


def main_table(table: pa.Table) -> str:
    return view(table, MAIN_COLUMNS)


def fenced(text: str) -> str:
    """`text` in a code fence longer than any backtick run inside it."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def length_note(table: pa.Table) -> str:
    lengths = sorted(set(table.column("corpus_chars").to_pylist()))
    fractions = sorted(set(table.column("val_fraction").to_pylist()))
    if len(lengths) == 1 and len(fractions) > 1:
        return (
            f"Every corpus is cut to the same length, {lengths[0]:,} characters, but **the "
            "validation splits differ** (" + ", ".join(f"{f:g}" for f in fractions) + "), "
            "ranked together because --allow-unequal was given."
        )
    if len(lengths) == 1:
        return f"Every corpus is cut to the same length: {lengths[0]:,} characters."
    return (
        "**Unequal lengths** (" + ", ".join(f"{n:,}" for n in lengths) + " characters), ranked "
        "together because --allow-unequal was given: longer texts are easier to predict."
    )


def render_markdown(
    table: pa.Table,
    thresholds: Sequence[float],
    plots: dict[str, str],
    searches: Sequence[str],
    differences: Sequence[str] = (),
    samples: bool = True,
) -> str:
    """predictability.md: every section is a view of `table`; `plots` maps title -> file;
    `differences`: the ranking's neighbours compared on the test split (lines); `samples`:
    whether samples were asked for (`--sample-chars` above 0)."""
    rows = table.to_pylist()
    parts = [
        "# Corpus predictability",
        "",
        f"Searches: {', '.join(f'`{s}`' for s in searches)}. {length_note(table)}",
        "All figures are bits per character (bpc) of each search's validation text (the end "
        "of the text used, before any test split); characters are Unicode code points, "
        "compressors read UTF-8 bytes.",
        "",
        "## Ranking: best model against compressors",
        "",
        main_table(table),
        "",
        "`X | train` is the conditional cost 8 * (C(train + val) - C(train)) / val chars: what "
        "the compressor needs for the validation text after it has seen the training text, the "
        "fair comparison with a model trained on that text (gzip only remembers the last 32 KiB "
        "and bz2 its 900 kB block; xz -9e remembers 64 MiB, zstd -22 --long a window of the "
        f"whole text, PPMd a {PPMD_MEM_SIZE >> 20} MiB model). PPMd (variant H, as in 7-Zip) is "
        "shown with the model order, of those tried, that did best on this text. `gain` is the "
        "best compressor's bpc minus the best model's: positive when the model wins. `unigram` is "
        "the entropy of the validation text's own character frequencies. `sha256` is that of the "
        "corpus file.",
        "",
        *test_section(table, differences),
        "## Compressors on the validation text alone",
        "",
        "8 * C(val) / val chars: no training text seen. Shown for reference; not the fair figure.",
        "",
        view(table, ALONE_COLUMNS),
        "",
        "## Best trial",
        "",
        view(table, BEST_COLUMNS),
        "",
        "## Learning speed of the best trial",
        "",
        "Training characters and seconds (training and evaluation wall time) at the first report "
        f"at or below each bpc threshold; {DASH}: never reached.",
        "",
        view(table, speed_columns(thresholds)),
        "",
        "## Equal budgets: the rungs",
        "",
        "Best / median validation bpc (trials) of every trial that reached the scheduler's rung "
        "(seconds of training), taken at its first report at or beyond it. The first rung "
        "scores the first characters of the validation text (`--first-rung-val-chars`), the "
        "others all of it.",
        "",
        view(
            table,
            [
                ("corpus", col("label")),
                *((f"{k:,} s", rung_cell(k)) for k in table_rungs(table)),
            ],
        ),
        "",
        "## Trials",
        "",
        view(table, TRIALS_COLUMNS),
        "",
        "## Hyperparameter importance",
        "",
        "Optuna's PED-ANOVA importance for a low validation bpc, from each search's own Optuna "
        "study (shares sum to 1; rough with few trials; trials stopped at a rung do not count).",
        "",
        view(table, importance_columns(table)),
        "",
        "## Plots",
        "",
        *(f"![{title}]({file})\n" for title, file in plots.items()),
    ]
    if samples:
        parts += ["## Samples from the best models", ""]
    for r in rows if samples else ():
        if not r["sample"]:
            parts += [f"### {r['label']}", "", "(no best model in the search folder)", ""]
            continue
        parts += [
            f"### {r['label']} (trial {r['best_trial']}, seed {r['sample_seed']}, "
            f"temperature {r['sample_temperature']:g})",
            "",
            fenced(r["sample"]),
            "",
        ]
    commands = "\n".join(r["search_command"] for r in rows)
    parts += [
        "## Reproduce",
        "",
        view(table, REPRODUCE_COLUMNS),
        "",
        "The searches' settings as `search.run` commands (add `--data-dir` where needed):",
        "",
        fenced(commands).replace("```text", "```sh", 1),
        "",
    ]
    return "\n".join(parts)


def format_ranking(trials: pa.Table, limit: int = 10) -> str:
    """The best trials of a search, for the terminal; a marked value was measured only on the
    validation text's first characters (a trial stopped at the first rung)."""
    rows = ranked(trials)[:limit]

    def value(r: dict[str, Any]) -> str:
        if r["best_val_bpc"] is not None:
            return f"{r['best_val_bpc']:.4f}"
        return f"{r['final_val_bpc']:.4f}*" if r["final_val_bpc"] is not None else DASH

    header = ["rank", "trial", "status", "val_bpc", "chars", "train_s", *HYPERPARAMETERS]
    body = [
        [str(i), r["trial_id"], r["status"], value(r), f"{r['chars_trained']:,}",
         f"{r['train_s'] or 0:.1f}", *(cell(r) for _, cell in HYPER_COLUMNS)]
        for i, r in enumerate(rows, start=1)
    ]  # fmt: skip
    counts = {s: 0 for s in STATUSES}
    for status in trials.column("status").to_pylist():
        counts[status] += 1
    lines = [
        tabulate(body, headers=header, tablefmt="simple", disable_numparse=True),
        f"{trials.num_rows} trials: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n),
    ]
    if any(value(r).endswith("*") for r in rows):
        lines.append("* on the first characters of the validation text (stopped at a rung)")
    return "\n".join(lines)
