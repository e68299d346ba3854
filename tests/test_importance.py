"""Hyperparameter importance from a real Optuna journal: computed where there is a signal, and
the parameter that decides the value comes first; otherwise a note says why not."""

import optuna
import pytest

from search.reports.importance import MIN_TRIALS, study_importances


def journal(path, name: str, values: list[tuple[float, float, float]]) -> None:
    """A study whose trials' value is decided by `lr` alone (`hidden_size` is noise)."""
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    study = optuna.create_study(study_name=name, storage=storage)
    lr = optuna.distributions.FloatDistribution(1e-3, 3e-2, log=True)
    hidden = optuna.distributions.IntDistribution(64, 512, log=True)
    for lr_value, hidden_value, value in values:
        study.add_trial(optuna.trial.create_trial(
            params={"lr": lr_value, "hidden_size": int(hidden_value)},
            distributions={"lr": lr, "hidden_size": hidden}, value=value))  # fmt: skip


def test_the_parameter_that_decides_the_value_comes_first(tmp_path):
    lrs = [1e-3 * 1.25**i for i in range(16)]
    hiddens = [64, 400, 100, 300, 128, 512, 80, 256] * 2  # no relation to the value
    rows = [(lr, h, 3.0 - 0.1 * i) for i, (lr, h) in enumerate(zip(lrs, hiddens, strict=True))]
    journal(tmp_path / "optuna.journal", "s", rows)
    found = study_importances(tmp_path / "optuna.journal", "s")
    assert found.note.startswith("PED-ANOVA over 16 finished trials")
    assert sum(found.values.values()) == pytest.approx(1)
    assert found.values["lr"] > found.values["hidden_size"]


def test_too_few_trials_or_no_study_say_why_not(tmp_path):
    journal(tmp_path / "optuna.journal", "s", [(1e-3, 64, 2.0)] * (MIN_TRIALS - 1))
    few = study_importances(tmp_path / "optuna.journal", "s")
    assert not few.values and few.note.startswith(f"not computed: {MIN_TRIALS - 1} finished")
    other = study_importances(tmp_path / "optuna.journal", "another")
    assert not other.values and "no Optuna study 'another'" in other.note
