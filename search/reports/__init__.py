"""Reading searches, finished or running: compressor baselines, the predictability table,
plots, importances, the live board and status, and the comparison report. Imports
`search.folder` only."""
