"""`SearchConfig`: everything one hyperparameter search needs, validated once.

The per-trial training settings that are not searched (corpus, budget, reporting interval,
seed, device) are a flat base config for `model.config.run_config_from_flat`; every trial
overlays its sampled hyperparameters on it.
"""

from __future__ import annotations

import math
import os
import re
import secrets
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from corpora import CorpusConfig
from corpora.dataset import lasting
from model.errors import ConfigError
from search.folder.schedule import GRACE_SHARE, MIN_BUDGET_S
from search.folder.space import (
    GPU_SPACE,
    SearchSpace,
    saved_space,
    space_from_mapping,
    space_to_mapping,
)

WANDB_MODES = ("offline", "online", "disabled")
SCHEDULERS = ("asha", "promote", "hyperband", "pbt", "fifo")
SAMPLERS = ("tpe", "random")
DECAYS = ("wsd", "cosine")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class SearchConfig:
    corpus: str = "monte-cristo"  # registered corpus name or path to a UTF-8 file
    time_budget_s: float = 3600.0  # wall time for trials, e.g. 300, 10m or 2h (at least 20 s);
    # the schedule is derived from it. With --resume: the time for this run (the saved one if
    # not given)
    trials: int = 0  # at most this many trials, over all resumes; 0: as many as the budget holds
    scheduler: str = "asha"  # asha | promote | hyperband | pbt | fifo (search.engine.builders)
    sampler: str = "tpe"  # tpe (Optuna's TPE) | random
    reduction_factor: int = 3  # asha/hyperband keep the best 1/rf of the trials at each rung
    first_rung_share: float = GRACE_SHARE  # the first rung is at least this share of the budget
    first_rung_val_chars: int = 32_768  # validation characters scored at the first rung (it
    # ranked 52 trials as the whole text did, docs/search.md); every later report scores all of it
    warm_start: str | None = None  # search folder whose best configurations run first
    warm_start_top: int = 3  # how many of them
    warm_start_defaults: bool = True  # run the documented known-good configurations first
    fit_warm_starts: bool = True  # give warm starts the dropout the passes over the text need
    long_horizon_yardstick: bool = True  # the long-horizon starts' values at the rungs judge
    # the other trials (never judged there themselves; search.engine.adapters.RecordingASHA)
    mutate_every: int = 2  # every this many new trials, one mutates the best so far (0: never)
    plateau_share: float = 1 / 3  # a trial not improving over this last share of its training
    # (in characters) ends itself (plateaued; 0: never)
    endgame_share: float = 1 / 3  # asha/hyperband: the budget's last share goes to the best
    # trials: none starts in it, one behind the best stops at its next report, and on one machine
    # the CPUs it frees go to those left (0: off)
    decay: str = "wsd"  # trials' learning rate: wsd (cooled before every report) | cosine
    restart_share: float = 0.5  # wsd: a stretch between two reports shorter than this share of
    # the training before it restarts below the full rate, in proportion (0: never lower)
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
    val_fraction: float = 0.02  # validation share of the text, taken from its end (before test)
    test_fraction: float = 0.0  # test share, the very end: scored once for the best model only
    sample_chars: int = 400  # characters sampled from the best model at the end
    space: SearchSpace = field(default_factory=SearchSpace)

    def __post_init__(self) -> None:
        if isinstance(self.corpus, str):  # kept in state/search.json: valid from any folder
            object.__setattr__(self, "corpus", lasting(self.corpus))
        object.__setattr__(self, "data_dir", lasting(self.data_dir, folder=True))
        for name in ("sample_chars", "first_rung_val_chars", "warm_start_top"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.reduction_factor < 2:
            raise ConfigError(f"reduction_factor must be at least 2, got {self.reduction_factor}")
        for name in ("trials", "concurrency", "max_failures", "mutate_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be non-negative, got {getattr(self, name)}")
        if not 0 < self.first_rung_share < 1:
            raise ConfigError(f"first_rung_share must be in (0, 1), got {self.first_rung_share}")
        if not 0 <= self.restart_share < math.inf:
            raise ConfigError(f"restart_share must be non-negative, got {self.restart_share:g}")
        for name in ("plateau_share", "endgame_share"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name):g}")
        if not 0 < self.cpus_per_trial < math.inf:
            raise ConfigError(
                f"cpus_per_trial must be positive and finite, got {self.cpus_per_trial:g}"
            )
        if not 0 <= self.gpus_per_trial < math.inf:
            raise ConfigError(
                f"gpus_per_trial must be non-negative and finite, got {self.gpus_per_trial:g}"
            )
        if not (self.time_budget_s >= MIN_BUDGET_S and math.isfinite(self.time_budget_s)):
            raise ConfigError(
                f"time budget must be at least {MIN_BUDGET_S:g} s, got {self.time_budget_s:g}"
            )
        for name, allowed in (
            ("decay", DECAYS),
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
            test_fraction=self.test_fraction,
        )

    def base_run(self, max_train_s: float) -> dict[str, Any]:
        """Flat training settings shared by every trial (see model.config.run_config_from_flat).

        A trial trains for `max_train_s` seconds of training steps unless its scheduler stops
        it first; it reports only where its scheduler needs a value
        (`search.engine.trainable.TrialPlan`), never by characters, and its learning rate cools
        down before every report (`wsd`, see
        `model.loop`): wherever it is stopped, its last model is one that was meant to end
        there. (`cosine`: one decay over the trial's whole possible time, as before.)
        """
        return {
            "corpus": self.corpus,
            "data_dir": self.data_dir,
            "max_chars": self.max_chars,
            "val_fraction": self.val_fraction,
            "test_fraction": self.test_fraction,
            "max_train_chars": MAX_TRIAL_CHARS,
            "max_train_s": max_train_s,
            "decay": self.decay,
            "restart_share": self.restart_share,
            "eval_every_chars": 0,
            "seed": self.seed,
            "device": "cuda" if self.gpus_per_trial > 0 else "cpu",
        }


# A trial's budget is its time; this character cap is only there because every run has one.
MAX_TRIAL_CHARS = 10**15


def default_name(corpus: str) -> str:
    """CORPUS-DATE-TIME-XXXXXX, CORPUS a file's stem: unique even for searches started in the
    same second (50 in one second collide once in about 13,000 tries; with four hex digits it
    was one in 50)."""
    return f"{corpus_stem(corpus)}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def corpus_stem(corpus: str) -> str:
    """A corpus's name in search names: a registered name as it is, a file's stem with every
    character a name may not hold (a space, say) as "-"."""
    stem = Path(corpus).stem if os.sep in corpus or corpus.endswith(".txt") else corpus
    return re.sub(r"[^A-Za-z0-9._-]", "-", stem).lstrip("._-") or "corpus"


def load_search_config(path: Path, overrides: dict[str, Any] | None = None) -> SearchConfig:
    """The settings a search folder was started with (its search.json), with a few per-run
    overrides such as the Ray address or the corpus folder. Unknown keys are an error."""
    from search.folder.store import (  # the store is the only reader of the file
        SETTINGS,
        SearchFolder,
    )

    folder = SearchFolder(path)
    saved = folder.read_settings()
    try:
        if "space" in saved:
            saved["space"] = saved_space(saved["space"])
        return replace(SearchConfig(**saved), **(overrides or {}))
    except (ConfigError, TypeError) as error:  # TypeError: unknown or missing fields
        file = folder.state_file(SETTINGS)
        raise ConfigError(f"cannot use search settings {file}: {error}") from None


def float_text(value: float) -> str:
    """A float as a flag reads it back exactly: short where that loses nothing (300, 0.25), in
    full otherwise (1/6, 1036800.0: a duration cannot take `:g`'s 1.0368e+06)."""
    short = f"{value:g}"
    return short if "e" not in short and float(short) == value else repr(value)


def search_argv(config: SearchConfig) -> list[str]:
    """The `python -m search.run` arguments that repeat `config`'s search (not where it runs:
    name, storage, address and W&B are left out). The one SearchConfig -> argv serializer."""
    where = {"name", "storage", "address", "wandb_project", "wandb_mode", "data_dir", "space"}
    default = SearchConfig()
    # The ranges a search starts from when the command gives none (`search.run.build_space`).
    ranges = space_from_mapping(GPU_SPACE if config.gpus_per_trial > 0 else {})
    argv: list[str] = []
    for f in fields(SearchConfig):
        value = getattr(config, f.name)
        if f.name in where or (value == getattr(default, f.name) and f.name != "corpus"):
            continue
        flag = "--" + FLAG_NAMES.get(f.name, f.name).replace("_", "-")
        if isinstance(value, bool):
            argv.append(flag if value else f"--no-{flag[2:]}")
        else:
            argv += [flag, float_text(value) if isinstance(value, float) else str(value)]
    for name, values in space_to_mapping(config.space).items():
        if values != list(getattr(ranges, name)):
            argv += ["--range", f"{name}={','.join(map(str, values))}"]
    return argv


FLAG_NAMES = {"time_budget_s": "time_budget"}  # fields whose flag is not their name
