"""A search on a real two-node Ray cluster on loopback (`ray start --head` + `ray start --address`).

The corpus file is deleted once the driver has loaded it: trials on either node train from the
copy in Ray's object store, never from the file.
"""

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[1]


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


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.fixture
def two_node_cluster(tmp_path):
    """Head and worker node, 1 CPU each, on loopback; stops exactly the processes it started.

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
    }
    node = ["--num-cpus=1", "--node-ip-address=127.0.0.2", "--disable-usage-stats", "--block"]
    head_cmd = [
        "ray",
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
        nodes.append(
            subprocess.Popen(
                ["ray", "start", f"--address={address}", *node],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
        wait_for(
            lambda: len(list(Path(temp_dir).glob("session_*/sockets/raylet*"))) >= 2,
            120,
            "worker node",
        )
        yield address, env
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


def test_search_spreads_over_two_nodes(two_node_cluster, corpus_dir, tmp_path):
    corpus = tmp_path / "slice.txt"  # a corpus only the driver ever reads
    corpus.write_text((corpus_dir / "monte_cristo.txt").read_text(encoding="utf-8")[:200_000])
    address, env = two_node_cluster
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
    driver = subprocess.Popen(
        args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    search_json = tmp_path / "runs" / "cluster" / "search.json"
    deadline = time.monotonic() + 60
    while not search_json.exists():  # written right after the corpus was loaded and encoded
        assert driver.poll() is None, driver.stdout.read()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    corpus.unlink()
    output, _ = driver.communicate(timeout=300)
    assert driver.returncode == 0, output

    trials = pq.read_table(tmp_path / "runs" / "cluster" / "trials.parquet").to_pylist()
    assert 2 <= len(trials) <= 4
    assert all(t["status"] in ("completed", "cut", "stopped") for t in trials), trials
    assert len({t["node_id"] for t in trials}) == 2, "trials should run on both nodes"


def test_cluster_yaml_is_a_valid_ray_cluster_config():
    """cluster.yaml passes the Ray cluster launcher's own schema and installs this project."""
    import json

    import jsonschema
    import ray
    import yaml

    schema_path = Path(ray.__file__).parent / "autoscaler" / "ray-schema.json"
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    jsonschema.validate(config, json.loads(schema_path.read_text()))
    assert any("pip install -e ." in c for c in config["setup_commands"])
    assert config["file_mounts"] == {"~/char-rnn-search": "."}
