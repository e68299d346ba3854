"""How a search is doing, from its folder alone (no Ray): from another terminal or machine.

    python -m search.status runs/NAME             # its state (running, finished...), best, trials
    python -m search.status runs/NAME --watch     # the same, refreshed every few seconds
    python -m search.status runs/NAME --json      # the same as JSON, for scripts
    python -m search.status runs/NAME --plot      # draw trials.png and best-so-far.png now

A running search keeps `status.json` current (`search.reports.progress`); who runs it is in
`holder.json` (host, pid, since). A holder whose process is gone (a SIGKILLed driver, a lost
machine) means the search was interrupted, and the command to resume it is shown.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import socket
import time
from pathlib import Path
from typing import Any

from model.errors import ConfigError
from search.folder.results import ranked
from search.folder.store import BEST_CHECKPOINT, CLOCK, TRIALS, SearchFolder
from search.reports.progress import (
    RUNNING,
    best_text,
    budget_text,
    counts,
    counts_text,
    running_lines,
    short_config,
)

DASHBOARD_MODULE, DASHBOARD_EXTRA = "optuna_dashboard", "pip install -e '.[dashboard]'"
STARTING = "starting"  # the state of a search not yet past its start-up (`starting`)
STALE_S = 120.0  # a holder on another host is taken as gone when status.json is this old
WATCH_S = 5.0


def alive(holder: dict[str, Any] | None, updated: float | None, now: float) -> bool:
    """Whether the lock's holder still runs: its pid on this host, else a fresh status file."""
    if not holder:
        return False
    if holder.get("host") == socket.gethostname():
        try:
            os.kill(int(holder["pid"]), 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # another user's process: alive
            return True
        except (KeyError, TypeError, ValueError):
            return False
        return True
    return updated is not None and now - updated < STALE_S


def dashboard(folder: SearchFolder) -> dict[str, Any] | None:
    """How to open the search's Optuna study in optuna-dashboard, and whether it is installed
    (it comes with the `dashboard` extra); None before the study has a journal."""
    if not folder.study_file.is_file():
        return None
    installed = importlib.util.find_spec(DASHBOARD_MODULE) is not None
    return {"command": shlex.join(["optuna-dashboard", str(folder.study_file)]),
            "installed": installed, "install": None if installed else DASHBOARD_EXTRA}  # fmt: skip


def resume_command(folder: SearchFolder) -> str:
    """The exact command that resumes this search."""
    from search.folder.config import load_search_config, search_argv

    config = load_search_config(folder.path)
    argv = ["python", "-m", "search.run", *search_argv(config), "--storage",
            str(folder.path.parent), "--name", folder.path.name, "--resume"]  # fmt: skip
    return shlex.join(argv)


def read_status(path: str | Path, now: float | None = None) -> dict[str, Any]:
    """Everything `search.status` shows, as plain data; ConfigError (one line) when `path`
    is missing, holds no search, or its files are corrupt."""
    now = time.time() if now is None else now
    folder = SearchFolder(path)
    if not folder.path.is_dir():
        raise ConfigError(f"no folder {folder.path}")
    if not folder.exists():
        holder = folder.holder()
        if alive(holder, None, now):  # its driver measures speeds before it writes its settings
            return starting(folder, holder)
        raise ConfigError(f"{folder.path} holds no search (no search.json)")
    folder.read_settings()  # corrupt settings: one line
    try:
        clock = folder.clock()
    except FileNotFoundError:
        clock = None  # started, but killed before its budget's clock started
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot read {folder.state_file(CLOCK)}: {error}") from None
    snap = folder.status()
    holder = folder.holder()
    running = alive(holder, (snap or {}).get("updated"), now)
    table = folder.trials() if folder.has_trials() else None  # corrupt: one line
    if table is not None and not running and earlier_tables(folder, snap, clock):
        table = None  # its status.json knows the trials of every run, the tables only earlier
    if running:
        state = "running"
    elif snap is not None and snap.get("state") in ("finished", "interrupted"):
        state = snap["state"]
    elif snap is None and table is not None and holder is None:
        state = "finished"  # a search from before status.json
    else:
        state = "interrupted"  # its driver is gone without saying how it ended
    if table is not None and not running:
        trials = [_table_row(r) for r in ranked(table)]
    else:
        trials = _ranked_rows((snap or {}).get("trials", []))
        if not running:  # the driver is gone: what ran did not finish
            trials = [{**t, "status": "unfinished"} if t["status"] == RUNNING else t
                      for t in trials]  # fmt: skip
    best = next((t for t in trials if t["best_val_bpc"] is not None), None)
    kept = folder.best / BEST_CHECKPOINT
    started, deadline = (clock["started"], clock["deadline"]) if clock else (None, None)
    updated = (snap or {}).get("updated")
    ended = now if running or updated is None else updated  # when it was last heard of
    return {
        "search": folder.path.name,
        "path": str(folder.path),
        "state": state,
        "holder": holder if running else None,
        "last_holder": holder if holder and not running else None,
        "started": started,
        "deadline": deadline,
        "used_s": None if started is None else max(0.0, min(ended, deadline) - started),
        "left_s": None if deadline is None or not running else max(0.0, deadline - now),
        "counts": counts(trials),
        "best": None if best is None else {
            "trial_id": best["trial_id"], "val_bpc": best["best_val_bpc"],
            "config": best["config"]},
        "best_model": str(kept) if kept.is_file() and not running else None,
        "rungs": folder.rungs(),
        "trials": trials,
        "resume": resume_command(folder) if state == "interrupted" else None,
        "dashboard": dashboard(folder),
        "updated": updated,
    }  # fmt: skip


def earlier_tables(
    folder: SearchFolder, snap: dict[str, Any] | None, clock: dict[str, float] | None
) -> bool:
    """Whether the result tables are an earlier run's, where this run's driver never said how
    it ended (status.json still says running): a resumed search killed before its own tables,
    which were written before this run's budget started."""
    if snap is None or snap.get("state") != "running" or clock is None:
        return False
    return (folder.path / TRIALS).stat().st_mtime < clock["started"]


def starting(folder: SearchFolder, holder: dict[str, Any]) -> dict[str, Any]:
    """A search whose driver holds the folder but has not written its settings yet: it is
    measuring the warm starts' speeds, before its budget starts."""
    return {
        "search": folder.path.name, "path": str(folder.path), "state": STARTING,
        "holder": holder, "last_holder": None, "started": None, "deadline": None,
        "used_s": None, "left_s": None, "counts": {}, "best": None, "best_model": None,
        "rungs": [], "trials": [], "resume": None, "dashboard": None, "updated": None,
    }  # fmt: skip


def _table_row(row: dict[str, Any]) -> dict[str, Any]:
    from search.folder.space import HYPERPARAMETERS

    return {
        "trial_id": row["trial_id"],
        "status": row["status"],
        "config": {k: row[k] for k in HYPERPARAMETERS},
        "train_s": row["train_s"] or 0.0,
        "last_val_bpc": row["final_val_bpc"],
        "last_whole": row["final_val_chars"] == row["val_chars"],
        "best_val_bpc": row["best_val_bpc"],
    }


def _ranked_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    try:
        rows = [{k: v for k, v in r.items() if k != "curve"} for r in rows]

        def key(r: dict[str, Any]) -> tuple[int, float]:
            if r["best_val_bpc"] is not None:
                return 0, r["best_val_bpc"]
            return (1, r["last_val_bpc"]) if r["last_val_bpc"] is not None else (2, 0.0)

        return sorted(rows, key=key)
    except (KeyError, TypeError, AttributeError):
        raise ConfigError("cannot read status.json: a trial row is malformed") from None


def format_status(info: dict[str, Any], now: float | None = None) -> str:
    now = time.time() if now is None else now
    lines = [f"search {info['search']} ({info['path']}): {info['state']}"]
    if info["holder"]:
        h = info["holder"]
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(h.get("since", 0)))
        lines.append(f"run by pid {h.get('pid')} on {h.get('host')} since {since}")
    if info["started"] is not None:
        snap = {"started": info["started"], "deadline": info["deadline"]}
        if info["state"] == "running":
            lines.append(f"budget {budget_text(snap, now)}")
        else:
            lines.append(f"budget: {info['used_s']:.0f} s used of "
                         f"{info['deadline'] - info['started']:.0f} s")  # fmt: skip
    if info["state"] == STARTING:
        lines.append("measuring the warm starts' speeds; the budget starts after")
    lines.append(f"trials: {counts_text(info['counts'])}")
    lines.append(best_text(info["best"]))
    if info["state"] == "running":
        lines += ["  " + line for line in running_lines(
            {"trials": info["trials"], "rungs": info["rungs"]})]  # fmt: skip
    if info["trials"]:
        lines.append("")
        lines.append(f"{'rank':>4}  {'trial':<12} {'status':<10} {'val_bpc':>8} {'train_s':>8}  "
                     "configuration")  # fmt: skip
        for i, t in enumerate(info["trials"][:20], start=1):
            value = t["best_val_bpc"] if t["best_val_bpc"] is not None else t["last_val_bpc"]
            shown = "-" if value is None else f"{value:.4f}" + (
                "" if t["best_val_bpc"] is not None else "*")  # fmt: skip
            lines.append(f"{i:>4}  {t['trial_id']:<12} {t['status']:<10} {shown:>8} "
                         f"{t['train_s']:>8.1f}  {short_config(t['config'])}")  # fmt: skip
        if len(info["trials"]) > 20:
            lines.append(f"... and {len(info['trials']) - 20} more")
    if info["best_model"]:
        lines.append(f"\nbest model: {info['best_model']}")
    if info["dashboard"]:
        board = info["dashboard"]
        missing = "" if board["installed"] else f"  (not installed: {board['install']})"
        lines.append(f"Optuna dashboard: {board['command']}{missing}")
    if info["state"] == "interrupted":
        lines.append(f"\ninterrupted; resume with:\n  {info['resume']}")
    return "\n".join(lines)
