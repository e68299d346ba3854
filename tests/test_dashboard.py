"""README's `optuna-dashboard runs/NAME/optuna.journal`: the dashboard opens a search's study.

The study is built with Optuna directly, the way a search leaves it (`search/engine/adapters.py`): a
journal file in the search folder, trials sampled by the search space, a trial that finished
told COMPLETE with its value, a trial a scheduler stopped told PRUNED with the intermediate
values it reported, a diverged trial PRUNED at the stand-in value, and a trial that never
reported told FAIL. The dashboard runs as the README's command, on loopback, and the test reads
its HTTP API (routes of optuna-dashboard 0.21's `_app.py`): nothing leaves the machine.
"""

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search.engine.trainable import DIVERGED_BPC, ORIGIN
from search.folder.space import DefineByRun, SearchSpace
from search.folder.store import STUDY

pytest.importorskip(
    "optuna_dashboard", reason='optuna-dashboard is not installed: pip install -e ".[dashboard]"'
)

NAME = "monte-cristo-dash"  # the study is named after its search, as the search does
HOST = "127.0.0.1"
LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy, even if set
# (tune trial id, origin, intermediate val_bpc by report, how the trial ended, final value)
TRIALS = (
    ("aaaa0001", "warm", [3.1, 2.6, 2.3], TrialState.COMPLETE, 2.25),  # best on the whole text
    ("aaaa0002", "sampled", [3.4, 3.0], TrialState.PRUNED, None),  # stopped at the second rung
    ("aaaa0003", "sampled", [3.9, DIVERGED_BPC], TrialState.PRUNED, None),  # diverged
    ("aaaa0004", "mutated", [], TrialState.FAIL, None),  # stopped before it reported
)


def write_study(journal: Path) -> None:
    """A finished search's study, told as `BudgetAwareOptunaSearch` and Ray's OptunaSearch do."""
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))
    )
    study = optuna.create_study(
        storage=storage,
        sampler=optuna.samplers.TPESampler(seed=0),
        study_name=NAME,
        direction="minimize",
        load_if_exists=True,
    )
    space = DefineByRun(SearchSpace())
    for trial_id, origin, values, state, final in TRIALS:
        trial = study.ask()
        space(trial)
        trial.set_user_attr("tune_trial_id", trial_id)
        trial.set_user_attr(ORIGIN, origin)
        for step, value in enumerate(values, start=1):  # step: Tune's training_iteration
            trial.report(value, step)
        study.tell(trial, final, state=state)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def get_json(url: str) -> dict:
    with LOOPBACK.open(url, timeout=10) as response:
        assert response.status == 200
        return json.load(response)


@pytest.fixture
def dashboard(tmp_path):
    """The README's command on a search folder's journal, on a free loopback port; its base URL.

    The server is stopped at the end, also when the test fails or the start-up times out."""
    folder = tmp_path / "runs" / NAME
    folder.mkdir(parents=True)
    write_study(folder / STUDY)
    # The console script pip installed beside this interpreter: the command the README runs.
    command = shutil.which("optuna-dashboard", path=str(Path(sys.executable).parent))
    assert command, f"optuna_dashboard imports, but no optuna-dashboard beside {sys.executable}"
    port = free_port()
    log = tmp_path / "dashboard.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [command, str(folder / STUDY), "--host", HOST, "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    url = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"optuna-dashboard exited {process.returncode}:\n{log.read_text()}")
            try:
                get_json(f"{url}/api/meta")
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    pytest.fail(f"optuna-dashboard did not answer in 60 s:\n{log.read_text()}")
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_the_dashboard_shows_the_searchs_study_with_its_trials(dashboard):
    (summary,) = get_json(f"{dashboard}/api/studies")["study_summaries"]
    assert summary["study_name"] == NAME and summary["directions"] == ["minimize"]

    study = get_json(f"{dashboard}/api/studies/{summary['study_id']}")
    assert study["name"] == NAME and study["has_intermediate_values"]
    trials = sorted(study["trials"], key=lambda t: t["number"])
    assert len(trials) == len(TRIALS)
    for shown, (trial_id, origin, values, state, final) in zip(trials, TRIALS, strict=True):
        assert shown["state"] == state.name.capitalize()  # "Complete", "Pruned", "Fail"
        attrs = {a["key"]: a["value"] for a in shown["user_attrs"]}
        assert attrs == {"tune_trial_id": trial_id, ORIGIN: origin}
        curve = [(v["step"], v["value"]) for v in shown["intermediate_values"]]
        assert curve == list(enumerate(values, start=1))
        # Optuna gives a pruned trial its last intermediate value; a failed one has none.
        value = values[-1] if state == TrialState.PRUNED else final
        assert shown.get("values") == (None if value is None else [value])
        assert {p["name"] for p in shown["params"]} >= {"hidden_size", "lr", "num_layers"}
    (best,) = study["best_trials"]
    assert best["number"] == 0 and best["values"] == [2.25]

    # The page a user opens is served too (its script and data come from this server only).
    with LOOPBACK.open(f"{dashboard}/dashboard/studies/{summary['study_id']}") as page:
        assert page.status == 200 and b"/static/bundle.js" in page.read()
