"""Generate text from a trained checkpoint: "modern lorem ipsum" in the style of the corpus.

    python -m model.sample --checkpoint runs/mc --length 500 --temperature 0.8 --prime "The "

Generation feeds the model one character at a time (the only per-step loop in the project): the
prime is read in one call, then each sampled character is fed back with the carried state.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from corpora import CorpusError, Vocab
from model.config import run_config_from_flat
from model.errors import ConfigError
from model.lstm import CharLSTM

BEST, LATEST = "best.pt", "checkpoint.pt"


def checkpoint_file(path: str | Path) -> Path:
    """A checkpoint file, or the best (else latest) checkpoint in a run folder."""
    path = Path(path)
    if path.is_dir():
        for name in (BEST, LATEST):
            if (path / name).is_file():
                return path / name
        raise ConfigError(f"no checkpoint ({BEST} or {LATEST}) in {path}")
    if not path.is_file():
        raise ConfigError(f"checkpoint not found: {path}")
    return path


def load_model(path: str | Path, device: str = "cpu") -> tuple[CharLSTM, Vocab]:
    """The model and vocabulary of a checkpoint, loaded without unpickling arbitrary objects."""
    from model.loop import load_checkpoint  # local: keeps `python -m model.sample` start-up light

    checkpoint = load_checkpoint(str(checkpoint_file(path)), map_location=device)
    run = run_config_from_flat(checkpoint["run_config"])
    model = CharLSTM(run.model).to(device)
    model.load_state_dict(checkpoint["model"])
    model.eval()
    return model, Vocab(tuple(checkpoint["vocab"]))


def default_prime(vocab: Vocab) -> str:
    """A neutral start: a newline, or the first character of a vocabulary without one."""
    return "\n" if "\n" in vocab.chars else vocab.chars[0]


@torch.no_grad()
def generate(
    model: CharLSTM,
    vocab: Vocab,
    *,
    prime: str = "\n",
    length: int = 500,
    temperature: float = 0.8,
    top_k: int = 0,
    seed: int = 0,
) -> str:
    """`length` characters sampled after `prime` (returned without the prime)."""
    if length < 0:
        raise ConfigError(f"length must be non-negative, got {length}")
    if not temperature > 0:
        raise ConfigError(f"temperature must be positive, got {temperature}")
    if top_k < 0:
        raise ConfigError(f"top_k must be non-negative, got {top_k}")
    if not prime:
        raise ConfigError("prime must contain at least one character")
    device = model.head.weight.device
    threads = torch.get_num_threads()
    if device.type == "cpu":
        # One character at a time is a chain of tiny matrix products: extra threads only add
        # synchronisation (measured: 600 characters in 0.2 s on 1 thread, 8 s on 2 busy ones).
        torch.set_num_threads(1)
    try:
        return _sample(model, vocab, prime, length, temperature, top_k, seed)
    finally:
        torch.set_num_threads(threads)


def _sample(
    model: CharLSTM,
    vocab: Vocab,
    prime: str,
    length: int,
    temperature: float,
    top_k: int,
    seed: int,
) -> str:
    device = model.head.weight.device
    generator = torch.Generator(device=device).manual_seed(seed)
    ids = torch.as_tensor(vocab.encode(prime), dtype=torch.long, device=device)[None, :]
    logits, state = model(ids, model.init_state(1))
    out: list[int] = []
    for _ in range(length):
        scores = logits[0, -1] / temperature
        if 0 < top_k < scores.numel():
            cutoff = torch.topk(scores, top_k).values[-1]
            scores = scores.masked_fill(scores < cutoff, float("-inf"))
        next_id = torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=generator)
        out.append(int(next_id))
        logits, state = model(next_id[None, :], state)
    return vocab.decode(out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m model.sample", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--checkpoint", required=True, help="checkpoint file or run folder (uses best.pt)"
    )
    parser.add_argument(
        "--length", type=int, default=500, help="characters to generate (default 500)"
    )
    parser.add_argument(
        "--temperature", type=float, default=0.8, help="softmax temperature (default 0.8)"
    )
    parser.add_argument(
        "--top-k", type=int, default=0, help="sample among the k likeliest; 0 = all"
    )
    parser.add_argument("--prime", default="\n", help="text the model reads before generating")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed; same seed, same text")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        model, vocab = load_model(args.checkpoint, device=args.device)
        text = generate(
            model,
            vocab,
            prime=args.prime,
            length=args.length,
            temperature=args.temperature,
            top_k=args.top_k,
            seed=args.seed,
        )
    except (ConfigError, CorpusError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(args.prime + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
