"""Running a search on Ray Tune: `tuning.run_search` and what it wires together (trainable,
Optuna searcher, ASHA scheduler, warm starts, W&B sink, cluster address; `compat` is the one
seam to the libraries' internals). Imports `search.folder` and `search.reports`."""
