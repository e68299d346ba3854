"""The hyperparameter search space: ranges stated once, as data, sampled define-by-run.

`SearchSpace` holds the ranges; `DefineByRun(space)` turns them into the function Optuna calls
for every trial (it only suggests values, it computes nothing). The same ranges export to a
W&B sweep configuration, and load from a YAML or TOML file for overrides:

    hidden_size: [128, 512]     # any field; pairs are [low, high], lists of choices stay lists
    cells: [lstm, gru]
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import yaml

from model.errors import ConfigError
from model.lstm import CELLS

RANGES = ("num_layers", "hidden_size", "dropout", "seq_len", "lr", "batch_size")  # [low, high]


@dataclass(frozen=True)
class SearchSpace:
    num_layers: tuple[int, int] = (1, 3)  # stacked recurrent layers, uniform integer
    hidden_size: tuple[int, int] = (64, 512)  # units per layer, log-uniform (GPU: see GPU_SPACE)
    dropout: tuple[float, float] = (0.0, 0.5)  # between layers; sampled only when num_layers > 1
    seq_len: tuple[int, int] = (32, 256)  # backpropagation length, log-uniform integer
    lr: tuple[float, float] = (1e-3, 3e-2)  # Adam learning rate, log-uniform
    batch_size: tuple[int, int] = (16, 128)  # parallel streams, log-uniform integer
    cells: tuple[str, ...] = ("lstm",)  # recurrent cells; sampled only when more than one

    def __post_init__(self) -> None:
        for name in RANGES:
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                raise ConfigError(
                    f"search range {name} must satisfy 0 <= low <= high, got {low}, {high}"
                )
        if self.num_layers[0] < 1 or self.hidden_size[0] < 1 or self.seq_len[0] < 1:
            raise ConfigError("num_layers, hidden_size and seq_len ranges must start at 1 or more")
        if self.lr[0] <= 0 or self.dropout[1] >= 1:
            raise ConfigError("lr must be positive and dropout below 1")
        if self.batch_size[0] < 1:
            raise ConfigError("batch_size range must start at 1 or more")
        unknown = sorted(set(self.cells) - set(CELLS))
        if not self.cells or unknown:
            raise ConfigError(
                f"cells must be among {', '.join(CELLS)}, got {', '.join(self.cells) or 'none'}"
            )


# Overrides of the defaults when trials run on GPUs (--gpus-per-trial): wider models and more
# streams cost a GPU little more time per step than small ones (see README's defaults table).
GPU_SPACE: dict[str, Any] = {"hidden_size": (128, 2048), "batch_size": (32, 256)}


@dataclass(frozen=True)
class DefineByRun:
    """The Optuna define-by-run function for a space: `DefineByRun(space)(optuna_trial)`.

    A class rather than a closure so that Tune can pickle the searcher into its experiment
    checkpoint (for resume).
    """

    space: SearchSpace

    def __call__(self, trial: Any) -> dict[str, Any] | None:
        space = self.space
        num_layers = trial.suggest_int("num_layers", *space.num_layers)
        trial.suggest_int("hidden_size", *space.hidden_size, log=True)
        if num_layers > 1 and space.dropout[1] > 0:
            trial.suggest_float("dropout", *space.dropout)
        trial.suggest_int("seq_len", *space.seq_len, log=True)
        trial.suggest_float("lr", *space.lr, log=True)
        trial.suggest_int("batch_size", *space.batch_size, log=True)
        if len(space.cells) > 1:
            trial.suggest_categorical("cell", list(space.cells))
        constants: dict[str, Any] = {}  # fixed values Tune merges into the trial's config
        if num_layers == 1 or space.dropout[1] == 0:
            constants["dropout"] = 0.0
        if len(space.cells) == 1:
            constants["cell"] = space.cells[0]
        return constants


def space_from_mapping(overrides: dict[str, Any], base: SearchSpace | None = None) -> SearchSpace:
    """`base` with the given fields replaced; unknown fields are an error."""
    base = base or SearchSpace()
    names = {f.name for f in fields(SearchSpace)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ConfigError(f"unknown search-space field(s): {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for name, value in overrides.items():
        if isinstance(value, str):  # "64,512" from the command line, typed like the default
            kind = type(getattr(base, name)[0])
            try:
                value = [kind(v.strip()) for v in value.split(",") if v.strip()]
            except ValueError as error:
                raise ConfigError(f"search-space field {name}: {error}") from None
        if not isinstance(value, list | tuple):
            raise ConfigError(f"search-space field {name} must be a list, got {value!r}")
        if name in RANGES and len(value) != 2:
            raise ConfigError(f"search range {name} must be [low, high], got {value}")
        values[name] = tuple(value)
    return replace(base, **values)


def load_space_file(path: str | Path, base: SearchSpace | None = None) -> SearchSpace:
    """A search space from a YAML (.yaml/.yml) or TOML (.toml) file of overrides."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"search-space file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError, UnicodeDecodeError) as error:
        raise ConfigError(
            f"cannot parse search-space file {path}: {str(error).splitlines()[0]}"
        ) from error
    if not isinstance(data, dict):
        raise ConfigError(f"search-space file {path} must hold a mapping of field: range")
    return space_from_mapping(data, base)


def wandb_sweep(
    space: SearchSpace, metric: str = "val_bpc", command: list[str] | None = None
) -> dict[str, Any]:
    """The same space as a W&B sweep configuration (for W&B's own sweep controller)."""
    parameters: dict[str, Any] = {
        "num_layers": {
            "distribution": "int_uniform",
            "min": space.num_layers[0],
            "max": space.num_layers[1],
        },
        "hidden_size": {
            "distribution": "q_log_uniform_values",
            "q": 1,
            "min": space.hidden_size[0],
            "max": space.hidden_size[1],
        },
        "dropout": {"distribution": "uniform", "min": space.dropout[0], "max": space.dropout[1]},
        "seq_len": {
            "distribution": "q_log_uniform_values",
            "q": 1,
            "min": space.seq_len[0],
            "max": space.seq_len[1],
        },
        "lr": {"distribution": "log_uniform_values", "min": space.lr[0], "max": space.lr[1]},
        "batch_size": {
            "distribution": "q_log_uniform_values",
            "q": 1,
            "min": space.batch_size[0],
            "max": space.batch_size[1],
        },
        "cell": {"values": list(space.cells)},
    }
    sweep: dict[str, Any] = {
        "method": "bayes",
        "metric": {"name": metric, "goal": "minimize"},
        "parameters": parameters,
    }
    if command:
        sweep["command"] = command
    return sweep
