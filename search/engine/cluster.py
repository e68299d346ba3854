"""Ray itself: start or join it, and size the search to the cluster it finds.

started = start_ray(config.address)       # None: a local Ray on this machine
slots = config.concurrency or default_concurrency(config)
request_workers(config)                   # an autoscaling cluster grows to --concurrency
release_workers(config)                   # and may shrink again once the search is over
"""

from __future__ import annotations

import os
import socket

import ray
from ray.autoscaler.sdk import request_resources
from ray.exceptions import AuthenticationError

from model.errors import ConfigError
from search.engine.compat import ray_target
from search.folder.config import SearchConfig

CONNECT_TIMEOUT_S = 5.0  # to reach the head of a cluster given by --address


def start_ray(
    address: str | None, cpus_per_trial: float = 0.0, gpus_per_trial: float = 0.0
) -> bool:
    """Connect to `address`, or start a local Ray; returns whether this call started it (not
    where this process has joined one already). A new local Ray must hold one trial of
    `cpus_per_trial` and `gpus_per_trial` (`check_trial_fits`; a cluster is not held to the
    nodes it has up, as its autoscaler may add room)."""
    try:
        target = ray_target(address)
    except ConnectionError as error:  # "auto", and no cluster on this machine
        raise ConfigError(f"cannot reach a Ray cluster at {address!r}: {error}") from None
    check_reachable(target)
    if ray.is_initialized():
        return False
    try:
        ray.init(
            address=address, include_dashboard=False, configure_logging=False, log_to_driver=False
        )
    except ConnectionError as error:  # also a cluster that refused the token it was given
        token = " (or it refused this machine's token)" if token_auth() else ""
        raise ConfigError(f"cannot reach a Ray cluster at {address!r}{token}: {error}") from None
    except AuthenticationError as error:  # token authentication, and no token here
        raise ConfigError(f"the Ray cluster at {address!r} refused this machine: {error}") from None
    if target is None:
        try:
            check_trial_fits(cpus_per_trial, gpus_per_trial)
        except ConfigError:
            ray.shutdown()  # started here: the caller never learns it is running
            raise
    return True


def check_reachable(address: str | None, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """A ConfigError unless `address` is one `ray.init` can join: a Ray Client address is
    refused (the search's driver keeps its clock and records in its own process, so it must run
    beside the cluster: `ray exec` or `ray job submit` with --address auto), and a host:port
    must take a TCP connection within `timeout_s` (Ray itself retries an unreachable one for
    about 14 minutes before it gives up)."""
    if address is None or address == "auto":
        return
    if address.startswith("ray://"):
        raise ConfigError(
            f"--address {address}: Ray Client addresses (ray://) are not supported; run the "
            "search on the cluster (ray exec, ray job submit) with --address auto"
        )
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"--address must be auto or HOST:PORT (the head's GCS port), got "
                          f"{address!r}")  # fmt: skip
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as error:
        reason = error.strerror or str(error) or type(error).__name__
        raise ConfigError(f"cannot reach a Ray cluster at {address!r}: {reason}") from None


def check_trial_fits(cpus_per_trial: float, gpus_per_trial: float) -> None:
    """On a local Ray this process started, a ConfigError if one trial needs more CPUs or
    GPUs than the machine has: Tune would wait for room that never comes."""
    have = ray.cluster_resources()
    for name, need, flag in (("CPU", cpus_per_trial, "--cpus-per-trial"),
                             ("GPU", gpus_per_trial, "--gpus-per-trial")):  # fmt: skip
        if need > have.get(name, 0):
            raise ConfigError(f"{flag} {need:g}: this machine has {have.get(name, 0):g} "
                              f"{name}s, so no trial could start")  # fmt: skip


def token_auth() -> bool:
    """Whether this machine joins clusters with token authentication (`RAY_AUTH_MODE=token`)."""
    return os.environ.get("RAY_AUTH_MODE", "").lower() == "token"


def default_concurrency(config: SearchConfig) -> int:
    """As many trials at once as the cluster's CPUs (and GPUs, if asked for) allow."""
    resources = ray.cluster_resources()
    fit = int(resources.get("CPU", 1) // config.cpus_per_trial)
    if config.gpus_per_trial > 0:
        fit = min(fit, int(resources.get("GPU", 0) // config.gpus_per_trial))
    return max(1, min(fit, config.trials) if config.trials else fit)


def one_machine_cpus() -> float | None:
    """The CPUs of the Ray cluster's one machine, or None where it has several: a trial's
    threads cannot span machines, and a trial grown to more CPUs than one machine has free
    could find no room anywhere (see `search.engine.adapters.RecordingASHA`)."""
    machines = [node["Resources"].get("CPU", 0) for node in ray.nodes() if node["Alive"]]
    machines = [cpus for cpus in machines if cpus > 0]
    return machines[0] if len(machines) == 1 else None


def request_workers(config: SearchConfig) -> None:
    """On an existing cluster, ask its autoscaler for room for `--concurrency` trials at once.

    Tune only asks for the trials it has started; with the head node alone able to hold them
    all, an autoscaling cluster would otherwise never grow. A no-op without an autoscaler.
    """
    if config.address and config.concurrency:
        bundle = {"CPU": config.cpus_per_trial, "GPU": config.gpus_per_trial}
        request_resources(bundles=[{k: v for k, v in bundle.items() if v}] * config.concurrency)


def release_workers(config: SearchConfig) -> None:
    """Withdraw `request_workers`' request once the search is over: the autoscaler keeps a
    request until another replaces it, and would keep the workers up, idle, until `ray down`."""
    if config.address and config.concurrency:
        request_resources(bundles=[])
