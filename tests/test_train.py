"""Training loop, bpc arithmetic, checkpoints and exact resume, on real corpus slices."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from corpora import CorpusConfig, load_corpus
from model.config import RunConfig, TrainConfig, run_config_from_flat, with_vocab_size
from model.errors import ConfigError
from model.loop import Trainer, fit, learning_rate, load_checkpoint, nats_to_bits, save_checkpoint
from model.lstm import ModelConfig
from model.sample import generate, load_model


def small_run(corpus, **train) -> RunConfig:
    run = RunConfig(
        corpus=CorpusConfig(name="monte-cristo", max_chars=corpus.n_chars),
        model=ModelConfig(hidden_size=32, num_layers=2, dropout=0.1, embed_dim=16),
        train=TrainConfig(
            batch_size=8,
            seq_len=16,
            lr=3e-3,
            max_train_chars=8 * 16 * 12,
            eval_every_chars=8 * 16 * 4,
            device="cpu",
            **train,
        ),
    )
    return with_vocab_size(run, len(corpus.vocab))


@pytest.fixture(scope="module")
def corpus(corpus_dir):
    return load_corpus(
        CorpusConfig(
            name="monte-cristo", data_dir=str(corpus_dir), max_chars=60_000, val_fraction=0.05
        )
    )


def unigram_entropy_bits(ids: np.ndarray) -> float:
    p = np.bincount(ids) / len(ids)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def test_bits_per_character_is_nats_over_ln2():
    assert nats_to_bits(math.log(2)) == pytest.approx(1.0)
    # A uniform guess over V symbols costs log2(V) bits per character.
    v = 64
    nats = torch.nn.functional.cross_entropy(torch.zeros(10, v), torch.arange(10)).item()
    assert nats_to_bits(nats) == pytest.approx(math.log2(v))


def test_untrained_model_scores_about_log2_vocab(corpus):
    trainer = Trainer(small_run(corpus), corpus)
    assert abs(trainer.evaluate() - math.log2(len(corpus.vocab))) < 0.5


def test_validation_is_the_exact_mean_over_every_character(corpus):
    trainer = Trainer(small_run(corpus), corpus)
    # Score the validation text in one stream, one long sequence: no streams, no padding.
    model = trainer.model.eval()
    ids = torch.as_tensor(np.concatenate([corpus.train_ids[-1:], corpus.val_ids]), dtype=torch.long)
    with torch.no_grad():
        expected = 0.0
        # Streams start from a zero state, so score each stream's span separately from zero state.
        streams = trainer.val_streams
        for b in range(streams.inputs.shape[0]):
            x = streams.inputs[b : b + 1]
            y = streams.targets[b : b + 1]
            logits, _ = model(x, model.init_state(1))
            mask = y != -1
            expected += torch.nn.functional.cross_entropy(
                logits[mask], y[mask], reduction="sum"
            ).item()
    assert len(ids) - 1 == len(corpus.val_ids)
    assert trainer.evaluate() == pytest.approx(
        nats_to_bits(expected / len(corpus.val_ids)), rel=1e-5
    )


def test_learning_rate_warmup_and_cosine():
    assert learning_rate(0, 1.0, 100, "none", 1000) == pytest.approx(0.01)
    assert learning_rate(500, 1.0, 100, "none", 1000) == 1.0
    assert learning_rate(100, 1.0, 100, "cosine", 1000) == pytest.approx(1.0)
    assert learning_rate(1000, 1.0, 100, "cosine", 1000) == pytest.approx(0.1)


def test_fit_reports_at_fixed_character_intervals(corpus):
    history = []
    status = fit(Trainer(small_run(corpus), corpus), history.append)
    assert status == "completed"
    assert [m["chars_seen"] for m in history] == [512, 1024, 1536]
    for m in history:
        assert set(m) >= {"train_bpc", "val_bpc", "chars_seen", "chars_per_s", "elapsed_s"}
        assert m["chars_per_s"] > 0 and not m["diverged"]


def test_training_is_deterministic_on_cpu(corpus):
    runs = []
    for _ in range(2):
        history = []
        fit(Trainer(small_run(corpus), corpus), history.append)
        runs.append([(m["train_bpc"], m["val_bpc"]) for m in history])
    assert runs[0] == runs[1]


def test_resume_from_checkpoint_gives_the_same_losses(corpus, tmp_path):
    run = small_run(corpus)
    straight = []
    fit(Trainer(run, corpus), straight.append)

    # Stop after the first report: save, then continue in a fresh trainer from the file.
    first_leg = []
    trainer = Trainer(replace(run, train=replace(run.train, max_train_chars=512)), corpus)
    fit(trainer, first_leg.append)
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(trainer.checkpoint(), str(path))
    checkpoint = load_checkpoint(str(path))
    checkpoint["run_config"]["max_train_chars"] = run.train.max_train_chars
    torch.manual_seed(12345)  # disturb the global RNG: resume must restore it
    resumed = Trainer.restore(checkpoint, corpus)
    second_leg = []
    fit(resumed, second_leg.append)

    key = [(m["chars_seen"], m["train_bpc"], m["val_bpc"]) for m in straight]
    assert [(m["chars_seen"], m["train_bpc"], m["val_bpc"]) for m in first_leg + second_leg] == key


def test_checkpoint_refuses_another_corpus(corpus, corpus_dir):
    trainer = Trainer(small_run(corpus), corpus)
    other = load_corpus(CorpusConfig(name="irc", data_dir=str(corpus_dir), max_chars=60_000))
    with pytest.raises(ConfigError, match="different corpus"):
        Trainer.restore(trainer.checkpoint(), other)


def test_diverging_run_stops_and_says_so(corpus):
    run = small_run(corpus)
    run = replace(run, train=replace(run.train, lr=1e6, grad_clip=0.0))
    history = []
    status = fit(Trainer(run, corpus), history.append)
    assert status == "diverged"
    assert history[-1]["diverged"] and math.isnan(history[-1]["val_bpc"])


def test_short_training_beats_the_unigram_entropy(corpus_dir, tmp_path):
    corpus = load_corpus(
        CorpusConfig(name="monte-cristo", data_dir=str(corpus_dir), max_chars=400_000)
    )
    run = with_vocab_size(
        run_config_from_flat(
            {
                "hidden_size": 128,
                "num_layers": 1,
                "batch_size": 32,
                "seq_len": 64,
                "lr": 5e-3,
                "max_train_chars": 600_000,
                "eval_every_chars": 300_000,
                "device": "cpu",
            }
        ),
        len(corpus.vocab),
    )
    history = []
    fit(Trainer(run, corpus), history.append)
    unigram = unigram_entropy_bits(corpus.val_ids)
    assert history[-1]["val_bpc"] < unigram - 1.0, (history[-1], unigram)

    trainer_ckpt = tmp_path / "best.pt"
    trainer = Trainer(run, corpus)
    save_checkpoint(trainer.checkpoint(), str(trainer_ckpt))
    model, vocab = load_model(trainer_ckpt)
    text = generate(model, vocab, prime="The ", length=50, seed=3)
    assert len(text) == 50 and set(text) <= set(vocab.chars)
    assert text == generate(model, vocab, prime="The ", length=50, seed=3)


def test_config_rejects_unknown_and_invalid_settings():
    with pytest.raises(ConfigError, match="unknown setting"):
        run_config_from_flat({"hiden_size": 3})
    with pytest.raises(ConfigError, match="hidden_size"):
        run_config_from_flat({"hidden_size": 0})
    with pytest.raises(ConfigError, match="lr"):
        run_config_from_flat({"lr": -1.0})
    with pytest.raises(ConfigError, match="cell"):
        run_config_from_flat({"cell": "transformer"})
    assert run_config_from_flat({"hidden_size": 64.0}).model.hidden_size == 64


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_every_cell_trains(corpus, cell):
    run = small_run(corpus)
    run = replace(run, model=replace(run.model, cell=cell))
    history = []
    assert fit(Trainer(run, corpus), history.append) == "completed"
    assert history[-1]["val_bpc"] < math.log2(len(corpus.vocab))
