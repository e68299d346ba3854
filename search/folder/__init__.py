"""What a search is and what it keeps: config and presets, the space, the budget's schedule, the
folder's files (`store`) and the rows of its tables (`results`). Imports no other package of
`search`."""
