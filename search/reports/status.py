"""How a search is doing, from its folder alone (no Ray): from another terminal or machine.

    python -m search.status runs/NAME             # its state (running, finished...), best, trials
    python -m search.status runs/NAME --watch     # the same, refreshed every few seconds
    python -m search.status runs/NAME --json      # the same as JSON, for scripts
    python -m search.status runs/NAME --plot      # draw trials.png and best-so-far.png now

A running search keeps `status.json` current (`search.reports.progress`); who runs it is in
`holder.json` (host, pid, since, and `beat`, renewed every 30 s while the driver holds the
folder). A holder not heard of for two minutes, or whose process on this host is gone (a
SIGKILLed driver, a lost machine), means the search was interrupted, and the command to resume
it is shown.
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
from search.folder.store import BEST_CHECKPOINT, CLOCK, STUDY_TABLE, TRIALS, SearchFolder
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
STALE_S = 120.0  # a holder not heard of for this long is gone (it beats every 30 s)
WATCH_S = 5.0


def last_heard(holder: dict[str, Any] | None, updated: float | None) -> float | None:
    """When the search's driver was last known alive: the holder's heartbeat (`beat`, renewed
    from taking the lock to giving it back), when it took the lock, or status.json's time."""
    times = [updated, *((holder or {}).get(key) for key in ("beat", "since"))]
    known = [t for t in times if isinstance(t, int | float) and not isinstance(t, bool)]
    return max(known, default=None)


def alive(holder: dict[str, Any] | None, updated: float | None, now: float) -> bool:
    """Whether the lock's holder still runs: it was heard of in the last `STALE_S` seconds
    and, on this host, its pid is a live process.

    The pid alone is not enough: after a reboot, or in another container, the pid may be
    another process's; the time alone is all a reader on another host has."""
    if not holder:
        return False
    heard = last_heard(holder, updated)
    if heard is None or now - heard >= STALE_S:
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


def dashboard(folder: SearchFolder) -> dict[str, Any] | None:
    """How to open the search's Optuna study in optuna-dashboard, and whether it is installed
    (it comes with the `dashboard` extra); None before the study has a journal."""
    if not folder.study_file.is_file():
        return None
    installed = importlib.util.find_spec(DASHBOARD_MODULE) is not None
    return {"command": shlex.join(["optuna-dashboard", str(folder.study_file)]),
            "installed": installed, "install": None if installed else DASHBOARD_EXTRA}  # fmt: skip


def resume_command(folder: SearchFolder) -> str:
    """The exact command that resumes this search; ConfigError if this version cannot."""
    from search.folder.config import load_search_config, search_argv

    config = load_search_config(folder.path)
    argv = ["python", "-m", "search.run", *search_argv(config), "--storage",
            str(folder.path.parent), "--name", folder.path.name, "--resume"]  # fmt: skip
    return shlex.join(argv)


def read_status(path: str | Path, now: float | None = None) -> dict[str, Any]:
    """Everything `search.status` shows, as plain data; ConfigError (one line) when `path`
    is missing, holds no search, or its files are corrupt."""
    now = time.time() if now is None else now
    folder = SearchFolder(Path(path).resolve())  # "." has a name: the resume command needs it
    if not folder.path.is_dir():
        raise ConfigError(f"no folder {folder.path}")
    if not folder.exists():
        holder = folder.holder()
        if (holder or {}).get("kind") == "study" or (folder.path / STUDY_TABLE).is_file():
            raise ConfigError(
                f"{folder.path} is a study's (python -m search.study), not a search's: its "
                "report is study.md in it, when the study ends"
            )
        if alive(holder, None, now):  # its driver measures speeds before it writes its settings
            return starting(folder, holder)
        raise ConfigError(f"{folder.path} holds no search (no search.json)")
    folder.read_settings()  # corrupt settings: one line
    clock = read_clock(folder)
    snap = folder.status()
    holder = folder.holder()
    updated = (snap or {}).get("updated")
    running = alive(holder, updated, now)
    since = holder.get("since") if running else None
    if running and (clock is None or (isinstance(since, int | float) and since > clock["started"])):
        return starting(folder, holder)  # started again, before this run's budget: a resume
    table = folder.trials() if folder.has_trials() else None  # corrupt: one line
    if table is not None and not running and earlier_tables(folder, snap, clock):
        table = None  # its status.json knows the trials of every run, the tables only earlier
    if running:
        state = "running"
    elif holder is not None:
        state = "interrupted"  # a driver removes holder.json as it ends: this one was killed
    elif snap is not None and snap.get("state") in ("finished", "interrupted"):
        state = snap["state"]
    elif snap is None and table is not None:
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
    ended = now if running else last_heard(holder, updated)  # None: not known
    used = None if started is None or ended is None else max(0.0, min(ended, deadline) - started)
    resume, why_not = None, None
    if state == "interrupted":
        try:
            resume = resume_command(folder)
        except ConfigError as error:  # settings of a version that this one cannot read
            why_not = str(error)
    return {
        "search": folder.path.name,
        "path": str(folder.path),
        "state": state,
        "holder": holder if running else None,
        "last_holder": holder if holder and not running else None,
        "started": started,
        "deadline": deadline,
        "used_s": used,
        "left_s": None if deadline is None or not running else max(0.0, deadline - now),
        "counts": counts(trials),
        "best": None if best is None else {
            "trial_id": best["trial_id"], "val_bpc": best["best_val_bpc"],
            "config": best["config"]},
        "best_model": str(kept) if kept.is_file() and not running else None,
        "rungs": folder.rungs(),
        "trials": trials,
        "resume": resume,
        "resume_error": why_not,
        "dashboard": dashboard(folder),
        "updated": updated,
    }  # fmt: skip


def read_clock(folder: SearchFolder) -> dict[str, float] | None:
    """The budget's clock (`started`, `deadline`); None before a run started it, ConfigError
    (one line) when the file is not one."""
    file = folder.state_file(CLOCK)
    try:
        clock = folder.clock()
    except FileNotFoundError:
        return None  # started, but stopped before its budget's clock started
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot read {file}: {error}") from None
    if not (isinstance(clock, dict) and all(
            isinstance(clock.get(k), int | float) for k in ("started", "deadline"))):  # fmt: skip
        raise ConfigError(f"cannot read {file}: not a clock (started, deadline)")
    return clock


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
    """A search whose driver holds the folder but has not started its budget's clock yet: it
    measures the warm starts' speeds, starts Ray or restores its trials."""
    return {
        "search": folder.path.name, "path": str(folder.path), "state": STARTING,
        "holder": holder, "last_holder": None, "started": None, "deadline": None,
        "used_s": None, "left_s": None, "counts": {}, "best": None, "best_model": None,
        "rungs": [], "trials": [], "resume": None, "resume_error": None, "dashboard": None,
        "updated": None,
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


ROW_KEYS = ("trial_id", "status", "config", "train_s", "best_val_bpc", "last_val_bpc")


def _ranked_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    try:
        rows = [{k: v for k, v in r.items() if k != "curve"} for r in rows]
        if any(k not in r for r in rows for k in ROW_KEYS):
            raise KeyError("a trial row lacks a field")

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
        since = h.get("since")
        if isinstance(since, int | float):
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since))
        lines.append(f"run by pid {h.get('pid')} on {h.get('host')} since {since}")
    if info["started"] is not None:
        snap = {"started": info["started"], "deadline": info["deadline"]}
        whole = info["deadline"] - info["started"]
        if info["state"] == "running":
            lines.append(f"budget {budget_text(snap, now)}")
        elif info["used_s"] is None:
            lines.append(f"budget: {whole:.0f} s; how much of it was used is not known")
        else:
            lines.append(f"budget: {info['used_s']:.0f} s used of {whole:.0f} s")
    if info["state"] == STARTING:
        lines.append("starting (measuring the warm starts' speeds, starting Ray, restoring "
                     "trials); the budget starts after")  # fmt: skip
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
    if info["state"] == "interrupted" and info["resume"]:
        lines.append(f"\ninterrupted; resume with:\n  {info['resume']}")
    elif info["state"] == "interrupted":
        lines.append(f"\ninterrupted; this version cannot resume it: {info['resume_error']}")
    return "\n".join(lines)
