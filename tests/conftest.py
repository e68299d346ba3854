"""Shared fixtures: the real corpora folder (CHARNN_DATA_DIR, else ../shared/corpora), a real
local Ray, and two small real searches that several test modules read."""

import json
import os
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPORA = ROOT.parent / "shared" / "corpora"
if DEFAULT_CORPORA.is_dir():  # the project's layout: shared/ beside the checkout, as in CI
    os.environ.setdefault("CHARNN_DATA_DIR", str(DEFAULT_CORPORA))
# Here, before any test module imports ray (Ray reads it at import): single-node mode binds
# every local Ray the suite starts, in this process or in the commands it runs, to 127.0.0.1;
# otherwise Ray picks the outward interface. The two-node cluster test sets it back for its
# nodes, which it puts on 127.0.0.2.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
# W&B offline and quiet also where a test does not say so (as .ci/run does).
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_ERROR_REPORTING", "false")


def wait_for(condition, timeout: float, what: str, process=None, every: float = 0.2) -> None:
    """Poll `condition` every `every` s until it holds; fail after `timeout` s, or as soon as
    `process` (a Popen, if given) has ended, naming `what` was awaited."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert process is None or process.poll() is None, f"the process ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every)


@pytest.fixture
def reaped():
    """`reaped(subprocess.Popen(...))`: a process the test starts, killed and waited for at the
    test's end if it still runs, also when the test failed (before the fixtures the test asked
    for earlier, a cluster or the suite's Ray, are torn down)."""
    processes = []

    def keep(process):
        processes.append(process)
        return process

    yield keep
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """One CPU thread in the test process: its models are tiny, and on 2 cores a second
    thread only adds the cost of handing work over (Ray's trial processes set their own)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    path = Path(os.environ.get("CHARNN_DATA_DIR", DEFAULT_CORPORA))
    if not (path / "monte_cristo.txt").is_file():
        pytest.skip(f"real corpora not found in {path}; set CHARNN_DATA_DIR")
    return path


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray with 2 CPUs for the whole session; stopped at the end, also on failure."""
    import ray

    context = ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    try:
        assert context.address_info["node_ip_address"] == "127.0.0.1", context.address_info
        yield context.address_info["gcs_address"]
    finally:
        ray.shutdown()


@pytest.fixture
def fresh_wandb():
    """W&B reads its environment once per process, at its first run or check: for a test whose
    environment W&B must read (a monkeypatched key, a HOME without credentials), its settings
    and session are dropped before the test, and after it, for the tests that follow. (Not for
    every test: W&B's service then starts again inside the next search that logs, on its cores.)"""
    if "wandb" in sys.modules:
        sys.modules["wandb"].teardown()
    yield
    if "wandb" in sys.modules:
        sys.modules["wandb"].teardown()


def raw_reports(search_dir: Path, trial_id: str) -> list[dict]:
    """Tune's own log of a trial's reports (its result.json), every attempt, in order."""
    (log,) = search_dir.glob(f"train_trial_{trial_id}_*/result.json")
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def tiny_search(storage, corpus, name, corpus_dir, **settings):
    """The "tiny" preset (the suite's size: seconds of training on a 200k-character slice)."""
    from search.folder.presets import from_preset

    return from_preset(
        "tiny", corpus=corpus, name=name, storage=str(storage), data_dir=str(corpus_dir),
        **settings,
    )  # fmt: skip


@pytest.fixture(scope="session")
def searches(ray_local, corpus_dir, tmp_path_factory):
    """Two finished 20-second tiny searches (Monte Cristo logged to W&B offline, IRC without)."""
    from search.engine.tuning import run_search

    storage = tmp_path_factory.mktemp("runs")
    outcomes = {}
    for corpus, wandb_mode in (("monte-cristo", "offline"), ("irc", "disabled")):
        config = tiny_search(storage, corpus, f"{corpus}-tiny", corpus_dir, wandb_mode=wandb_mode,
                             time_budget_s=20.0)  # fmt: skip
        outcomes[corpus] = (config, run_search(config))
    return outcomes
