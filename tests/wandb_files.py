"""Reading W&B offline run files with wandb's own reader, for the tests.

wandb 0.31 reads a run's `.wandb` transaction log in wandb-core (its Python `DataStore` is
gone); `wandb leet inspect` is the command that exposes that reader: `--json` prints one record
a line (`run`, `history`, `summary`, `config`, `exit`, ...) and `--summary --json` the run's
state, config and summary as W&B would show them once synced. It runs offline, with wandb-core's
own telemetry off (`--no-observability`, which `wandb` passes in offline mode): nothing leaves
the machine.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

OFFLINE = {"WANDB_MODE": "offline", "WANDB_ERROR_REPORTING": "false", "WANDB_SILENT": "true"}


def inspect(run_dir: Path, *args: str) -> str:
    """`wandb leet inspect RUN_DIR ARGS...`; its standard output."""
    done = subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", *args, str(run_dir)],
        env={**os.environ, **OFFLINE}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, f"wandb leet inspect {run_dir}: {done.stderr}"
    return done.stdout


def offline_run(run_dir: Path) -> dict[str, Any]:
    """An offline run as W&B will show it: name, id, group, state, config, summary, its
    history rows (what `run.log` wrote) and their step numbers, and the x-axis each metric is
    drawn against where one was defined, read back from the run's `.wandb` file."""
    run = json.loads(inspect(run_dir, "--summary", "--json"))
    records = [json.loads(line) for line in inspect(run_dir, "--json").splitlines() if line]
    (header,) = (r["run"] for r in records if r["type"] == "run")
    history = [r["history"]["item"] for r in records if r["type"] == "history"]
    metrics = [r["metric"] for r in records if r["type"] == "metric"]
    user = {k: v for k, v in run["summary"].items() if not k.startswith("_")}
    return {
        "name": run["name"],
        "id": run["run_id"],
        "project": run["project"],
        "group": header.get("run_group"),
        "state": run["state"],
        "config": run["config"],
        "summary": user,
        "history": [{k: v for k, v in row.items() if not k.startswith("_")} for row in history],
        "steps": [row["_step"] for row in history],
        "x_axes": {m["name"]: m["step_metric"] for m in metrics if "step_metric" in m},
    }


def offline_runs(wandb_dir: Path) -> dict[str, dict[str, Any]]:
    """Every offline run under a `wandb/` folder, by run name (the Tune trial id)."""
    runs = [offline_run(d) for d in sorted(wandb_dir.glob("offline-run-*"))]
    return {run["name"]: run for run in runs}
