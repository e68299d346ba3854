"""Hyperparameter importance of a finished search, recomputed from its trials table.

    result = param_importances(trials, space)    # Importance(values={"lr": 0.7, ...}, note=...)

Each trial row becomes an Optuna FrozenTrial whose parameters and distributions come from
running the search's own define-by-run function (`search.space.DefineByRun`) on the row's
values, so the ranges are stated once and conditional parameters (dropout only with more than
one layer) stay conditional. The evaluator is PED-ANOVA, which needs no extra package (fANOVA
and mean-decrease-impurity need scikit-learn).

Shortcuts admitted: the value is each trial's best_val_bpc, so a trial ASHA stopped early
counts with the value it reached on its smaller budget (worse, as a rule); and with a few
dozen trials the figures are rough. The top quantile is widened on small searches so that it
holds about five trials, as PED-ANOVA's authors advise.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import optuna
import pyarrow as pa
from optuna.trial import FixedTrial, create_trial

from search.results import HYPERPARAMETERS
from search.space import DefineByRun, SearchSpace

MIN_TRIALS = 4  # trials with a value below which no importance is reported
TOP_TRIALS = 5  # trials PED-ANOVA should find in its top quantile


@dataclass(frozen=True)
class Importance:
    values: dict[str, float] = field(default_factory=dict)  # parameter -> share, summing to 1
    note: str = ""  # how it was computed, or why it was not


def frozen_trial(row: dict[str, Any], space: SearchSpace) -> optuna.trial.FrozenTrial:
    """The Optuna trial a trials-table row stands for (ValueError if outside the space)."""
    fixed = FixedTrial({name: row[name] for name in HYPERPARAMETERS})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # out-of-range values are refused by create_trial below
        DefineByRun(space)(fixed)
    return create_trial(
        params=fixed.params, distributions=fixed.distributions, value=row["best_val_bpc"]
    )


def param_importances(trials: pa.Table, space: SearchSpace) -> Importance:
    """PED-ANOVA importance of each searched hyperparameter for a low best_val_bpc."""
    rows = [
        r
        for r in trials.to_pylist()
        if r["best_val_bpc"] is not None and math.isfinite(r["best_val_bpc"])
    ]
    frozen = []
    for row in rows:
        try:
            frozen.append(frozen_trial(row, space))
        except ValueError:
            continue  # a value outside search.json's space: the table and config disagree
    if len(frozen) < MIN_TRIALS:
        return Importance(
            note=f"not computed: {len(frozen)} trial(s) with a value, at least {MIN_TRIALS} needed"
        )
    if len({t.value for t in frozen}) < 2:
        return Importance(note="not computed: every trial reached the same value")
    quantile = min(0.5, max(0.1, TOP_TRIALS / len(frozen)))
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(direction="minimize")
        study.add_trials(frozen)
        evaluator = optuna.importance.PedAnovaImportanceEvaluator(target_quantile=quantile)
        values = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (ValueError, RuntimeError) as error:
        return Importance(note=f"not computed: {str(error).splitlines()[0]}")
    finally:
        optuna.logging.set_verbosity(previous)
    return Importance(
        values={name: float(v) for name, v in values.items()},
        note=f"PED-ANOVA over {len(frozen)} trials (top {quantile:.0%} against all)",
    )
