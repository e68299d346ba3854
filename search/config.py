"""`SearchConfig`: everything one hyperparameter search needs, validated once.

The per-trial training settings that are not searched (corpus, budget, reporting interval,
seed, device) are a flat base config for `model.config.run_config_from_flat`; every trial
overlays its sampled hyperparameters on it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from corpora import CorpusConfig
from model.errors import ConfigError
from search.space import SearchSpace, space_from_mapping

WANDB_MODES = ("offline", "online", "disabled")
SCHEDULERS = ("promote", "asha", "hyperband", "pbt", "fifo")
SAMPLERS = ("tpe", "random")

# Named budgets: SearchConfig overrides, plus search-space overrides under "space". Explicit
# settings win over a preset. "tiny" is what the test suite runs, "smoke" README's first command.
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {  # the test suite's searches: seconds of training on a 200k-character slice
        "time_budget_s": 30.0,
        "max_chars": 200_000,
        "first_rung_val_chars": 4096,
        "space": {"hidden_size": [16, 48], "batch_size": [8, 16], "seq_len": [16, 32]},
        "warm_start_defaults": False,
    },
    "smoke": {"time_budget_s": 75.0, "max_chars": 1_000_000},  # README's first command
    "small": {"time_budget_s": 300.0},
    "medium": {"time_budget_s": 1200.0},
    "large": {"time_budget_s": 7200.0},
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class SearchConfig:
    corpus: str = "monte-cristo"  # registered corpus name or path to a UTF-8 file
    time_budget_s: float = 3600.0  # wall seconds for trials; the schedule is derived from it
    trials: int = 0  # at most this many trials, over all resumes; 0: as many as the budget holds
    scheduler: str = "promote"  # promote | asha | hyperband | pbt | fifo (search.builders)
    sampler: str = "tpe"  # tpe (Optuna's TPE) | random
    reduction_factor: int = 3  # asha/hyperband keep the best 1/rf of the trials at each rung
    first_rung_val_chars: int = 65_536  # validation characters scored at the first rung; every
    # later report scores the whole validation text
    warm_start: str | None = None  # search folder whose best configurations run first
    warm_start_top: int = 3  # how many of them
    warm_start_defaults: bool = True  # also run the documented known-good configurations first
    concurrency: int = 0  # trials at once; 0 means as many as the cluster's CPUs allow
    cpus_per_trial: float = 1.0  # CPU threads given to each trial (torch.set_num_threads)
    gpus_per_trial: float = 0.0  # GPUs per trial (fractions share a GPU)
    max_failures: int = 2  # restarts of a crashed trial (e.g. a lost node), from its checkpoint
    seed: int = 0  # seeds the sampler and every trial's training
    name: str = ""  # search folder under storage; "" derives one from corpus and time
    storage: str = "runs"  # folder holding every search
    address: str | None = None  # existing Ray cluster ("auto", "host:port"); None: a local Ray
    wandb_project: str = "char-rnn-search"  # W&B project of the trial runs
    wandb_mode: str = "offline"  # offline (default, `wandb sync` later) | online | disabled
    data_dir: str | None = None  # local corpus folder (else CHARNN_DATA_DIR)
    max_chars: int | None = None  # corpus prefix length, for equal-length comparisons
    val_fraction: float = 0.02  # held-out share of the text, taken from its end
    sample_chars: int = 400  # characters sampled from the best model at the end
    space: SearchSpace = field(default_factory=SearchSpace)

    def __post_init__(self) -> None:
        for name in ("sample_chars", "first_rung_val_chars", "warm_start_top", "reduction_factor"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.reduction_factor < 2:
            raise ConfigError(f"reduction_factor must be at least 2, got {self.reduction_factor}")
        if self.trials < 0 or self.concurrency < 0 or self.max_failures < 0:
            raise ConfigError("trials, concurrency and max_failures must be non-negative")
        if not self.cpus_per_trial > 0 or not self.gpus_per_trial >= 0:
            raise ConfigError("cpus_per_trial must be positive and gpus_per_trial non-negative")
        if not (self.time_budget_s > 0 and math.isfinite(self.time_budget_s)):
            raise ConfigError(f"time budget must be positive seconds, got {self.time_budget_s}")
        for name, allowed in (
            ("wandb_mode", WANDB_MODES),
            ("scheduler", SCHEDULERS),
            ("sampler", SAMPLERS),
        ):
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}"
                )
        if self.name and not _NAME.match(self.name):
            raise ConfigError(f"name {self.name!r} may hold only letters, digits, '.', '_' and '-'")

    @property
    def path(self) -> Path:
        """The search folder: Ray Tune's experiment, the result tables and the best model."""
        if not self.name:
            raise ConfigError("search name is not set")
        return Path(self.storage).resolve() / self.name

    def corpus_config(self) -> CorpusConfig:
        """The corpus (and prefix, and split) every trial of this search trains on."""
        return CorpusConfig(
            name=self.corpus,
            data_dir=self.data_dir,
            max_chars=self.max_chars,
            val_fraction=self.val_fraction,
        )

    def base_run(self, max_train_s: float) -> dict[str, Any]:
        """Flat training settings shared by every trial (see model.config.run_config_from_flat).

        A trial trains for `max_train_s` seconds of training steps unless its scheduler stops
        it first, with the learning rate decaying (cosine) over that time; it reports only
        where its scheduler needs a value (`model.trainable.TrialPlan`), never by characters.
        """
        return {
            "corpus": self.corpus,
            "data_dir": self.data_dir,
            "max_chars": self.max_chars,
            "val_fraction": self.val_fraction,
            "max_train_chars": MAX_TRIAL_CHARS,
            "max_train_s": max_train_s,
            "decay": "cosine",
            "eval_every_chars": 0,
            "seed": self.seed,
            "device": "cuda" if self.gpus_per_trial > 0 else "cpu",
        }


# A trial's budget is its time; this character cap is only there because every run has one.
MAX_TRIAL_CHARS = 10**15


def from_preset(preset: str | None, **settings: Any) -> SearchConfig:
    """A SearchConfig from a named preset (None: the defaults), with `settings` winning.

    `space` in `settings` may be a SearchSpace or a mapping of range overrides, which apply on
    top of the preset's own.
    """
    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    chosen = dict(PRESETS[preset]) if preset else {}
    space = space_from_mapping(chosen.pop("space", {}))
    given = settings.pop("space", None)
    if isinstance(given, SearchSpace):
        space = given
    elif given:
        space = space_from_mapping(dict(given), space)
    return SearchConfig(**{**chosen, **settings}, space=space)


def load_search_config(path: Path, overrides: dict[str, Any] | None = None) -> SearchConfig:
    """The settings a search folder was started with (its search.json), with a few per-run
    overrides such as the Ray address or the corpus folder. Unknown keys are an error."""
    file = path / "search.json"
    try:
        saved = json.loads(file.read_text())
        saved["space"] = SearchSpace(**{k: tuple(v) for k, v in saved["space"].items()})
        return replace(SearchConfig(**saved), **(overrides or {}))
    except ConfigError as error:
        raise ConfigError(f"cannot use search settings {file}: {error}") from None
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as error:
        raise ConfigError(f"cannot read search settings {file}: {type(error).__name__}") from None
