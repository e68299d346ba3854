"""Generate text from a trained checkpoint: "modern lorem ipsum" in the style of the corpus.

    python -m model.sample --checkpoint runs/mc --length 500 --temperature 0.8 --prime "The "

Generation feeds the model one character at a time (the only per-step loop in the project): the
prime is read in one call, then each sampled character is fed back with the carried state.

It starts from the state the first training stream carried when the checkpoint was written
(checkpoints keep it for resuming), not from zeros. Trained on stateful batches, a model meets a
zero state only at the start of each pass, and some never learn to leave it: a 1 x 1024 network
at 1.72 bpc on the Spanish Bible wrote `CUANDRâÓN¿¿!êêêêê!êê...` from zeros after a newline, and
Spanish from its carried state.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from corpora import Vocab
from corpora.errors import UserError, run_cli
from corpora.flags import OneLineParser, add_flags
from model.config import check_seed, run_config_from_flat
from model.errors import ConfigError
from model.lstm import CharLSTM, State

BEST, LATEST = "best.pt", "checkpoint.pt"  # a run folder's best and latest checkpoints


@dataclass(frozen=True)
class SampleConfig:
    checkpoint: str = ""  # checkpoint file, run folder (its best.pt, else checkpoint.pt) or
    # search folder (its best model, best/best.pt)
    length: int = 500  # characters to generate
    temperature: float = 0.8  # softmax temperature: lower is safer, higher more surprising
    top_k: int = 0  # sample among the k likeliest characters; 0: all
    prime: str = ""  # text the model reads before generating; "": a newline, or the first
    # character of an alphabet without one (`default_prime`)
    seed: int = 0  # sampling seed: same checkpoint, seed and device, same text
    device: str = "cpu"  # cpu, cuda, cuda:N or auto


def checkpoint_file(path: str | Path) -> Path:
    """A checkpoint file; the best (else latest) checkpoint in a run folder; or a search
    folder's best model (`best/best.pt`, which the search keeps from its best trial)."""
    path = Path(path)
    if path.is_dir():
        for name in (BEST, LATEST, f"best/{BEST}"):
            if (path / name).is_file():
                return path / name
        raise ConfigError(f"no checkpoint ({BEST}, {LATEST} or best/{BEST}) in {path}")
    if not path.is_file():
        raise ConfigError(f"checkpoint not found: {path}")
    return path


def load_model(path: str | Path, device: str = "cpu") -> tuple[CharLSTM, Vocab]:
    """The model and vocabulary of a checkpoint, loaded without unpickling arbitrary objects."""
    model, vocab, _ = load_sampler(path, device)
    return model, vocab


def load_sampler(path: str | Path, device: str = "cpu") -> tuple[CharLSTM, Vocab, State | None]:
    """The model, its vocabulary and the state to generate from: the first training stream's
    carried state (None where the checkpoint has none of the model's shape)."""
    from model.loop import load_checkpoint, load_weights, resolve_device  # a light start-up

    device = str(resolve_device(device))  # an unknown or missing device is named as such
    file = str(checkpoint_file(path))
    checkpoint = load_checkpoint(file, map_location=device)
    run = run_config_from_flat(checkpoint["run_config"])
    vocab = Vocab(tuple(checkpoint["vocab"]))
    if len(vocab) != run.model.vocab_size:  # it would decode to the wrong characters
        raise ConfigError(f"{file}: its alphabet has {len(vocab)} characters, its model "
                          f"{run.model.vocab_size}")  # fmt: skip
    model = CharLSTM(run.model).to(device)
    load_weights(model, checkpoint["model"], file)
    model.eval()
    return model, vocab, first_stream(checkpoint.get("hidden"), model)


def first_stream(hidden: Sequence[torch.Tensor] | None, model: CharLSTM) -> State | None:
    """The first stream's part of a checkpoint's carried state `(layers, streams, hidden)`, as a
    state of batch 1 on the model's device; None if it does not fit the model."""
    zeros = model.init_state(1)
    if not hidden or len(hidden) != len(zeros):
        return None
    state = tuple(s[:, :1].to(zeros[0]) for s in hidden)
    return state if all(s.shape == z.shape for s, z in zip(state, zeros, strict=True)) else None


def default_prime(vocab: Vocab) -> str:
    """A neutral start: a newline, or the first character of a vocabulary without one."""
    return "\n" if "\n" in vocab.chars else vocab.chars[0]


def check_sampling(length: int, temperature: float, top_k: int, seed: int) -> None:
    """The sampling settings, checked before a checkpoint is loaded (a ConfigError each)."""
    if length < 0:
        raise ConfigError(f"length must be non-negative, got {length}")
    if not 0 < temperature < math.inf:
        raise ConfigError(f"temperature must be positive and finite, got {temperature}")
    if top_k < 0:
        raise ConfigError(f"top_k must be non-negative, got {top_k}")
    check_seed(seed)


def generate(model: CharLSTM, vocab: Vocab, **settings: Any) -> str:
    """The characters `stream` samples, as one string: `length` characters after `prime`
    (None: `default_prime`; returned without the prime), read from `state` (batch 1; zeros if
    None), at `temperature`, among the `top_k` likeliest, from `seed`."""
    return "".join(stream(model, vocab, **settings))


def stream(
    model: CharLSTM,
    vocab: Vocab,
    *,
    prime: str | None = None,
    length: int = 500,
    temperature: float = 0.8,
    top_k: int = 0,
    seed: int = 0,
    state: State | None = None,
) -> Iterator[str]:
    """The characters sampled after `prime` (None: `default_prime`), one at a time as each
    is sampled, from `state` (batch 1; zeros if None). The settings and the prime are checked
    here, before the first character is asked for."""
    check_sampling(length, temperature, top_k, seed)
    prime = default_prime(vocab) if prime is None else prime
    if not prime:
        raise ConfigError("prime must contain at least one character")
    try:
        ids = vocab.encode(prime)
    except UserError as error:
        raise ConfigError(f"prime: {error} (the alphabet of the model's training text)") from None
    return _quietly(model, _sample(model, vocab, ids, length, temperature, top_k, seed, state))


def _quietly(model: CharLSTM, chars: Iterator[str]) -> Iterator[str]:
    """`chars`, sampled with `model` in evaluation mode (no dropout in what it writes, whatever
    mode the caller left it in) and, on a CPU, one thread; both as they were after."""
    threads, training = torch.get_num_threads(), model.training
    if model.head.weight.device.type == "cpu":
        # One character at a time is a chain of tiny matrix products: extra threads only add
        # synchronisation (measured: 600 characters in 0.2 s on 1 thread, 8 s on 2 busy ones).
        torch.set_num_threads(1)
    model.eval()
    try:
        yield from chars
    finally:
        torch.set_num_threads(threads)
        model.train(training)


def sample_checkpoint(
    path: str | Path, length: int, temperature: float = 0.8, seed: int = 0
) -> str:
    """`length` characters from a checkpoint's model after a neutral start (`default_prime`,
    read from the carried state): what a search or a study shows of its best models."""
    model, vocab, state = load_sampler(path)
    return generate(model, vocab, length=length, temperature=temperature, seed=seed, state=state)


@torch.no_grad()
def _sample(
    model: CharLSTM,
    vocab: Vocab,
    prime: Sequence[int],
    length: int,
    temperature: float,
    top_k: int,
    seed: int,
    state: State | None,
) -> Iterator[str]:
    if length == 0:
        return
    device = model.head.weight.device
    generator = torch.Generator(device=device).manual_seed(seed)
    ids = torch.as_tensor(prime, dtype=torch.long, device=device)[None, :]
    logits, state = model(ids, model.init_state(1) if state is None else state)
    for i in range(length):
        last = logits[0, -1]
        scores = (last - last.max()) / temperature  # at most 0: a tiny temperature cannot overflow
        if 0 < top_k < scores.numel():  # exactly k candidates, also where scores tie
            kept = torch.topk(scores, top_k)
            scores = torch.full_like(scores, -math.inf).scatter(0, kept.indices, kept.values)
        next_id = torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=generator)
        yield vocab.decode([int(next_id)])
        if i + 1 < length:  # the last character's prediction would go unused
            logits, state = model(next_id[None, :], state)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m model.sample", description=__doc__.split("\n")[0])
    add_flags(parser, SampleConfig, required=("checkpoint",))
    return parser


def command(argv: Sequence[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    config = SampleConfig(**args)
    if not config.checkpoint:
        raise ConfigError("--checkpoint is required: a checkpoint file or a run folder")
    check_sampling(config.length, config.temperature, config.top_k, config.seed)
    model, vocab, state = load_sampler(config.checkpoint, device=config.device)
    prime = config.prime or default_prime(vocab)
    chars = stream(model, vocab, prime=prime, length=config.length,
                   temperature=config.temperature, top_k=config.top_k, seed=config.seed,
                   state=state)  # fmt: skip
    try:  # written as it is sampled: a long sample shows as it grows, and Ctrl-C keeps it
        for text in itertools.chain([prime], _lines(chars), ["\n"]):
            sys.stdout.write(text)
            sys.stdout.flush()
    except UnicodeEncodeError as error:
        raise ConfigError(
            f"the output cannot take {error.object[error.start]!r} ({error.encoding}); "
            "set PYTHONIOENCODING=utf-8"
        ) from None
    return 0


def _lines(chars: Iterator[str], most: int = 80) -> Iterator[str]:
    """`chars` in pieces that end at a newline or after `most` characters."""
    piece: list[str] = []
    for char in chars:
        piece.append(char)
        if char == "\n" or len(piece) == most:
            yield "".join(piece)
            piece = []
    if piece:
        yield "".join(piece)


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; every expected failure is one "error:" line and exit status 2."""
    return run_cli(command, argv)


if __name__ == "__main__":
    sys.exit(main())
