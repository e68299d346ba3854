"""The corpus registry: one entry per known corpus, naming its source, checksum and cleaning.

Registry entries are data; `corpora.fetch` is the one function that uses them to download. The
checksums are those of the prepared reference files described in shared/corpora/SOURCES.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from corpora.prepare import prepare_irc, prepare_monte_cristo, prepare_nginx, prepare_war_and_peace


@dataclass(frozen=True)
class CorpusSpec:
    """One registry entry."""

    name: str  # registry key, e.g. "monte-cristo"
    filename: str  # prepared file's name in a data folder or the cache, e.g. "monte_cristo.txt"
    title: str  # human description
    url: str  # canonical public source, pinned to a commit or release where possible
    sha256: str  # checksum of the PREPARED UTF-8 text file
    prepare: Callable[[bytes], str]  # raw downloaded bytes -> training text
    note: str = ""  # caveat shown when a fresh download does not reproduce `sha256`


_RERENDERED = (
    "The reference file was prepared from a slightly different rendering of this source, so a "
    "fresh download may not reproduce its checksum."
)

REGISTRY: dict[str, CorpusSpec] = {
    spec.name: spec
    for spec in (
        CorpusSpec(
            name="irc",
            filename="irc.txt",
            title="US Internal Revenue Code (Title 26 USC), statutory text, late 2022",
            # OLRC release point Pub. L. 117-214 (Oct 2022): after the Inflation Reduction Act,
            # before SECURE 2.0 (117-328), like the reference rendering.
            url="https://uscode.house.gov/download/releasepoints/us/pl/117/214/xml_usc26@117-214.zip",
            sha256="9bd3009c5ef9751914718293c9053dd2daf8db1875377cfffe1d0bea36d70276",
            prepare=prepare_irc,
            note=_RERENDERED + " (Reference: a Markdown rendering of the OLRC text.)",
        ),
        CorpusSpec(
            name="monte-cristo",
            filename="monte_cristo.txt",
            title="The Count of Monte Cristo (Dumas), Project Gutenberg #1184",
            url=(
                "https://raw.githubusercontent.com/gutenbergbooks/1184/"
                "718a6a7716bad5ef4006320a8e708c393bda3dc1/1184-0.txt"
            ),
            sha256="963dac548396a3159c4d914d6043e2be38f580aec13b7a3efea5d45be285d6de",
            prepare=prepare_monte_cristo,
        ),
        CorpusSpec(
            name="war-and-peace",
            filename="war_and_peace.txt",
            title="War and Peace (Tolstoy, tr. Maude), Project Gutenberg #2600",
            url="https://www.gutenberg.org/cache/epub/2600/pg2600.txt",
            sha256="220e7ad465b72556cdfb30bf31e27640e44340ce851b47b0899707bc74d16c17",
            prepare=prepare_war_and_peace,
            note=_RERENDERED + " (Reference: the 3 Nov 2016 release, 2600-0.txt.)",
        ),
        CorpusSpec(
            name="nginx",
            filename="nginx_c_source.txt",
            title="nginx C source code (src/**/*.c, *.h), BSD-2-Clause",
            url=(
                "https://github.com/nginx/nginx/archive/"
                "3f6f7824d4e2eb1ac37dec76683d525ac0ff521c.tar.gz"
            ),
            sha256="b0009668bcee6800eaacfd6a056aa9d78bdd8ab902ab1105e4003cb23e95f05f",
            prepare=prepare_nginx,
        ),
    )
}
