#!/usr/bin/env bash
# The controlled studies behind README's "The write-up's conclusions, measured", on 2 cores.
#   bash benchmarks/studies.sh [STORAGE]      # about 30 minutes; studies land in STORAGE (runs)
# Every arm trains the same 1.5 M characters (3 seeds) of the first 2.6 M characters of the text,
# 5% of it held out; the data-length studies keep that validation text and vary how much of
# the rest is trained on.
set -euo pipefail
cd "$(dirname "$0")/.."
storage="${1:-runs}"
common=(--max-chars 2600000 --val-fraction 0.05 --budget-chars 1500000 --seeds 3 --storage "$storage")
for factor in cell num_layers hidden_size seq_len batch_size; do
    python -m search.study "$factor" --corpus monte-cristo "${common[@]}" --name "study-$factor-mc"
done
for corpus in irc monte-cristo; do
    python -m search.study max_chars --corpus "$corpus" "${common[@]}" \
        --values 100000,400000,1600000 --name "study-max_chars-$corpus"
done
