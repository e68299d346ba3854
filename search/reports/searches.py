"""Finished searches read back from their folders, and views of one search's tables.

    search = read_search("runs/irc-20261129-101500")     # settings, trials and curves tables
    train_text, val_text, test_text, sha256 = search_text(search)  # the text it was cut into

Every file is read through `search.folder.store`; a folder that is not a finished search, or whose
corpus file changed since, is a one-line ConfigError.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from corpora.dataset import SplitText, corpus_text
from model.errors import ConfigError
from model.sample import sample_checkpoint
from search.folder.config import SearchConfig, load_search_config
from search.folder.results import STATUSES, finite
from search.folder.space import HYPERPARAMETERS
from search.folder.store import CURVES, SETTINGS, TRIALS, SearchFolder

TRIAL_COLUMNS = (  # of search.folder.results.TRIALS_SCHEMA, those the reports read
    "trial_id", "corpus", "corpus_sha256", "corpus_chars", "val_chars", "vocab_size",
    *HYPERPARAMETERS, "num_params", "best_val_bpc", "final_val_bpc", "chars_trained", "wall_s",
    "status",
)  # fmt: skip
CURVE_COLUMNS = ("trial_id", "iteration", "chars_seen", "val_bpc", "elapsed_s", "train_s")


@dataclass(frozen=True)
class Search:
    """One finished search read back from its folder."""

    path: Path
    config: SearchConfig
    trials: pa.Table
    curves: pa.Table

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def corpus_chars(self) -> int:
        return int(self.trials.column("corpus_chars")[0].as_py())

    @property
    def folder(self) -> SearchFolder:
        return SearchFolder(self.path)


def find_searches(storage: str | Path) -> list[Path]:
    """Search folders in `storage` that hold result tables, by name; folders with tables but
    no search settings (a `search.study`'s, whose arms are no search of their own) are left
    out."""
    storage = Path(storage)
    if not storage.is_dir():
        raise ConfigError(f"storage folder not found: {storage}")
    found = sorted(p.parent for p in storage.glob(f"*/{TRIALS}") if SearchFolder(p.parent).exists())
    if not found:
        raise ConfigError(f"no finished searches (NAME/trials.parquet) in {storage}")
    return found


def read_search(path: str | Path, data_dir: str | None = None) -> Search:
    """A search folder's settings and tables; ConfigError naming what is missing or wrong."""
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"search folder not found: {path}")
    folder = SearchFolder(path)
    if not folder.exists():
        raise ConfigError(f"{path} holds no search (no {SETTINGS})")
    for name in (TRIALS, CURVES):
        if not (path / name).is_file():
            raise ConfigError(
                f"{path} has no {name}: not a finished search (finish it with search.run --resume)"
            )
    config = load_search_config(path, {"data_dir": data_dir} if data_dir else {})
    trials, curves = folder.trials(), folder.curves()
    for table, name, needed in ((trials, TRIALS, TRIAL_COLUMNS), (curves, CURVES, CURVE_COLUMNS)):
        missing = [c for c in needed if c not in table.schema.names]
        if missing:
            raise ConfigError(f"{path / name} lacks column(s) {', '.join(missing)}")
    if trials.num_rows == 0:
        raise ConfigError(f"{path / TRIALS} holds no trials")
    if trials.column("corpus_sha256").null_count:
        raise ConfigError(f"{path / TRIALS} has trials without a corpus checksum")
    return Search(path=path.resolve(), config=config, trials=trials, curves=curves)


def check_equal_lengths(searches: Sequence[Search], allow_unequal: bool) -> None:
    """Refuse to rank searches of different corpus lengths together unless allowed."""
    # Length and split both: the same length with another --val-fraction is other texts.
    lengths = {
        s.name: (s.corpus_chars, s.config.val_fraction, s.config.test_fraction) for s in searches
    }
    if len(set(lengths.values())) > 1 and not allow_unequal:
        detail = ", ".join(
            f"{name} {n:,} (val {v:g}" + (f", test {t:g})" if t else ")")
            for name, (n, v, t) in lengths.items()
        )
        raise ConfigError(
            f"searches used unequal corpus lengths or splits ({detail}); rerun them with one "
            "--max-chars, --val-fraction and --test-fraction, or pass --allow-unequal to rank "
            "them together anyway"
        )


def search_text(search: Search) -> SplitText:
    """The training, validation and test text exactly as the search cut it, checked against
    the checksum and lengths its trials table recorded."""
    config = search.config
    text = corpus_text(config.corpus_config())
    train, val, test, sha256 = text
    first = search.trials.slice(0, 1).to_pylist()[0]
    if sha256 != first["corpus_sha256"]:
        raise ConfigError(
            f"corpus {config.corpus!r} has sha256 {sha256[:12]}... now, but search "
            f"{search.name} trained on {first['corpus_sha256'][:12]}...; pass --data-dir with "
            "the original file"
        )
    used = len(train) + len(val) + len(test)
    if used != first["corpus_chars"] or len(val) != first["val_chars"]:
        raise ConfigError(
            f"corpus {config.corpus!r} loads as {used:,} characters "
            f"({len(val):,} validation), but search {search.name} used "
            f"{first['corpus_chars']:,} ({first['val_chars']:,})"
        )
    return text


def trial_curves(curves: pa.Table) -> dict[str, list[dict[str, Any]]]:
    """Each trial's reports (curves rows) in iteration order."""
    by_trial: dict[str, list[dict[str, Any]]] = {}
    for row in sorted(curves.to_pylist(), key=lambda r: (r["trial_id"], r["iteration"])):
        by_trial.setdefault(row["trial_id"], []).append(row)
    return by_trial


def rung_values(curves: pa.Table, rung: float) -> list[float]:
    """Validation bpc of every trial at its first report at or beyond `rung` training seconds."""
    values = []
    for reports in trial_curves(curves).values():
        first = next((r for r in reports if r["train_s"] >= rung), None)
        if first is not None and finite(first["val_bpc"]):
            values.append(first["val_bpc"])
    return values


def crossings(
    reports: Sequence[dict[str, Any]], thresholds: Sequence[float]
) -> dict[float, tuple[int, float] | None]:
    """(training characters, seconds) at the first report at or below each threshold."""
    found: dict[float, tuple[int, float] | None] = {}
    for t in thresholds:
        hit = next((r for r in reports if finite(r["val_bpc"]) and r["val_bpc"] <= t), None)
        found[t] = (hit["chars_seen"], hit["elapsed_s"]) if hit else None
    return found


def status_counts(trials: pa.Table) -> dict[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    for status in trials.column("status").to_pylist():
        counts[status] = counts.get(status, 0) + 1
    return counts


def best_sample(folder: Path, chars: int, temperature: float, seed: int) -> str:
    """Text generated by the search's best model (NAME/best/best.pt); "" if it has none."""
    best = SearchFolder(folder).best
    if chars == 0 or not best.is_dir():
        return ""
    return sample_checkpoint(best, chars, temperature, seed)
