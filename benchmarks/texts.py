"""Rebuild three benchmark corpora the project had never used, from Debian and CPython files.

    python benchmarks/texts.py [--out /work/texts]

- `reina_valera_1909.txt`: Spanish prose, 1,050,426 characters. Source: Debian package
  `sword-text-sparv` 2.60-1 (bookworm, main; `apt-get install sword-text-sparv`), which is the
  SWORD module spaRV1909eb in /usr/share/sword/modules/texts/ztext/spaRV1909eb/{ot,nt}.bz{s,v,z}.
  The text is the Reina-Valera 1909 Bible, public domain (see the package's copyright file;
  upstream is eBible.org). Processing: read as zText (zlib blocks with a verse index), keep each
  verse's text, drop the OSIS markup (Strong's `<w>` tags, `<transChange>`, milestones,
  paragraph `<div>`s) and collapse whitespace. Each verse is one line. Each book starts with its
  title after two blank lines, and each chapter with a line "Capítulo N" between blank lines.
  The cut keeps the first nine books, Genesis to 1 Samuel, and stops before 2 Samuel's title.
- `cpython_stdlib.txt`: Python source, 2,525,154 characters. Source: the top-level modules of
  CPython 3.11.7's standard library (`lib/python3.11/*.py`, PSF License). The script uses the
  running interpreter's stdlib if it is 3.11.7, else ~/.pyenv/versions/3.11.7. Processing: whole
  files in sorted name order, from __future__.py until the total reaches 2,500,000 characters,
  which is through os.py (92 files). Each file ends with exactly one newline and files are
  separated by one blank line. The text is otherwise unchanged, as in the bundled nginx corpus.
- `cpython_stdlib_1m.txt`: the same Python source at the Bible's size, 1,099,499 characters:
  `cpython_stdlib.txt` cut after the last blank line that starts before character 1,100,000
  (mid-file: a small text of another kind than the Bible, for the budgets that overfit).

All three files are UTF-8 with LF line endings. Before writing, the script checks each text against
the sha256 recorded below, so a different package version fails instead of quietly changing the
benchmark.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import struct
import sys
import sysconfig
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

SWORD_MODULE = Path("/usr/share/sword/modules/texts/ztext/spaRV1909eb")
BIBLE_STOP = "2 Samuel"  # title of the first book left out
PYTHON_VERSION = (3, 11, 7)
STDLIB_CHARS = 2_500_000
SMALL_STDLIB_CHARS = 1_100_000
EXPECTED = {
    "reina_valera_1909.txt": "07c83c390219b62a39808e63b3a3b7b81e8bd161d2700dad244d27aa3645d4c5",
    "cpython_stdlib.txt": "fa25878b8bb82b3510ed630a245a00c354f4a169a5d8bdf166c4f494b52650eb",
    "cpython_stdlib_1m.txt": "f117597db9aa5195faec485d3c06f40c9852705fd280fae9981c706d511941cf",
}
# An OSIS book title, a chapter start, or any other tag (dropped).
OSIS_TOKEN = re.compile(r'<title[^>]*>(.*?)</title>|<chapter [^>]*\bn="(\d+)"[^>]*/>|<[^>]*>')


def fail(message: str) -> NoReturn:
    raise SystemExit(f"error: {message}")


def sword_verses(module: Path) -> Iterator[str]:
    """The raw OSIS text of every non-empty verse entry of a zText module, in canonical order."""
    for testament in ("ot", "nt"):
        index, verses, data = (
            (module / f"{testament}.{ext}").read_bytes() for ext in ("bzs", "bzv", "bzz")
        )
        spans = struct.iter_unpack("<III", index)  # offset, compressed size, size
        blocks = [zlib.decompress(data[at : at + size]) for at, size, _ in spans]
        for block, start, size in struct.iter_unpack("<IIH", verses):
            if size:
                yield blocks[block][start : start + size].decode("utf-8")


def reina_valera() -> str:
    if not (SWORD_MODULE / "ot.bzz").is_file():
        fail(f"{SWORD_MODULE} is missing: apt-get install sword-text-sparv (2.60-1)")
    lines: list[str] = []
    parts: list[str] = []  # the current verse's text pieces

    def flush() -> None:
        verse = " ".join("".join(parts).split())
        if verse:
            lines.append(verse)
        parts.clear()

    for entry in sword_verses(SWORD_MODULE):
        pos = 0
        for match in OSIS_TOKEN.finditer(entry):
            parts.append(entry[pos : match.start()])
            pos = match.end()
            title, chapter = match.groups()
            if title is not None:
                flush()
                if title == BIBLE_STOP:
                    return "\n".join(lines).strip() + "\n"
                lines.append(f"\n\n{title}")
            elif chapter:
                flush()
                lines.append(f"\nCapítulo {chapter}\n")
        parts.append(entry[pos:])
        flush()
    fail(f"no book titled {BIBLE_STOP!r} in {SWORD_MODULE}")


def cpython_stdlib() -> str:
    if sys.version_info[:3] == PYTHON_VERSION:
        stdlib = Path(sysconfig.get_paths()["stdlib"])
    else:
        stdlib = Path.home() / ".pyenv/versions/3.11.7/lib/python3.11"
    if not (stdlib / "os.py").is_file():
        fail(f"CPython 3.11.7's standard library is missing ({stdlib}): pyenv install 3.11.7")
    texts: list[str] = []
    total = 0
    for path in sorted(stdlib.glob("*.py")):
        text = path.read_text(encoding="utf-8").replace("\r\n", "\n").rstrip("\n") + "\n"
        total += len(text) + bool(texts)  # a blank line before every file but the first
        texts.append(text)
        if total >= STDLIB_CHARS:
            break
    return "\n".join(texts)


def cpython_stdlib_small() -> str:
    text = cpython_stdlib()
    return text[: text.rfind("\n\n", 0, SMALL_STDLIB_CHARS) + 1]


BUILDERS: dict[str, Callable[[], str]] = {
    "reina_valera_1909.txt": reina_valera,
    "cpython_stdlib.txt": cpython_stdlib,
    "cpython_stdlib_1m.txt": cpython_stdlib_small,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("/work/texts"), help="output folder")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, build in BUILDERS.items():
        data = build().encode("utf-8")
        digest = hashlib.sha256(data).hexdigest()
        if digest != EXPECTED[name]:
            fail(f"{name}: sha256 {digest} differs from the recorded {EXPECTED[name]}")
        tmp = args.out / f".{name}.tmp"
        tmp.write_bytes(data)
        tmp.replace(args.out / name)
        print(f"{name}\t{len(data.decode('utf-8')):,} chars\tsha256 {digest}")


if __name__ == "__main__":
    main()
