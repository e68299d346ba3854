"""Run configuration: one frozen dataclass per component, composed into `RunConfig`.

There is exactly one way in from a flat mapping (CLI flags, a Ray Tune trial's sampled config,
a checkpoint): `run_config_from_flat`, which routes each key to its component and rejects
unknown keys. Every key name is unique across components, so flat dicts stay readable:

    {"corpus": "irc", "hidden_size": 512, "lr": 2e-3, ...}
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, get_args, get_type_hints

from corpora import CorpusConfig
from model.errors import ConfigError
from model.lstm import ModelConfig

DECAYS = ("none", "cosine", "wsd")
DEVICES = ("auto", "cpu", "cuda")


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([hms]?)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "": 1.0}


def parse_duration(text: str | float) -> float:
    """Seconds in a duration such as 300, "300s", "10m", "2h" or "1h30m"; ConfigError otherwise."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        seconds = float(text)
    else:
        spec = str(text).strip().lower().replace(" ", "")
        parts = _DURATION.findall(spec)
        if (
            not spec
            or "".join(n + u for n, u in parts) != spec
            or (len(parts) > 1 and "" in [u for _, u in parts])
        ):
            raise ConfigError(
                f"cannot read duration {text!r}: use seconds or forms like 90s, 10m, 2h, 1h30m"
            )
        seconds = sum(float(n) * _UNIT_S[u] for n, u in parts)
    if not (math.isfinite(seconds) and seconds > 0):
        raise ConfigError(f"duration must be positive and finite, got {text!r}")
    return seconds


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 64  # B: parallel streams, each a contiguous slice of the training text
    seq_len: int = 128  # T: characters per stream per step (truncated BPTT length)
    lr: float = 2e-3  # Adam learning rate after warm-up
    weight_decay: float = 0.0  # AdamW's decoupled weight decay
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping
    warmup_chars: int = 0  # linear learning-rate warm-up, in training characters
    decay: str = "none"  # learning-rate decay after warm-up: none | cosine (to 10% at the end)
    # | wsd (warmup-stable-decay, cooled down to 10% before every report: see model.loop)
    cooldown: float = 0.5  # wsd: share of each stretch between two reports spent cooling down
    restart_share: float = 0.5  # wsd: a stretch shorter than this share of the training before
    # it restarts below the full rate, in proportion (model.loop.restart_peak); 0: never
    max_train_chars: int = 5_000_000  # training budget in characters (targets), over all epochs
    max_train_s: float = 0.0  # training budget in seconds of training steps; 0: none. Training
    # ends at whichever budget is used up first, and cosine decay follows the one further along.
    eval_every_chars: int = 500_000  # report (and evaluate) after every this many chars; 0: never
    train_chars: int = 0  # train on only the first this many characters of the training text
    # (0: all of it); validation keeps the whole validation text: data-length studies
    seed: int = 0  # seeds weights, dropout and sampling; CPU runs repeat exactly
    device: str = "auto"  # auto (CUDA when available) | cpu | cuda

    def __post_init__(self) -> None:
        for name in ("batch_size", "seq_len", "max_train_chars"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 < self.lr < math.inf:
            raise ConfigError(f"lr must be positive and finite, got {self.lr}")
        for name in (
            "weight_decay",
            "grad_clip",
            "warmup_chars",
            "max_train_s",
            "eval_every_chars",
            "train_chars",
            "restart_share",
        ):
            if not getattr(self, name) >= 0:  # also refuses NaN
                raise ConfigError(f"{name} must be non-negative, got {getattr(self, name)}")
        if not 0 < self.cooldown <= 1:
            raise ConfigError(f"cooldown must be in (0, 1], got {self.cooldown}")
        if self.decay not in DECAYS:
            raise ConfigError(f"decay must be one of {', '.join(DECAYS)}, got {self.decay!r}")
        check_seed(self.seed)
        if self.device not in DEVICES:
            raise ConfigError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")


def check_seed(seed: int) -> None:
    """A seed every generator here takes (torch.manual_seed's range, which numpy's covers)."""
    if not 0 <= seed < 2**63:
        raise ConfigError(f"seed must be in [0, 2**63), got {seed}")


@dataclass(frozen=True)
class RunConfig:
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# Flat key -> (component, field). The corpus's `name` is spelled `corpus` in flat form.
_COMPONENTS = {"corpus": CorpusConfig, "model": ModelConfig, "train": TrainConfig}
_RENAMED = {("corpus", "name"): "corpus"}
FLAT_KEYS: dict[str, tuple[str, str]] = {
    _RENAMED.get((part, f.name), f.name): (part, f.name)
    for part, cls in _COMPONENTS.items()
    for f in fields(cls)
}
assert len(FLAT_KEYS) == sum(len(fields(c)) for c in _COMPONENTS.values()), "flat keys collide"


def _field_type(cls: type, name: str) -> type:
    """The declared type of a config field, `X | None` read as X."""
    hint = get_type_hints(cls)[name]
    return next((t for t in get_args(hint) if t is not type(None)), hint)


def _coerce(value: Any, kind: type, key: str) -> Any:
    """`value` as the field's type: Tune samples numbers, a sweep agent passes strings.

    Ints are accepted for floats, integral floats for ints, numeric strings for both; anything
    else is a ConfigError naming the setting.
    """
    if value is None or kind not in (int, float):
        return value
    if isinstance(value, str):
        try:  # an integer as written (a float is exact only below 2**53; seeds go to 2**63)
            value = int(value) if kind is int else float(value)
        except ValueError:
            try:  # "128.0" or "1e3": W&B's quantised distributions write integers as floats
                value = float(value)
            except ValueError:
                raise ConfigError(f"{key} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{key} must be a number, got {value!r}")
    if kind is int:
        if not float(value).is_integer():
            raise ConfigError(f"{key} must be an integer, got {value}")
        return int(value)
    return float(value)


def run_config_from_flat(flat: dict[str, Any], base: RunConfig | None = None) -> RunConfig:
    """Build a `RunConfig` from flat keys over `base` (defaults); unknown keys are an error."""
    base = base or RunConfig()
    unknown = sorted(set(flat) - set(FLAT_KEYS))
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")
    changes: dict[str, dict[str, Any]] = {part: {} for part in _COMPONENTS}
    for key, value in flat.items():
        part, name = FLAT_KEYS[key]
        changes[part][name] = _coerce(value, _field_type(_COMPONENTS[part], name), key)
    return RunConfig(
        **{part: replace(getattr(base, part), **changes[part]) for part in _COMPONENTS}
    )


def run_config_to_flat(run: RunConfig) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, (part, name) in FLAT_KEYS.items():
        flat[key] = asdict(getattr(run, part))[name]
    return flat


def with_vocab_size(run: RunConfig, vocab_size: int) -> RunConfig:
    """The derived value filled in once the corpus is known."""
    return replace(run, model=replace(run.model, vocab_size=vocab_size))
