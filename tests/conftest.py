"""Shared fixtures: the real corpora folder (CHARNN_DATA_DIR, else ../shared/corpora)."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPORA = ROOT.parent / "shared" / "corpora"
if DEFAULT_CORPORA.is_dir():  # the project's layout: shared/ beside the checkout, as in CI
    os.environ.setdefault("CHARNN_DATA_DIR", str(DEFAULT_CORPORA))


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    path = Path(os.environ.get("CHARNN_DATA_DIR", DEFAULT_CORPORA))
    if not (path / "monte_cristo.txt").is_file():
        pytest.skip(f"real corpora not found in {path}; set CHARNN_DATA_DIR")
    return path
