"""A search's live state as plain data, and its text views; no Ray here.

    board = Board(started=clock, deadline=clock + 300, rungs=[11.0, 33.0, 99.0])
    board.start(trial_id, config); board.report(trial_id, result); board.end(trial_id, status)
    snap = board.snapshot(time.time())      # the content of status.json
    progress_line(snap, now)                # one compact line: budget, counts, best so far
    running_lines(snap)                     # one line per running trial

The driver's progress display (`search.engine.adapters.ProgressLines`) keeps a `Board` as Tune
reports and writes its snapshot to the search folder (`status.json`); `python -m search.status`
reads that file from another terminal. Both print with the functions below, so the two views agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from search.folder.space import FORMATS

RUNNING = "running"  # a trial's status until it ends (then one of search.folder.results.STATUSES)
SHORT = (("dropout", "do {:.2f}"), ("seq_len", "seq {}"), ("batch_size", "b {}"),
         ("lr", "lr {:.1e}"))  # fmt: skip


def short_config(config: dict[str, Any]) -> str:
    """A trial's hyperparameters in short: `lstm 2x128 do 0.10 seq 64 b 32 lr 3.0e-03`."""
    if not config:
        return "-"
    shape = "{}x{}".format(config.get("num_layers", "?"), config.get("hidden_size", "?"))
    rest = [fmt.format(config[k]) for k, fmt in SHORT if config.get(k) is not None]
    return " ".join([str(config.get("cell") or "lstm"), shape, *rest])


def rung_of(train_s: float, rungs: list[float]) -> int:
    """How many of the scheduler's rungs a trial with `train_s` seconds of training has passed."""
    return sum(train_s >= r for r in rungs)


@dataclass
class Board:
    """Every trial of this run of the search as Tune reports it; `snapshot()` is status.json."""

    started: float  # the budget's clock (clock.json), Unix seconds
    deadline: float
    rungs: list[float] = field(default_factory=list)  # training seconds (schedule.json)
    trials: dict[str, dict[str, Any]] = field(default_factory=dict)  # trial id -> its row

    def start(self, trial_id: str, config: dict[str, Any]) -> dict[str, Any]:
        row = self.trials.setdefault(trial_id, {
            "trial_id": trial_id, "config": {k: v for k, v in config.items() if k in FORMATS},
            "origin": config.get("origin"), "status": RUNNING, "train_s": 0.0,
            "last_val_bpc": None, "last_whole": False, "best_val_bpc": None, "curve": [],
        })  # fmt: skip
        row["status"] = RUNNING
        return row

    def earlier(self, row: dict[str, Any]) -> None:
        """A trial of an earlier run of the search, from its row of trials.parquet."""
        self.trials[row["trial_id"]] = {
            "trial_id": row["trial_id"], "config": {k: row.get(k) for k in FORMATS},
            "origin": row.get("origin"), "status": row["status"],
            "train_s": row.get("train_s") or 0.0, "last_val_bpc": row.get("final_val_bpc"),
            "last_whole": row.get("final_val_chars") == row.get("val_chars"),
            "best_val_bpc": row.get("best_val_bpc"), "curve": [],
        }  # fmt: skip

    def report(self, trial_id: str, config: dict[str, Any], result: dict[str, Any]) -> None:
        """A trial's report: its training seconds and validation value (a diverged trial's
        stand-in value is not one; a value on a prefix of the validation text is marked). A
        report the board has (the trial's last, given again when it ends) adds no point."""
        row = self.trials.get(trial_id) or self.start(trial_id, config)
        if row["curve"] and row["curve"][-1][3] == result.get("time", math.nan):
            return
        row["train_s"] = float(result.get("train_s") or 0.0)
        value = result.get("val_bpc")
        if result.get("diverged") or value is None or not math.isfinite(value):
            return
        whole = result.get("val_chars") == result.get("val_total")
        row["last_val_bpc"], row["last_whole"] = float(value), whole
        row["curve"].append([row["train_s"], float(value), whole, result.get("time")])
        if whole and (row["best_val_bpc"] is None or value < row["best_val_bpc"]):
            row["best_val_bpc"] = float(value)

    def end(self, trial_id: str, config: dict[str, Any], status: str) -> dict[str, Any]:
        row = self.trials.get(trial_id) or self.start(trial_id, config)
        row["status"] = status
        return row

    def snapshot(self, now: float, state: str = RUNNING) -> dict[str, Any]:
        rows = list(self.trials.values())
        return {
            "state": state,  # running | finished | interrupted
            "updated": now,
            "started": self.started,
            "deadline": self.deadline,
            "rungs": list(self.rungs),
            "counts": counts(rows),
            "best": best_of(rows),
            "trials": rows,
        }


def counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    found: dict[str, int] = {}
    for row in rows:
        found[row["status"]] = found.get(row["status"], 0) + 1
    return found


def best_of(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The best trial so far on the whole validation text: id, value, configuration."""
    valued = [r for r in rows if r.get("best_val_bpc") is not None]
    if not valued:
        return None
    best = min(valued, key=lambda r: r["best_val_bpc"])
    return {"trial_id": best["trial_id"], "val_bpc": best["best_val_bpc"],
            "config": best["config"]}  # fmt: skip


def budget_text(snap: dict[str, Any], now: float, width: int = 20) -> str:
    """`[#####...............] 75/300 s, 225 s left`: the budget as a plain-text bar."""
    budget = max(1e-9, snap["deadline"] - snap["started"])
    used = min(budget, max(0.0, now - snap["started"]))
    filled = round(width * used / budget)
    bar = "#" * filled + "." * (width - filled)
    return f"[{bar}] {used:.0f}/{budget:.0f} s, {budget - used:.0f} s left"


def best_text(best: dict[str, Any] | None) -> str:
    if best is None:
        return "best so far: none yet"
    return (
        f"best so far {best['val_bpc']:.4f} (trial {best['trial_id']}: "
        f"{short_config(best['config'])})"
    )


def counts_text(found: dict[str, int]) -> str:
    return ", ".join(f"{n} {s}" for s, n in sorted(found.items(), key=lambda kv: -kv[1])) or (
        "no trial yet"
    )


def progress_line(snap: dict[str, Any], now: float) -> str:
    """One compact line for logs: the budget, trials by status, the best so far."""
    return f"{budget_text(snap, now)} | {counts_text(snap['counts'])} | {best_text(snap['best'])}"


def trial_text(row: dict[str, Any], rungs: list[float]) -> str:
    """A running trial: `trial ab12 lstm 1x32 ... rung 1/3, 12 s trained, val 2.9104`."""
    value = row.get("last_val_bpc")
    shown = (
        "no value yet"
        if value is None
        else f"val {value:.4f}" + ("" if row.get("last_whole") else "*")
    )
    return (
        f"trial {row['trial_id']} {short_config(row['config'])}: rung "
        f"{rung_of(row['train_s'], rungs)}/{len(rungs)}, {row['train_s']:.0f} s trained, {shown}"
    )


def running_lines(snap: dict[str, Any]) -> list[str]:
    rows = [r for r in snap["trials"] if r["status"] == RUNNING]
    return [trial_text(r, snap["rungs"]) for r in rows]
