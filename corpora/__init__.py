"""Corpora for character-level language models: registry, fetching, reading, encoding, splitting.

    from corpora import CorpusConfig, load_corpus
    corpus = load_corpus(CorpusConfig(name="monte-cristo"))   # or a path to any UTF-8 text file
    corpus.train_ids, corpus.val_ids, corpus.vocab.decode(corpus.val_ids[:100])

Files come from a local data folder (--data-dir / $CHARNN_DATA_DIR), then the cache
($XDG_CACHE_HOME/char-rnn-search), then a locked, checksum-verified download. This package knows
nothing of models; `model` and `search` import from it, never the other way round.
`python -m corpora list` shows what is available.

As the lowest layer it also holds what every package shares: atomic file writes
(`corpora.files`), the user-error type and the one command-line wrapper (`corpora.errors`),
and command-line flags derived from config dataclasses (`corpora.flags`).
"""

from corpora.dataset import Corpus, CorpusConfig, load_corpus, split_ids
from corpora.errors import CorpusError
from corpora.fetch import data_dir_from_env, default_cache_dir, fetch, local_path, resolve_corpus
from corpora.registry import REGISTRY, CorpusSpec
from corpora.text import file_sha256, read_text
from corpora.vocab import Vocab

__all__ = [
    "REGISTRY",
    "Corpus",
    "CorpusConfig",
    "CorpusError",
    "CorpusSpec",
    "Vocab",
    "data_dir_from_env",
    "default_cache_dir",
    "fetch",
    "file_sha256",
    "load_corpus",
    "local_path",
    "read_text",
    "resolve_corpus",
    "split_ids",
]
