"""Weights & Biases logging of every trial, off the driver's critical path.

Ray's `WandbLoggerCallback` starts one logging actor (a process importing wandb) per trial:
on a small machine those start-ups compete with training for the same cores, and the driver
spends about a second per result on them. Here the driver only puts events on a queue; one
thread writes them to one W&B run per trial (wandb's `reinit="create_new"` keeps several runs
open in one process), grouped under the search's name. Offline runs land in
`NAME/wandb/offline-run-*`; `wandb sync` uploads them.

Each run is a row of a W&B sweep-style table: its config is the trial's configuration (origin
included), and when the trial ends its summary gets the trial's status and final figures, named
as in `trials.parquet` (`run_summary`), so W&B's runs table and parallel-coordinates view show
the search as its own tables do. A trial resumed by `--resume` goes on in its run online (offline,
W&B writes a second folder under the same run id: wandb/wandb#3841), and its summary counts
the reports it made before the resume too (read from its Tune folder).

The curves are drawn against characters trained (`chars_seen`, W&B's `define_metric`), and the
history's step numbers go on from the reports a resumed trial made before (Tune's log counts
them): a resumed trial's second offline folder does not number its rows from 0 again (W&B
ignores a row logged at a step below a run's current one), and a report replayed after a
restore from a checkpoint lands on the point it repeats, not after the trial's last one.
"""

from __future__ import annotations

import json
import math
import queue
import sys
import threading
from numbers import Real
from pathlib import Path
from typing import Any

from ray import tune
from ray.air.constants import EXPR_RESULT_FILE

from search.engine.compat import WANDB_QUIET_EXPERIMENTAL
from search.engine.driver import this_run
from search.engine.trainable import ORIGIN
from search.folder.results import (
    TrialRecord,
    as_finite,
    report_bpc,
    resumed_history,
    resumes,
    trial_status,
)

LOGGED = (  # numeric report fields logged to W&B
    "val_bpc", "val_chars", "train_bpc", "chars_seen", "chars_per_s", "train_s", "eval_s",
    "elapsed_s", "lr", "epoch",
)  # fmt: skip
KEPT = (  # report fields the summary is computed from, kept per trial by the writer; Tune's
    # report number tells a report replayed after a restore from its first (`resumed_history`),
    # its number since the last restore where the trial went on from a checkpoint (`resumes`)
    "val_bpc", "val_chars", "val_total", "train_bpc", "chars_seen", "train_s", "elapsed_s",
    "num_params", "diverged", "end", "training_iteration", "iterations_since_restore",
)  # fmt: skip
X_AXIS = "chars_seen"  # what the curves are drawn against
RANKED = "val_bpc"  # in the summary: the value the search ranks the trial by (`run_summary`)
STOP = object()
QUIET: Any = None  # wandb.Settings for every run, made in the writer thread


def run_summary(
    trial_id: str,
    config: dict[str, Any],
    reports: list[dict[str, Any]],
    *,
    error: str | None = None,
    stopped_early: bool = False,
) -> dict[str, Any]:
    """A finished trial's W&B summary: its status (`search.folder.results.STATUSES`, decided as the
    trials table decides it), origin, and final figures under their `trials.parquet` names.

    `val_bpc`, the metric of `sweep.yaml`, becomes the value the search ranks the trial by (its
    best on the whole validation text, else its last value, on a prefix), rather than W&B's
    default, its last report. Figures a trial does not have are left out, not set to null.
    """
    record = TrialRecord(
        trial_id=trial_id, config=config, history=reports, error=error, best_checkpoint=None,
        stopped_early=stopped_early,
    )  # fmt: skip
    last = reports[-1] if reports else {}
    whole = [v for r in reports if (v := report_bpc(r)) is not None and _whole(r)]
    summary = {
        "status": trial_status(record),
        ORIGIN: config.get(ORIGIN),
        "final_val_bpc": report_bpc(last),
        "final_val_chars": last.get("val_chars"),
        "best_val_bpc": min(whole) if whole else None,
        "final_train_bpc": as_finite(last.get("train_bpc")),
        "chars_trained": last.get("chars_seen"),
        "train_s": last.get("train_s"),
        "wall_s": last.get("elapsed_s"),
        "iterations": len(reports),
        "resumes": resumes(reports),
        "num_params": last.get("num_params"),
    }
    summary["val_bpc"] = summary["best_val_bpc"] if whole else summary["final_val_bpc"]
    return {k: v for k, v in summary.items() if v is not None}


def earlier_reports(trial_dir: str | None) -> list[dict[str, Any]]:
    """What a trial reported before this driver started it: a resumed trial's own log in its
    folder (Tune's `result.json`), each report cut to `KEPT`; none for a new trial."""
    path = Path(trial_dir) / EXPR_RESULT_FILE if trial_dir else None
    if path is None or not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:  # the last line of a killed driver may be cut short
            continue
        if isinstance(row, dict) and "chars_seen" in row:
            rows.append({k: row[k] for k in KEPT if k in row})
    return rows


def _whole(report: dict[str, Any]) -> bool:
    """Whether the report's value covers the whole validation text (not the first rung's prefix)."""
    return report.get("val_total") is not None and report.get("val_chars") == report["val_total"]


def axes(run: Any, earlier: int) -> int:
    """Draw `run`'s curves against characters trained; its first history step: after the
    `earlier` reports the trial made before this driver (one step each), and after what W&B
    already holds of an online run it resumed."""
    run.define_metric(X_AXIS)
    for name in LOGGED:
        if name != X_AXIS:  # val_bpc's summary is the search's ranking value, set by the writer
            run.define_metric(name, step_metric=X_AXIS, summary="none" if name == RANKED else None)
    return max(earlier, run.step)


class WandbSink(tune.Callback):
    """A Tune callback that logs each trial to its own W&B run from one background thread."""

    def __init__(
        self, *, project: str, group: str, mode: str, folder: str, timeout_s: float = 60.0
    ) -> None:
        self.args = {"project": project, "group": group, "mode": mode, "folder": folder,
                     "timeout_s": timeout_s}  # fmt: skip
        self.settings = {"project": project, "group": group, "mode": mode, "dir": folder}
        self.folder = folder  # the search folder: names the driver's record of early stops
        self.timeout_s = timeout_s  # how long the end of the search waits for the writer
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []  # what the writer could not log; never raised into Tune

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles callbacks (tuner.pkl): no thread
        return dict(self.args)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)

    def setup(self, **info: Any) -> None:
        self._thread = threading.Thread(target=self._write, name="wandb-sink", daemon=True)
        self._thread.start()

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        where = getattr(trial, "local_path", None)  # a resumed trial's folder has its reports
        self._queue.put(("start", trial.trial_id, (dict(trial.config), where)))

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        row = {k: float(result[k]) for k in LOGGED if isinstance(result.get(k), Real)}
        row = {k: v for k, v in row.items() if math.isfinite(v)}
        if result.get("diverged"):
            row.pop("val_bpc", None)  # a stand-in for the searcher, not a measurement
        kept = {k: result[k] for k in KEPT if k in result}
        self._queue.put(("log", trial.trial_id, (row, kept)))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        stopped = trial.trial_id in self._stopped()
        self._queue.put(("finish", trial.trial_id, (dict(trial.config), None, stopped)))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._queue.put(("finish", trial.trial_id, (dict(trial.config), "the trial raised", False)))

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.close()

    def _stopped(self) -> set[str]:
        """The trials the search's scheduler stopped early, read in the driver's thread while its
        run is on: the writer may still be finishing runs after it ended (`end_run`)."""
        try:
            return set(this_run(self.folder).stopped)
        except RuntimeError:  # no run of this search in the process (any more)
            return set()

    def close(self) -> None:
        """Finish every open run and wait (at most `timeout_s`) for the writer to end."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.put((STOP, None, self._stopped()))
            self._thread.join(self.timeout_s)
            if self._thread.is_alive():  # W&B marks the runs it leaves open as crashed
                print(f"W&B: runs still finishing after {self.timeout_s:g} s are left open",
                      file=sys.stderr)  # fmt: skip
        if self.errors:  # logging never ends a search, but it is not silent either
            print(f"W&B: {len(self.errors)} event(s) not logged; first: {self.errors[0]}",
                  file=sys.stderr)  # fmt: skip

    def _write(self) -> None:
        import wandb  # imported in the writer thread, off the driver's start-up

        # No console capture (these runs share the driver's terminal), no system-metrics
        # sampling, no git or package inventory: CPU the trials on this machine need.
        global QUIET
        QUIET = wandb.Settings(
            silent=True,
            console="off",
            disable_git=True,
            disable_job_creation=True,
            **WANDB_QUIET_EXPERIMENTAL,
        )

        runs: dict[str, Any] = {}
        configs: dict[str, dict[str, Any]] = {}
        reports: dict[str, list[dict[str, Any]]] = {}
        steps: dict[str, int] = {}  # each run's next history step

        def finish(trial_id: str, config: dict[str, Any], error: str | None, stopped: bool) -> None:
            run, history = runs.pop(trial_id), resumed_history(reports.pop(trial_id, []))
            started = configs.pop(trial_id, {})
            steps.pop(trial_id, None)
            try:
                # PBT changes a trial's lr and dropout as it goes: the run keeps the last ones.
                changed = {k: v for k, v in config.items() if started.get(k) != v}
                if changed:
                    run.config.update(changed, allow_val_change=True)
                run.summary.update(
                    run_summary(trial_id, config, history, error=error, stopped_early=stopped)
                )
            finally:  # also when the summary could not be written; W&B's state: failed
                run.finish(exit_code=1 if error else 0)

        while True:
            kind, trial_id, data = self._queue.get()
            try:
                if kind is STOP:  # the search ended or was interrupted: still open, unfinished
                    for open_id in list(runs):
                        try:
                            finish(open_id, configs[open_id], None, open_id in data)
                        except Exception as error:  # the other runs still finish
                            self.errors.append(f"finish {open_id}: {type(error).__name__}: {error}")
                    return
                if kind == "start" and trial_id not in runs:
                    config, where = data
                    runs[trial_id] = wandb.init(
                        **self.settings,
                        name=trial_id,
                        id=f"{self.settings['group']}-{trial_id}",
                        config=config,
                        reinit="create_new",
                        resume="allow",  # online, a resumed trial goes on in its run
                        settings=QUIET,
                    )
                    configs[trial_id], reports[trial_id] = config, earlier_reports(where)
                    steps[trial_id] = axes(runs[trial_id], len(reports[trial_id]))
                elif kind == "log" and trial_id in runs:
                    row, kept = data
                    runs[trial_id].log(row, step=steps[trial_id])
                    steps[trial_id] += 1
                    reports[trial_id].append(kept)
                    ranked = run_summary(trial_id, {}, resumed_history(reports[trial_id]))
                    if RANKED in ranked:  # the runs table ranks running trials as the search does
                        runs[trial_id].summary[RANKED] = ranked[RANKED]
                elif kind == "finish" and trial_id in runs:
                    finish(trial_id, *data)
            except Exception as error:  # logging must never end a search
                self.errors.append(f"{kind} {trial_id}: {type(error).__name__}: {error}")
