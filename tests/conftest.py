"""Shared fixtures: the real corpora folder (CHARNN_DATA_DIR, else ../shared/corpora)."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPORA = ROOT.parent / "shared" / "corpora"
if DEFAULT_CORPORA.is_dir():  # the project's layout: shared/ beside the checkout, as in CI
    os.environ.setdefault("CHARNN_DATA_DIR", str(DEFAULT_CORPORA))


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    path = Path(os.environ.get("CHARNN_DATA_DIR", DEFAULT_CORPORA))
    if not (path / "monte_cristo.txt").is_file():
        pytest.skip(f"real corpora not found in {path}; set CHARNN_DATA_DIR")
    return path


# -- Ray and small real searches, shared by the search and comparison tests --------------------


# The "smoke" preset: equal-length 200k-character slices of real corpora, tiny models and
# budgets; a whole search takes seconds of training, so the suite tests Ray, Optuna and ASHA.
def smoke_settings() -> dict:
    from search.config import PRESETS

    return dict(PRESETS["smoke"])


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray with 2 CPUs for the whole session; stopped at the end, also on failure."""
    import ray

    # Single-node mode binds Ray to 127.0.0.1; otherwise it picks the outward interface.
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    context = ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    try:
        yield context.address_info["gcs_address"]
    finally:
        ray.shutdown()


def small_search_config(storage, corpus, name, corpus_dir, **overrides):
    from search.config import SearchConfig
    from search.space import space_from_mapping

    settings = {**smoke_settings(), **overrides}
    space = space_from_mapping(settings.pop("space"))
    return SearchConfig(
        corpus=corpus,
        name=name,
        storage=str(storage),
        data_dir=str(corpus_dir),
        space=space,
        **settings,
    )


@pytest.fixture(scope="session")
def searches(ray_local, corpus_dir, tmp_path_factory):
    """Two finished small searches (Monte Cristo logged to W&B offline, IRC without W&B)."""
    from search.tuning import run_search

    storage = tmp_path_factory.mktemp("runs")
    outcomes = {}
    for corpus, wandb_mode in (("monte-cristo", "offline"), ("irc", "disabled")):
        config = small_search_config(
            storage, corpus, f"{corpus}-small", corpus_dir, wandb_mode=wandb_mode
        )
        outcomes[corpus] = (config, run_search(config))
    return outcomes
