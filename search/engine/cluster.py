"""Ray itself: start or join it, and size the search to the cluster it finds.

started = start_ray(config.address)       # None: a local Ray on this machine
slots = config.concurrency or default_concurrency(config)
request_workers(config)                   # an autoscaling cluster grows to --concurrency
release_workers(config)                   # and may shrink again once the search is over
"""

from __future__ import annotations

import os

import ray
from ray.autoscaler.sdk import request_resources
from ray.exceptions import AuthenticationError

from model.errors import ConfigError
from search.folder.config import SearchConfig


def start_ray(address: str | None) -> bool:
    """Connect to `address`, or start a local Ray; returns whether this call started it."""
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
    return True


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
