"""The search folder, `STORAGE/NAME/`: the one place that reads and writes its files.

    folder = SearchFolder(config.path)
    folder.write_settings(config); folder.read_settings()      # state/search.json
    folder.write_tables(trial_rows, curve_rows); folder.trials()   # trials/curves.parquet

| file | written by | what |
| --- | --- | --- |
| `state/search.json` | the start of a search | its settings; `--resume` reads them |
| `state/schedule.json` | each run of it | the schedule derived from the budget (rungs, ...) |
| `state/speeds.json` | the start of a search | the training speed of each configuration the
  warm-start rule reads, measured on this machine (`search.engine.warm`); `--resume` reuses it |
| `state/clock.json` | each run of it | when the run started and its deadline (for readers outside
  the driver, which keeps its clock in memory: `search.engine.driver`) |
| `state/scheduler.json` | ASHA and Hyperband, as trials report | the values written down at
  the rungs and each trial's best, which Tune does not save: `--resume` reads them back |
| `optuna.journal` | the sampler | the Optuna study, in Optuna's journal storage |
| `trials.parquet`, `curves.parquet` | the end of each run | the result tables |
| `best/` | the end of each run | the best checkpoint, its row and a sample; with a test split,
  the bits it paid for each test character (`test_bits.parquet`: static and dynamic) |
| `sweep.yaml` | the start | the space as a W&B sweep |
| `lost/` | `--resume` after a SIGKILL | the folders of trials that started after Tune last saved
  its state: the resumed search does not know them (`set_aside`) |
| `.lock`, `state/holder.json` | each run | held for the whole run: one search process per
  folder; who holds it (host, pid, since), removed when the run ends |
| `state/status.json` | the driver, as trials report | every trial so far and the best
  (`search.reports.progress`): what `python -m search.status` reads while the search runs |
| `trials.png`, `best-so-far.png` | the end of each run | the search's pictures
  (`search.reports.plots`) |

Every write is atomic (`corpora.files`). Tune keeps its own files here too (`tuner.pkl`,
`experiment_state-*.json`, one folder per trial). The search's JSON files sit in `state/`
because Tune, once it restores a search, copies every .json and .pkl file at the folder's top
into its staging folder and back over the originals each time it saves (truncate, then write;
ray 2.60, `ray/tune/execution/experiment_state.py`, `sync_down_experiment_state`): a reader there
could catch a copy half done. Folders of an earlier version kept them at the top; they are
read there, and moved into `state/` when the search runs again (`migrate`).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml
from filelock import FileLock, Timeout

from corpora.files import atomic_path, atomic_write, read_parquet, write_parquet
from model.errors import ConfigError
from search.folder.schedule import Schedule
from search.folder.space import with_absent_columns

STATE = "state"  # the search's own JSON files (see the module docstring)
SETTINGS, SCHEDULE, CLOCK, SPEEDS = "search.json", "schedule.json", "clock.json", "speeds.json"
STUDY, SWEEP, LOCK, LEGACY_STOPPED = "optuna.journal", "sweep.yaml", ".lock", "stopped.txt"
TRIALS, CURVES, BEST, LOST = "trials.parquet", "curves.parquet", "best", "lost"
TRIAL_FOLDERS = "train_trial_*"  # Tune's folder of each trial of the trainable `train_trial`
HOLDER, STATUS, SCHEDULER = "holder.json", "status.json", "scheduler.json"
BEST_CHECKPOINT, BEST_ROW, BEST_SAMPLE = "best.pt", "trial.json", "sample.txt"
TEST_BITS = "test_bits.parquet"
STUDY_TABLE = "study.parquet"  # a study's (`search.study`) verdicts, by arm
TEST_BITS_SCHEMA = pa.schema([("static", pa.float32()), ("dynamic", pa.float32())])
STATE_FILES = (SETTINGS, SCHEDULE, CLOCK, STATUS, HOLDER, SCHEDULER)


def read_json(file: Path) -> Any:
    return json.loads(file.read_text(encoding="utf-8"))


class SearchFolder:
    """Reads and writes the files of one search folder (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"SearchFolder({str(self.path)!r})"

    def exists(self) -> bool:
        """Whether a search was started here (its settings were written)."""
        return self.state_file(SETTINGS).is_file()

    def state_file(self, name: str) -> Path:
        """Where one of the search's JSON files is: `state/NAME`, or at the folder's top in a
        folder an earlier version made (until `migrate` moves it)."""
        new, old = self.path / STATE / name, self.path / name
        return old if not new.exists() and old.exists() else new

    def migrate(self) -> None:
        """Move the JSON files an earlier version kept at the folder's top into `state/` (one
        already there is the current one: the old is dropped)."""
        for name in STATE_FILES:
            old, new = self.path / name, self.path / STATE / name
            if old.is_file() and new.exists():
                old.unlink()
            elif old.is_file():
                new.parent.mkdir(parents=True, exist_ok=True)
                os.replace(old, new)

    def _write_state(self, name: str, text: str) -> None:
        (self.path / STATE).mkdir(parents=True, exist_ok=True)
        atomic_write(self.path / STATE / name, text)

    # -- settings, schedule, clock ---------------------------------------------------------------

    def write_settings(self, settings: Any) -> None:
        """A SearchConfig (any dataclass) as state/search.json."""
        self._write_state(SETTINGS, json.dumps(asdict(settings), indent=2) + "\n")

    def read_settings(self) -> dict[str, Any]:
        """state/search.json as a mapping; ConfigError naming the file if it cannot be read."""
        file = self.state_file(SETTINGS)
        try:
            data = read_json(file)
        except (OSError, ValueError) as error:
            what = type(error).__name__
            raise ConfigError(f"cannot read search settings {file}: {what}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"cannot read search settings {file}: not a mapping")
        return data

    def write_schedule(self, schedule: Any) -> None:
        data = {**asdict(schedule), "rungs_s": list(schedule.rungs_s)}
        self._write_state(SCHEDULE, json.dumps(data, indent=2) + "\n")

    def schedule(self) -> Schedule | None:
        """state/schedule.json as the Schedule it was written from; None if unreadable."""
        try:
            data = read_json(self.state_file(SCHEDULE))
            return Schedule(**{f.name: data[f.name] for f in fields(Schedule)})
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def rungs(self) -> list[float]:
        """The scheduler's rungs in training seconds (not the last, a trial's end); [] if none."""
        try:
            rungs = read_json(self.state_file(SCHEDULE))["rungs_s"]
            return [float(r) for r in rungs[:-1]]
        except (OSError, ValueError, KeyError, TypeError):
            return []

    def write_speeds(self, speeds: dict[str, float]) -> None:
        """Training characters a second by configuration (`search.engine.warm.speed_key`)."""
        self._write_state(SPEEDS, json.dumps(speeds, indent=2) + "\n")

    def speeds(self) -> dict[str, float] | None:
        """The speeds measured when the search started; None if none were."""
        try:
            return {str(k): float(v) for k, v in read_json(self.state_file(SPEEDS)).items()}
        except (OSError, ValueError, AttributeError, TypeError):
            return None

    def write_scheduler(self, records: dict[str, Any]) -> None:
        """What the scheduler has written down (its rungs' values, the trials' best), which
        Tune does not save with its state: a resumed search reads it back."""
        self._write_state(SCHEDULER, json.dumps(records) + "\n")

    def scheduler(self) -> dict[str, Any] | None:
        """What `write_scheduler` wrote; None if nothing (or nothing readable) was."""
        return self._mapping_or_none(SCHEDULER)

    def write_clock(self, started: float, deadline: float) -> None:
        """When this run of the search started and must end (`time.time()` values), for
        `python -m search.status` and the pictures (the driver keeps its own in memory), and
        the folder it ran in (a resume elsewhere cannot go on: `search.engine.tuning`)."""
        clock = {"started": started, "deadline": deadline, "folder": str(self.path.resolve())}
        self._write_state(CLOCK, json.dumps(clock))

    def clock(self) -> dict[str, Any]:
        return read_json(self.state_file(CLOCK))

    # -- the live status (search.reports.progress) ------------------------------------------

    def write_status(self, snapshot: dict[str, Any]) -> None:
        self._write_state(STATUS, json.dumps(snapshot, default=str) + "\n")

    def status(self) -> dict[str, Any] | None:
        """state/status.json, None if this search has none; ConfigError naming it if corrupt."""
        file = self.state_file(STATUS)
        if not file.is_file():
            return None
        try:
            data = read_json(file)
        except (OSError, ValueError) as error:
            raise ConfigError(f"cannot read {file}: {type(error).__name__}") from None
        if not isinstance(data, dict) or not isinstance(data.get("trials"), list):
            raise ConfigError(f"cannot read {file}: not a search status")
        return data

    def holder(self) -> dict[str, Any] | None:
        """Who holds the lock (host, pid, since), as it wrote down; None when nobody said."""
        return self._mapping_or_none(HOLDER)

    def _mapping_or_none(self, name: str) -> dict[str, Any] | None:
        """state/NAME as a mapping; None if missing, unreadable or not a mapping."""
        try:
            data = read_json(self.state_file(name))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def legacy_stops(self) -> set[str]:
        """The early stops an earlier version of the search wrote to `stopped.txt` (one id
        per line); a resumed search of such a folder starts from them. Empty for newer ones,
        whose stops are saved with the searcher's state."""
        file = self.path / LEGACY_STOPPED
        return set(file.read_text().split()) if file.is_file() else set()

    # -- tables ------------------------------------------------------------------------------------

    def write_tables(
        self,
        trials: list[dict[str, Any]],
        curves: list[dict[str, Any]],
        trials_schema: pa.Schema,
        curves_schema: pa.Schema,
    ) -> pa.Table:
        """trials.parquet and curves.parquet; returns the trials table as written."""
        table = pa.Table.from_pylist(trials, schema=trials_schema)
        write_parquet(table, self.path / TRIALS)
        write_parquet(pa.Table.from_pylist(curves, schema=curves_schema), self.path / CURVES)
        return table

    def has_trials(self) -> bool:
        """Whether a run of this search has written its trials table."""
        return (self.path / TRIALS).is_file()

    def trials(self) -> pa.Table:
        """The trials table; one from before a hyperparameter existed gets its column, off."""
        return with_absent_columns(read_parquet(self.path / TRIALS))

    def curves(self) -> pa.Table:
        return read_parquet(self.path / CURVES)

    def set_aside(self, keep: set[str]) -> list[Path]:
        """Move each trial folder whose name is not in `keep` into lost/; returns where they
        went. For a resume: Tune's saved state does not know them, so no table would."""
        moved = []
        for trial in sorted(self.path.glob(TRIAL_FOLDERS)):
            if trial.is_dir() and trial.name not in keep:
                (self.path / LOST).mkdir(exist_ok=True)
                moved.append(trial.rename(self.path / LOST / trial.name))
        return moved

    # -- the best model --------------------------------------------------------------------------

    @property
    def best(self) -> Path:
        return self.path / BEST

    def keep_best(self, checkpoint: Path, row: dict[str, Any]) -> Path:
        """Copy the best trial's checkpoint file and row into best/; returns the folder. The
        previous best's test bits and sample go first: best/ never pairs them with this one."""
        self.best.mkdir(exist_ok=True)
        for stale in (TEST_BITS, BEST_SAMPLE):  # its caller writes them again for this model
            (self.best / stale).unlink(missing_ok=True)
        with atomic_path(self.best / BEST_CHECKPOINT) as tmp:
            shutil.copyfile(checkpoint, tmp)
        self.write_best_row(row)
        return self.best

    def write_best_row(self, row: dict[str, Any]) -> None:
        atomic_write(self.best / BEST_ROW, json.dumps(row, indent=2, default=str) + "\n")

    def write_sample(self, text: str) -> None:
        atomic_write(self.best / BEST_SAMPLE, text + "\n")

    def write_test_bits(self, static: Any, dynamic: Any) -> None:
        """The best model's bits for each test character, in text order (static, dynamic)."""
        columns = {"static": static, "dynamic": dynamic}
        write_parquet(pa.table(columns, schema=TEST_BITS_SCHEMA), self.best / TEST_BITS)

    def test_bits(self) -> pa.Table | None:
        """best/test_bits.parquet, or None where the search scored no test split."""
        file = self.best / TEST_BITS
        return read_parquet(file) if file.exists() else None

    # -- the rest --------------------------------------------------------------------------------

    def write_sweep(self, sweep: dict[str, Any]) -> None:
        atomic_write(self.path / SWEEP, yaml.safe_dump(sweep, sort_keys=False))

    @property
    def study_file(self) -> Path:
        return self.path / STUDY

    def lock(self, timeout_s: float = 0.0, kind: str = "search") -> FileLock:
        """An exclusive lock on the folder, to hold for a whole run: a second search process on
        the same folder gets a one-line error instead of a share of it. `kind`: what holds it
        (a search, or a study of `search.study`), for readers of holder.json."""
        self.path.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.path / LOCK, timeout=timeout_s)
        try:
            lock.acquire()
        except Timeout:
            raise ConfigError(
                f"search {self.path.name!r} is in use by another process ({self.path / LOCK})"
            ) from None
        # Beside the lock, not in it: an atomic write replaces the file, and the lock is on it.
        now = time.time()
        holder = {"host": socket.gethostname(), "pid": os.getpid(), "since": now, "kind": kind}
        self.beat(holder, now)
        return lock

    def beat(self, holder: dict[str, Any], now: float) -> None:
        """Write who holds the lock, with `beat`: when it was last known alive. The driver
        renews it while it holds the lock (`search.engine.tuning.heartbeat`), so that a reader
        on another host, who cannot ask for its process, can tell a live search from a dead
        one (`search.reports.status.alive`)."""
        self._write_state(HOLDER, json.dumps({**holder, "beat": now}) + "\n")

    def release(self, lock: FileLock) -> None:
        """Release a lock from `lock()` and say nobody holds it."""
        self.state_file(HOLDER).unlink(missing_ok=True)
        lock.release()
