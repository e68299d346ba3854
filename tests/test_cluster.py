"""A search on a real two-node Ray cluster on loopback (`ray start --head` + `ray start --address`).

The corpus file is deleted once the driver has loaded it: trials on either node train from the
copy in Ray's object store, never from the file.
"""

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import pyarrow.parquet as pq
import pytest

from tests.conftest import raw_reports, wait_for

ROOT = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).parent / "ray")  # the CLI of this interpreter's Ray


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def leftovers(temp_dir: str) -> list[psutil.Process]:
    """Processes still naming this cluster's temp dir (a node that did not drain in time)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if temp_dir in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found


@pytest.fixture
def two_node_cluster(tmp_path):
    """Head and worker node, 1 CPU each, on loopback; stops exactly the processes it started.
    Yields the address, the nodes' environment, the nodes' processes and a function that
    starts one more worker node.

    127.0.0.2 rather than 127.0.0.1: Ray replaces "127.0.0.1" by the machine's outward address.
    Ray 2.60 authenticates cluster RPCs with a token; the nodes and the driver share a fresh one.
    """
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: socket paths are capped
    address = f"127.0.0.2:{free_port()}"
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1",  # the suite's local Ray sets 0 (loopback only)
        # A lost node is declared dead within a few seconds, not the default half minute.
        "RAY_health_check_period_ms": "1000",
        "RAY_health_check_timeout_ms": "1000",
        "RAY_health_check_failure_threshold": "3",
    }
    node = ["--num-cpus=1", "--node-ip-address=127.0.0.2", "--disable-usage-stats", "--block"]
    head_cmd = [
        RAY,
        "start",
        "--head",
        f"--port={address.split(':')[1]}",
        f"--temp-dir={temp_dir}",
        "--include-dashboard=false",
        *node,
    ]
    nodes: list[subprocess.Popen] = []
    try:
        nodes.append(
            subprocess.Popen(
                head_cmd,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
        wait_for(lambda: bool(list(Path(temp_dir).glob("session_*/sockets/raylet"))), 120, "head")

        def start_worker() -> None:
            raylets = len(list(Path(temp_dir).glob("session_*/sockets/raylet*")))
            nodes.append(subprocess.Popen([RAY, "start", f"--address={address}", *node], env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          start_new_session=True))  # fmt: skip
            wait_for(
                lambda: len(list(Path(temp_dir).glob("session_*/sockets/raylet*"))) > raylets,
                120,
                "worker node",
            )

        start_worker()
        yield address, env, nodes, start_worker
    finally:
        for proc in reversed(nodes):  # `ray start --block` drains its node on SIGTERM
            proc.terminate()
        for proc in nodes:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        for proc in leftovers(temp_dir):
            proc.kill()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.slow
def test_search_spreads_over_two_nodes(two_node_cluster, corpus_dir, tmp_path, reaped):
    corpus = tmp_path / "slice.txt"  # a corpus only the driver ever reads
    corpus.write_text((corpus_dir / "monte_cristo.txt").read_text(encoding="utf-8")[:200_000])
    address, env, _, _ = two_node_cluster
    args = [
        sys.executable,
        "-m",
        "search.run",
        "--corpus",
        str(corpus),
        "--name",
        "cluster",
        "--storage",
        str(tmp_path / "runs"),
        "--address",
        address,
        "--preset",
        "tiny",
        "--time-budget",
        "40",
        "--trials",
        "4",
        "--concurrency",
        "2",
        "--wandb-mode",
        "disabled",
    ]
    # With another token, or none: refused, in one line that says so.
    no_token = {k: v for k, v in env.items() if k != "RAY_AUTH_TOKEN"}
    for name, stranger_env, says in (
        ("wrong", {**env, "RAY_AUTH_TOKEN": secrets.token_hex(32)}, "refused this machine's token"),
        ("none", {**no_token, "HOME": str(tmp_path)}, "refused this machine: "),
    ):
        stranger = subprocess.run([*args, "--name", name], cwd=tmp_path, timeout=180,
                                  env=stranger_env, capture_output=True, text=True)  # fmt: skip
        assert stranger.returncode == 2, stranger.stdout + stranger.stderr
        last = stranger.stderr.strip().splitlines()[-1]
        assert last.startswith("error: ") and says in last, stranger.stderr
    driver = reaped(subprocess.Popen(
        args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ))  # fmt: skip
    search_json = tmp_path / "runs" / "cluster" / "state" / "search.json"

    def loaded() -> bool:  # the settings are written right after the corpus is loaded and encoded
        return search_json.exists() or driver.poll() is not None

    wait_for(loaded, 60, "the search's settings", every=0.05)
    assert search_json.exists(), driver.stdout.read()
    corpus.unlink()
    output, _ = driver.communicate(timeout=300)
    assert driver.returncode == 0, output

    trials = pq.read_table(tmp_path / "runs" / "cluster" / "trials.parquet").to_pylist()
    assert 2 <= len(trials) <= 4
    assert all(t["status"] in ("completed", "cut", "stopped") for t in trials), trials
    assert len({t["node_id"] for t in trials}) == 2, "trials should run on both nodes"


def trials_on(node: subprocess.Popen) -> list[psutil.Process]:
    """Trial processes (Tune's function trainables) under one `ray start --block` node."""
    try:
        below = psutil.Process(node.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for proc in below:
        try:
            if "ImplicitFunc" in " ".join(proc.cmdline() or []):
                found.append(proc)
        except psutil.Error:  # ended (or a zombie) since it was listed
            continue
    return found


@pytest.mark.slow
def test_a_lost_worker_node_costs_no_trial_and_no_row(
    two_node_cluster, corpus_dir, tmp_path, reaped
):
    """The worker node's raylet and its workers are killed by PID mid-search (`ray stop` would
    stop both nodes), once the driver has a report of the trial there; then a new worker node
    joins. Two trials, one per node, under fifo, which neither stops nor pauses a trial (ASHA
    stopped the slower of two at the first rung on a loaded machine): each trains a quarter of
    the budget's trial time (`--reduction-factor 2`) and reports at 7, 15 and 21 s of training.
    The search ends with both, the lost one continued from its checkpoint past what the driver
    had, no row lost or repeated.

    What the driver had is read from the search's status file, not from Tune's log of the reports
    (result.json): Tune writes that log in the driver's staging folder, copies it to the storage
    now and then, and when it restarts a lost trial it first copies the storage's copy back over
    the staged one (`_restore_from_remote`, since ray-project/ray#38598, read in Ray 2.60), so the
    reports between the last copy and the loss can be missing from it.
    """
    address, env, nodes, start_worker = two_node_cluster
    storage = tmp_path / "runs"
    args = [sys.executable, "-m", "search.run", "--corpus", "monte-cristo", "--data-dir",
            str(corpus_dir), "--name", "lost-node", "--storage", str(storage), "--address",
            address, "--preset", "tiny", "--trials", "2", "--time-budget", "120",
            "--scheduler", "fifo", "--reduction-factor", "2", "--plateau-share", "0",
            "--concurrency", "2",
            "--wandb-mode", "disabled", "--range", "num_layers=1,1", "--range",
            "hidden_size=32,32", "--range", "dropout=0,0", "--range", "seq_len=32,32",
            "--range", "lr=4e-3,4e-3", "--range", "batch_size=8,8"]  # fmt: skip
    log = tmp_path / "driver.log"
    with open(log, "w") as out:
        driver = reaped(
            subprocess.Popen(args, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
        )
    search_dir = storage / "lost-node"
    from search.engine.compat import trial_id_from_folder
    from search.folder.store import SearchFolder
    from tests.test_faults import check_no_row_lost_or_repeated

    lost: dict[str, Any] = {}

    def reported_there() -> bool:
        """The driver has a report of the trial on the worker node: Tune calls the search's
        callbacks with it, and the search's status file has it within seconds. (Tune's own log
        of the reports reaches the storage folder only at its next sync, which can take minutes
        on a loaded machine: waiting for it made this test time out.)"""
        assert driver.poll() is None, log.read_text()[-3000:]
        status = SearchFolder(str(search_dir)).status() or {"trials": []}  # written atomically
        curves = {row["trial_id"]: row["curve"] for row in status["trials"]}
        lost["seen"] = {"reports": {t: len(c) for t, c in curves.items()}, "on_worker": []}
        for proc in trials_on(nodes[1]):
            try:  # Tune runs each trial in a working folder named after it
                trial_id = trial_id_from_folder(proc.cwd())
            except (psutil.Error, IndexError):
                continue
            lost["seen"]["on_worker"].append(trial_id)
            if curves.get(trial_id):  # its last report: (train_s, bpc, whole?, time)
                lost.update(trial_id=trial_id, reports=len(curves[trial_id]),
                            train_s=curves[trial_id][-1][0])  # fmt: skip
                return True
        return False

    try:
        wait_for(reported_there, 120, "a report of the trial on the worker node")
    except AssertionError as error:  # what the driver and the nodes were doing
        seen = f"seen {lost.get('seen')}\n{log.read_text()[-3000:]}"
        raise AssertionError(f"{error}; {seen}") from None
    time.sleep(3)  # Tune registers the report's checkpoint right after the callbacks
    for proc in psutil.Process(nodes[1].pid).children(recursive=True):  # raylet and workers
        proc.kill()
    killed = time.time()
    start_worker()
    driver.wait(timeout=300)
    assert driver.returncode == 0, log.read_text()[-3000:]

    rows = check_no_row_lost_or_repeated(search_dir, trials=2)
    assert len(rows) == 2 and all(r["status"] in ("completed", "cut", "stopped") for r in rows)
    raw = raw_reports(search_dir, lost["trial_id"])
    later = [r for r in raw if r["time"] > killed]  # the attempt after the loss
    assert later, f"trial {lost['trial_id']} did not train again: {raw}"
    # From its checkpoint, never from the start: past the training and Tune's report number.
    assert later[0]["train_s"] > lost["train_s"], (lost, later)
    assert later[0]["training_iteration"] > lost["reports"], (lost, later)


@pytest.mark.parametrize("name", ["cluster.yaml", "cluster-local.yaml"])
def test_cluster_configs_are_valid_and_every_node_authenticates(name):
    """The launcher configs pass Ray's own schema, install this project, and start every node
    with token authentication, the token copied to Ray's default path."""
    import json

    import jsonschema
    import ray
    import yaml

    schema_path = Path(ray.__file__).parent / "autoscaler" / "ray-schema.json"
    config = yaml.safe_load((ROOT / name).read_text())
    jsonschema.validate(config, json.loads(schema_path.read_text()))
    assert any("pip install -e ." in c for c in config["setup_commands"])
    assert config["file_mounts"]["~/char-rnn-search"] == "."
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        starts = [c for c in config[key] if "ray start" in c]
        assert starts and all("RAY_AUTH_MODE=token ray start" in c for c in starts), key
    assert any("RAY_AUTH_MODE=token" in c for c in config["setup_commands"])  # ray exec too
    # rsync matches a pattern without a slash against every path's every folder, so a bare
    # "reports" would leave the package search/reports/ off every node.
    code = [p.relative_to(ROOT).as_posix() for package in ("corpora", "model", "search")
            for p in (ROOT / package).rglob("*.py")]  # fmt: skip
    dropped = [path for path in code if any(rsync_excludes(path, pattern)
                                            for pattern in config["rsync_exclude"])]  # fmt: skip
    assert dropped == []
    assert rsync_excludes("runs/a/trials.parquet", "/runs")  # the results stay behind


def rsync_excludes(path: str, pattern: str) -> bool:
    """Whether rsync's `--exclude pattern` drops `path` (relative to the transfer's root), for
    the patterns the launcher files use: "/x" only at the top, "x" or "**/x" in any folder."""
    from fnmatch import fnmatch

    parts = path.split("/")
    if pattern.startswith("/"):
        return fnmatch(parts[0], pattern[1:])
    return any(fnmatch(part, pattern.removeprefix("**/")) for part in parts)


@pytest.mark.slow
def test_the_request_for_workers_is_withdrawn_once_the_search_is_over(ray_local):
    """The autoscaler keeps a request until another replaces it: a search that asked for room
    for its trials withdraws it, or the workers would stay up, idle, until `ray down`."""
    from ray.autoscaler._private.constants import AUTOSCALER_RESOURCE_REQUEST_CHANNEL
    from ray.autoscaler.v2.utils import is_autoscaler_v2
    from ray.experimental.internal_kv import _internal_kv_get

    from search.engine.cluster import release_workers, request_workers
    from search.folder.config import SearchConfig

    assert not is_autoscaler_v2()  # where a v1 autoscaler reads the request from
    config = SearchConfig(corpus="irc", address="auto", concurrency=3, cpus_per_trial=2.0)
    request_workers(config)
    assert json.loads(_internal_kv_get(AUTOSCALER_RESOURCE_REQUEST_CHANNEL)) == [{"CPU": 2.0}] * 3
    release_workers(config)
    assert json.loads(_internal_kv_get(AUTOSCALER_RESOURCE_REQUEST_CHANNEL)) == []


def test_an_address_that_cannot_work_is_one_line_at_once(tmp_path, monkeypatch):
    """Ray retries an unreachable head for about 14 minutes, and a Ray Client address would
    run the driver's trials where its records are not: both are refused before `ray.init`."""
    from model.errors import ConfigError
    from search.engine.cluster import check_reachable

    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ConfigError, match=rf"cannot reach a Ray cluster at '127.0.0.1:{port}': "
                       "Connection refused"):  # fmt: skip
        check_reachable(f"127.0.0.1:{port}")
    with pytest.raises(ConfigError, match="Ray Client addresses"):
        check_reachable("ray://127.0.0.1:10001")
    with pytest.raises(ConfigError, match="auto or HOST:PORT"):
        check_reachable("127.0.0.1")
    check_reachable(None)
    check_reachable("auto")
    # RAY_ADDRESS stands in for no --address (as `ray job submit` sets it): checked the same.
    from search.engine.cluster import start_ray
    from search.engine.compat import ray_target

    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    assert ray_target(None) == f"127.0.0.1:{port}"  # joined, not a new local Ray
    with pytest.raises(ConfigError, match=rf"cannot reach a Ray cluster at '127.0.0.1:{port}'"):
        start_ray(None)


@pytest.mark.slow
def test_a_trial_larger_than_the_local_machine_is_refused(ray_local):
    """On the local Ray a search starts, a trial that needs more CPUs (or GPUs) than the machine
    has would never start: Tune waits for room for the whole budget. One line instead."""
    from model.errors import ConfigError
    from search.engine.cluster import check_trial_fits

    check_trial_fits(2.0, 0.0)  # the session's Ray has 2 CPUs
    with pytest.raises(ConfigError, match=r"--cpus-per-trial 3: this machine has 2 CPUs"):
        check_trial_fits(3.0, 0.0)
    with pytest.raises(ConfigError, match=r"--gpus-per-trial 1: this machine has 0 GPUs"):
        check_trial_fits(1.0, 1.0)


@pytest.mark.slow
def test_a_search_whose_trial_is_larger_than_the_new_local_ray_ends_in_one_line(
    corpus_dir, tmp_path
):
    """End to end, in a process of its own (a new local Ray, not the session's): the search
    refuses once that Ray is up, in one line, before any trial is made."""
    args = [sys.executable, "-m", "search.run", "--corpus", "monte-cristo", "--preset", "tiny",
            "--cpus-per-trial", "64", "--storage", str(tmp_path), "--name", "big",
            "--data-dir", str(corpus_dir), "--wandb-mode", "disabled"]  # fmt: skip
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith("error: --cpus-per-trial 64: this machine has ")
    ), done.stderr
    assert not list((tmp_path / "big").glob("train_trial_*"))
