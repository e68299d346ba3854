"""The search space, declared once: one table of hyperparameters, and everything made from it.

`PARAMETERS` is the table: each hyperparameter's name (the training setting it sets, see
`model.config`), kind, default range, scale and column type. From it come

- `SearchSpace`, the ranges of one search (a frozen dataclass with one field per parameter),
  with its validation and its overrides (`--range`, `--space` files, `space_from_mapping`);
- `DefineByRun`, the function Optuna calls for every trial (it only suggests values);
- `wandb_sweep`, the same space for W&B's own sweep controller;
- `searched`, the parameters a space really varies (plot axes, importance);
- `ARROW_TYPES` and `FORMATS`, the result tables' columns and how reports print them.

Adding a hyperparameter is one entry in `PARAMETERS` (and its training setting in `model`).
Override files are YAML or TOML:

    hidden_size: [128, 512]     # ranges are [low, high]; choices are a list
    cell: [lstm, gru]
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, make_dataclass, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from model.errors import ConfigError
from model.lstm import CELLS


@dataclass(frozen=True)
class Param:
    """One hyperparameter of the search space."""

    name: str  # the training setting it sets (model.config flat key)
    kind: str  # "int" or "float" (a [low, high] range) or "choice" (a list of choices)
    default: tuple  # CPU default: (low, high), or the choices
    help: str
    log: bool = False  # sampled log-uniformly
    gpu_default: tuple | None = None  # default when trials run on GPUs, if different
    fixed: Any = None  # its value when not sampled (a range that is just this value)
    fmt: str = "{}"  # how reports print a value

    def sampled(self, space: SearchSpace) -> bool:
        """Whether a trial samples it: more than one choice, or a range wider than `fixed`."""
        if self.kind == "choice":
            return len(getattr(space, self.name)) > 1
        return not (self.fixed is not None and getattr(space, self.name)[1] == self.fixed)

    def constant(self, space: SearchSpace) -> Any:
        """Its value in a trial that does not sample it."""
        return getattr(space, self.name)[0] if self.kind == "choice" else self.fixed


PARAMETERS: tuple[Param, ...] = (
    Param("num_layers", "int", (1, 3), "stacked recurrent layers"),
    Param("hidden_size", "int", (64, 512), "units per layer", log=True,
          gpu_default=(128, 2048)),
    Param("dropout", "float", (0.0, 0.5), "dropout on each layer's output", fixed=0.0,
          fmt="{:.2f}"),
    Param("weight_decay", "float", (0.0, 0.2), "AdamW's decoupled weight decay", fixed=0.0,
          fmt="{:.3f}"),
    Param("seq_len", "int", (32, 256), "characters per step (backpropagation length)", log=True),
    Param("lr", "float", (1e-3, 3e-2), "Adam learning rate", log=True, fmt="{:.2e}"),
    Param("batch_size", "int", (16, 128), "parallel streams", log=True, gpu_default=(32, 256)),
    Param("cell", "choice", ("lstm",), f"recurrent cells ({', '.join(CELLS)})"),
)  # fmt: skip
BY_NAME = {p.name: p for p in PARAMETERS}
HYPERPARAMETERS = tuple(BY_NAME)  # every searched training setting, in sampling order
ARROW_TYPES = {
    p.name: {"int": pa.int32(), "float": pa.float64(), "choice": pa.string()}[p.kind]
    for p in PARAMETERS
}
FORMATS = {p.name: p.fmt for p in PARAMETERS}
ALIASES = {"cells": "cell"}  # older search.json files and --space files
GPU_SPACE: dict[str, tuple] = {p.name: p.gpu_default for p in PARAMETERS if p.gpu_default}
# Each parameter that can be switched off, at its value when off: what the trials of a version
# without it trained with (for result tables and search settings from before it existed).
OFF: dict[str, Any] = {p.name: p.fixed for p in PARAMETERS if p.fixed is not None}


def _check(self: Any) -> None:
    """SearchSpace validation: ranges ordered and positive where they must be, known choices."""
    for p in PARAMETERS:
        value = getattr(self, p.name)
        if p.kind == "choice":
            unknown = sorted(set(value) - set(CELLS)) if p.name == "cell" else []
            if not value or unknown:
                raise ConfigError(
                    f"{p.name} must be among {', '.join(CELLS)}, got {', '.join(value) or 'none'}"
                )
            continue
        low, high = value
        if not 0 <= low <= high:
            raise ConfigError(f"search range {p.name} must satisfy 0 <= low <= high, got {value}")
        if p.kind == "int" and low < 1:
            raise ConfigError(f"search range {p.name} must start at 1 or more, got {low}")
        if p.log and not low > 0:
            raise ConfigError(f"search range {p.name} must be positive (log scale), got {low}")
    if self.dropout[1] >= 1:
        raise ConfigError(f"dropout must stay below 1, got {self.dropout[1]}")


SearchSpace = make_dataclass(
    "SearchSpace",
    [(p.name, tuple, field(default=p.default)) for p in PARAMETERS],
    frozen=True,
    namespace={
        "__post_init__": _check,
        "__doc__": "The ranges (and choices) of one search, one field per entry of PARAMETERS.",
        "__module__": __name__,  # picklable: Tune pickles the searcher that holds a space
    },
)


@dataclass(frozen=True)
class DefineByRun:
    """The Optuna define-by-run function for a space: `DefineByRun(space)(optuna_trial)`.

    A class rather than a closure so that Tune can pickle the searcher into its experiment
    checkpoint (for resume). Returns the constants of the parameters it did not sample, which
    Tune merges into the trial's config.
    """

    space: SearchSpace

    def __call__(self, trial: Any) -> dict[str, Any]:
        values: dict[str, Any] = {}
        constants: dict[str, Any] = {}
        for p in PARAMETERS:
            bounds = getattr(self.space, p.name)
            if not p.sampled(self.space):
                constants[p.name] = p.constant(self.space)
            elif p.kind == "int":
                values[p.name] = trial.suggest_int(p.name, *bounds, log=p.log)
            elif p.kind == "float":
                values[p.name] = trial.suggest_float(p.name, *bounds, log=p.log)
            else:
                values[p.name] = trial.suggest_categorical(p.name, list(bounds))
        return constants


def searched(space: SearchSpace) -> list[tuple[str, str]]:
    """(parameter, axis scale) of each hyperparameter the space really varies."""
    varied = []
    for p in PARAMETERS:
        value = getattr(space, p.name)
        if p.kind == "choice":
            if len(value) > 1:
                varied.append((p.name, "category"))
        elif value[0] < value[1]:
            varied.append((p.name, "log" if p.log else "linear"))
    return varied


def space_from_mapping(overrides: dict[str, Any], base: SearchSpace | None = None) -> SearchSpace:
    """`base` with the given parameters' ranges replaced; unknown names are an error.

    Values may be lists, or strings like "64,512" from the command line.
    """
    base = base or SearchSpace()
    values: dict[str, Any] = {}
    for key, value in overrides.items():
        name = ALIASES.get(key, key)
        p = BY_NAME.get(name)
        if p is None:
            raise ConfigError(
                f"unknown search-space field {key!r}; choose from {', '.join(HYPERPARAMETERS)}"
            )
        if isinstance(value, str):
            kind = {"int": int, "float": float, "choice": str}[p.kind]
            try:
                value = [kind(v.strip()) for v in value.split(",") if v.strip()]
            except ValueError as error:
                raise ConfigError(f"search-space field {name}: {error}") from None
        if not isinstance(value, list | tuple):
            raise ConfigError(f"search-space field {name} must be a list, got {value!r}")
        if p.kind != "choice" and len(value) != 2:
            raise ConfigError(f"search range {name} must be [low, high], got {list(value)}")
        values[name] = tuple(value)
    return replace(base, **values)


def saved_space(mapping: dict[str, Any]) -> SearchSpace:
    """The space a search saved in its settings; a parameter it does not name (the search is
    from before the parameter existed) stays off, as it was in that search."""
    return space_from_mapping({**{k: [v, v] for k, v in OFF.items()}, **mapping})


def with_absent_columns(table: pa.Table) -> pa.Table:
    """A results table with a column for every parameter in `OFF`: a table from before one
    existed gets it, holding the value its trials trained with (off)."""
    for name, value in OFF.items():
        if name not in table.schema.names:
            column = pa.array([value] * table.num_rows, type=ARROW_TYPES[name])
            table = table.append_column(pa.field(name, ARROW_TYPES[name]), column)
    return table


def space_to_mapping(space: SearchSpace) -> dict[str, list]:
    """The space as plain lists (search.json, --range strings)."""
    return {name: list(value) for name, value in asdict(space).items()}


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
    parameters: dict[str, Any] = {}
    for p in PARAMETERS:
        value = getattr(space, p.name)
        if p.kind == "choice":
            parameters[p.name] = {"values": list(value)}
        elif p.kind == "int":
            distribution = "q_log_uniform_values" if p.log else "int_uniform"
            parameters[p.name] = {"distribution": distribution, "min": value[0], "max": value[1]}
            if p.log:
                parameters[p.name]["q"] = 1
        else:
            distribution = "log_uniform_values" if p.log else "uniform"
            parameters[p.name] = {"distribution": distribution, "min": value[0], "max": value[1]}
    sweep: dict[str, Any] = {
        "method": "bayes",
        "metric": {"name": metric, "goal": "minimize"},
        "parameters": parameters,
    }
    if command:
        sweep["command"] = command
    return sweep
