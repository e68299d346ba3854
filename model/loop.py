"""Plain-PyTorch training loop for `CharLSTM` on stateful batches; knows nothing of Ray or Optuna.

    trainer = Trainer(run_config, corpus)            # or Trainer.restore(checkpoint_dict, corpus)
    status = fit(trainer, report=history.append)     # "completed" or "diverged"

`fit` calls `report(metrics)` every `eval_every_chars` training characters and at the end; the
caller decides what a report means (a Tune iteration, a metrics row plus a checkpoint file, a
list in a test). `trainer.checkpoint()` captures everything needed to continue exactly where
training stopped: weights, optimizer, stream position, hidden state, RNG state, vocab, config.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from corpora import Corpus
from model.batching import PAD, next_position, stream_matrix, window
from model.config import RunConfig, run_config_from_flat, run_config_to_flat
from model.errors import ConfigError
from model.files import atomic_path
from model.lstm import CharLSTM, State, detach_state

CHECKPOINT_FORMAT = 1
LN2 = math.log(2.0)
# A batch loss this many times that of uniform guessing (ln V nats) means the run has diverged:
# Adam's normalised steps keep an exploding model's loss finite but astronomically large.
DIVERGED_FACTOR = 3.0
# Validation streams, the same for every trial: each stream starts without context, so cutting
# the validation text by the trial's batch size would charge large batches more cold starts.
VAL_STREAMS = 16

Metrics = dict[str, Any]


def nats_to_bits(nats: float) -> float:
    return nats / LN2


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but no CUDA device is available")
    return torch.device(name)


def learning_rate(
    chars_seen: int, base_lr: float, warmup_chars: int, decay: str, total: int
) -> float:
    """Linear warm-up over `warmup_chars`, then constant or cosine decay to 10% at `total`."""
    if chars_seen < warmup_chars:
        return base_lr * (chars_seen + 1) / warmup_chars
    if decay == "cosine":
        progress = min(1.0, (chars_seen - warmup_chars) / max(1, total - warmup_chars))
        return base_lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))
    return base_lr


def check_corpus_fits(n_train: int, n_val: int, batch_size: int, seq_len: int) -> None:
    """One full batch of training text and one character per validation stream are needed."""
    if n_train - 1 < batch_size * seq_len:
        raise ConfigError(
            f"training text of {n_train} characters is too short for batch_size * seq_len = "
            f"{batch_size} * {seq_len}; use a longer corpus or smaller batches"
        )
    if n_val < 1:
        raise ConfigError("validation text is empty; raise val_fraction")


@dataclass
class _Streams:
    inputs: torch.Tensor  # (B, L) int64 on the training device
    targets: torch.Tensor  # (B, L) int64, PAD where there is no character

    @classmethod
    def build(cls, ids: np.ndarray, batch_size: int, pad: bool, device: torch.device) -> _Streams:
        inputs, targets = stream_matrix(ids, batch_size, pad=pad)
        return cls(torch.from_numpy(inputs).to(device), torch.from_numpy(targets).to(device))

    @property
    def length(self) -> int:
        return self.inputs.shape[1]


class Trainer:
    """The mutable state of one training run, and the steps that advance it."""

    def __init__(self, run: RunConfig, corpus: Corpus) -> None:
        if run.model.vocab_size != len(corpus.vocab):
            raise ConfigError(
                f"vocab_size {run.model.vocab_size} does not match the corpus ({len(corpus.vocab)})"
            )
        tc = run.train
        check_corpus_fits(len(corpus.train_ids), len(corpus.val_ids), tc.batch_size, tc.seq_len)
        self.run = run
        self.corpus = corpus
        self.device = resolve_device(tc.device)
        torch.manual_seed(tc.seed)
        self.model = CharLSTM(run.model).to(self.device)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay
        )
        self.train_streams = _Streams.build(corpus.train_ids, tc.batch_size, False, self.device)
        # Validation predicts every validation character, the first one from the last training one.
        val_ids = np.concatenate([corpus.train_ids[-1:], corpus.val_ids])
        self.val_streams = _Streams.build(val_ids, VAL_STREAMS, True, self.device)
        self.state: State = self.model.init_state(tc.batch_size)
        self.position = 0  # column of the next training batch in the streams
        self.epoch = 0  # completed passes over the training text
        self.step = 0
        self.chars_seen = 0  # training characters (targets) consumed so far
        self.elapsed_s = 0.0  # wall time spent in this run, over all resumes
        self.train_s = 0.0  # of which inside training steps (the rest: evaluation)
        self._window_loss = torch.zeros((), device=self.device)  # summed nats since last report
        self._window_chars = 0
        self._window_train_s = 0.0

    # -- training -----------------------------------------------------------------------------

    def train_step(self) -> float:
        """One optimizer step on the next batch of every stream; returns the batch loss in nats."""
        tc = self.run.train
        started = time.perf_counter()
        self.model.train()
        cols = window(self.position, tc.seq_len, self.train_streams.length)
        x, y = self.train_streams.inputs[:, cols], self.train_streams.targets[:, cols]
        lr = learning_rate(self.chars_seen, tc.lr, tc.warmup_chars, tc.decay, tc.max_train_chars)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        logits, state = self.model(x, detach_state(self.state))
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if tc.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), tc.grad_clip)
        self.optimizer.step()
        self.state = state
        self.position, wrapped = next_position(self.position, tc.seq_len, self.train_streams.length)
        if wrapped:  # every stream starts over from its first character: forget the old context
            self.epoch += 1
            self.state = self.model.init_state(tc.batch_size)
        n = y.numel()
        self.step += 1
        self.chars_seen += n
        self._window_chars += n
        loss_value = (
            loss.item()
        )  # note: a device sync; cheap next to an LSTM step, needed for NaN checks
        self._window_loss += loss.detach() * n
        seconds = time.perf_counter() - started
        self._window_train_s += seconds
        self.train_s += seconds
        self.elapsed_s += seconds
        return loss_value

    @torch.no_grad()
    def evaluate(self) -> float:
        """Exact mean bits per character over every validation character, state carried."""
        self.model.eval()
        streams, seq_len = self.val_streams, self.run.train.seq_len
        state = self.model.init_state(streams.inputs.shape[0])
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        position = 0
        while True:
            cols = window(position, seq_len, streams.length)
            logits, state = self.model(streams.inputs[:, cols], state)
            y = streams.targets[:, cols]
            total += F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]),
                y.reshape(-1),
                ignore_index=PAD,
                reduction="sum",
            ).double()
            position, wrapped = next_position(position, seq_len, streams.length)
            if wrapped:
                break
        return nats_to_bits(total.item() / len(self.corpus.val_ids))

    def report_metrics(self, *, evaluate: bool = True) -> Metrics:
        """Metrics since the last report; evaluates on the validation text unless told not to."""
        started = time.perf_counter()
        train_nats = (self._window_loss / max(1, self._window_chars)).item()
        val_bpc = self.evaluate() if evaluate else float("nan")
        self.elapsed_s += time.perf_counter() - started
        metrics: Metrics = {
            "train_bpc": nats_to_bits(train_nats),
            "val_bpc": val_bpc,
            "chars_seen": self.chars_seen,
            "chars_per_s": self._window_chars / max(self._window_train_s, 1e-9),
            "elapsed_s": self.elapsed_s,
            "train_s": self.train_s,
            "step": self.step,
            "epoch": self.epoch,
            "lr": self.optimizer.param_groups[0]["lr"],
        }
        self._window_loss.zero_()
        self._window_chars = 0
        self._window_train_s = 0.0
        return metrics

    # -- checkpoints --------------------------------------------------------------------------

    def checkpoint(self) -> dict[str, Any]:
        """Everything needed to resume exactly; only tensors and plain types (weights_only-safe)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "run_config": run_config_to_flat(self.run),
            "vocab": list(self.corpus.vocab.chars),
            "corpus": {
                "name": self.corpus.name,
                "sha256": self.corpus.sha256,
                "n_chars": self.corpus.n_chars,
            },
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "hidden": [s.detach().cpu() for s in self.state],
            "progress": {
                "position": self.position,
                "epoch": self.epoch,
                "step": self.step,
                "chars_seen": self.chars_seen,
                "elapsed_s": self.elapsed_s,
                "train_s": self.train_s,
            },
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            },
        }

    @classmethod
    def restore(cls, checkpoint: dict[str, Any], corpus: Corpus) -> Trainer:
        """A trainer that continues the run `checkpoint` came from, on the same corpus."""
        if checkpoint.get("format") != CHECKPOINT_FORMAT:
            raise ConfigError(f"unsupported checkpoint format {checkpoint.get('format')!r}")
        if (
            list(corpus.vocab.chars) != checkpoint["vocab"]
            or corpus.sha256 != checkpoint["corpus"]["sha256"]
        ):
            raise ConfigError("checkpoint was trained on a different corpus or vocabulary")
        trainer = cls(run_config_from_flat(checkpoint["run_config"]), corpus)
        trainer.model.load_state_dict(checkpoint["model"])
        trainer.optimizer.load_state_dict(checkpoint["optimizer"])
        trainer.state = tuple(s.to(trainer.device) for s in checkpoint["hidden"])
        progress = checkpoint["progress"]
        trainer.position = progress["position"]
        trainer.epoch = progress["epoch"]
        trainer.step = progress["step"]
        trainer.chars_seen = progress["chars_seen"]
        trainer.elapsed_s = progress["elapsed_s"]
        trainer.train_s = progress["train_s"]
        torch.set_rng_state(checkpoint["rng"]["torch"])
        if checkpoint["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(checkpoint["rng"]["cuda"])
        return trainer


def fit(
    trainer: Trainer,
    report: Callable[[Metrics], None],
    on_step: Callable[[int], None] | None = None,
) -> str:
    """Train until `max_train_chars`; report every `eval_every_chars`. Returns the final status.

    A non-finite training loss, or one `DIVERGED_FACTOR` times that of uniform guessing, stops
    the run at once: its last report has `diverged=True` and `val_bpc=nan` (not evaluated), and
    the status is "diverged". Otherwise the status is "completed".
    """
    tc = trainer.run.train
    limit = DIVERGED_FACTOR * math.log(max(2, trainer.run.model.vocab_size))
    while trainer.chars_seen < tc.max_train_chars:
        before = trainer.chars_seen
        loss = trainer.train_step()
        if on_step is not None:
            on_step(trainer.chars_seen - before)
        if not loss < limit:  # also catches NaN
            report({**trainer.report_metrics(evaluate=False), "diverged": True})
            return "diverged"
        interval_crossed = trainer.chars_seen // tc.eval_every_chars > before // tc.eval_every_chars
        if interval_crossed or trainer.chars_seen >= tc.max_train_chars:
            metrics = trainer.report_metrics()
            if not math.isfinite(metrics["val_bpc"]):
                report({**metrics, "diverged": True})
                return "diverged"
            report({**metrics, "diverged": False})
    return "completed"


def save_checkpoint(checkpoint: dict[str, Any], path: str) -> None:
    """Write atomically: a crash mid-write never leaves a truncated checkpoint behind."""
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def load_checkpoint(path: str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load with `weights_only=True`: tensors and plain containers only, no arbitrary unpickling."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for a missing, corrupt or foreign file
        raise ConfigError(f"cannot read checkpoint {path}: {type(error).__name__}") from error
