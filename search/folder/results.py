"""Result tables of a search: one row per trial, one row per reported iteration.

    runs/NAME/trials.parquet   trial_id, corpus, checksum, hyperparameters, final/best val_bpc,
                               chars trained, wall time, status, best checkpoint path, ...
    runs/NAME/curves.parquet   trial_id, iteration, chars_seen, train_bpc, val_bpc, ...

Rows are built here from what each trial reported (pure functions); `search.folder.store` writes
them atomically with these explicit Arrow schemas, so pyarrow or pandas alone read them and an
interrupted write never leaves half a table. Reports (rankings, comparisons) are views
computed from these tables.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from numbers import Real
from typing import Any

import pyarrow as pa

from search.folder.space import ARROW_TYPES, HYPERPARAMETERS

STATUSES = ("completed", "cut", "plateaued", "stopped", "diverged", "failed", "unfinished")
ORIGINS = ("warm", "sampled", "mutated")  # where a trial's configuration came from
SPEED_LEVELS = (3.0, 2.5, 2.0)  # bpc a curve is timed to (learning speed), in every report

TRIALS_SCHEMA = pa.schema(
    [
        ("search", pa.string()),
        ("trial_id", pa.string()),
        ("corpus", pa.string()),
        ("corpus_sha256", pa.string()),
        ("corpus_verified", pa.bool_()),  # the registry's reference file; null: a file path
        ("corpus_chars", pa.int64()),  # characters used (after --max-chars), every split
        ("val_chars", pa.int64()),
        ("vocab_size", pa.int32()),
        *ARROW_TYPES.items(),  # one column per hyperparameter of search.folder.space.PARAMETERS
        ("origin", pa.string()),  # one of ORIGINS: a warm start, TPE's, a mutation of the best
        ("num_params", pa.int64()),
        ("final_val_bpc", pa.float64()),  # at the trial's last report; null if it never reported
        ("final_val_chars", pa.int64()),  # validation characters that value was measured on
        ("best_val_bpc", pa.float64()),  # best over reports on the whole validation text
        ("final_train_bpc", pa.float64()),
        ("chars_trained", pa.int64()),
        ("iterations", pa.int32()),
        ("resumes", pa.int32()),  # times it went on from its checkpoint in a new process
        ("wall_s", pa.float64()),  # training wall time of the trial, over all resumes
        ("train_s", pa.float64()),  # of which in training steps
        ("eval_s", pa.float64()),  # of which validating
        ("checkpoint_s", pa.float64()),  # saving checkpoints (besides wall_s)
        ("chars_per_s", pa.float64()),  # mean training throughput
        ("status", pa.string()),  # one of STATUSES
        ("error", pa.string()),
        ("best_checkpoint", pa.string()),  # folder holding checkpoint.pt of the trial's best report
        ("node_id", pa.string()),  # Ray node of the trial's last report
        ("pid", pa.int64()),  # worker process of its last report (reused across trials)
    ]
)

CURVES_SCHEMA = pa.schema(
    [
        ("search", pa.string()),
        ("trial_id", pa.string()),
        ("iteration", pa.int32()),
        ("chars_seen", pa.int64()),
        ("train_bpc", pa.float64()),
        ("val_bpc", pa.float64()),
        (
            "val_chars",
            pa.int64(),
        ),  # validation characters scored: a prefix at rungs, all at the end
        ("chars_per_s", pa.float64()),
        ("elapsed_s", pa.float64()),  # trial wall time so far (training + evaluation)
        ("train_s", pa.float64()),  # of which inside training steps
        ("eval_s", pa.float64()),  # of which validating
        ("checkpoint_s", pa.float64()),  # saving checkpoints (besides elapsed_s)
        ("time", pa.float64()),  # when the report arrived (Unix seconds)
        ("lr", pa.float64()),
        ("threads", pa.int32()),  # CPU threads it trained with (more in the endgame, alone)
    ]
)


@dataclass(frozen=True)
class TrialRecord:
    """What a finished (or stopped) trial left, independent of Ray's result classes."""

    trial_id: str
    config: dict[str, Any]
    history: list[dict[str, Any]]  # every reported iteration, in order
    error: str | None
    best_checkpoint: str | None
    stopped_early: bool = False  # the scheduler stopped it before the end of its schedule


def resumed_history(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The reports on a trial's final line of training.

    A trial restored from a checkpoint older than its last report (Tune's saved state can lag
    its newest checkpoint by one) reports those points again; Tune's log keeps both, and the
    later report, from the run that went on, replaces the earlier ones. Tune numbers a trial's
    reports (`training_iteration`) and a restored trial goes on from its checkpoint's number,
    so a report replaces every earlier one numbered as high or higher. (A report point is a
    training second, so the repeat may have read a few more characters than the first time.)
    Reports without Tune's numbers are ordered by `chars_seen`.
    """
    key = "training_iteration" if all("training_iteration" in r for r in reports) else "chars_seen"
    line: list[dict[str, Any]] = []
    for report in reports:
        while line and line[-1][key] >= report[key]:
            line.pop()
        line.append(report)
    return line


def resumes(history: list[dict[str, Any]]) -> int:
    """How often a trial went on from its checkpoint in a new process of its trainable: after
    `--resume`, a lost node or a failure, a pause at a rung (`promote`) or for more CPUs (the
    endgame). Tune numbers a trial's reports since its last restore
    (`iterations_since_restore`); every report after the first that it numbers 1 began one."""
    return sum(1 for report in history[1:] if report.get("iterations_since_restore") == 1)


def trial_status(record: TrialRecord) -> str:
    """completed (its whole schedule), cut (by the search's deadline, after a last validation),
    plateaued (it ended itself, no longer improving), stopped (by the scheduler), diverged,
    failed, or unfinished (the search was interrupted)."""
    if record.error:
        return "failed"
    last = record.history[-1] if record.history else {}
    if last.get("diverged"):
        return "diverged"
    if last.get("end") in ("completed", "cut", "plateaued"):
        return last["end"]
    return "stopped" if record.stopped_early else "unfinished"


def as_finite(value: Any) -> float | None:
    """`value` as a float if it is a finite number, else None (a missing or NaN figure)."""
    return float(value) if isinstance(value, Real) and math.isfinite(value) else None


def finite(value: Any) -> bool:
    """Whether `value` is a finite number (not None, NaN or infinite)."""
    return as_finite(value) is not None


def report_bpc(report: dict[str, Any]) -> float | None:
    """A report's validation bpc; none for the report of a diverged trial (a stand-in value)."""
    return None if report.get("diverged") else as_finite(report.get("val_bpc"))


def _error(record: TrialRecord, status: str) -> str | None:
    if record.error:
        return record.error.strip().splitlines()[-1][:500]
    if status == "diverged":
        chars = record.history[-1]["chars_seen"]
        return f"training loss diverged (non-finite or far above chance) after {chars:,} chars"
    return None


def trial_row(
    record: TrialRecord, search: str, corpus: dict[str, Any], status: str
) -> dict[str, Any]:
    history = record.history
    last = history[-1] if history else {}
    whole = corpus["val_chars"]
    val = [v for h in history if (v := report_bpc(h)) is not None and h.get("val_chars") == whole]
    wall = float(last.get("elapsed_s", 0.0))
    chars = int(last.get("chars_seen", 0))
    row = {
        "search": search,
        "trial_id": record.trial_id,
        "corpus": corpus["name"],
        "corpus_sha256": corpus["sha256"],
        "corpus_verified": corpus.get("verified"),
        "corpus_chars": corpus["n_chars"],
        "val_chars": corpus["val_chars"],
        "vocab_size": corpus["vocab_size"],
        **{name: record.config.get(name) for name in HYPERPARAMETERS},
        "origin": record.config.get("origin"),
        "num_params": last.get("num_params"),
        "final_val_bpc": report_bpc(last),
        "final_val_chars": last.get("val_chars"),
        "best_val_bpc": min(val) if val else None,
        "final_train_bpc": as_finite(last.get("train_bpc")),
        "chars_trained": chars,
        "iterations": len(history),
        "resumes": resumes(history),
        "wall_s": wall,
        "train_s": last.get("train_s"),
        "eval_s": last.get("eval_s"),
        "checkpoint_s": last.get("checkpoint_s"),
        "chars_per_s": chars / last["train_s"] if last.get("train_s") else None,
        "status": status,
        "error": _error(record, status),
        "best_checkpoint": record.best_checkpoint,
        "node_id": last.get("node_id"),
        "pid": last.get("pid"),
    }
    return row


CURVE_METRICS = (
    "chars_seen", "train_bpc", "val_chars", "chars_per_s", "elapsed_s", "train_s", "eval_s",
    "checkpoint_s", "lr", "threads",
)  # fmt: skip


def curve_rows(record: TrialRecord, search: str) -> Iterable[dict[str, Any]]:
    for i, h in enumerate(record.history, start=1):
        yield {
            "search": search,
            "trial_id": record.trial_id,
            "iteration": i,
            **{name: h.get(name) for name in CURVE_METRICS},
            "val_bpc": report_bpc(h),
            "time": h.get("time"),
        }


def kept_trial(trials: pa.Table) -> dict[str, Any] | None:
    """The trial whose model a search keeps (`best/`): the best ranked that has a checkpoint of
    its best report on the whole validation text; None if no trial has one."""
    return next((r for r in ranked(trials)
                 if r.get("best_checkpoint") and r["best_val_bpc"] is not None), None)  # fmt: skip


def ranked(trials: pa.Table) -> list[dict[str, Any]]:
    """Trials best first: by best_val_bpc (on the whole validation text), then those stopped
    before a whole-text validation by their last value (on a prefix), then those with none."""

    def key(r: dict[str, Any]) -> tuple[int, float]:
        if r["best_val_bpc"] is not None:
            return 0, r["best_val_bpc"]
        if r["final_val_bpc"] is not None:
            return 1, r["final_val_bpc"]
        return 2, 0.0

    return sorted(trials.to_pylist(), key=key)
