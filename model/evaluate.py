"""Score a trained checkpoint on held-out text: static and dynamic evaluation, with intervals.

    python -m model.evaluate --checkpoint runs/mc                 # static bpc and its interval
    python -m model.evaluate --checkpoint runs/mc --dynamic       # and dynamic evaluation
    python -m model.evaluate --checkpoint runs/mc --split test --dynamic   # the test split
    python -m model.evaluate --checkpoint runs/mc --corpus irc --other-text

Static evaluation reads the split as training validates it (`Trainer.evaluate`: `VAL_STREAMS`
streams, state carried, no gradient) but keeps each character's loss, in text order.

Dynamic evaluation (Mikolov 2010; Krause et al., "Dynamic evaluation of neural sequence models",
arXiv 1709.07432, 2017, ICML 2018) lets the model go on learning from the text it has just
predicted. The text is cut into K equal contiguous streams (as in
`model.batching`); step k predicts segment k of every stream, records those losses, then takes
ONE gradient step on them before segment k+1:

    stream 0:  [seg 0][seg 1][seg 2] ...      predict seg k of all K streams -> record losses
    stream 1:  [seg 0][seg 1][seg 2] ...      -> one step on their loss -> predict seg k + 1
    ...

Every character is predicted before the model has seen it (in this column-major order, which a
decoder can replay), so the figure is an honest code length. The state is carried and detached
between segments; the weights adapt on a copy, never on the caller's model. Two updates:

    sgd:  theta <- theta - lr * g
    rms:  theta <- theta - lr * g / (rms + eps * mean(rms)) + decay * r * (theta0 - theta)

`rms` is the root mean square of each weight's gradient over segments of the text just before
the scored split (scoring validation: the end of the training text; scoring test: the end of
validation), measured once
with fixed weights, as Krause et al. do. `r` = rms / mean(rms), capped at 1 / decay: weights
that move fast are pulled back toward the trained ones (`theta0`) harder. `eps` is relative to
the mean rms, so the step does not depend on the loss's scale. The loss of a step is the sum
over streams of each stream's mean loss on its segment: one stream is Krause's setting, and K
streams add K gradients. Settings (`lr`, `decay`) are chosen on validation text only, never on
the text a figure is reported on: scoring the test split (`--test-fraction` when training),
they are chosen on validation; scoring validation, they are chosen on its first half and
the dynamic figure is reported on its second half.

Intervals come from a circular block bootstrap over the per-character losses: consecutive
characters' losses are correlated (a hard passage is hard for many characters), so whole
blocks of `block` characters are resampled, not single characters.

Defaults, measured with `benchmarks/bench_evaluate.py` (a 1 x 128 LSTM on Reina-Valera, settings
chosen on 52k validation characters, figures on the other 52k): rms beat sgd at every K; the
gain shrinks as a step covers more characters (K x segment: 20 -> -0.27 bpc, 160 -> -0.23,
1280 -> -0.17) while the time falls (about 15, 4 and 2 s per 100k characters, one CPU thread
niced beside other work). K = 16 streams of 10-character segments keeps most of the gain at a
quarter of one stream's time, and cuts the text into as many streams as validation does;
`--streams 1 --segment 20` gives the lowest figure. No decay beat none there, so the
grid has none (`--decay` sets one).

Shortcuts: the grid is small (three step sizes, and up to two more past its edge while the best
is there); `eps` was checked at 0.01, 0.1 and 1 only; the
first character of the split is predicted from the one character before it, as in training
validation.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from corpora import CorpusConfig, Vocab
from corpora.dataset import corpus_text, split_points
from corpora.errors import run_cli
from corpora.flags import OneLineParser, add_flags
from corpora.vocab import codepoints
from model.batching import PAD, Streams, batch, next_position, stream_views, window
from model.config import RunConfig, check_seed, run_config_from_flat
from model.errors import ConfigError
from model.loop import LN2, VAL_STREAMS, load_checkpoint, load_weights, resolve_device
from model.lstm import CharLSTM, detach_state
from model.sample import checkpoint_file

SPLITS = ("val", "test")  # splits that can be scored
METHODS = ("rms", "sgd")
# Grids searched on validation when no setting is given. Measured (benchmarks/bench_evaluate.py,
# a 1 x 128 LSTM on Reina-Valera): rms was best at lr 1e-3 for every K from 1 to 64, and a decay
# of 0.003 to 0.03 never beat none; sgd's best lr was 0.03 / sqrt(K) for K = 1, 16 and 64.
LR_GRID = {"rms": (3e-4, 1e-3, 3e-3), "sgd": (0.003, 0.01, 0.03)}
DECAY_GRID = {"rms": (0.0,), "sgd": (0.0,)}
EDGE_STEPS = 2  # step sizes tried past the grid's edge when the best is there (choose_settings)


@dataclass(frozen=True)
class EvalConfig:
    checkpoint: str = ""  # checkpoint file, run folder (its best.pt, else checkpoint.pt) or
    # search folder (its best model, best/best.pt)
    corpus: str | None = None  # text to score, a registered name or file; none: the checkpoint's
    other_text: bool = False  # allow scoring a text other than the one the checkpoint trained on
    data_dir: str | None = None  # folder holding registered corpora; none: the checkpoint's
    max_chars: int | None = None  # prefix of the text to use; none: as the checkpoint's run had it
    val_fraction: float | None = None  # share of the prefix that is validation; none: as
    # the checkpoint's run had it, so the split is the text the model was validated on
    test_fraction: float | None = None  # last share of the prefix that is test; none: as the
    # checkpoint's run had it
    split: str = "val"  # the split to score: val, or test (settings chosen on val)
    dynamic: bool = False  # also score with dynamic evaluation, settings chosen on validation
    method: str = "rms"  # dynamic update: rms (Krause 2018, RMS-normalised, decay) | sgd
    dyn_lr: float | None = None  # dynamic step size; none: chosen from a grid on validation
    decay: float | None = None  # share of the way back to the trained weights per step (rms:
    # scaled per weight); none: chosen from a grid on validation
    segment: int = 10  # characters per stream per adaptation step
    streams: int = 16  # K: parallel streams of dynamic evaluation, each a contiguous slice
    stats_chars: int = 50_000  # characters before the split whose gradients scale rms steps
    tuning_chars: int = 100_000  # scoring test: settings are chosen on the end of validation,
    # at most this many characters (its cost: a pass per setting tried)
    block: int = 10_000  # bootstrap block, characters: longer than the losses' correlation
    draws: int = 1000  # bootstrap resamples
    level: float = 0.95  # confidence level of the intervals
    seed: int = 0  # bootstrap seed: same losses, same seed, same interval
    device: str = "cpu"  # auto (CUDA when available) | cpu | cuda
    threads: int = 0  # CPU threads for torch (0: torch's default)

    def __post_init__(self) -> None:
        check_split(self.split)
        if self.method not in METHODS:
            raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        for name in ("segment", "streams", "stats_chars", "tuning_chars", "block", "draws"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 < self.level < 1:
            raise ConfigError(f"level must be in (0, 1), got {self.level}")
        if self.dyn_lr is not None and not self.dyn_lr > 0:
            raise ConfigError(f"dyn_lr must be positive, got {self.dyn_lr}")
        if self.decay is not None and not 0 <= self.decay < 1:
            raise ConfigError(f"decay must be in [0, 1), got {self.decay}")
        dynamic_only = {"dyn_lr": self.dyn_lr, "decay": self.decay,
                        "method": None if self.method == "rms" else self.method}  # fmt: skip
        given = [name for name, value in dynamic_only.items() if value is not None]
        if given and not self.dynamic:
            raise ConfigError(f"{', '.join(given)} set(s) dynamic evaluation: pass --dynamic too")
        check_seed(self.seed)
        if self.threads < 0:
            raise ConfigError(
                f"threads must be non-negative (0: torch's default), got {self.threads}"
            )

    @property
    def bootstrap(self) -> dict[str, Any]:
        """The block bootstrap's settings, as `block_bootstrap` and the differences take them."""
        return {"block": self.block, "draws": self.draws, "seed": self.seed, "level": self.level}


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")


@dataclass(frozen=True)
class DynamicSettings:
    method: str = "rms"  # rms: RMS-normalised step with decay (Krause 2018) | sgd: plain step
    lr: float = 3e-3  # step size (rms: in units of each weight's gradient rms)
    decay: float = 0.0  # share of the way back to the trained weights per step
    segment: int = 10  # characters per stream per adaptation step
    streams: int = 16  # K: parallel streams, each a contiguous slice of the text
    eps: float = 0.1  # rms: added to each weight's rms, as a share of the mean rms


# -- static evaluation ------------------------------------------------------------------------


def _token_bits(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Loss of each (stream, column) cell in nats, 0 where the target is padding."""
    nats = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
        ignore_index=PAD, reduction="none",
    )  # fmt: skip
    return nats.view(targets.shape)


def _in_text_order(chunks: list[torch.Tensor], streams: Streams) -> np.ndarray:
    """(B, T) loss chunks, in nats, as bits per character in text order: stream b holds
    characters b*L ... (b+1)*L - 1, so the rows laid end to end are the text."""
    nats = torch.cat(chunks, dim=1).reshape(-1)[: streams.pairs]
    return nats.double().cpu().numpy() / LN2


@torch.no_grad()
def char_losses(model: CharLSTM, ids: np.ndarray, seq_len: int, streams: int) -> np.ndarray:
    """Bits of each of `ids[1:]`, in text order, each predicted from the characters before it
    in its stream: `streams` equal contiguous streams, state carried, no gradient. The mean
    is `Trainer.evaluate` on the same ids and streams."""
    views = stream_views(ids, streams, pad=True)
    device = model.head.weight.device
    was_training = model.training
    model.eval()
    try:
        state = model.init_state(views.batch_size)
        chunks, position, wrapped = [], 0, False
        while not wrapped:
            x, y = batch(views, window(position, seq_len, views.length), device)
            logits, state = model(x, state)
            chunks.append(_token_bits(logits, y))
            position, wrapped = next_position(position, seq_len, views.length)
    finally:
        model.train(was_training)
    return _in_text_order(chunks, views)


# -- dynamic evaluation -----------------------------------------------------------------------


def _adaptable_copy(model: CharLSTM) -> CharLSTM:
    """A copy of `model` to adapt, without dropout: adaptation must not add noise, and cuDNN
    computes an RNN's gradient only in training mode, which dropout would then perturb."""
    work = CharLSTM(replace(model.config, dropout=0.0)).to(model.head.weight.device)
    work.load_state_dict(model.state_dict())
    return work.train()


def _segments(
    views: Streams, segment: int, device: torch.device
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The (inputs, targets) of each segment of every stream, in order (the last may be short)."""
    position, wrapped = 0, False
    while not wrapped:
        cols = window(position, segment, views.length)
        x, y = batch(views, cols, device)
        yield x, y
        position, wrapped = next_position(position, segment, views.length)


def gradient_rms(
    model: CharLSTM, ids: np.ndarray, segment: int, streams: int
) -> list[torch.Tensor]:
    """Root mean square of each weight's gradient over the segments of `ids`, with the weights
    fixed: the scale of an rms step. The loss is the one a dynamic step takes (the sum over
    streams of each stream's mean loss on its segment), so `lr` is in units of it."""
    if len(ids) - 1 < streams * segment:
        raise ConfigError(
            f"{len(ids) - 1:,} characters before the split are too few for gradient statistics "
            f"over {streams} streams of {segment}-character segments"
        )
    work = _adaptable_copy(model)
    params = list(work.parameters())
    squares = [torch.zeros_like(p) for p in params]
    views = stream_views(ids, streams, pad=False)  # no padding: every segment is full
    state, steps = work.init_state(streams), 0
    for x, y in _segments(views, segment, work.head.weight.device):
        logits, state = work(x, state)
        loss = _token_bits(logits, y).sum() / y.shape[1]
        grads = torch.autograd.grad(loss, params)
        for square, g in zip(squares, grads, strict=True):
            square += g * g
        state, steps = detach_state(state), steps + 1
    return [(square / steps).sqrt() for square in squares]


def _update_terms(
    rms: list[torch.Tensor], settings: DynamicSettings
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per weight: the divisor of the gradient and the decay rate toward the trained weights."""
    mean = torch.cat([r.reshape(-1) for r in rms]).mean()
    divisors = [r + settings.eps * mean for r in rms]
    if settings.decay == 0:
        return divisors, [0.0] * len(rms)
    # Capped at 1: one step never pulls a weight past its trained value.
    rates = [settings.decay * (r / mean).clamp(max=1.0 / settings.decay) for r in rms]
    return divisors, rates


@torch.no_grad()
def _step(
    params: list[torch.Tensor],
    grads: Sequence[torch.Tensor],
    trained: list[torch.Tensor],
    divisors: Sequence[torch.Tensor | float],
    rates: Sequence[torch.Tensor | float],
    lr: float,
) -> None:
    """theta <- theta - lr * g / divisor + rate * (theta0 - theta), for each weight tensor."""
    for p, g, p0, divisor, rate in zip(params, grads, trained, divisors, rates, strict=True):
        p.sub_(lr * g / divisor)
        if not isinstance(rate, float) or rate > 0:
            p.add_(rate * (p0 - p))


def _check_settings(settings: DynamicSettings, rms: list[torch.Tensor] | None) -> None:
    if settings.method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {settings.method!r}")
    if settings.method == "rms" and rms is None:
        raise ConfigError("the rms update needs gradient statistics: pass gradient_rms(...)")
    if settings.segment < 1 or settings.streams < 1:
        raise ConfigError("segment and streams must be at least 1")


def dynamic_char_losses(
    model: CharLSTM,
    ids: np.ndarray,
    settings: DynamicSettings,
    rms: list[torch.Tensor] | None = None,
) -> np.ndarray:
    """Bits of each of `ids[1:]`, in text order, under dynamic evaluation (module docstring):
    each segment of every stream is predicted, then one step is taken on its loss. `rms` (from
    `gradient_rms` with the same segment and streams) is needed by the rms update. `model` is
    left as it was: a copy adapts."""
    _check_settings(settings, rms)
    work = _adaptable_copy(model)
    params = list(work.parameters())
    trained = [p.detach().clone() for p in params]
    if settings.method == "rms":
        divisors, rates = _update_terms(rms, settings)
    else:  # plain steps, and a decay the same for every weight
        divisors, rates = [1.0] * len(params), [settings.decay] * len(params)
    views = stream_views(ids, settings.streams, pad=True)
    state, chunks = work.init_state(views.batch_size), []
    for x, y in _segments(views, settings.segment, work.head.weight.device):
        logits, new_state = work(x, state)
        bits = _token_bits(logits, y)
        chunks.append(bits.detach())  # recorded before the step: predicted before it was seen
        grads = torch.autograd.grad(bits.sum() / y.shape[1], params)
        _step(params, grads, trained, divisors, rates, settings.lr)
        state = detach_state(new_state)  # the next segment's gradient stops at its start
    return _in_text_order(chunks, views)


def settings_grid(
    method: str,
    lrs: Sequence[float] | None = None,
    decays: Sequence[float] | None = None,
    segment: int = 10,
    streams: int = 16,
) -> list[DynamicSettings]:
    """Every combination of `lrs` and `decays` (default: the method's grid)."""
    lrs = LR_GRID[method] if lrs is None else lrs
    decays = DECAY_GRID[method] if decays is None else decays
    return [
        DynamicSettings(method=method, lr=lr, decay=decay, segment=segment, streams=streams)
        for lr, decay in itertools.product(lrs, decays)
    ]


def choose_settings(
    model: CharLSTM,
    val_ids: np.ndarray,
    grid: Sequence[DynamicSettings],
    rms: list[torch.Tensor] | None = None,
    beyond: int = 0,
) -> tuple[DynamicSettings, list[tuple[DynamicSettings, float]]]:
    """The settings of `grid` with the lowest dynamic bpc on `val_ids`, and every score tried.

    While the best step size is the smallest or the largest tried, up to `beyond` more are
    tried past it, each the grid's ratio further (a factor of 3 for the default grid), until
    one is no better: an optimum at the grid's edge may lie outside it.

    `val_ids` must be validation text that no reported figure is computed on (the first half
    of validation when the second half is reported): settings tuned on the scored text would
    flatter it. `rms` as for `dynamic_char_losses`, with the grid's one segment and stream count.
    """
    if not grid:
        raise ConfigError("the settings grid is empty")
    if len({(s.segment, s.streams) for s in grid}) > 1 and rms is not None:
        raise ConfigError("gradient statistics fit one segment and stream count; split the grid")

    def score(settings: DynamicSettings) -> float:
        return float(dynamic_char_losses(model, val_ids, settings, rms).mean())

    scores = [(s, score(s)) for s in grid]
    # A setting that diverged (NaN) never wins: NaN compares false with everything.
    best, best_bpc = min(scores, key=lambda item: item[1] if math.isfinite(item[1]) else math.inf)
    if not math.isfinite(best_bpc):
        raise ConfigError(
            f"every dynamic step size tried ({', '.join(f'{s.lr:g}' for s, _ in scores)}) "
            "diverged: give a smaller one with --dyn-lr"
        )
    lrs = sorted({s.lr for s in grid})
    if len(lrs) < 2 or best.lr not in (lrs[0], lrs[-1]):
        return best, scores
    # Each better step size found past the edge is the new edge: keep going the same way.
    factor = lrs[0] / lrs[1] if best.lr == lrs[0] else lrs[-1] / lrs[-2]
    for _ in range(beyond):
        further = replace(best, lr=best.lr * factor)
        scores.append((further, score(further)))
        if not scores[-1][1] < best_bpc:  # worse, or diverged (NaN)
            break
        best, best_bpc = scores[-1]
    return best, scores


# -- bootstrap intervals ----------------------------------------------------------------------


class Interval(NamedTuple):
    mean: float  # the figure on the data itself
    low: float  # lower end of the interval
    high: float  # upper end


def _block_means(
    values: np.ndarray, block: int, draws: int, rng: np.random.Generator
) -> np.ndarray:
    """`draws` means of circular block-bootstrap resamples of `values` (n of them): blocks of
    `block` consecutive values, starting anywhere and wrapping past the end, laid end to end
    up to n values (the last block cut short)."""
    n = len(values)
    if n < 2 * block:
        raise ConfigError(
            f"{n:,} characters are fewer than 2 bootstrap blocks of {block:,}: score more text "
            "or use a smaller block"
        )
    full, rest = divmod(n, block)
    wrapped = np.concatenate([values, values[:block]]).astype(np.float64)
    cumulative = np.concatenate([[0.0], np.cumsum(wrapped)])
    starts = rng.integers(0, n, size=(draws, full + (rest > 0)))
    lengths = np.full(starts.shape[1], block)
    if rest:
        lengths[-1] = rest
    return (cumulative[starts + lengths] - cumulative[starts]).sum(axis=1) / n


def _interval(mean: float, means: np.ndarray, level: float) -> Interval:
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(mean), float(low), float(high))


def block_bootstrap(
    bits: np.ndarray, block: int = 10_000, draws: int = 1000, seed: int = 0, level: float = 0.95
) -> Interval:
    """Mean of `bits` (per-character losses) with a `level` percentile interval from a
    circular block bootstrap; ConfigError for fewer than two blocks of data."""
    means = _block_means(np.asarray(bits), block, draws, np.random.default_rng(seed))
    return _interval(float(np.mean(bits)), means, level)


def paired_difference(
    a_bits: np.ndarray,
    b_bits: np.ndarray,
    block: int = 10_000,
    draws: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> Interval:
    """Mean of `a_bits - b_bits`, two figures on the SAME characters, with its interval: the
    same blocks are drawn for both, so what the text makes hard for both cancels out."""
    a, b = np.asarray(a_bits, dtype=np.float64), np.asarray(b_bits, dtype=np.float64)
    if a.shape != b.shape:
        raise ConfigError(f"a paired difference needs the same characters: {a.shape} vs {b.shape}")
    return block_bootstrap(a - b, block, draws, seed, level)


def independent_difference(
    a_bits: np.ndarray,
    b_bits: np.ndarray,
    block: int = 10_000,
    draws: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> Interval:
    """Mean of `a_bits` minus mean of `b_bits`, two figures on DIFFERENT texts, with its
    interval: each is resampled on its own, so the interval is wider than a paired one."""
    rng = np.random.default_rng(seed)
    a_means = _block_means(np.asarray(a_bits), block, draws, rng)
    b_means = _block_means(np.asarray(b_bits), block, draws, rng)
    return _interval(float(np.mean(a_bits) - np.mean(b_bits)), a_means - b_means, level)


def distinguishable(difference: Interval) -> bool:
    """Whether a difference's interval excludes zero."""
    return not difference.low <= 0.0 <= difference.high


def describe_difference(difference: Interval, first: str, second: str) -> str:
    """One line: which of two figures is lower, or that they are not distinguishable."""
    span = f"{difference.mean:+.4f} bpc [{difference.low:+.4f}, {difference.high:+.4f}]"
    if not distinguishable(difference):
        return f"{first} - {second}: {span}: not distinguishable"
    lower = first if difference.mean < 0 else second
    return f"{first} - {second}: {span}: {lower} is lower"


# -- the checkpoint and its text --------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class EvalText:
    """The ids a checkpoint is scored on, encoded with its vocabulary."""

    name: str  # the text's corpus name or file
    before: np.ndarray  # the end of the text before the split: gradient statistics
    scored: np.ndarray  # the split, after the one character before it (which predicts it)
    tuning: np.ndarray | None = None  # validation, to choose dynamic settings on when the
    # split is test (as `scored`: after the character before it); None: half of `scored`


def describe_chars(chars: Sequence[str]) -> str:
    return ", ".join(f"{c!r} (U+{ord(c):04X})" for c in chars)


def check_covered(text: str, vocab: Vocab, what: str) -> None:
    """ConfigError naming how many characters of `text` the vocabulary lacks, and the first."""
    cps = codepoints(text)
    outside = ~np.isin(cps, np.array([ord(c) for c in vocab.chars], dtype=cps.dtype))
    if outside.any():
        first = list(dict.fromkeys(cps[outside][:10_000].tolist()))[:5]
        distinct = len(np.unique(cps[outside]))
        raise ConfigError(
            f"the checkpoint's vocabulary ({len(vocab)} characters) does not cover {what}: "
            f"{int(outside.sum()):,} characters ({distinct} distinct) are outside it, first "
            f"{describe_chars([chr(c) for c in first])}"
        )


def text_config(config: EvalConfig, run: RunConfig) -> CorpusConfig:
    """The corpus to score: the flags given, the checkpoint's run config for the rest."""
    own = run.corpus
    return CorpusConfig(
        name=config.corpus or own.name,
        data_dir=config.data_dir or own.data_dir,
        max_chars=own.max_chars if config.max_chars is None else config.max_chars,
        val_fraction=own.val_fraction if config.val_fraction is None else config.val_fraction,
        test_fraction=own.test_fraction if config.test_fraction is None else config.test_fraction,
    )


def check_same_text(
    corpus: CorpusConfig,
    parts: tuple[str, str, str],
    sha256: str,
    trained: dict[str, Any],
    run: RunConfig,
    other_text: bool,
) -> None:
    """A text other than the checkpoint's corpus needs `other_text`; on the checkpoint's own file
    the held-out end may be cut anew (say into validation and test, for a model trained without a
    test split), but the scored parts must start after the text it trained on."""
    if sha256 != trained["sha256"]:
        if not other_text:
            raise ConfigError(
                f"{corpus.name} is not the text the checkpoint was trained on "
                f"({trained['name']}); pass --other-text to score it anyway"
            )
        return
    trained_chars, _ = split_points(
        trained["n_chars"], run.corpus.val_fraction, run.corpus.test_fraction
    )
    if len(parts[0]) < trained_chars:
        raise ConfigError(
            f"this is the checkpoint's own corpus split differently: its held-out text starts at "
            f"character {len(parts[0]):,}, but the model trained on the first {trained_chars:,}, "
            "so the scored part would hold training text; drop or change --max-chars, "
            "--val-fraction and --test-fraction"
        )


def load_text(
    config: EvalConfig, run: RunConfig, trained: dict[str, Any], vocab: Vocab
) -> EvalText:
    """The scored split and the text before it, checked and encoded with the checkpoint's
    vocabulary."""
    corpus = text_config(config, run)
    train, val, test, sha256 = corpus_text(corpus)
    check_same_text(corpus, (train, val, test), sha256, trained, run, config.other_text)
    if config.split == "test" and not test:
        raise ConfigError(
            f"{corpus.name} has no test split as the checkpoint's run cut it: train (or search) "
            "with --test-fraction, or give one here with --test-fraction (and --val-fraction, "
            "--max-chars) that leaves the training text out"
        )
    # The text before the scored split: for test, training and validation text.
    before = train if config.split == "val" else train + val
    kept = before[-(config.stats_chars + 1) :] if config.dynamic else before[-1:]
    scored = val if config.split == "val" else test
    # Scoring test, dynamic settings are chosen on the end of validation.
    tuning = (train[-1:] + val)[-(config.tuning_chars + 1) :] if test and config.dynamic else ""
    tuning = tuning if config.split == "test" else ""
    check_covered(kept + tuning + scored, vocab, f"{corpus.name}'s {config.split} split")
    return EvalText(corpus.name, vocab.encode(kept), vocab.encode(kept[-1:] + scored),
                    vocab.encode(tuning) if tuning else None)  # fmt: skip


def halves(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two parts of a scored id array (its first id is context): the first half of its
    characters and the second, which starts from the last character of the first."""
    middle = (len(ids) - 1) // 2
    return ids[: middle + 1], ids[middle:]


def check_fits(
    ids: np.ndarray, config: EvalConfig, what: str, blocks: bool = True, dynamic: bool = True
) -> None:
    """Enough characters for the settings: a segment per stream (where dynamic evaluation runs
    on `ids`) and (where a figure is reported, `blocks`) two bootstrap blocks."""
    n = len(ids) - 1
    if dynamic and config.dynamic and n < config.streams * config.segment:
        raise ConfigError(
            f"{what} has {n:,} characters, fewer than one {config.segment}-character segment "
            f"for each of {config.streams} streams: use fewer --streams or a shorter --segment"
        )
    if blocks and n < 2 * config.block:
        raise ConfigError(
            f"{what} has {n:,} characters, fewer than 2 bootstrap blocks of {config.block:,}: "
            "use a smaller --block or a longer split"
        )


def load_scored_model(path: str, device: str) -> tuple[CharLSTM, Vocab, RunConfig, dict]:
    """The model, vocabulary, run config and corpus record of a checkpoint."""
    file = str(checkpoint_file(path))
    checkpoint = load_checkpoint(file, map_location=device)
    run = run_config_from_flat(checkpoint["run_config"])
    model = CharLSTM(run.model).to(device)
    load_weights(model, checkpoint["model"], file)
    return model.eval(), Vocab(tuple(checkpoint["vocab"])), run, checkpoint["corpus"]


# -- the report -------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class DynamicResult:
    settings: DynamicSettings  # chosen on the tuning text (or given)
    scores: tuple[tuple[DynamicSettings, float], ...]  # every grid point's bpc on the tuning text
    tuning_chars: int  # characters the settings were chosen on
    chars: int  # characters the figures below are reported on
    static: Interval  # static bpc on those characters
    dynamic: Interval  # dynamic bpc on them
    difference: Interval  # dynamic - static, paired
    seconds: float  # wall time of the reported dynamic pass
    stats_seconds: float  # wall time of the gradient statistics (rms)
    tuning_seconds: float  # wall time of choosing the settings
    bits: np.ndarray = field(repr=False)  # dynamic bits of each reported character


@dataclass(frozen=True, eq=False)
class EvalReport:
    checkpoint: str
    text: str
    split: str
    chars: int  # characters of the split
    static: Interval  # static bpc on the whole split
    static_seconds: float
    dynamic: DynamicResult | None
    bits: np.ndarray = field(repr=False)  # static bits of each character of the split


def dynamic_texts(text: EvalText, config: EvalConfig) -> tuple[np.ndarray, np.ndarray]:
    """The characters dynamic settings are chosen on and those its figures are reported on,
    checked to be enough for the settings (a ConfigError naming the flag that decides)."""
    if text.tuning is not None:
        tune_ids, report_ids = text.tuning, text.scored
        check_fits(tune_ids, config, "the end of the validation split where settings are "
                   f"chosen (at most --tuning-chars {config.tuning_chars:,})", False)  # fmt: skip
        check_fits(report_ids, config, "the test split (where dynamic is reported)")
    else:
        tune_ids, report_ids = halves(text.scored)
        check_fits(tune_ids, config, "the first half of the split (where settings are chosen)")
        check_fits(report_ids, config, "the second half of the split (where dynamic is reported)")
    if config.method == "rms" and len(text.before) - 1 < config.streams * config.segment:
        raise ConfigError(
            f"{len(text.before) - 1:,} characters before the split (at most --stats-chars "
            f"{config.stats_chars:,}) are too few for gradient statistics over "
            f"{config.streams} streams of {config.segment}-character segments"
        )
    return tune_ids, report_ids


def evaluate_dynamic(model: CharLSTM, text: EvalText, config: EvalConfig) -> DynamicResult:
    """Settings chosen on validation, figures on the test split; scoring validation itself,
    chosen on its first half and reported on its second (module doc)."""
    tune_ids, report_ids = dynamic_texts(text, config)
    started = time.perf_counter()
    rms = None
    if config.method == "rms":
        rms = gradient_rms(model, text.before, config.segment, config.streams)
    stats_seconds = time.perf_counter() - started
    grid = settings_grid(
        config.method,
        None if config.dyn_lr is None else (config.dyn_lr,),
        None if config.decay is None else (config.decay,),
        config.segment,
        config.streams,
    )
    started = time.perf_counter()
    if len(grid) == 1:  # every setting given: nothing to choose
        chosen, scores = grid[0], []
    else:
        chosen, scores = choose_settings(model, tune_ids, grid, rms, EDGE_STEPS)
    tuning_seconds = time.perf_counter() - started
    started = time.perf_counter()
    dynamic_bits = dynamic_char_losses(model, report_ids, chosen, rms)
    seconds = time.perf_counter() - started
    static_bits = char_losses(model, report_ids, config.segment, config.streams)
    boot = config.bootstrap
    return DynamicResult(
        settings=chosen,
        scores=tuple(scores),
        tuning_chars=len(tune_ids) - 1,
        chars=len(report_ids) - 1,
        static=block_bootstrap(static_bits, **boot),
        dynamic=block_bootstrap(dynamic_bits, **boot),
        difference=paired_difference(dynamic_bits, static_bits, **boot),
        seconds=seconds,
        stats_seconds=stats_seconds,
        tuning_seconds=tuning_seconds,
        bits=dynamic_bits,
    )


def evaluate_checkpoint(config: EvalConfig) -> EvalReport:
    """Static (and with `config.dynamic`, dynamic) bpc of a checkpoint, with intervals.
    `config.threads` > 0 sets torch's thread count for the process."""
    if not config.checkpoint:
        raise ConfigError("--checkpoint is required: a checkpoint file or a run folder")
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    device = str(resolve_device(config.device))
    model, vocab, run, trained = load_scored_model(config.checkpoint, device)
    text = load_text(config, run, trained, vocab)
    check_fits(text.scored, config, f"the {config.split} split", dynamic=False)
    if config.dynamic:  # refused before the static pass, not after it
        dynamic_texts(text, config)
    started = time.perf_counter()
    bits = char_losses(model, text.scored, run.train.seq_len, VAL_STREAMS)
    static_seconds = time.perf_counter() - started
    return EvalReport(
        checkpoint=str(checkpoint_file(config.checkpoint)),
        text=text.name,
        split=config.split,
        chars=len(bits),
        static=block_bootstrap(bits, **config.bootstrap),
        static_seconds=static_seconds,
        dynamic=evaluate_dynamic(model, text, config) if config.dynamic else None,
        bits=bits,
    )


def _span(interval: Interval) -> str:
    return f"{interval.mean:.4f} [{interval.low:.4f}, {interval.high:.4f}]"


def format_report(report: EvalReport, level: float, block: int) -> str:
    """The report as lines of text, each figure with its interval."""
    boot = f"{level:.0%} block bootstrap, {block:,}-character blocks"
    lines = [
        f"checkpoint {report.checkpoint}: {report.text}, {report.split} split, "
        f"{report.chars:,} characters",
        f"static  bpc {_span(report.static)}  ({boot}; {report.static_seconds:.1f} s)",
    ]
    result = report.dynamic
    if result is not None:
        s = result.settings
        where = ("the last {:,} characters of the validation split" if report.split == "test"
                 else "the first {:,} characters (the first half)")  # fmt: skip
        how = (
            f"chosen on {where.format(result.tuning_chars)} ({result.tuning_seconds:.1f} s)"
            if result.scores
            else "given"
        )
        lines += [
            f"dynamic settings {how}: method {s.method}, lr {s.lr:g}, decay {s.decay:g}, "
            f"segment {s.segment}, streams {s.streams}",
            *(f"  tried lr {t.lr:g} decay {t.decay:g}: {bpc:.4f}" for t, bpc in result.scores),
            f"on the {'test split' if report.split == 'test' else 'last'} "
            f"{result.chars:,} characters:",
            f"static  bpc {_span(result.static)}",
            f"dynamic bpc {_span(result.dynamic)}  ({result.seconds:.1f} s, "
            f"{100_000 * result.seconds / result.chars:.1f} s per 100k characters; gradient "
            f"statistics {result.stats_seconds:.1f} s)",
            describe_difference(result.difference, "dynamic", "static"),
        ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m model.evaluate", description=__doc__.split("\n")[0])
    add_flags(parser, EvalConfig, required=("checkpoint",))
    return parser


def command(argv: Sequence[str] | None = None) -> int:
    config = EvalConfig(**vars(build_parser().parse_args(argv)))
    report = evaluate_checkpoint(config)
    print(format_report(report, config.level, config.block))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; every expected failure is one "error:" line and exit status 2."""
    return run_cli(command, argv)


if __name__ == "__main__":
    sys.exit(main())
