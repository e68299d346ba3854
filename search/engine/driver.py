"""What the driver process holds of the search it is running: its clock and its early stops.

    run = begin_run(folder, started, deadline)   # tuning, just before Tuner.fit
    this_run(folder).deadline                    # the searcher and the schedulers
    this_run(folder).stopped.add(trial_id)       # a scheduler that stops a trial early
    end_run(folder)                              # after fit

The searcher, the scheduler and the callbacks live in the driver, but they cannot hold this
run's clock as attributes: `Tuner.restore` brings them back as an earlier run pickled them
(tuner.pkl), and the searcher's saved state then overwrites its attributes, so they would hold
that run's deadline. Keyed by the search folder they find the run this process is running now,
in memory, without reading a file per call.

The early stops outlive a run in the searcher's state, which Tune saves with its own record of
the trials (`BudgetAwareOptunaSearch.save`): a resumed search knows what its earlier runs
stopped. The folder's `clock.json` is written for readers outside the process
(`python -m search.status`, the pictures); nothing in the driver reads it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class DriverRun:
    """One run of a search in this process: when its budget started and ends (`time.time()`
    values), and the trials its scheduler stopped early (this run's and earlier runs')."""

    started: float
    deadline: float
    stopped: set[str] = field(default_factory=set)

    def past(self, seconds: float) -> bool:
        """Whether this run is more than `seconds` into its budget (e.g. its last start)."""
        return time.time() > self.started + seconds


_RUNS: dict[Path, DriverRun] = {}


def _key(folder: str | Path) -> Path:
    return Path(folder).resolve()


def begin_run(
    folder: str | Path, started: float, deadline: float, stopped: Iterable[str] = ()
) -> DriverRun:
    """Start this process's run of the search in `folder` (replacing one it ran before)."""
    run = DriverRun(started, deadline, set(stopped))
    _RUNS[_key(folder)] = run
    return run


def this_run(folder: str | Path) -> DriverRun:
    """The run of the search in `folder` this process is running; RuntimeError if none."""
    try:
        return _RUNS[_key(folder)]
    except KeyError:
        raise RuntimeError(f"no search of {folder} is running in this process") from None


def end_run(folder: str | Path) -> None:
    _RUNS.pop(_key(folder), None)
