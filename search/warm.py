"""Warm starts: configurations known to be good, run before the sampler's own suggestions.

    points = warm_points(space, defaults=True, folder="runs/irc-20261129-101500", top=3)

Two sources, in this order:

1. `--warm-start FOLDER`: the `top` best configurations of an earlier search (any corpus),
   read from its trials.parquet.
2. The documented defaults below, unless `--no-warm-start-defaults`.

Points outside the search space are dropped (a range was narrowed), duplicates too. Each goes
to Optuna's `enqueue_trial` through Tune's `points_to_evaluate`, so the sampler learns from
their results like from any other trial's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from model.errors import ConfigError
from search.space import HYPERPARAMETERS, PARAMETERS, SearchSpace
from search.store import TRIALS, SearchFolder

# Known-good starting points (see README, "How the defaults were chosen"). The first is
# karpathy/char-rnn's default network (2 x 128 LSTM, 50 streams of 50 characters) at a
# learning rate fit for short budgets: at 2e-3, its own default, it learns far more slowly in
# the minutes a search gives one trial. The others trade width for depth and speed.
DEFAULT_WARM_STARTS: tuple[dict[str, Any], ...] = (
    {"num_layers": 2, "hidden_size": 128, "dropout": 0.0, "seq_len": 50, "batch_size": 50,
     "lr": 8e-3},
    {"num_layers": 1, "hidden_size": 256, "seq_len": 64, "batch_size": 32, "lr": 8e-3},
    {"num_layers": 2, "hidden_size": 256, "dropout": 0.1, "seq_len": 100, "batch_size": 64,
     "lr": 5e-3},
)  # fmt: skip
WARM_KEYS = HYPERPARAMETERS


def fit_to_space(point: dict[str, Any], space: SearchSpace) -> dict[str, Any] | None:
    """`point` as the space's define-by-run function would suggest it, or None if outside it.

    Only the parameters the space samples are kept (dropout only with more than one layer,
    the cell only when more than one is searched); a constant must match the space's.
    """
    out: dict[str, Any] = {}
    for p in PARAMETERS:
        value = point.get(p.name)
        if not p.sampled(space, out):
            inactive = p.needs_layers and out.get("num_layers", 1) <= p.needs_layers
            if value is not None and not inactive and value != p.constant(space):
                return None  # e.g. a GRU configuration in an LSTM-only space
            continue
        bounds = getattr(space, p.name)
        inside = value in bounds if p.kind == "choice" else (
            value is not None and bounds[0] <= value <= bounds[1]
        )  # fmt: skip
        if not inside:
            return None
        out[p.name] = value
    return out


def top_configurations(folder: str | Path, top: int) -> list[dict[str, Any]]:
    """The `top` best distinct configurations of the search in `folder`, best first."""
    store = SearchFolder(folder)
    path, table_file = store.path, store.path / TRIALS
    if not path.is_dir():
        raise ConfigError(f"search folder {path} does not exist")
    if not store.has_trials():
        raise ConfigError(f"folder {path} holds no search (no {TRIALS})")
    rows = store.trials().to_pylist()
    if rows and not set(WARM_KEYS) <= set(rows[0]):
        raise ConfigError(f"{table_file} is not a trials table of this project")
    scored = [r for r in rows if r.get("best_val_bpc") is not None]
    if not scored:
        raise ConfigError(f"search {path} has no trial with a validation result")
    scored.sort(key=lambda r: r["best_val_bpc"])
    return [{k: r[k] for k in WARM_KEYS if r[k] is not None} for r in scored[:top]]


def warm_points(
    space: SearchSpace,
    *,
    defaults: bool,
    folder: str | None = None,
    top: int = 3,
) -> list[dict[str, Any]]:
    """The configurations to run first: an earlier search's best, then the defaults."""
    candidates: Sequence[dict[str, Any]] = [
        *(top_configurations(folder, top) if folder else []),
        *(DEFAULT_WARM_STARTS if defaults else []),
    ]
    points: list[dict[str, Any]] = []
    for candidate in candidates:
        point = fit_to_space(candidate, space)
        if point is not None and not any(_same(point, p) for p in points):
            points.append(point)
    return points


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.keys() == b.keys() and all(
        math.isclose(a[k], b[k]) if isinstance(a[k], float) else a[k] == b[k] for k in a
    )
