"""Hyperparameter importance of a finished search, from its own Optuna study.

    result = study_importances(folder.study_file, "irc-20261129-101500")
    result.values    # {"lr": 0.7, "hidden_size": 0.2, ...}, shares summing to 1
    result.note      # how it was computed, or why it was not

Every search keeps its Optuna study in its folder (`optuna.journal`, Optuna's journal
storage), so this reads the real study: the trials TPE was told about, with the distributions
the search space gave them. The evaluator is PED-ANOVA, which needs no extra package (fANOVA
and mean-decrease-impurity need scikit-learn). It uses the COMPLETE trials, those that ended
their schedule or were cut by the deadline after a validation on the whole text; trials
stopped at a rung were told as PRUNED and do not count. With a few dozen trials the figures
are rough; the top quantile is widened on small searches so that it holds about five trials,
as PED-ANOVA's authors advise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import optuna

MIN_TRIALS = 4  # finished trials below which no importance is reported
TOP_TRIALS = 5  # trials PED-ANOVA should find in its top quantile


@dataclass(frozen=True)
class Importance:
    values: dict[str, float] = field(default_factory=dict)  # parameter -> share, summing to 1
    note: str = ""  # how it was computed, or why it was not


def load_study(study_file: Path, name: str) -> optuna.Study | None:
    """The search's persisted Optuna study, or None if it has none."""
    if not study_file.is_file():
        return None
    backend = optuna.storages.journal.JournalFileBackend(str(study_file))
    try:
        return optuna.load_study(study_name=name, storage=optuna.storages.JournalStorage(backend))
    except KeyError:  # no study of that name in the file
        return None


def study_importances(study_file: Path, name: str) -> Importance:
    """PED-ANOVA importance of each searched hyperparameter for a low val_bpc."""
    study = load_study(study_file, name)
    if study is None:
        return Importance(note=f"not computed: no Optuna study {name!r} in {study_file.name}")
    finished = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(finished) < MIN_TRIALS:
        return Importance(
            note=f"not computed: {len(finished)} finished trial(s), at least {MIN_TRIALS} needed"
        )
    if len({t.value for t in finished}) < 2:
        return Importance(note="not computed: every trial reached the same value")
    quantile = min(0.5, max(0.1, TOP_TRIALS / len(finished)))
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        evaluator = optuna.importance.PedAnovaImportanceEvaluator(target_quantile=quantile)
        values = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (ValueError, RuntimeError) as error:
        return Importance(note=f"not computed: {str(error).splitlines()[0]}")
    finally:
        optuna.logging.set_verbosity(previous)
    return Importance(
        values={name: float(v) for name, v in values.items()},
        note=f"PED-ANOVA over {len(finished)} finished trials (top {quantile:.0%} against all)",
    )
