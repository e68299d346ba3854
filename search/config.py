"""`SearchConfig`: everything one hyperparameter search needs, validated once.

The per-trial training settings that are not searched (corpus, budget, reporting interval,
seed, device) are a flat base config for `model.config.run_config_from_flat`; every trial
overlays its sampled hyperparameters on it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from corpora import CorpusConfig
from model.errors import ConfigError
from search.space import SearchSpace

WANDB_MODES = ("offline", "online", "disabled")

# Named sizes: SearchConfig overrides, plus search-space overrides under "space". Explicit
# settings win over a preset. "smoke" is what the tests and the README's first command run.
PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {  # about a minute on 2 CPU cores: tiny models on a 200k-character slice
        "trials": 6,
        "max_chars": 200_000,
        "max_chars_per_trial": 48_000,
        "grace_chars": 6_000,
        "reduction_factor": 2,
        "space": {"hidden_size": [16, 48], "batch_size": [8, 16], "seq_len": [16, 32]},
    },
    "small": {  # tens of minutes on 2 CPU cores
        "trials": 24,
        "max_chars_per_trial": 2_000_000,
        "grace_chars": 125_000,
        "reduction_factor": 4,
        "space": {"hidden_size": [64, 512], "batch_size": [32, 64, 128], "seq_len": [32, 256]},
    },
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class SearchConfig:
    corpus: str = "monte-cristo"  # registered corpus name or path to a UTF-8 file
    trials: int = 24  # total trials to run, over all resumes
    max_chars_per_trial: int = 2_000_000  # ASHA max_t: training characters of a full trial
    grace_chars: int = 125_000  # ASHA grace period: characters before a trial can be stopped
    reduction_factor: int = 4  # ASHA: keep the best 1/rf at every rung
    eval_every_chars: int = 0  # report/checkpoint interval; 0 means grace_chars (ASHA's first rung)
    concurrency: int = 0  # trials at once; 0 means as many as the cluster's CPUs allow
    cpus_per_trial: float = 1.0  # CPU threads given to each trial (torch.set_num_threads)
    gpus_per_trial: float = 0.0  # GPUs per trial (fractions share a GPU)
    time_budget_s: float | None = None  # stop the whole search cleanly after this many seconds
    max_failures: int = 2  # restarts of a crashed trial (e.g. a lost node), from its checkpoint
    seed: int = 0  # seeds the TPE sampler and every trial's training
    name: str = ""  # search folder under storage; "" derives one from corpus and time
    storage: str = "runs"  # folder holding every search
    address: str | None = (
        None  # existing Ray cluster ("auto", "host:port"); None starts a local Ray
    )
    wandb_project: str = "char-rnn-search"  # W&B project of the trial runs
    wandb_mode: str = "offline"  # offline (default, `wandb sync` later) | online | disabled
    data_dir: str | None = None  # local corpus folder (else CHARNN_DATA_DIR)
    max_chars: int | None = None  # corpus prefix length, for equal-length comparisons
    val_fraction: float = 0.02  # held-out share of the text, taken from its end
    sample_chars: int = 400  # characters sampled from the best model at the end
    space: SearchSpace = field(default_factory=SearchSpace)

    def __post_init__(self) -> None:
        positive = ("trials", "max_chars_per_trial", "grace_chars", "sample_chars")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.reduction_factor < 2:
            raise ConfigError(f"reduction_factor must be at least 2, got {self.reduction_factor}")
        if self.grace_chars > self.max_chars_per_trial:
            raise ConfigError(
                f"grace_chars ({self.grace_chars}) exceeds "
                f"max_chars_per_trial ({self.max_chars_per_trial})"
            )
        if self.eval_every_chars < 0 or self.concurrency < 0 or self.max_failures < 0:
            raise ConfigError("eval_every_chars, concurrency and max_failures must be non-negative")
        if self.cpus_per_trial <= 0 or self.gpus_per_trial < 0:
            raise ConfigError("cpus_per_trial must be positive and gpus_per_trial non-negative")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise ConfigError(f"time_budget_s must be positive, got {self.time_budget_s}")
        if self.wandb_mode not in WANDB_MODES:
            raise ConfigError(
                f"wandb_mode must be one of {', '.join(WANDB_MODES)}, got {self.wandb_mode!r}"
            )
        if self.name and not _NAME.match(self.name):
            raise ConfigError(f"name {self.name!r} may hold only letters, digits, '.', '_' and '-'")

    @property
    def report_every(self) -> int:
        return self.eval_every_chars or self.grace_chars

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

    def base_run(self) -> dict[str, Any]:
        """Flat training settings shared by every trial (see model.config.run_config_from_flat)."""
        return {
            "corpus": self.corpus,
            "data_dir": self.data_dir,
            "max_chars": self.max_chars,
            "val_fraction": self.val_fraction,
            "max_train_chars": self.max_chars_per_trial,
            "eval_every_chars": self.report_every,
            "seed": self.seed,
            "device": "cuda" if self.gpus_per_trial > 0 else "cpu",
        }


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
