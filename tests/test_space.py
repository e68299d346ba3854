"""The search space is declared once: every consumer follows `search.folder.space.PARAMETERS`.

Adding a hyperparameter is one entry in PARAMETERS (and its training setting in `model`); this
walks the table and checks each place that must know of it.
"""

from dataclasses import replace

import pyarrow as pa
import pytest
from optuna.trial import FixedTrial

from corpora import load_corpus
from model.config import FLAT_KEYS, run_config_from_flat, run_config_to_flat
from model.errors import ConfigError
from search.engine.builders import pbt_mutations, pbt_space, trial_seconds
from search.engine.trainable import MUTABLE
from search.engine.tuning import long_horizon_line, measure_rule_speeds, passes
from search.engine.warm import (
    DEFAULT_CHARS_PER_S,
    DEFAULT_WARM_STARTS,
    FIT_WEIGHT_DECAY,
    FREE_PASSES,
    MAX_DROPOUT,
    WIDE_LADDER,
    WIDE_START,
    Passes,
    deeper,
    fit_dropout,
    fit_to_space,
    fit_weight_decay,
    grown_space,
    long_horizon_start,
    long_horizon_starts,
    recurrent_weights,
    rule_points,
    ruled_out,
    speed_key,
    warm_points,
    wide_point,
)
from search.folder.config import SearchConfig, search_argv
from search.folder.results import CURVES_SCHEMA, TRIALS_SCHEMA
from search.folder.schedule import plan_schedule
from search.folder.space import (
    GPU_SPACE,
    HYPERPARAMETERS,
    PARAMETERS,
    DefineByRun,
    SearchSpace,
    load_space_file,
    searched,
    space_from_mapping,
    space_to_mapping,
    wandb_sweep,
)
from search.reports.predictability import predictability_schema
from search.reports.render import BEST_COLUMNS, format_ranking
from search.run import build_parser as run_parser
from search.run import config_from_args

WIDEST_FOR_AN_HOUR = 768  # one-layer width of an hour's long-horizon start on 0.95 M chars

# A space where every parameter varies (two cells, up to three layers).
WIDE = space_from_mapping({"cell": ["lstm", "gru"], "num_layers": [1, 3]})
POINT = {"num_layers": 2, "hidden_size": 100, "dropout": 0.2, "weight_decay": 0.05,
         "seq_len": 64, "lr": 3e-3, "batch_size": 32, "cell": "gru"}  # fmt: skip


def test_the_point_covers_the_table():
    assert set(POINT) == set(HYPERPARAMETERS) == {p.name for p in PARAMETERS}


@pytest.mark.parametrize("param", PARAMETERS, ids=lambda p: p.name)
def test_every_consumer_knows_every_parameter(param):
    name = param.name
    # A training setting of `model` that a trial's config sets.
    assert name in FLAT_KEYS
    # The default range's ends are settings `model` accepts.
    lstm = {**POINT, "cell": "lstm", "corpus": "irc"}
    for end in getattr(SearchSpace(), name):
        assert run_config_to_flat(run_config_from_flat({**lstm, name: end}))[name] == end
    # Optuna's define-by-run function samples it (in a space where it varies).
    trial = FixedTrial(POINT)
    constants = DefineByRun(WIDE)(trial)
    assert name in trial.params and name not in constants
    # W&B's sweep, the plot axes, the result tables and the reports carry it.
    assert name in wandb_sweep(WIDE)["parameters"]
    assert name in dict(searched(WIDE))
    kept = pa.Table.from_pylist([{"trial_id": "t", name: POINT[name]}], schema=TRIALS_SCHEMA)
    assert kept.column(name)[0].as_py() == pytest.approx(POINT[name], rel=1e-6)
    assert name in [h for h, _ in BEST_COLUMNS]
    schema = predictability_schema((2.0,), [10])
    assert name in schema.names and f"importance_{name}" in schema.names
    # Warm starts keep it; --range overrides it and the argv serializer writes it back.
    assert fit_to_space(POINT, WIDE)[name] == POINT[name]
    changed = {name: ["lstm", "rnn"]} if param.kind == "choice" else {name: [1, 2]}
    if name in ("dropout", "lr"):
        changed = {name: [0.1, 0.2]}
    space = space_from_mapping(changed)
    argv = search_argv(SearchConfig(corpus="irc", space=space))
    assert f"{name}={','.join(map(str, changed[name]))}" in argv
    assert space_to_mapping(space)[name] == changed[name]


def test_the_command_of_a_search_reads_back_as_the_same_search():
    """`search_argv` writes the commands that resume and reproduce a search: read back by
    search.run they give the same settings, to the last digit and with a GPU's ranges."""
    gpu_ranges = space_from_mapping(GPU_SPACE)
    for config in (
        SearchConfig(corpus="irc", endgame_share=1 / 6, time_budget_s=1_036_800.0),
        SearchConfig(corpus="irc", gpus_per_trial=1.0,
                     space=space_from_mapping({"batch_size": [16, 128]}, gpu_ranges)),
        SearchConfig(corpus="irc", gpus_per_trial=1.0, space=gpu_ranges),
    ):  # fmt: skip
        back = config_from_args(run_parser().parse_args(search_argv(config)))
        assert replace(back, name=config.name) == config, search_argv(config)


def test_constants_hold_everywhere():
    # Every network can use dropout (on each layer's output): one layer samples it too.
    trial = FixedTrial({**POINT, "num_layers": 1})
    DefineByRun(WIDE)(trial)
    assert trial.params["dropout"] == POINT["dropout"]
    one_layer = space_from_mapping({"num_layers": [1, 1]})
    assert "dropout" in dict(searched(one_layer)) and "num_layers" not in dict(searched(one_layer))
    sampled = {k: v for k, v in POINT.items() if k != "cell"}  # one cell: a constant
    assert fit_to_space({**POINT, "num_layers": 1, "cell": "lstm"}, one_layer) == {
        **sampled,
        "num_layers": 1,
    }
    # A range that is just its fixed value is a constant: no dropout searched, none given.
    no_dropout = space_from_mapping({"dropout": [0.0, 0.0]})
    trial = FixedTrial({**POINT, "cell": "lstm"})
    assert DefineByRun(no_dropout)(trial)["dropout"] == 0.0 and "dropout" not in trial.params
    assert fit_to_space({**POINT, "dropout": 0.2, "cell": "lstm"}, no_dropout) is None
    # A point from before every network had a dropout has none.
    old = {k: v for k, v in POINT.items() if k != "dropout"}
    assert fit_to_space({**old, "cell": "lstm"}, WIDE)["dropout"] == 0.0
    # One cell: a constant, not a choice Optuna sees.
    trial = FixedTrial(POINT)
    assert DefineByRun(SearchSpace())(trial)["cell"] == "lstm" and "cell" not in trial.params


def test_ranking_has_a_column_per_parameter():
    row = {name: None for name in TRIALS_SCHEMA.names}
    row.update(POINT, trial_id="t1", status="cut", best_val_bpc=2.0, chars_trained=1, train_s=1.0)
    text = format_ranking(pa.Table.from_pylist([row], schema=TRIALS_SCHEMA))
    header = text.splitlines()[0].split()
    assert set(HYPERPARAMETERS) <= set(header)
    assert "val_chars" in CURVES_SCHEMA.names


def test_overrides_from_strings_files_and_old_names(tmp_path):
    space = space_from_mapping({"hidden_size": "128,512", "cells": "lstm,gru"})  # old name
    assert space.hidden_size == (128, 512) and space.cell == ("lstm", "gru")
    (tmp_path / "space.toml").write_text("lr = [1e-3, 3e-3]\nbatch_size = [32, 32]\n")
    assert load_space_file(tmp_path / "space.toml").lr == (1e-3, 3e-3)
    (tmp_path / "space.yaml").write_text("seq_len: [64, 128]\n")
    assert load_space_file(tmp_path / "space.yaml", SearchSpace()).seq_len == (64, 128)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"hiden_size": [1, 2]}, "unknown search-space field"),
        ({"cell": "lstm,transformer"}, "cell must be among"),
        ({"hidden_size": [0, 8]}, "must start at 1"),
        ({"lr": [0.0, 1e-2]}, "log scale"),
        ({"dropout": [0.0, 1.0]}, "below 1"),
        ({"seq_len": [64]}, r"\[low, high\]"),
        ({"num_layers": "one,two"}, "num_layers"),
    ],
)
def test_bad_overrides_are_one_clear_error(overrides, message):
    with pytest.raises(ConfigError, match=message):
        space_from_mapping(overrides)


def test_dropout_grows_with_the_passes_a_trial_can_make_over_the_text():
    assert fit_dropout(1.0) == fit_dropout(FREE_PASSES) == 0.0
    assert 0 < fit_dropout(2 * FREE_PASSES) < fit_dropout(8 * FREE_PASSES) <= MAX_DROPOUT
    assert fit_dropout(1e6) == MAX_DROPOUT


def test_weight_decay_starts_where_dropout_does():
    assert fit_weight_decay(1.0) == fit_weight_decay(FREE_PASSES) == 0.0
    assert fit_weight_decay(1.01 * FREE_PASSES) == fit_weight_decay(1e6) == FIT_WEIGHT_DECAY
    assert 0 < FIT_WEIGHT_DECAY <= SearchSpace().weight_decay[1]  # the rule's value is searched
    # 20k characters a second for 300 s over 1 M characters: six passes.
    assert Passes(train_chars=1_000_000, trial_s=300.0).of(20_000) == pytest.approx(6.0)


def test_a_budget_that_reads_the_text_many_times_starts_a_wider_regularised_network():
    space = SearchSpace()
    bible_20_min = Passes(train_chars=945_000, trial_s=1196.0)  # 7 passes at 1 x 512's speed
    wide = long_horizon_start(space, bible_20_min)
    regularised = {"dropout": pytest.approx(0.28, abs=0.01), "weight_decay": FIT_WEIGHT_DECAY}
    assert wide == {**WIDE_START, **regularised}
    assert long_horizon_start(space, Passes(945_000, 3600.0))["dropout"] > wide["dropout"]
    assert long_horizon_start(space, Passes(945_000, 296.0)) is None  # 5 minutes: 1.6 M chars
    # Characters trained decide whether it runs, not passes: 20 minutes on Monte Cristo's 2.34 M
    # training characters are 2.8 passes at 1 x 512's speed (6.6 M characters), so it runs,
    # with the dropout of those passes; 5 minutes are not enough on any text.
    novel_20_min = long_horizon_start(space, Passes(2_340_000, 1196.0))
    assert novel_20_min == {**WIDE_START, **regularised, "dropout": pytest.approx(0.15, abs=0.01)}
    assert long_horizon_start(space, Passes(100_000_000, 296.0)) is None
    unregularised = long_horizon_start(space, Passes(100_000_000, 1196.0))  # under 4 passes x 4
    assert unregularised["dropout"] == unregularised["weight_decay"] == 0.0
    assert long_horizon_start(space, None) is None  # not fitted: as documented, no bet
    assert long_horizon_start(space_from_mapping({"hidden_size": [64, 256]}), bible_20_min) is None
    assert warm_points(space, defaults=False, fit=bible_20_min) == []  # a default too


def test_the_long_horizon_start_grows_with_the_budget_and_the_default_range_with_it():
    space = SearchSpace()
    bible_hour = Passes(train_chars=945_000, trial_s=3596.0)
    grown = grown_space(space, bible_hour)
    assert grown.hidden_size == (space.hidden_size[0], WIDEST_FOR_AN_HOUR)
    assert {k: v for k, v in vars(grown).items() if k != "hidden_size"} == {
        k: v for k, v in vars(space).items() if k != "hidden_size"
    }
    wide = long_horizon_start(grown, bible_hour)
    assert wide["hidden_size"] == WIDEST_FOR_AN_HOUR and wide["num_layers"] == 1
    assert 0.2 <= wide["dropout"] <= 0.4
    # In the range as it was, the widest that fits it; 20 minutes keep it and the range.
    assert long_horizon_start(space, bible_hour)["hidden_size"] == 512
    bible_20_min = Passes(train_chars=945_000, trial_s=1196.0)
    assert grown_space(space, bible_20_min) == space
    assert long_horizon_start(grown_space(space, bible_20_min), bible_20_min) == {
        **WIDE_START,
        "dropout": pytest.approx(0.28, abs=0.01),
        "weight_decay": FIT_WEIGHT_DECAY,
    }
    # A range the user set stays; so does everything without a fitted budget.
    narrowed = space_from_mapping({"hidden_size": [64, 256]})
    assert grown_space(narrowed, bible_hour) == narrowed
    assert grown_space(space, None) == space


def test_a_budget_that_grows_the_long_horizon_start_bets_on_a_deeper_one_of_its_weights_too():
    bible_hour = Passes(train_chars=945_000, trial_s=3596.0)
    grown = grown_space(SearchSpace(), bible_hour)
    wide, deep = long_horizon_starts(grown, bible_hour)
    assert wide == long_horizon_start(grown, bible_hour)
    assert deep == {**wide, "num_layers": 2, "hidden_size": 448}  # dropout and rate as they are
    # As wide as keeps the weights: 32 units more would cost more than the one layer does.
    assert recurrent_weights(2, 448) <= recurrent_weights(1, 768) < recurrent_weights(2, 480)
    assert warm_points(grown, defaults=True, fit=bible_hour)[:2] == [wide, deep]
    said = "; the first 2 (1 x 768 and 2 x 448) are long-horizon starts that run unjudged"
    assert long_horizon_line([wide, deep], slots=4) == said
    assert long_horizon_line([wide, deep], 2) == f"{said}, holding all 2 slots to the endgame"
    assert deeper({**wide, "hidden_size": 10}, grown) is None  # no multiple of 32 fits
    # Twenty minutes do not grow it: one bet, as before. Nor does a range the user narrowed.
    bible_20_min = Passes(train_chars=945_000, trial_s=1196.0)
    assert long_horizon_starts(SearchSpace(), bible_20_min) == [
        WIDE_START | {"dropout": 0.28, "weight_decay": FIT_WEIGHT_DECAY}
    ]
    assert long_horizon_starts(SearchSpace(), Passes(945_000, 296.0)) == []
    assert len(long_horizon_starts(SearchSpace(), bible_hour)) == 1  # the range stops it at 512
    # A deeper network the space cannot hold is no bet.
    one_layer = replace(grown, num_layers=(1, 1))
    assert long_horizon_starts(one_layer, bible_hour) == [long_horizon_start(one_layer, bible_hour)]
    widest = {**wide, "hidden_size": 1024}
    assert deeper(widest, grown)["hidden_size"] == 576
    assert deeper(widest, replace(grown, hidden_size=(64, 512))) is None  # 576 units: outside


def test_the_rule_reads_the_speeds_measured_on_this_machine():
    space = SearchSpace()
    probes = rule_points(defaults=True)
    keys = [speed_key(p) for p in probes]
    assert len(set(keys)) == len(keys) == len(WIDE_LADDER) + len(DEFAULT_WARM_STARTS)
    assert rule_points(defaults=False) == []
    # A machine three times as fast as the reference: 20 minutes on the Bible are 20 passes
    # at 1 x 512, so the wider 1 x 768 runs, and every default gets more dropout.
    here = Passes(945_000, 1196.0)
    fast = Passes(945_000, 1196.0, speeds={speed_key(p): 3 * speed_of(p) for p in probes})
    assert long_horizon_start(grown_space(space, here), here)["hidden_size"] == 512
    assert grown_space(space, fast).hidden_size[1] == WIDEST_FOR_AN_HOUR
    assert long_horizon_start(grown_space(space, fast), fast)["hidden_size"] == WIDEST_FOR_AN_HOUR
    slow_points, fast_points = (warm_points(space, defaults=True, fit=f)[1:] for f in (here, fast))
    assert all(f["dropout"] > s["dropout"] for s, f in zip(slow_points, fast_points, strict=True))


def test_the_search_measures_the_ladder_only_as_far_as_it_can_climb(corpus_dir, capsys):
    smoke = SearchConfig(corpus="monte-cristo", data_dir=str(corpus_dir), max_chars=200_000,
                         time_budget_s=75.0)  # fmt: skip
    corpus = load_corpus(smoke.corpus_config())
    small = {**DEFAULT_WARM_STARTS[0], "hidden_size": 32}
    ladder = [wide_point(w, lr) for w, _, lr in WIDE_LADDER]
    # 75 s cannot train 1 x 512 on 4 M characters: the wider ones are not measured.
    speeds = measure_rule_speeds(smoke, corpus, [*ladder, small])
    assert set(speeds) == {speed_key(ladder[0]), speed_key(small)} and min(speeds.values()) > 0
    assert "measuring the training speed" in capsys.readouterr().out
    assert passes(smoke, len(corpus.train_ids), speeds) == Passes(
        len(corpus.train_ids), trial_seconds(smoke, plan_schedule(75.0, 1)), speeds
    )


def test_a_width_the_narrower_ones_rule_out_is_neither_measured_nor_chosen():
    ladder = [wide_point(w, lr) for w, _, lr in WIDE_LADDER]
    keys = [speed_key(p) for p in ladder]
    bible_hour = Passes(945_000, 3596.0)
    assert not any(ruled_out(p, bible_hour) for p in ladder)  # nothing measured yet
    assert not ruled_out(DEFAULT_WARM_STARTS[0], bible_hour)  # not of the ladder
    # 1 x 512 measured too slow to train on 4 M characters in the hour: no wider one runs.
    slow = Passes(945_000, 3596.0, speeds={keys[0]: 1_000})
    assert [ruled_out(p, slow) for p in ladder] == [False, True, True]
    # 1 x 768 reads the text only 5 times: 1 x 1024, slower, cannot read it 6.
    short = Passes(945_000, 3596.0, speeds={keys[0]: 5_500, keys[1]: 1_300})
    assert [ruled_out(p, short) for p in ladder] == [False, False, True]
    assert long_horizon_start(grown_space(SearchSpace(), short), short)["hidden_size"] == 512
    # A wider width measured faster than a narrower one that fell short (a noisy measurement)
    # is not chosen either: the ladder is climbed while each step reaches its passes.
    noisy = Passes(945_000, 3596.0, speeds={keys[0]: 5_500, keys[1]: 1_300, keys[2]: 3_000})
    assert long_horizon_start(grown_space(SearchSpace(), noisy), noisy)["hidden_size"] == 512


def speed_of(point: dict) -> float:
    """The reference machine's speed of a rule point (the tables in search.engine.warm)."""
    ladder = {speed_key(wide_point(w, lr)): s for w, s, lr in WIDE_LADDER}
    table = dict(zip(map(speed_key, DEFAULT_WARM_STARTS), DEFAULT_CHARS_PER_S, strict=True))
    return {**ladder, **table}[speed_key(point)]


def test_warm_starts_fit_the_text_and_the_budget():
    space = SearchSpace()
    as_they_are = warm_points(space, defaults=True)
    assert [p["dropout"] for p in as_they_are] == [w.get("dropout", 0.0) for w in
                                                   DEFAULT_WARM_STARTS]  # fmt: skip
    big_text = warm_points(space, defaults=True, fit=Passes(100_000_000, 300.0))
    small_text = warm_points(space, defaults=True, fit=Passes(500_000, 3600.0))
    # Every character seen once: neither dropout nor weight decay.
    assert all(p["dropout"] == p["weight_decay"] == 0.0 for p in big_text)
    # Seen dozens of times: regularised, both ways.
    assert all(p["dropout"] > 0.2 and p["weight_decay"] == FIT_WEIGHT_DECAY for p in small_text)
    narrowed = space_from_mapping({"dropout": [0.0, 0.1], "weight_decay": [0.0, 0.05]})
    fitted = warm_points(narrowed, defaults=True, fit=Passes(500_000, 3600.0))  # within --range,
    assert [(p["dropout"], p["weight_decay"]) for p in fitted] == [(0.1, 0.05)] * 4  # none dropped
    switched_off = space_from_mapping({"weight_decay": [0.0, 0.0]})  # not searched: not set
    assert all("weight_decay" not in p for p in warm_points(
        switched_off, defaults=True, fit=Passes(500_000, 3600.0)))  # fmt: skip
    # Dozens of passes: a wider network first, the long-horizon start.
    assert small_text[0] == long_horizon_start(space, Passes(500_000, 3600.0))
    assert small_text[0]["hidden_size"] == 2 * small_text[2]["hidden_size"] == 512
    regularisers = ("dropout", "weight_decay")
    for big, small in zip(big_text, small_text[1:], strict=True):  # only the regularisers change
        assert {k: v for k, v in big.items() if k not in regularisers} == {
            k: v for k, v in small.items() if k not in regularisers
        }


def test_population_based_training_mutates_the_regularisers_the_space_searches():
    assert set(pbt_mutations(SearchConfig())) == set(MUTABLE) == {"lr", "dropout", "weight_decay"}
    off = SearchConfig(space=space_from_mapping({"weight_decay": [0, 0]}))
    assert set(pbt_mutations(off)) == {"lr", "dropout"}
    architecture = {**DEFAULT_WARM_STARTS[0], "weight_decay": 0.0}
    fixed = {k: v for k, v in pbt_space(off, architecture).items() if k not in MUTABLE}
    assert fixed == {k: v for k, v in architecture.items() if k not in MUTABLE} | {"cell": "lstm"}
