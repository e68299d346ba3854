"""Weights & Biases logging of every trial, off the driver's critical path.

Ray's `WandbLoggerCallback` starts one logging actor (a process importing wandb) per trial:
on a small machine those start-ups compete with training for the same cores, and the driver
spends about a second per result on them. Here the driver only puts events on a queue; one
thread writes them to one W&B run per trial (wandb's `reinit="create_new"` keeps several runs
open in one process), grouped under the search's name. Offline runs land in
`NAME/wandb/offline-run-*`; `wandb sync` uploads them.
"""

from __future__ import annotations

import math
import queue
import sys
import threading
from numbers import Real
from typing import Any

from ray import tune

LOGGED = (  # numeric report fields logged to W&B
    "val_bpc", "val_chars", "train_bpc", "chars_seen", "chars_per_s", "train_s", "eval_s",
    "elapsed_s", "lr", "epoch",
)  # fmt: skip
STOP = object()
QUIET: Any = None  # wandb.Settings for every run, made in the writer thread


class WandbSink(tune.Callback):
    """A Tune callback that logs each trial to its own W&B run from one background thread."""

    def __init__(
        self, *, project: str, group: str, mode: str, folder: str, timeout_s: float = 60.0
    ) -> None:
        self.args = {"project": project, "group": group, "mode": mode, "folder": folder,
                     "timeout_s": timeout_s}  # fmt: skip
        self.settings = {"project": project, "group": group, "mode": mode, "dir": folder}
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
        self._queue.put(("start", trial.trial_id, dict(trial.config)))

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        row = {k: float(result[k]) for k in LOGGED if isinstance(result.get(k), Real)}
        self._queue.put(("log", trial.trial_id, {k: v for k, v in row.items() if math.isfinite(v)}))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._queue.put(("finish", trial.trial_id, None))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._queue.put(("finish", trial.trial_id, None))

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.close()

    def close(self) -> None:
        """Finish every open run and wait (at most `timeout_s`) for the writer to end."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.put((STOP, None, None))
            self._thread.join(self.timeout_s)
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
            x_disable_stats=True,
            x_disable_meta=True,
            disable_git=True,
            x_save_requirements=False,
            disable_job_creation=True,
        )

        runs: dict[str, Any] = {}
        while True:
            kind, trial_id, data = self._queue.get()
            try:
                if kind is STOP:
                    for run in runs.values():
                        run.finish()
                    return
                if kind == "start" and trial_id not in runs:
                    runs[trial_id] = wandb.init(
                        **self.settings,
                        name=trial_id,
                        id=f"{self.settings['group']}-{trial_id}",
                        config=data,
                        reinit="create_new",
                        resume="allow",
                        settings=QUIET,
                    )
                elif kind == "log" and trial_id in runs:
                    runs[trial_id].log(data)
                elif kind == "finish" and trial_id in runs:
                    runs.pop(trial_id).finish()
            except Exception as error:  # logging must never end a search
                self.errors.append(f"{kind} {trial_id}: {type(error).__name__}: {error}")
