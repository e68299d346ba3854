"""Static and dynamic evaluation, bootstrap intervals and the evaluate command, on tiny real
models trained for a few hundred steps with the project's own Trainer."""

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from corpora import CorpusConfig, load_corpus
from model.config import RunConfig, TrainConfig, with_vocab_size
from model.errors import ConfigError
from model.evaluate import (
    DynamicSettings,
    EvalConfig,
    Interval,
    block_bootstrap,
    char_losses,
    choose_settings,
    describe_difference,
    distinguishable,
    dynamic_char_losses,
    gradient_rms,
    independent_difference,
    load_scored_model,
    load_text,
    main,
    paired_difference,
    settings_grid,
)
from model.loop import VAL_STREAMS, Trainer, save_checkpoint
from model.lstm import ModelConfig

ALPHABET = "abcdefgh ."


def train(config: CorpusConfig, steps: int = 300, dropout: float = 0.0) -> Trainer:
    """A 1 x 32 LSTM trained `steps` steps of 8 x 16 characters by the project's Trainer."""
    corpus = load_corpus(config)
    run = RunConfig(
        corpus=config,
        model=ModelConfig(hidden_size=32, num_layers=1, embed_dim=16, dropout=dropout),
        train=TrainConfig(batch_size=8, seq_len=16, lr=1e-2, eval_every_chars=0, device="cpu"),
    )
    trainer = Trainer(with_vocab_size(run, len(corpus.vocab)), corpus)
    for _ in range(steps):
        trainer.train_step()
    return trainer


def scored_ids(trainer: Trainer) -> np.ndarray:
    """The validation text after the last training character, which predicts its first one."""
    return np.concatenate([trainer.corpus.train_ids[-1:], trainer.corpus.val_ids])


def write_repetitive_text(path: Path, train_chars: int = 12_000, val_chars: int = 3_000) -> float:
    """Random letters, then a 23-character pattern the training part never shows, repeated.
    Returns the val_fraction that makes the repeats exactly the validation split."""
    rng = np.random.default_rng(1)
    letters = "".join(rng.choice(list(ALPHABET), size=train_chars))
    pattern = "".join(rng.choice(list(ALPHABET), size=23))
    path.write_text(letters + (pattern * val_chars)[:val_chars], encoding="utf-8")
    return val_chars / (train_chars + val_chars)


@pytest.fixture(scope="module")
def prose(corpus_dir):
    """A model of real prose (a Monte Cristo slice), trained with dropout."""
    config = CorpusConfig(
        name="monte-cristo", data_dir=str(corpus_dir), max_chars=40_000, val_fraction=0.1
    )
    return train(config, dropout=0.1)


@pytest.fixture(scope="module")
def repetitive(tmp_path_factory):
    path = tmp_path_factory.mktemp("texts") / "repeats.txt"
    val_fraction = write_repetitive_text(path)
    return train(CorpusConfig(name=str(path), val_fraction=val_fraction))


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory, repetitive):
    """A run folder holding the repetitive model's checkpoint, as `model.train` writes it."""
    folder = tmp_path_factory.mktemp("run")
    save_checkpoint(repetitive.checkpoint(), str(folder / "best.pt"))
    return folder


# -- static -----------------------------------------------------------------------------------


def test_static_losses_average_to_the_trainers_validation(prose):
    ids = scored_ids(prose)
    bits = char_losses(prose.model, ids, prose.run.train.seq_len, VAL_STREAMS)
    assert bits.shape == (len(ids) - 1,)
    assert bits.mean() == pytest.approx(prose.evaluate(), abs=1e-4)
    # The state is carried exactly, so the window length changes nothing but rounding.
    assert char_losses(prose.model, ids, 7, VAL_STREAMS).mean() == pytest.approx(bits.mean())


def test_static_losses_are_in_text_order(prose):
    """One stream from a zero state: character j's loss depends on characters 0..j only."""
    ids = scored_ids(prose)[:2001]
    bits = char_losses(prose.model, ids, 16, 1)
    np.testing.assert_allclose(char_losses(prose.model, ids[:1001], 16, 1), bits[:1000], rtol=1e-5)


# -- dynamic ----------------------------------------------------------------------------------


def test_dynamic_evaluation_learns_a_pattern_training_never_showed(repetitive):
    ids, before = scored_ids(repetitive), repetitive.corpus.train_ids
    static = char_losses(repetitive.model, ids, 16, 4).mean()
    for method, lr in (("sgd", 0.1), ("rms", 3e-3)):
        settings = DynamicSettings(method=method, lr=lr, segment=10, streams=4)
        rms = gradient_rms(repetitive.model, before, 10, 4) if method == "rms" else None
        dynamic = dynamic_char_losses(repetitive.model, ids, settings, rms).mean()
        assert dynamic < static - 0.5, (method, dynamic, static)


def test_dynamic_evaluation_leaves_the_callers_model_as_it_was(prose):
    before = {k: v.clone() for k, v in prose.model.state_dict().items()}
    prose.model.train()  # a mode the caller chose is kept too
    rms = gradient_rms(prose.model, prose.corpus.train_ids[:4001], 10, 4)
    for settings in (DynamicSettings("sgd", 0.1), DynamicSettings("rms", 1e-2, decay=0.01)):
        dynamic_char_losses(prose.model, scored_ids(prose)[:2001], settings, rms)
        char_losses(prose.model, scored_ids(prose)[:2001], 16, 4)
    assert prose.model.training
    prose.model.eval()
    after = prose.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def decoded_before(n: int, streams: int, segment: int, changed: int) -> np.ndarray:
    """Which of n losses a decoder has already produced when it first reads loss `changed`'s
    character: earlier steps, other streams of the same step, and earlier columns of its own."""
    length = -(-n // streams)
    j = np.arange(n)
    stream, column = j // length, j % length
    step = column // segment
    s, c = changed // length, changed % length
    return (
        (step < c // segment)
        | ((step == c // segment) & (stream != s))
        | ((stream == s) & (column < c))
    )


@pytest.mark.parametrize(("method", "streams"), [("sgd", 1), ("rms", 1), ("rms", 4)])
def test_predictions_never_see_the_characters_they_predict(prose, method, streams):
    ids = scored_ids(prose)[:1201].copy()
    rms = gradient_rms(prose.model, prose.corpus.train_ids[:4001], 10, streams)
    settings = DynamicSettings(method, 0.1 if method == "sgd" else 1e-2, segment=10,
                               streams=streams)  # fmt: skip
    bits = dynamic_char_losses(prose.model, ids, settings, rms)
    i = 555  # a character in the middle of a segment: loss i - 1 is the one predicting it
    ids[i] = (ids[i] + 1) % len(prose.corpus.vocab)
    changed = dynamic_char_losses(prose.model, ids, settings, rms)
    seen_before = decoded_before(len(bits), streams, 10, i - 1)
    assert np.array_equal(bits[seen_before], changed[seen_before])
    if streams == 1:  # in one stream the decoding order is the text's
        assert seen_before.sum() == i - 1
    assert bits[i - 1] != changed[i - 1]
    # The step on the changed character reaches every stream's later segments.
    assert (bits[~seen_before] != changed[~seen_before]).mean() > 0.5


def test_settings_are_chosen_by_their_score_on_the_given_text(repetitive):
    ids = scored_ids(repetitive)
    grid = settings_grid("sgd", lrs=(1e-4, 0.1), segment=10, streams=4)
    chosen, scores = choose_settings(repetitive.model, ids, grid)
    assert [s for s, _ in scores] == grid
    assert chosen.lr == 0.1 and min(bpc for _, bpc in scores) == scores[1][1]
    with pytest.raises(ConfigError, match="gradient statistics"):
        dynamic_char_losses(repetitive.model, ids, DynamicSettings("rms"), None)


def test_a_best_step_size_at_the_grids_edge_is_followed_past_it(repetitive):
    """The repeated pattern rewards adapting: of two tiny step sizes the larger wins, so larger
    ones are tried at the grid's ratio until one is no better or `beyond` is spent."""
    ids = scored_ids(repetitive)
    grid = settings_grid("sgd", lrs=(1e-4, 3e-4), segment=10, streams=4)
    chosen, scores = choose_settings(repetitive.model, ids, grid, beyond=2)
    assert [s.lr for s, _ in scores] == pytest.approx([1e-4, 3e-4, 9e-4, 2.7e-3])
    assert scores[3][1] < scores[2][1] < scores[1][1] and chosen.lr == pytest.approx(2.7e-3)
    assert choose_settings(repetitive.model, ids, grid)[1] == scores[:2]  # none past it
    # An optimum inside the grid: nothing more is tried.
    inside = settings_grid("sgd", lrs=(1e-4, 0.1, 100.0), segment=10, streams=4)
    assert len(choose_settings(repetitive.model, ids, inside, beyond=2)[1]) == 3


def test_a_setting_that_diverges_is_never_chosen(repetitive):
    """A step size that blows the weights up scores NaN, which compares false with everything:
    it must lose, whether it comes first in the grid or past its edge."""
    ids = scored_ids(repetitive)
    grid = settings_grid("sgd", lrs=(1e300, 1e-4), segment=10, streams=4)
    chosen, scores = choose_settings(repetitive.model, ids, grid, beyond=2)
    assert math.isnan(scores[0][1]) and chosen.lr == 1e-4
    with pytest.raises(ConfigError, match=r"every dynamic step size tried \(1e\+300\) diverged"):
        choose_settings(repetitive.model, ids, grid[:1])


def test_the_decay_pulls_each_weight_back_toward_its_trained_value_never_past_it():
    """The rms update's decay (Krause et al.): with no gradient, a weight moves a share `rate` of
    the way back to its trained value, the share larger where its gradients are larger (rms
    against the mean rms), and capped at the whole way: one step never overshoots it."""
    from model.evaluate import _step, _update_terms

    rms = [torch.tensor([1.0, 1.0, 100.0])]  # mean 34: the last weight's rms is 2.9 times it
    settings = DynamicSettings("rms", lr=1e-3, decay=0.5)
    divisors, rates = _update_terms(rms, settings)
    assert rates[0].tolist() == pytest.approx([0.5 / 34, 0.5 / 34, 1.0])  # 0.5 * 2.9: capped
    trained = [torch.zeros(3)]
    params = [torch.tensor([1.0, -2.0, 4.0])]
    _step(params, [torch.zeros(3)], trained, divisors, rates, settings.lr)
    moved = params[0].tolist()
    assert moved[0] == pytest.approx(1.0 * (1 - 0.5 / 34)) and 0 < moved[0] < 1.0
    assert moved[1] == pytest.approx(-2.0 * (1 - 0.5 / 34)) and -2.0 < moved[1] < 0
    assert moved[2] == 0.0  # back at its trained value, not beyond it
    # No decay: the weights stay where the gradient steps put them.
    divisors, rates = _update_terms(rms, replace(settings, decay=0.0))
    params = [torch.tensor([1.0, -2.0, 4.0])]
    _step(params, [torch.zeros(3)], trained, divisors, rates, settings.lr)
    assert params[0].tolist() == [1.0, -2.0, 4.0]


# -- bootstrap --------------------------------------------------------------------------------


def correlated(n: int, seed: int) -> np.ndarray:
    """Per-character losses with local correlation: a slowly wandering level plus noise."""
    rng = np.random.default_rng(seed)
    level = np.repeat(rng.normal(2.0, 0.3, size=n // 500 + 1), 500)[:n]
    return level + rng.exponential(1.0, size=n)


def test_bootstrap_interval_covers_the_mean_and_narrows_with_more_data():
    short = block_bootstrap(correlated(20_000, 0), block=1000)
    long = block_bootstrap(correlated(400_000, 0), block=1000)
    for interval in (short, long):
        assert interval.low < interval.mean < interval.high
    assert long.high - long.low < 0.5 * (short.high - short.low)
    assert block_bootstrap(correlated(20_000, 0), block=1000) == short  # seeded
    with pytest.raises(ConfigError, match="fewer than 2 bootstrap blocks"):
        block_bootstrap(correlated(1500, 0), block=1000)


def test_blocks_keep_the_correlation_that_single_characters_lose():
    bits = correlated(20_000, 1)
    blocks = block_bootstrap(bits, block=1000)
    singles = block_bootstrap(bits, block=1, draws=200)  # 200 x 20,000 draws of one
    assert blocks.high - blocks.low > 2 * (singles.high - singles.low)


def test_differences_paired_on_one_text_and_independent_across_texts():
    a = correlated(50_000, 2)
    assert paired_difference(a, a.copy(), block=1000) == Interval(0.0, 0.0, 0.0)
    b = a + 0.05 + np.random.default_rng(3).normal(0, 0.1, size=a.size)
    paired = paired_difference(b, a, block=1000)
    independent = independent_difference(b, a, block=1000)
    assert paired.mean == pytest.approx(independent.mean)
    assert paired.low > 0 and distinguishable(paired)  # the shared hard passages cancel out
    assert independent.high - independent.low > 3 * (paired.high - paired.low)
    assert "b is lower" in describe_difference(Interval(0.1, 0.05, 0.15), "a", "b")
    assert "not distinguishable" in describe_difference(Interval(0.1, -0.05, 0.15), "a", "b")
    with pytest.raises(ConfigError, match="same characters"):
        paired_difference(a, a[:-1], block=1000)


# -- the command ------------------------------------------------------------------------------


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    assert captured.out == "", captured.out
    err = captured.err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_command_prints_static_and_dynamic_figures(run_folder, capsys):
    args = ["--checkpoint", str(run_folder), "--block", "500", "--streams", "4",
            "--segment", "10", "--dynamic", "--method", "sgd"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "static  bpc" in out and "dynamic bpc" in out and "s per 100k characters" in out
    assert "dynamic is lower" in out  # the repeats are learned, distinguishably
    assert "chosen on the first 1,500 characters (the first half) (" in out
    assert "on the last 1,500" in out


def test_command_refuses_a_split_too_small_for_the_settings(run_folder, capsys):
    assert main(["--checkpoint", str(run_folder)]) == 2  # 3,000 characters, 10,000 a block
    assert "fewer than 2 bootstrap blocks" in one_error_line(capsys)
    args = ["--checkpoint", str(run_folder), "--block", "500", "--dynamic", "--streams", "64",
            "--segment", "50"]  # fmt: skip
    assert main(args) == 2
    assert "fewer than one 50-character segment for each of 64 streams" in one_error_line(capsys)


def test_command_refuses_another_text_unless_told(run_folder, tmp_path, capsys):
    other = tmp_path / "other.txt"
    other.write_text("abc " * 2000 + "Zürich ÆØ " * 200, encoding="utf-8")
    args = ["--checkpoint", str(run_folder), "--corpus", str(other), "--block", "500"]
    assert main(args) == 2
    assert "pass --other-text" in one_error_line(capsys)
    assert main([*args, "--other-text"]) == 2
    err = one_error_line(capsys)
    assert "does not cover" in err and "1,200 characters (6 distinct)" in err
    assert "'Z' (U+005A)" in err
    covered = tmp_path / "covered.txt"
    write_repetitive_text(covered, train_chars=4_000, val_chars=1_000)
    args = ["--checkpoint", str(run_folder), "--corpus", str(covered), "--block", "400"]
    assert main([*args, "--other-text"]) == 0  # 1,000 of its 5,000 characters: val_fraction 0.2
    assert "covered.txt, val split, 1,000 characters" in capsys.readouterr().out


def test_command_refuses_its_own_text_split_otherwise(run_folder, capsys):
    assert main(["--checkpoint", str(run_folder), "--val-fraction", "0.3", "--block", "500"]) == 2
    assert "split differently" in one_error_line(capsys)
    # Its held-out text cut anew into validation and test: nothing scored was trained on.
    args = ["--val-fraction", "0.1", "--test-fraction", "0.1", "--split", "test"]
    assert main(["--checkpoint", str(run_folder), *args, "--block", "500"]) == 0
    assert "test split, 1,500 characters" in capsys.readouterr().out


def test_command_accepts_only_the_splits_that_exist(run_folder, capsys):
    assert main(["--checkpoint", str(run_folder), "--split", "train"]) == 2
    assert "split must be one of val, test" in one_error_line(capsys)
    assert main(["--checkpoint", str(run_folder), "--split", "test", "--block", "500"]) == 2
    assert "has no test split" in one_error_line(capsys)  # trained without --test-fraction
    assert main(["--checkpoint", str(run_folder / "missing.pt")]) == 2
    assert "not found" in one_error_line(capsys)
    assert main(["--checkpoint", str(run_folder), "--dyn-lr", "0.001", "--method", "sgd"]) == 2
    assert "dyn_lr, method set(s) dynamic evaluation: pass --dynamic" in one_error_line(capsys)
    assert main(["--checkpoint", str(run_folder), "--seed", "-1"]) == 2  # the bootstrap's
    assert "seed must be in [0, 2**63), got -1" in one_error_line(capsys)


@pytest.fixture(scope="module")
def with_test_split(tmp_path_factory, repetitive):
    """The repetitive model with its held-out repeats split into validation (the first 1,500)
    and test (the last 1,500): a test split no selection saw. The training text is the same
    12,000 letters, so the model is the one trained above."""
    path = tmp_path_factory.mktemp("texts") / "repeats.txt"
    held_out = write_repetitive_text(path)
    config = CorpusConfig(name=str(path), val_fraction=held_out / 2, test_fraction=held_out / 2)
    corpus = load_corpus(config)
    assert np.array_equal(corpus.train_ids, repetitive.corpus.train_ids)
    trainer = Trainer(replace(repetitive.run, corpus=config), corpus)
    trainer.model.load_state_dict(repetitive.model.state_dict())
    assert len(trainer.corpus.val_ids) == len(trainer.corpus.test_ids) == 1_500
    folder = tmp_path_factory.mktemp("run")
    save_checkpoint(trainer.checkpoint(), str(folder / "best.pt"))
    return folder, trainer


def test_the_test_split_is_scored_with_settings_chosen_on_validation(with_test_split, capsys):
    folder, trainer = with_test_split
    args = ["--checkpoint", str(folder), "--split", "test", "--block", "500", "--streams", "4",
            "--segment", "10", "--dynamic", "--method", "sgd"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "test split, 1,500 characters" in out
    # Settings chosen on all of validation, figures on all of test.
    assert "chosen on the last 1,500 characters of the validation split (" in out
    assert "on the test split 1,500" in out
    assert "dynamic is lower" in out
    test_ids = np.concatenate([trainer.corpus.val_ids[-1:], trainer.corpus.test_ids])
    static = char_losses(trainer.model, test_ids, 16, VAL_STREAMS).mean()
    assert f"static  bpc {static:.4f}" in out


def test_scoring_test_chooses_settings_on_the_end_of_validation(with_test_split):
    """`--tuning-chars` cuts the validation text the settings are chosen on from its end, next
    to the test split, with one character before it for context."""
    folder, trainer = with_test_split
    config = EvalConfig(checkpoint=str(folder), split="test", dynamic=True, tuning_chars=1_000)
    model, vocab, run, trained = load_scored_model(config.checkpoint, "cpu")
    text = load_text(config, run, trained, vocab)
    assert np.array_equal(text.tuning, trainer.corpus.val_ids[-1_001:])
    assert np.array_equal(text.scored[1:], trainer.corpus.test_ids)


def test_too_little_text_for_dynamic_settings_names_the_flag_that_cut_it(with_test_split, capsys):
    """Checked before the static pass (whose figure was computed and thrown away), naming the
    flag that cut the text short, not the split, which may be long enough."""
    folder, _ = with_test_split
    base = ["--checkpoint", str(folder), "--split", "test", "--block", "500", "--dynamic"]
    assert main([*base, "--tuning-chars", "100"]) == 2
    assert "(at most --tuning-chars 100) has 100 characters" in one_error_line(capsys)
    assert main([*base, "--stats-chars", "100"]) == 2
    message = one_error_line(capsys)
    assert "(at most --stats-chars 100) are too few for gradient statistics" in message
