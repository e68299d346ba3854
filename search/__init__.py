"""Hyperparameter search: spaces, Optuna + ASHA on Ray Tune, result tables, CLI and reports.

Four packages, each importing only the ones above it in this list, and the command lines:

- `search.folder`: what a search is and what it keeps. The config and its presets, the space,
  the budget's schedule, the folder's files (`store`) and the rows of its tables (`results`).
- `search.reports`: reading finished and running searches. Compressor baselines, the
  predictability table, plots, importances, the live board (`progress`, `status`) and the
  comparison report (`report`, `render`).
- `search.engine`: running one. `tuning.run_search` wires the Tune trainable (`trainable`), the
  Optuna searcher and ASHA scheduler (`adapters`, `builders`, `promotion`), the warm starts
  (`warm`), the W&B sink and the cluster address; `compat` is the one seam to Ray's, Optuna's
  and W&B's internals.
- `search.studies`: controlled one-factor studies on the same engine.
- Command lines (thin): `python -m search.run`, `search.status`, `search.compare`,
  `search.demo`, `search.study`, `search.sweep_train`.

A search folder started before this layout holds Tune state pickled under the old flat names
(`search.adapters.RecordingASHA`, `search.trainable.train_trial`, ...); `_OldNames` lets
`--resume` load it.
"""

import importlib
import importlib.abc
import importlib.util
import sys

# Where each module of the flat layout (up to 2026-11-30) lives now.
MOVED = {
    **{m: f"engine.{m}" for m in ("adapters", "builders", "cluster", "compat", "promotion",
                                  "trainable", "tuning", "wandb_sink", "warm")},
    **{m: f"folder.{m}" for m in ("config", "presets", "results", "schedule", "space", "store")},
    **{m: f"reports.{m}" for m in ("baselines", "importance", "plots", "predictability",
                                   "progress", "render", "report", "searches")},
    "study_report": "studies.report",
}  # fmt: skip


class _OldNames(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports `search.OLD` as the module it moved to (the same module object)."""

    def find_spec(self, name, path=None, target=None):  # the finder protocol's signature
        old = name.removeprefix(f"{__name__}.")
        if old == name or old not in MOVED:
            return None
        return importlib.util.spec_from_loader(name, self)

    def create_module(self, spec):
        return importlib.import_module(f"{__name__}.{MOVED[spec.name.rsplit('.', 1)[1]]}")

    def exec_module(self, module):
        pass  # already executed under its new name


if not any(isinstance(finder, _OldNames) for finder in sys.meta_path):
    sys.meta_path.append(_OldNames())
