"""Hyperparameter search: spaces, Optuna + ASHA on Ray Tune, result tables, CLI and reports."""
