"""The one registry of named sizes: for searches, the corpus-comparison demo, benchmarks and tests.

    config = from_preset("small", corpus="irc")           # a SearchConfig; settings win
    python -m search.run --corpus irc --preset small       # the same from the command line

A preset is a time budget with what goes with it: search settings, search-space overrides and,
for the demo, the corpora to compare. "tiny" is what the test suite runs; "smoke" is README's
first command; "demo" and "demo-full" are `python -m search.demo`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from model.errors import ConfigError
from search.folder.config import SearchConfig
from search.folder.space import SearchSpace, space_from_mapping


@dataclass(frozen=True)
class Preset:
    help: str
    settings: dict[str, Any] = field(default_factory=dict)  # SearchConfig fields
    space: dict[str, Any] = field(default_factory=dict)  # search-space overrides
    corpora: tuple[str, ...] = ()  # the demo: one equal-length search per corpus


PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        "the test suite's size: 30 s of tiny models on a 200k-character slice",
        {
            "time_budget_s": 30.0,
            "max_chars": 200_000,
            "first_rung_val_chars": 2048,  # half the 4,000 validation characters: a prefix
            "warm_start_defaults": False,
        },
        {"hidden_size": [16, 48], "batch_size": [8, 16], "seq_len": [16, 32]},
    ),  # fmt: skip
    "smoke": Preset(
        "README's first command: 75 s on 1 M characters",
        {"time_budget_s": 75.0, "max_chars": 1_000_000},
    ),
    "small": Preset("5 minutes", {"time_budget_s": 300.0}),
    "medium": Preset("20 minutes", {"time_budget_s": 1200.0}),
    "large": Preset("2 hours", {"time_budget_s": 7200.0}),
    "demo": Preset(
        "corpus comparison: 3 corpora at 500k characters, 40 s each (about 2.5 min)",
        {
            "time_budget_s": 40.0,
            "max_chars": 500_000,
            "val_fraction": 0.05,
            "wandb_mode": "disabled",
        },
        corpora=("irc", "monte-cristo", "nginx"),
    ),  # fmt: skip
    "demo-full": Preset(
        "corpus comparison: 4 corpora at 2.6 M characters, 10% validation, 4 min each",
        {
            "time_budget_s": 240.0,
            "max_chars": 2_600_000,
            "val_fraction": 0.1,
            "wandb_mode": "disabled",
        },
        corpora=("irc", "monte-cristo", "war-and-peace", "nginx"),
    ),  # fmt: skip
}


def preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return PRESETS[name]


def preset_space(preset_name: str | None, base: SearchSpace | None = None) -> SearchSpace:
    """The preset's search-space overrides over `base` (default: the defaults)."""
    return space_from_mapping(preset(preset_name).space if preset_name else {}, base)


def from_preset(preset_name: str | None, /, **settings: Any) -> SearchConfig:
    """A SearchConfig from a preset (None: the defaults), with `settings` winning.

    `space` in `settings` may be a SearchSpace, or a mapping of overrides applied over the
    preset's own.
    """
    chosen = dict(preset(preset_name).settings) if preset_name else {}
    space = preset_space(preset_name)
    given = settings.pop("space", None)
    if isinstance(given, SearchSpace):
        space = given
    elif given:
        space = space_from_mapping(dict(given), space)
    return SearchConfig(**{**chosen, **settings}, space=space)
