"""Plain-PyTorch training loop for `CharLSTM` on stateful batches; knows nothing of Ray or Optuna.

    trainer = Trainer(run_config, corpus)            # or Trainer.restore(checkpoint_dict, corpus)
    status = fit(trainer, report=history.append)     # "completed", "cut", "plateaued", "diverged"

A run's budget is characters (`max_train_chars`), training seconds (`max_train_s`), or both:
whichever is used up first ends it, and cosine decay follows the one further along. `fit`
calls `report(metrics)` every `eval_every_chars` characters, at given training seconds (a
search's rungs), and at the end; given a deadline, it stops early enough to validate and
report once more before it. The caller decides what a report means (a Tune iteration, a
metrics row plus a checkpoint file, a list in a test). `trainer.checkpoint()` captures
everything needed to continue exactly where training stopped: weights, optimizer, stream
position, hidden state, RNG state, vocab, config, and the validations so far.

The `wsd` learning-rate schedule (warmup-stable-decay) makes a run good at every point where
it may be stopped: the reports. Each stretch between two reports trains at the full rate and
cools down to 10% over its last `cooldown` share, so every report scores a cooled-down model,
as a run planned to end there would be; the next stretch starts at the full rate again, or
lower where it is short next to the training behind it (`restart_peak`). The last stretch ends
at the run's budget or, given a deadline, when training must stop for it.
A run given a plateau share stops itself ("plateaued") once its best validation has not
improved over that last share of its training, counted in characters trained (its own
progress: a run slowed by a busy node is not judged on time it did not train): overfitting or
stalled runs free their slot, and their best checkpoint is the one to keep.
"""

from __future__ import annotations

import math
import os
import pickle
import re
import threading
import time
import zipfile
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from corpora import Corpus
from corpora.errors import one_line
from corpora.files import atomic_path
from model.batching import PAD, Streams, batch, next_position, stream_views, window
from model.config import RunConfig, run_config_from_flat, run_config_to_flat
from model.errors import ConfigError
from model.lstm import CharLSTM, State, detach_state

CHECKPOINT_FORMAT = 1
LN2 = math.log(2.0)
# A batch loss this many times that of uniform guessing (ln V nats) means the run has diverged:
# Adam's normalised steps keep an exploding model's loss finite but astronomically large.
DIVERGED_FACTOR = 3.0
# Validation streams, the same for every trial: each stream starts without context, so cutting
# the validation text by the trial's batch size would charge large batches more cold starts.
VAL_STREAMS = 16
# Seconds a run stopping for a deadline keeps for its last checkpoint and report, beyond the
# estimated time of its last validation.
FINAL_REPORT_MARGIN_S = 1.0
# Of the wall time left before a deadline, the share a wsd schedule counts on training in (the
# rest: reports, checkpoints, the loop itself): better cooled down a little early than cut hot.
DEADLINE_SHARE = 0.95
COOLED = 0.2  # wsd: a report after a step at no more than this share of the rate is cooled down
FLOOR = 0.1  # cosine and wsd decay to this share of the rate

Metrics = dict[str, Any]


def nats_to_bits(nats: float) -> float:
    return nats / LN2


def resolve_device(name: str) -> torch.device:
    """`name` (auto, cpu, cuda or cuda:N) as a device this machine has; ConfigError otherwise."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name != "cpu" and not re.fullmatch(r"cuda(:\d+)?", name):
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but this machine has no CUDA device")
    return torch.device(name)


def budget_progress(chars_seen: int, train_s: float, max_chars: int, max_s: float) -> float:
    """Share of the training budget used: characters or training seconds, whichever is further."""
    progress = chars_seen / max_chars
    if max_s > 0:
        progress = max(progress, train_s / max_s)
    return min(1.0, progress)


def learning_rate(
    chars_seen: int,
    base_lr: float,
    warmup_chars: int,
    decay: str,
    progress: float,
    cooldown: float = 0.5,
    peak: float = 1.0,
) -> float:
    """Linear warm-up over `warmup_chars`, then constant; or cosine decay to 10% of `base_lr`
    as `progress` (the share of the budget used, 0 to 1) reaches 1; or, for `wsd`, constant at
    `peak` times `base_lr` (never below 10%) until `progress` (then the share of the current
    stretch used) enters its last `cooldown` share, and linear decay to 10% over that share."""
    if chars_seen < warmup_chars:
        return base_lr * (chars_seen + 1) / warmup_chars
    progress = min(1.0, max(0.0, progress))
    if decay == "cosine":
        return base_lr * (FLOOR + (1 - FLOOR) * 0.5 * (1.0 + math.cos(math.pi * progress)))
    if decay == "wsd":
        cooled = max(0.0, progress - (1.0 - cooldown)) / cooldown
        top = max(FLOOR, min(1.0, peak))
        return base_lr * (top - (top - FLOOR) * cooled)
    return base_lr


def kept_stops(stops: Sequence[float], end: float) -> list[float]:
    """The `stops` before `end` that end a stretch, in order. A last stop closer to `end` than
    to the stop before it ends none (the last stretch would be too short to gain from a restart
    and cool down again): the stretch before it runs on to `end`."""
    kept = sorted(s for s in stops if s < end)
    if kept and end - kept[-1] < kept[-1] - (kept[-2] if len(kept) > 1 else 0.0):
        kept.pop()
    return kept


def stretch_progress(t: float, stops: Sequence[float], end: float) -> float:
    """How far training second `t` is through its stretch (0 to 1): from the last of the
    `kept_stops` at or before `t` (or 0) to the next one after it, the last stretch ending at
    `end`."""
    return share_through(t, *stretch_bounds(t, stops, end))


def share_through(t: float, start: float, stop: float) -> float:
    """How far `t` is from `start` to `stop` (0 to 1; 1 for an empty span)."""
    if stop <= start:
        return 1.0
    return min(1.0, (t - start) / (stop - start))


def stretch_bounds(t: float, stops: Sequence[float], end: float) -> tuple[float, float]:
    """Where the stretch of training second `t` starts and stops (see `stretch_progress`)."""
    stops = kept_stops(stops, end)
    start = max((s for s in stops if s <= t), default=0.0)
    return start, min(min((s for s in stops if s > t), default=end), end)


def restart_peak(start: float, stop: float, share: float) -> float:
    """The share of the full rate a `wsd` stretch from `start` to `stop` (training seconds)
    restarts at: the full rate for the first stretch and for one at least `share` times as long
    as the training before it (0: always), less in proportion for a shorter one.

    A restart at the full rate costs a cooled-down model a rise it must train back, while what
    a second of training gains shrinks as training goes on: a stretch short next to the training
    behind it (the endgame's reports, late in a trial) ends worse than it began. Measured from
    the checkpoints of two hour-long searches in docs/benchmarks.md."""
    if start <= 0 or share <= 0:
        return 1.0
    return min(1.0, (stop - start) / (share * start))


def plateaued(history: Sequence[tuple[float, float]], share: float) -> bool:
    """Whether a run whose validations are `history` ((characters trained, bpc), in order) has
    not improved over the last `share` of its training: its best validation in that window is
    no lower than its best before it. Needs one validation before the window and one in it."""
    if len(history) < 2:
        return False
    since = history[-1][0] * (1.0 - share)
    before = [v for t, v in history if t <= since]
    recent = [v for t, v in history if t > since]
    return bool(before and recent) and min(recent) >= min(before)


def check_corpus_fits(
    n_train: int, n_val: int, batch_size: int, seq_len: int, shorter: str = "smaller batches"
) -> None:
    """One full batch of training text and one character per validation stream are needed;
    `shorter` says how to ask for smaller batches."""
    if n_train - 1 < batch_size * seq_len:
        raise ConfigError(
            f"training text of {n_train} characters is too short for batch_size * seq_len = "
            f"{batch_size} * {seq_len}; use a longer corpus or {shorter}"
        )
    if n_val < 1:
        raise ConfigError("validation text is empty; raise val_fraction")


class Trainer:
    """The mutable state of one training run, and the steps that advance it."""

    def __init__(self, run: RunConfig, corpus: Corpus) -> None:
        if run.model.vocab_size != len(corpus.vocab):
            raise ConfigError(
                f"vocab_size {run.model.vocab_size} does not match the corpus ({len(corpus.vocab)})"
            )
        tc = run.train
        train_ids = corpus.train_ids[: tc.train_chars] if tc.train_chars else corpus.train_ids
        check_corpus_fits(len(train_ids), len(corpus.val_ids), tc.batch_size, tc.seq_len)
        self.run = run
        self.corpus = corpus
        self.device = resolve_device(tc.device)
        torch.manual_seed(tc.seed)
        self.model = CharLSTM(run.model).to(self.device)
        self.optimizer = torch.optim.AdamW(  # decoupled weight decay; none: Adam
            self.model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay
        )
        self.train_streams = stream_views(train_ids, tc.batch_size)  # views: no copy
        # Validation predicts every validation character, the first one from the last training one.
        self._val_ids = np.concatenate([corpus.train_ids[-1:], corpus.val_ids])
        self._val_streams: dict[int, Streams] = {}  # by characters scored, built when first used
        self.state: State = self.model.init_state(tc.batch_size)
        self.position = 0  # column of the next training batch in the streams
        self.epoch = 0  # completed passes over the training text
        self.step = 0
        self.chars_seen = 0  # training characters (targets) consumed so far
        self.elapsed_s = 0.0  # wall time spent in this run, over all resumes
        self.train_s = 0.0  # of which inside training steps (the rest: evaluation)
        self.eval_s = 0.0  # of which evaluating
        self.checkpoint_s = 0.0  # wall time the caller spent saving checkpoints (it adds it)
        self._eval_rate = 0.0  # validation characters per second, once measured
        self.val_history: list[tuple[float, float]] = []  # (chars_seen, bpc) on the whole
        # text, of cooled-down models only under wsd: what a plateau is judged on
        self.best_val = math.inf  # best bpc on the whole text so far
        self._window_loss = torch.zeros((), device=self.device)  # summed nats since last report
        self._window_chars = 0
        self._window_train_s = 0.0

    @property
    def val_chars(self) -> int:
        """Characters of the whole validation text."""
        return len(self.corpus.val_ids)

    def progress(self) -> float:
        """Share of the run's budget (characters or training seconds) used so far."""
        tc = self.run.train
        return budget_progress(self.chars_seen, self.train_s, tc.max_train_chars, tc.max_train_s)

    # -- training -----------------------------------------------------------------------------

    def stretch_end(self, end_s: float) -> float:
        """Where the last stretch of `wsd` ends: `end_s` (training seconds) or the budget."""
        return min(end_s, self.run.train.max_train_s or math.inf)

    def scheduled_lr(self, stops: Sequence[float] = (), end_s: float = math.inf) -> float:
        """The learning rate of the next step. For `wsd`, its stretches end at `stops` and at
        `end_s` (training seconds), or at the run's budget; over a budget in characters only,
        the whole run is one stretch."""
        tc = self.run.train
        progress = self.progress()
        end, peak = self.stretch_end(end_s), 1.0
        if tc.decay == "wsd" and math.isfinite(end):
            start, stop = stretch_bounds(self.train_s, stops, end)  # once a step: found once
            progress = share_through(self.train_s, start, stop)
            peak = restart_peak(start, stop, tc.restart_share)
        return learning_rate(self.chars_seen, tc.lr, tc.warmup_chars, tc.decay, progress,
                             tc.cooldown, peak)  # fmt: skip

    def cooled_stops(self, stops: Sequence[float], end_s: float) -> list[float]:
        """Of `stops`, those the rate cools down to (`scheduled_lr`): for `wsd`, a stop that
        ends no stretch (`kept_stops`) falls mid-stretch, at about the full rate."""
        end = self.stretch_end(end_s)
        if self.run.train.decay != "wsd" or not math.isfinite(end):
            return list(stops)
        kept = kept_stops(stops, end)
        return [s for s in stops if s in kept]

    def train_step(self, lr: float | None = None) -> float:
        """One optimizer step on the next batch of every stream, at `lr` (default: the
        schedule's over the whole budget); returns the batch loss in nats."""
        tc = self.run.train
        started = time.perf_counter()
        self.model.train()
        cols = window(self.position, tc.seq_len, self.train_streams.length)
        x, y = batch(self.train_streams, cols, self.device)
        lr = self.scheduled_lr() if lr is None else lr
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

    def _streams_for(self, chars: int) -> Streams:
        if chars not in self._val_streams:
            self._val_streams[chars] = stream_views(
                self._val_ids[: chars + 1], VAL_STREAMS, pad=True
            )
        return self._val_streams[chars]

    @torch.no_grad()
    def evaluate(self, chars: int | None = None) -> float:
        """Exact mean bits per character over the first `chars` validation characters (default:
        all of them), in `VAL_STREAMS` streams with the state carried."""
        chars = self.val_chars if chars is None else max(1, min(chars, self.val_chars))
        started = time.perf_counter()
        self.model.eval()
        streams, seq_len = self._streams_for(chars), self.run.train.seq_len
        state = self.model.init_state(streams.batch_size)
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        position = 0
        while True:
            cols = window(position, seq_len, streams.length)
            x, y = batch(streams, cols, self.device)
            logits, state = self.model(x, state)
            total += F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]),
                y.reshape(-1),
                ignore_index=PAD,
                reduction="sum",
            ).double()
            position, wrapped = next_position(position, seq_len, streams.length)
            if wrapped:
                break
        bits = nats_to_bits(total.item() / chars)
        seconds = time.perf_counter() - started
        self._eval_rate = chars / max(seconds, 1e-9)
        self.eval_s += seconds
        self.elapsed_s += seconds
        return bits

    def report_metrics(self, *, val_chars: int | None = None, evaluate: bool = True) -> Metrics:
        """Metrics since the last report, with validation bpc over the first `val_chars`
        validation characters (default: all; NaN when told not to evaluate)."""
        train_nats, speed = math.nan, math.nan  # no step since the last report: no figure, not 0
        if self._window_chars:
            train_nats = (self._window_loss / self._window_chars).item()
            speed = self._window_chars / max(self._window_train_s, 1e-9)
        chars = self.val_chars if val_chars is None else min(val_chars, self.val_chars)
        val_bpc = self.evaluate(chars) if evaluate else float("nan")
        if evaluate and chars == self.val_chars and math.isfinite(val_bpc):
            self.best_val = min(self.best_val, val_bpc)
            if self.cooled():
                self.val_history.append((self.chars_seen, val_bpc))
        best = self.best_val if math.isfinite(self.best_val) else float("nan")
        metrics: Metrics = {
            "train_bpc": nats_to_bits(train_nats),
            "val_bpc": val_bpc,
            "val_chars": chars if evaluate else 0,
            "best_val_bpc": best,  # best so far on the whole validation text (NaN: none yet)
            "chars_seen": self.chars_seen,
            "chars_per_s": speed,
            "elapsed_s": self.elapsed_s,
            "train_s": self.train_s,
            "eval_s": self.eval_s,
            "checkpoint_s": self.checkpoint_s,
            "step": self.step,
            "epoch": self.epoch,
            "lr": self.optimizer.param_groups[0]["lr"],
            "time": time.time(),  # when this report was made (Unix seconds): anytime curves
        }
        self._window_loss.zero_()
        self._window_chars = 0
        self._window_train_s = 0.0
        return metrics

    def cooled(self) -> bool:
        """Whether the last step's rate was cooled down (always, but under wsd): a value that
        compares fairly with the other cooled-down ones."""
        tc = self.run.train
        return tc.decay != "wsd" or self.optimizer.param_groups[0]["lr"] <= COOLED * tc.lr

    def train_s_at(self, deadline: float, stops: Sequence[float] = ()) -> float:
        """Training seconds this run will have when `deadline` (a `time.time()`) stops it: the
        wall time left, less the last report and the whole-text validations at `stops` on the
        way, with a little kept in hand for the time outside training steps."""
        left = deadline - time.time() - self.final_report_s()
        per_eval = self.val_chars / self._eval_rate
        ahead = sum(self.train_s < s < self.train_s + left for s in stops)
        return self.train_s + max(0.0, DEADLINE_SHARE * (left - ahead * per_eval))

    def final_report_s(self) -> float:
        """Seconds to keep in hand for a last validation over the whole text and a report."""
        if not self._eval_rate:  # measure it on a few batches of validation text
            self.evaluate(VAL_STREAMS * self.run.train.seq_len * 4)
        return FINAL_REPORT_MARGIN_S + 1.5 * self.val_chars / self._eval_rate

    # -- checkpoints --------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> dict[str, Any]:
        """Write the checkpoint to `path` (atomically) and count the time in `checkpoint_s`;
        returns it. Callers save before they report a validation: the report then never runs
        ahead of the checkpoint a resume continues from."""
        started = time.perf_counter()
        checkpoint = self.checkpoint()
        save_checkpoint(checkpoint, str(path))
        self.checkpoint_s += time.perf_counter() - started  # in the next checkpoint
        return checkpoint

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
                "eval_s": self.eval_s,
                "checkpoint_s": self.checkpoint_s,
                "val_history_chars": [list(point) for point in self.val_history],
                "best_val": self.best_val,
            },
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            },
        }

    @classmethod
    def restore(cls, checkpoint: dict[str, Any], corpus: Corpus) -> Trainer:
        """A trainer that continues the run `checkpoint` came from, on the same corpus."""
        if (
            list(corpus.vocab.chars) != checkpoint["vocab"]
            or corpus.sha256 != checkpoint["corpus"]["sha256"]
        ):
            raise ConfigError("checkpoint was trained on a different corpus or vocabulary")
        trainer = cls(run_config_from_flat(checkpoint["run_config"]), corpus)
        load_weights(trainer.model, checkpoint["model"], "checkpoint")
        try:
            trainer.optimizer.load_state_dict(checkpoint["optimizer"])
        except (ValueError, KeyError, TypeError) as error:
            raise ConfigError(f"checkpoint optimizer state does not fit: {error}") from None
        for group in trainer.optimizer.param_groups:  # the state dict set the saved decay;
            group["weight_decay"] = trainer.run.train.weight_decay  # the config's wins (PBT)
        trainer.state = tuple(s.to(trainer.device) for s in checkpoint["hidden"])
        progress = checkpoint["progress"]
        trainer.position = progress["position"]
        trainer.epoch = progress["epoch"]
        trainer.step = progress["step"]
        trainer.chars_seen = progress["chars_seen"]
        trainer.elapsed_s = progress["elapsed_s"]
        trainer.train_s = progress["train_s"]
        trainer.eval_s = progress.get("eval_s", 0.0)
        trainer.checkpoint_s = progress.get("checkpoint_s", 0.0)
        # A checkpoint from before the history was kept in characters ("val_history", in
        # training seconds) restarts it: the plateau rule judges from its next two reports.
        trainer.val_history = [(c, v) for c, v in progress.get("val_history_chars", [])]
        trainer.best_val = progress.get("best_val", min((v for _, v in trainer.val_history),
                                                        default=math.inf))  # fmt: skip
        torch.set_rng_state(checkpoint["rng"]["torch"])
        if checkpoint["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(checkpoint["rng"]["cuda"])
        return trainer


def chars_per_second(
    run: RunConfig, corpus: Corpus, seconds: float = 0.25, copies: int = 1
) -> float:
    """Training characters a second of `run` here, on torch's current threads, while `copies`
    of it train at once (in threads: torch leaves the interpreter lock while it computes), as
    trials sharing a machine do: one step to warm up, then, all copies together, steps for
    `seconds` (at least two). The mean over the copies."""

    def one(together: Callable[[], object]) -> float:
        trainer = Trainer(run, corpus)
        trainer.train_step()
        together()  # a copy still building its model would leave the others the cores
        steps, started = 0, time.perf_counter()
        while steps < 2 or time.perf_counter() - started < seconds:
            trainer.train_step()
            steps += 1
        elapsed = time.perf_counter() - started
        return steps * run.train.batch_size * run.train.seq_len / elapsed

    return sum(run_together(one, copies)) / copies


def run_together(task: Callable[[Callable[[], object]], float], copies: int) -> list[float]:
    """`task` run by `copies` threads at once, each given a function that waits until every
    copy has called it (a start line); their results, in order.

    Whatever ends one copy or the caller early (an error, Ctrl-C or SIGTERM in the main thread)
    breaks the start line, so that no copy waits there for one that will never come: the
    thread would outlive the call, and the interpreter waits for it at exit (a SIGTERM during
    a search's speed measurement left its driver hanging after its last word). Copies past the
    line finish their task first; those not started never start. A copy's error is raised,
    not the broken line the others met because of it.
    """
    line = threading.Barrier(copies)

    def copy(_: int) -> float:
        try:
            return task(line.wait)
        except BaseException:
            line.abort()
            raise

    pool = ThreadPoolExecutor(copies)
    try:
        futures = [pool.submit(copy, i) for i in range(copies)]
        wait(futures)
    except BaseException:
        line.abort()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    errors = [f.exception() for f in futures if f.exception() is not None]
    cause = next((e for e in errors if not isinstance(e, threading.BrokenBarrierError)), None)
    if cause is not None or errors:
        raise cause or errors[0]
    return [f.result() for f in futures]


def crossed(before: float, after: float, points: Sequence[float]) -> bool:
    """Whether one of `points` lies in (before, after]."""
    return any(before < p <= after for p in points)


def fit(
    trainer: Trainer,
    report: Callable[[Metrics], None],
    *,
    report_s: Sequence[float] = (),
    first_val_chars: int | None = None,
    deadline: float | None = None,
    plateau_share: float | None = None,
    on_step: Callable[[int], None] | None = None,
) -> str:
    """Train until the budget (`max_train_chars` or `max_train_s`) or `deadline`; report on the way.

    Reports come every `eval_every_chars` characters (0: never), once training seconds pass each
    of `report_s` (under `wsd`, each after the first only where a stretch ends, so that every
    report scores a cooled-down model: `Trainer.cooled_stops`), and at the end. Each is
    validated on the whole validation text, except the one at `report_s[0]`, which scores only
    the first `first_val_chars` characters when given: the point where most trials of a search
    are judged, so where validation costs most.
    `deadline` is a `time.time()` by which the last report must be done: training stops early
    enough to validate and report before it (on the `first_val_chars` prefix if even that
    whole-text validation could not end in time, as for a large model started late). Each
    report's `end` is "" while training goes on, else the returned status: "completed" (budget
    used), "cut" (deadline), "plateaued" (no better validation over the last `plateau_share`
    of its characters trained, when given; see `plateaued`) or "diverged". A non-finite training
    loss, or one `DIVERGED_FACTOR` times that of uniform guessing, ends the run at once with a
    last report that is not evaluated (`val_bpc` NaN, `diverged` True).
    """
    tc = trainer.run.train
    limit = DIVERGED_FACTOR * math.log(max(2, trainer.run.model.vocab_size))

    def final(end: str, val_chars: int | None = None) -> str:
        report({**trainer.report_metrics(val_chars=val_chars), "diverged": False, "end": end})
        return end

    if trainer.progress() >= 1.0:
        return "completed"  # a finished run, resumed: nothing left to train or report
    stops = tuple(report_s)
    while True:
        if deadline is not None and time.time() + trainer.final_report_s() >= deadline:
            # Started too late to validate on the whole text in time: the prefix will do.
            late = trainer.chars_seen == 0 and time.time() + trainer.final_report_s() > deadline
            return final("cut", first_val_chars if late else None)
        chars, seconds = trainer.chars_seen, trainer.train_s
        end_s = math.inf if deadline is None else trainer.train_s_at(deadline, stops)
        loss = trainer.train_step(trainer.scheduled_lr(stops, end_s))
        if on_step is not None:
            on_step(trainer.chars_seen - chars)
        if not loss < limit:  # also catches NaN
            report({**trainer.report_metrics(evaluate=False), "diverged": True, "end": "diverged"})
            return "diverged"
        if trainer.progress() >= 1.0:
            return final("completed")
        every = tc.eval_every_chars
        if every and trainer.chars_seen // every > chars // every:
            metrics = trainer.report_metrics()
        elif crossed(seconds, trainer.train_s, report_s[:1]):
            metrics = trainer.report_metrics(val_chars=first_val_chars)
        elif crossed(seconds, trainer.train_s, report_s[1:]):
            if not crossed(seconds, trainer.train_s, trainer.cooled_stops(stops, end_s)):
                continue  # a stop merged into its stretch: mid-stretch, it would score a hot model
            metrics = trainer.report_metrics()
        else:
            continue
        if not math.isfinite(metrics["val_bpc"]):
            report({**metrics, "diverged": True, "end": "diverged"})
            return "diverged"
        whole = metrics["val_chars"] == trainer.val_chars
        if plateau_share and whole and plateaued(trainer.val_history, plateau_share):
            report({**metrics, "diverged": False, "end": "plateaued"})
            return "plateaued"
        if whole and deadline is not None and time.time() + trainer.final_report_s() >= deadline:
            # The deadline came during this report: it is the last one, not followed by a
            # second validation at the same point (a row without training figures).
            report({**metrics, "diverged": False, "end": "cut"})
            return "cut"
        report({**metrics, "diverged": False, "end": ""})


def save_checkpoint(checkpoint: dict[str, Any], path: str) -> None:
    """Write atomically: a crash mid-write never leaves a truncated checkpoint behind.

    torch.save reports a full disk or an I/O error as RuntimeError; it becomes an OSError.
    """
    with atomic_path(path) as tmp:
        try:
            torch.save(checkpoint, tmp)
        except RuntimeError as error:
            raise OSError(f"cannot write checkpoint {path}: {str(error).splitlines()[0]}") from None


CHECKPOINT_KEYS = ("format", "run_config", "vocab", "corpus", "model", "optimizer", "hidden",
                   "progress", "rng")  # fmt: skip


def load_checkpoint(path: str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load with `weights_only=True`: tensors and plain containers only, no arbitrary unpickling.

    ConfigError for a missing, corrupt or foreign file, or one that is not a checkpoint of this
    project (a bare tensor, a dict without its keys).
    """
    if os.path.isfile(path) and not zipfile.is_zipfile(path):  # torch saves zip archives
        raise ConfigError(
            f"cannot read checkpoint {path}: not a torch checkpoint (cut short, or another kind "
            "of file)"
        )
    if os.path.isfile(path):  # torch does not check the archive's checksums; damage would load
        damaged = damaged_member(path)
        if damaged:
            raise ConfigError(f"cannot read checkpoint {path}: damaged ({damaged})")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for a missing, corrupt or foreign file
        # torch's messages run to paragraphs; an unpickling one advises weights_only=False
        detail = one_line(error).split(". ")[0]
        if isinstance(error, pickle.UnpicklingError):
            detail = "not a checkpoint torch can read with weights_only=True"
        raise ConfigError(f"cannot read checkpoint {path}: {detail}") from error
    missing = [
        k for k in CHECKPOINT_KEYS if not isinstance(checkpoint, dict) or k not in checkpoint
    ]
    if missing:
        what = "a dict" if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ConfigError(
            f"{path} is not a checkpoint of this project: {what} without {', '.join(missing)}"
        )
    if not isinstance(checkpoint["run_config"], dict) or not isinstance(checkpoint["vocab"], list):
        raise ConfigError(f"{path} is not a checkpoint of this project: malformed config")
    if checkpoint["format"] != CHECKPOINT_FORMAT:
        raise ConfigError(f"{path}: unsupported checkpoint format {checkpoint['format']!r}")
    try:  # a setting of another version, or a value no run can have: named with the file
        run_config_from_flat(checkpoint["run_config"])
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    return checkpoint


def damaged_member(path: str) -> str | None:
    """What in a zip archive fails its CRC-32 (a member, or the archive itself); None if all
    is sound. About 20 ms for a checkpoint of 50 MB."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as error:
        return one_line(error)
    return None if bad is None else f"{bad} fails its checksum"


def load_weights(model: torch.nn.Module, weights: Any, path: str) -> None:
    """`model.load_state_dict(weights)`, a ConfigError naming the file if they do not fit."""
    try:
        model.load_state_dict(weights)
    except (RuntimeError, TypeError, AttributeError) as error:
        raise ConfigError(
            f"{path}: weights do not fit the model of its config: {first_problem(error)}"
        ) from None


def first_problem(error: Exception) -> str:
    """One line of a `load_state_dict` error: its first mismatch, and how many more there are
    (torch's message is a header line, then one tab-indented line per problem)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    details = lines[1:] if lines[0].startswith("Error(s) in loading") else lines
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    return (details[0] if details else lines[0]).rstrip(".") + more
