"""Warm starts: configurations known to be good, run before the sampler's own suggestions.

    points = warm_points(space, defaults=True, folder="runs/irc-20261129-101500", top=3,
                         fit=Passes(train_chars=2_340_000, trial_s=296.0))

Two sources, in this order:

1. `--warm-start FOLDER`: the `top` best configurations of an earlier search (any corpus),
   read from its trials.parquet.
2. The documented defaults below, unless `--no-warm-start-defaults`; a budget that lets a
   trial read the text many times puts a wider network before them (`long_horizon_start`), and
   a budget that grows it, a deeper one of the same weights too (`long_horizon_starts`).

Both are fitted to the text and the budget (`fit_regularisers`): what a configuration needs
against overfitting depends on how many passes over the training text a trial can make, which
the text's length, a trial's time and the configuration's speed decide. A network that sees
every character once cannot overfit and learns fastest without dropout or weight decay; one that
sees it twenty times memorises it without. The speeds are measured on the machine the search
runs on, before its budget starts (`rule_points` lists what to measure, `Passes.speeds` holds
the result; `search.engine.tuning.measure_speeds`): the same budget is three times the passes on
a machine three times as fast. Without a measurement the rule reads the speeds of the machine its
constants were chosen on (`DEFAULT_CHARS_PER_S`, `WIDE_LADDER`), or, for an earlier search's
configuration, the speed that search recorded.

Points outside the search space are dropped (a range was narrowed), duplicates too. Each goes
to Optuna's `enqueue_trial` through Tune's `points_to_evaluate`, so the sampler learns from
their results like from any other trial's.

`mutate` makes a neighbour of a configuration: the search's way to explore around the best one
so far (`search.engine.adapters.BudgetAwareOptunaSearch`) besides TPE's own suggestions.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from model.errors import ConfigError
from model.lstm import ModelConfig
from search.folder.space import HYPERPARAMETERS, OFF, PARAMETERS, SearchSpace
from search.folder.store import TRIALS, SearchFolder

# Known-good starting points (see docs/search.md, "How the defaults were chosen"). The first is
# karpathy/char-rnn's default network (2 x 128 LSTM, 50 streams of 50 characters) at a
# learning rate fit for short budgets: at 2e-3, its own default, it learns far more slowly in
# the minutes a search gives one trial. The others trade width for depth and speed.
DEFAULT_WARM_STARTS: tuple[dict[str, Any], ...] = (
    {"num_layers": 2, "hidden_size": 128, "dropout": 0.0, "seq_len": 50, "batch_size": 50,
     "lr": 8e-3},
    {"num_layers": 1, "hidden_size": 256, "seq_len": 64, "batch_size": 32, "lr": 8e-3},
    {"num_layers": 2, "hidden_size": 256, "dropout": 0.1, "seq_len": 100, "batch_size": 64,
     "lr": 5e-3},
)  # fmt: skip
WARM_KEYS = HYPERPARAMETERS
# Training characters per second of each default on one CPU thread (2 x 128, 1 x 256, 2 x 256;
# 2-core x86 machine, 2026-11-30, Spanish Bible text): how many passes a trial can make.
DEFAULT_CHARS_PER_S = (22_700, 21_000, 8_400)
# Measured: 1 x 256 on the 1.05 M-character Spanish Bible, 280 s on one thread (5.3 passes),
# ended at 1.882 bpc without dropout and 1.897 with 0.25: at a few passes dropout only slows.
# The long-horizon start: when a trial can read the text many times, a wider network with
# dropout learns further than the defaults, only later. Measured (benchmarks/bench_width.py,
# Spanish Bible, 1200 s search, 2/3 of a core each): 1 x 512 with dropout 0.35 ended at 1.810
# bpc and still falling, after 4.7 passes; 1 x 256 with 0.27 was best at 1.826 and then rose;
# 2 x 256 with 0.3 was at 1.881. At 44 s it was the worst of the three (2.77 against 2.30).
WIDE_START: dict[str, Any] = {"num_layers": 1, "hidden_size": 512, "seq_len": 64,
                              "batch_size": 32, "lr": 5e-3}  # fmt: skip
WIDE_CHARS_PER_S = 5_500  # measured as DEFAULT_CHARS_PER_S
# It grows with the budget. In an hour's search of the Bible, 1 x 512 (20 passes, dropout 0.44)
# stayed at 1.75 bpc from a third of the hour on; trained for the same hour side by side
# (benchmarks/bench_width.py --budget 3600, one thread each), 1 x 768 with dropout 0.33 (10
# passes) ended at 1.705 and 1 x 1024 with 0.3 (6 passes) at 1.700, the 768 ahead at every
# report before the end. The ladder: (hidden size, training characters a second on one CPU
# thread, learning rate) of one-layer networks like WIDE_START, speeds measured as
# DEFAULT_CHARS_PER_S (2026-11-30).
WIDE_LADDER: tuple[tuple[int, int, float], ...] = (
    (512, WIDE_CHARS_PER_S, 5e-3),
    (768, 2_660, 5e-3),
    (1024, 1_520, 4e-3),
)
# The first of the ladder runs when a trial can train it on this many characters, whatever the
# text's length: a wider network overtakes the narrow ones once it has learnt enough, which
# takes characters read, not passes (passes decide its dropout). Measured with
# benchmarks/bench_width.py at 20 minutes, one thread each: on Monte Cristo's 2.34 M training
# characters 1 x 512 (dropout 0.15) drew level with 1 x 256 after about 2.2 M characters (400 s)
# and ended 0.12 bpc below it, at 1.662 against 1.780, after 6.6 M (2.8 passes); on the 0.95 M
# of the Bible 1 x 512 with dropout 0.35 overtook after about 4 M (4 passes).
WIDE_MIN_CHARS = 4_000_000
# Where the budget grows the long-horizon start wider than the ladder's first width (it can still
# read the text GROW_PASSES times as a wider network: what the network can hold limits it, not
# how fast it learns), the budget bets on two shapes: the same recurrent weights in one more
# layer (`deeper`) run beside it from the start, and the endgame gives the cores to whichever
# leads (search.engine.adapters.RecordingASHA). Measured on the Spanish Bible at an hour
# (benchmarks/bench_width.py --budget 3600): 2 x 512 learnt sooner than 1 x 1024 (0.02 to 0.13
# ahead until the last quarter) and ended level on one thread each (1.696 against 1.698); on
# both threads for the hour 2 x 512 ended at 1.678, where 1 x 1024 overfitted from 2,076 s on
# and ended at 1.723 (best 1.705). At 20 minutes, where the ladder does not grow, one layer was
# ahead: 1.674 against 2 x 384's 1.805 on Monte Cristo, level (1.867 both) on the Python library.
DEEPER_ROUND = 32  # the deeper bet's width is a multiple of this
GROW_PASSES = 6.0  # a wider one replaces it when it can still read the text this often
WIDE_CAPACITY = 4.0  # parameters against 1 x 256: it overfits in about a quarter of the passes
FREE_PASSES = 4.0  # up to this many passes over the training text: no dropout
DROPOUT_PER_DOUBLING = 0.1  # then this much more for every doubling of the passes
MAX_DROPOUT = 0.5
# Where dropout begins, weight decay too (AdamW's, decoupled from the gradient). Measured
# (benchmarks/bench_width.py --budget 1800, three networks side by side on 2 cores, 83a8d11):
# 1 x 512 with the rule's dropout ended at 1.742 bpc on the Spanish Bible and at 1.650 on the
# Python library's 1 M cut; with weight decay 0.1 besides, at 1.725 and 1.608. It is the only
# regulariser a one-layer network has besides the dropout on its output.
FIT_WEIGHT_DECAY = 0.1


@dataclass(frozen=True)
class Passes:
    """What decides how often a trial can read the training text."""

    train_chars: int  # characters of the training text
    trial_s: float  # training seconds of a trial that runs to the end of the budget
    # Training characters a second of each configuration on this machine, by `speed_key`
    # (measured by the search before its budget starts); one missing: its reference speed.
    speeds: Mapping[str, float] = field(default_factory=dict)

    def chars(self, chars_per_s: float) -> float:
        """Characters a trial trains on at `chars_per_s`."""
        return chars_per_s * self.trial_s

    def of(self, chars_per_s: float) -> float:
        """Passes over the training text a trial makes at `chars_per_s`."""
        return self.chars(chars_per_s) / max(1, self.train_chars)

    def speed(self, point: dict[str, Any], reference: float) -> float:
        """`point`'s measured speed, else `reference`."""
        return self.speeds.get(speed_key(point), reference)

    def of_point(self, point: dict[str, Any], reference: float) -> float:
        """The passes `point` makes: at its measured speed, else at `reference`."""
        return self.of(self.speed(point, reference))


def speed_key(point: dict[str, Any]) -> str:
    """What a configuration's training speed depends on, as a name: cell, layers x units,
    streams and window (learning rate and dropout cost nothing measurable)."""
    return (
        f"{point.get('cell', 'lstm')} {point['num_layers']}x{point['hidden_size']}"
        f" b{point['batch_size']} s{point['seq_len']}"
    )


def wide_point(width: int, lr: float) -> dict[str, Any]:
    """The long-horizon start at one width of `WIDE_LADDER` (before its dropout is fitted)."""
    return {**WIDE_START, "hidden_size": width, "lr": lr}


def rule_points(defaults: bool, folder: str | None = None, top: int = 3) -> list[dict[str, Any]]:
    """The configurations whose speed the warm-start rule reads (`warm_points`,
    `long_horizon_start`, `grown_space`): every width of the long-horizon ladder and the
    defaults (when they run), and the `top` best of an earlier search in `folder`."""
    points = [wide_point(width, lr) for width, _, lr in WIDE_LADDER] if defaults else []
    points += [*(top_configurations(folder, top) if folder else []),
               *(DEFAULT_WARM_STARTS if defaults else [])]  # fmt: skip
    unique: dict[str, dict[str, Any]] = {}
    for point in points:
        unique.setdefault(speed_key(point), point)
    return list(unique.values())


def fit_dropout(passes: float) -> float:
    """Dropout for a network that can read its training text `passes` times in a trial: none
    up to `FREE_PASSES`, then `DROPOUT_PER_DOUBLING` per doubling, at most `MAX_DROPOUT`."""
    if passes <= FREE_PASSES:
        return 0.0
    return round(min(MAX_DROPOUT, DROPOUT_PER_DOUBLING * math.log2(passes / FREE_PASSES)), 2)


def fit_weight_decay(passes: float) -> float:
    """Weight decay for a network that can read its training text `passes` times in a trial:
    none up to `FREE_PASSES` (nothing overfits yet, and it would only slow), then
    `FIT_WEIGHT_DECAY`."""
    return 0.0 if passes <= FREE_PASSES else FIT_WEIGHT_DECAY


def fit_regularisers(point: dict[str, Any], passes: float, space: SearchSpace) -> dict[str, Any]:
    """`point` with the dropout and weight decay that fit `passes` (`fit_dropout`,
    `fit_weight_decay`), each inside the space's range."""
    fitted = {"dropout": fit_dropout(passes), "weight_decay": fit_weight_decay(passes)}
    for name, value in fitted.items():
        low, high = getattr(space, name)
        fitted[name] = min(high, max(low, value))
    return {**point, **fitted}


def wide_network(fit: Passes, widest: int | None = None) -> tuple[int, int, float] | None:
    """The network of `WIDE_LADDER` (up to `widest` units) for a trial of `fit`: the first if
    it can train on `WIDE_MIN_CHARS` characters (else None), and each wider one in turn while
    it can still read the text `GROW_PASSES` times."""
    ladder = [w for w in WIDE_LADDER if widest is None or w[0] <= widest]

    def speed(w: tuple[int, int, float]) -> float:
        return fit.speed(wide_point(w[0], w[2]), w[1])

    if not ladder or fit.chars(speed(ladder[0])) < WIDE_MIN_CHARS:
        return None
    chosen = ladder[0]
    for wider in ladder[1:]:
        if fit.of(speed(wider)) < GROW_PASSES:
            break
        chosen = wider
    return chosen


def ruled_out(point: dict[str, Any], fit: Passes) -> bool:
    """Whether `point` is a width of `WIDE_LADDER` that `wide_network` cannot reach at the
    speeds in `fit`: a narrower width, measured, already fell short, and a wider network
    trains slower still. The search measures the ladder narrow to wide and stops there."""
    keys = [speed_key(wide_point(w, lr)) for w, _, lr in WIDE_LADDER]
    if speed_key(point) not in keys[1:]:
        return False
    for key, narrower in zip(keys[: keys.index(speed_key(point))], WIDE_LADDER, strict=False):
        if key not in fit.speeds:
            return False  # not measured yet
        if wide_network(fit, narrower[0]) != narrower:
            return True
    return False


def long_horizon_start(space: SearchSpace, fit: Passes | None) -> dict[str, Any] | None:
    """The budget's long-horizon bet, or None: `WIDE_START` as wide as the budget can train
    (`wide_network`), with the dropout and weight decay its size needs at the passes it makes
    (those of a network with `WIDE_CAPACITY` times the passes), inside `space`.

    Successive halving judges it at its first rung, where it is far behind what learns fast;
    the scheduler runs it to the end of the budget instead (`search.engine.adapters.RecordingASHA`),
    and only a plateau or the deadline ends it, like the single run it stands for.
    """
    wide = wide_network(fit, space.hidden_size[1]) if fit is not None else None
    if wide is None:
        return None
    width, chars_per_s, lr = wide
    point = wide_point(width, lr)
    passes = WIDE_CAPACITY * fit.of_point(point, chars_per_s)
    return fit_to_space(fit_regularisers(point, passes, space), space)


def recurrent_weights(layers: int, width: int, embed: int = ModelConfig.embed_dim) -> int:
    """Weights of `layers` stacked LSTM layers of `width` units over an `embed`-wide input,
    input and recurrent (biases left out): what a character costs to train, about."""
    return 4 * width * (embed + width) + (layers - 1) * 8 * width * width


def deeper(point: dict[str, Any], space: SearchSpace) -> dict[str, Any] | None:
    """`point` with one more layer, the widest multiple of `DEEPER_ROUND` units whose weights
    are no more than its own (`recurrent_weights`), the rest as it is; None if there is none
    or it is outside `space`."""
    layers = point["num_layers"] + 1
    limit = recurrent_weights(point["num_layers"], point["hidden_size"])
    widths = range(point["hidden_size"] // DEEPER_ROUND * DEEPER_ROUND, 0, -DEEPER_ROUND)
    width = next((w for w in widths if recurrent_weights(layers, w) <= limit), None)
    if width is None:
        return None
    return fit_to_space({**point, "num_layers": layers, "hidden_size": width}, space)


def long_horizon_starts(space: SearchSpace, fit: Passes | None) -> list[dict[str, Any]]:
    """The budget's long-horizon bets: `long_horizon_start`, and where the budget grew it wider
    than the ladder's first width, the same weights one layer deeper (`deeper`) beside it."""
    wide = long_horizon_start(space, fit)
    if wide is None:
        return []
    deep = deeper(wide, space) if wide["hidden_size"] > WIDE_LADDER[0][0] else None
    return [wide, deep] if deep else [wide]


def grown_space(space: SearchSpace, fit: Passes | None) -> SearchSpace:
    """`space` with the default width range grown to the widest network the budget can train
    (`wide_network`), so that the long-horizon start and the sampler can both go there. A range
    the user set stays as it is."""
    default = SearchSpace().hidden_size
    wide = wide_network(fit) if fit is not None else None
    if space.hidden_size != default or wide is None or wide[0] <= default[1]:
        return space
    return replace(space, hidden_size=(default[0], wide[0]))


def fit_to_space(point: dict[str, Any], space: SearchSpace) -> dict[str, Any] | None:
    """`point` as the space's define-by-run function would suggest it, or None if outside it.

    Only the parameters the space samples are kept (the cell only when more than one is
    searched); a constant must match the space's. A point without a dropout or weight decay
    (from a version before it) has none (`OFF`).
    """
    out: dict[str, Any] = {}
    point = {**OFF, **{k: v for k, v in point.items() if v is not None}}
    for p in PARAMETERS:
        value = point.get(p.name)
        if not p.sampled(space):
            if value is not None and value != p.constant(space):
                return None  # e.g. a GRU configuration in an LSTM-only space
            continue
        bounds = getattr(space, p.name)
        inside = value in bounds if p.kind == "choice" else (
            value is not None and bounds[0] <= value <= bounds[1]
        )  # fmt: skip
        if not inside:
            return None
        out[p.name] = value
    return out


MUTATED = 2  # parameters a mutation changes
LOG_STEP = math.log(1.5)  # a log-scale parameter moves by a factor of about 1.5 (one sigma)
LINEAR_STEP = 0.25  # a linear float moves by a quarter of its range (one sigma)


def mutate(point: dict[str, Any], space: SearchSpace, rng: random.Random) -> dict[str, Any]:
    """A neighbour of `point` (a configuration of the parameters `space` samples): `MUTATED` of
    them moved at random, staying inside the space. Layers move by one, a choice changes."""
    sampled = [p for p in PARAMETERS if p.sampled(space) and p.name in point]
    out = dict(point)
    for p in rng.sample(sampled, min(MUTATED, len(sampled))):
        bounds, value = getattr(space, p.name), point[p.name]
        if p.kind == "choice":
            out[p.name] = rng.choice([c for c in bounds if c != value] or [value])
            continue
        if p.log:
            moved = value * math.exp(rng.gauss(0.0, LOG_STEP))
        elif p.kind == "int":
            moved = value + rng.choice((-1, 1))
        else:
            moved = value + rng.gauss(0.0, LINEAR_STEP * (bounds[1] - bounds[0]))
        moved = min(bounds[1], max(bounds[0], moved))
        out[p.name] = round(moved) if p.kind == "int" else moved
    return out


def top_configurations(folder: str | Path, top: int) -> list[dict[str, Any]]:
    """The `top` best distinct configurations of the search in `folder`, best first."""
    return [{k: r[k] for k in WARM_KEYS if r[k] is not None} for r in top_rows(folder, top)]


def top_rows(folder: str | Path, top: int) -> list[dict[str, Any]]:
    """The trials table rows of the `top` best trials of the search in `folder`, best first."""
    store = SearchFolder(folder)
    path, table_file = store.path, store.path / TRIALS
    if not path.is_dir():
        raise ConfigError(f"search folder {path} does not exist")
    if not store.has_trials():
        raise ConfigError(f"folder {path} holds no search (no {TRIALS})")
    rows = store.trials().to_pylist()
    if rows and not set(WARM_KEYS) <= set(rows[0]):
        raise ConfigError(f"{table_file} is not a trials table of this project")
    scored = [r for r in rows if r.get("best_val_bpc") is not None]
    if not scored:
        raise ConfigError(f"search {path} has no trial with a validation result")
    scored.sort(key=lambda r: r["best_val_bpc"])
    return scored[:top]


def warm_points(
    space: SearchSpace,
    *,
    defaults: bool,
    folder: str | None = None,
    top: int = 3,
    fit: Passes | None = None,
) -> list[dict[str, Any]]:
    """The configurations to run first: the long-horizon starts if the budget allows them
    (`long_horizon_starts`), an earlier search's best, then the defaults, each with the dropout
    and weight decay that fit the passes over the text it can make (`fit`; None: as they are,
    and no long-horizon start)."""
    rows = top_rows(folder, top) if folder else []
    bets = long_horizon_starts(space, fit) if defaults else []
    candidates: Sequence[tuple[dict[str, Any], float | None]] = [
        *(({k: r[k] for k in WARM_KEYS if r[k] is not None}, r.get("chars_per_s")) for r in rows),
        *(zip(DEFAULT_WARM_STARTS, DEFAULT_CHARS_PER_S, strict=True) if defaults else []),
    ]
    points: list[dict[str, Any]] = list(bets)
    for candidate, chars_per_s in candidates:
        measured = fit is not None and speed_key(candidate) in fit.speeds
        if fit is not None and (chars_per_s or measured):  # inside the range --range gave
            passes = fit.of_point(candidate, chars_per_s or 0.0)
            candidate = fit_regularisers(candidate, passes, space)
        point = fit_to_space(candidate, space)
        if point is not None and not any(_same(point, p) for p in points):
            points.append(point)
    return points


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.keys() == b.keys() and is_point(a, b)


def is_point(config: dict[str, Any], point: dict[str, Any]) -> bool:
    """Whether a trial's `config` (which may hold more keys) is the configuration `point`."""
    return all(
        k in config and (math.isclose(config[k], v) if isinstance(v, float) else config[k] == v)
        for k, v in point.items()
    )
