"""Preparation functions: raw downloaded bytes -> training text, one per kind of source.

Each registry entry names one of these as its `prepare`. They reproduce, as far as a fresh
download allows, the processing in shared/corpora/SOURCES.md that produced the reference files:

- Project Gutenberg texts (`prepare_monte_cristo`, `prepare_war_and_peace`): strip the BOM and
  the licence header/footer, LF line endings, no trailing whitespace, at most 2 blank lines in a
  row; Monte Cristo also loses its illustration placeholder lines (`0009m`).
- nginx (`prepare_nginx`): a GitHub .tar.gz of the repository -> all src/**/*.c and *.h files.
- Internal Revenue Code (`prepare_irc`): an OLRC Title 26 USLM XML zip -> plain statutory text.

All are pure functions of their input. Malformed input raises CorpusError.
"""

from __future__ import annotations

import io
import re
import tarfile
import xml.etree.ElementTree as ET
import zipfile
import zlib
from collections.abc import Iterable, Iterator

from corpora.errors import CorpusError

# ---------------------------------------------------------------------------------------------
# Project Gutenberg

_PG_START = re.compile(r"^\*{3} ?START OF\b.*$", re.MULTILINE)
_PG_END = re.compile(
    r"^(\*{3} ?END OF\b|End of (the )?Project Gutenberg'?s? E-?book)", re.MULTILINE | re.IGNORECASE
)
_MONTE_CRISTO_PLACEHOLDER = re.compile(r"\d+m")  # illustration names left from the HTML edition
_WAR_AND_PEACE_CREDIT = re.compile(r"(Produced by:? )?An Anonymous Volunteer,? and David Widger")


def flat(error: BaseException) -> str:
    """A library's error message on one line (tarfile's runs over several)."""
    return " ".join(str(error).split())


def decode_utf8(raw: bytes, what: str) -> str:
    """Decode UTF-8, dropping a leading byte-order mark; CorpusError (with offset) if invalid."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise CorpusError(f"{what} is not valid UTF-8 (byte offset {e.start})") from None


def strip_gutenberg_boilerplate(text: str) -> str:
    """Keep only the text between the `*** START OF ...` line and the first end marker.

    The end marker is `*** END OF ...` or "End of the Project Gutenberg EBook ...", whichever
    comes first. A text without markers is returned unchanged.
    """
    start = _PG_START.search(text)
    if start:
        text = text[start.end() :]
    end = _PG_END.search(text)
    if end:
        text = text[: end.start()]
    return text


def tidy_lines(text: str, drop: re.Pattern[str] | None = None) -> str:
    """LF line endings, no trailing whitespace, no lines matching `drop`, <= 2 blank lines in a row.

    Leading and trailing blank lines go; the result ends with exactly one newline.
    """
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    if drop is not None:
        lines = [line for line in lines if not drop.fullmatch(line)]
    text = re.sub(r"\n{4,}", "\n\n\n", "\n".join(lines))  # 3+ blank lines -> 2
    return text.strip("\n") + "\n"


def prepare_gutenberg(raw: bytes, drop: re.Pattern[str] | None = None) -> str:
    """A Project Gutenberg plain-text ebook -> its body text, tidied (see `tidy_lines`)."""
    return tidy_lines(strip_gutenberg_boilerplate(decode_utf8(raw, "Gutenberg text")), drop)


def prepare_monte_cristo(raw: bytes) -> str:
    """Gutenberg #1184 (gutenbergbooks/1184 `1184-0.txt`), without the `0009m` placeholder lines."""
    return prepare_gutenberg(raw, drop=_MONTE_CRISTO_PLACEHOLDER)


def prepare_war_and_peace(raw: bytes) -> str:
    """Gutenberg #2600, without the producer credit line."""
    return prepare_gutenberg(raw, drop=_WAR_AND_PEACE_CREDIT)


# ---------------------------------------------------------------------------------------------
# nginx source code

# Two newlines after each file's own final newline: this is what the reference file has
# (SOURCES.md says "one blank line"; the reference shows two between files).
_FILE_SEPARATOR = "\n\n"


def source_files_from_tar(
    raw: bytes, prefix: str = "src/", suffixes: tuple[str, ...] = (".c", ".h")
) -> dict[str, bytes]:
    """Regular files under `prefix` with one of `suffixes` in a (gzipped) tar of a repository.

    Keys are paths relative to the archive's single top folder (GitHub archives wrap the tree in
    `<repo>-<commit>/`).
    """
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:*") as tar:
            files: dict[str, bytes] = {}
            for member in tar.getmembers():
                parts = member.name.removeprefix("./").split("/", 1)
                if not member.isfile() or len(parts) != 2:
                    continue
                rel = parts[1]
                if rel.startswith(prefix) and rel.endswith(suffixes):
                    fileobj = tar.extractfile(member)
                    if fileobj is not None:
                        files[rel] = fileobj.read()
    except (tarfile.TarError, EOFError, OSError) as e:
        raise CorpusError(f"not a readable tar archive: {flat(e)}") from None
    return files


def concat_source_files(files: dict[str, bytes]) -> str:
    """Files in sorted path order, LF endings, each ending with exactly one newline, separated."""
    if not files:
        raise CorpusError("archive holds no src/**/*.c or *.h files")
    blocks = []
    for path in sorted(files):
        text = decode_utf8(files[path], path).replace("\r\n", "\n").replace("\r", "\n")
        blocks.append(text.rstrip("\n") + "\n")
    return _FILE_SEPARATOR.join(blocks)


def prepare_nginx(raw: bytes) -> str:
    """A GitHub .tar.gz of nginx/nginx -> all src/**/*.c and *.h files concatenated."""
    return concat_source_files(source_files_from_tar(raw))


# ---------------------------------------------------------------------------------------------
# US Code Title 26 (USLM XML)

# Editorial matter the reference (statutory text only) does not have.
_USLM_SKIP = frozenset({"meta", "toc", "notes", "note", "sourceCredit", "footnote"})
# Elements printed as one line each (their inline markup flattened).
_USLM_LINES = frozenset(
    {
        "heading",
        "subheading",
        "chapeau",
        "content",
        "continuation",
        "p",
        "proviso",
        "caption",
        "th",
        "td",
        "column",
    }
)
# Children that make a line element a container instead (e.g. <content><p/><p/></content>).
_USLM_BLOCKS = _USLM_LINES | {
    "num",
    "table",
    "thead",
    "tbody",
    "tfoot",
    "tr",
    "layout",
    "header",
    "row",
    "quotedContent",
    "list",
    "listItem",
    "subsection",
    "paragraph",
    "subparagraph",
    "clause",
    "subclause",
    "item",
    "subitem",
    "subsubitem",
    "level",
}
_SPACE_LIKE = str.maketrans(
    {"\u202f": " ", "\u2000": " ", "\u2001": " ", "\u00ad": None, "\n": " ", "\r": " ", "\t": " "}
)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _clean_line(text: str) -> str:
    text = re.sub(" {2,}", " ", text.translate(_SPACE_LIKE)).strip()
    return re.sub(r"(\d) ([,.;:])(?= |$)", r"\1\2", text)  # "2014 , 128 Stat." -> "2014, 128"


def _uslm_items(elem: ET.Element) -> Iterator[tuple[bool, str]]:
    """Depth-first (is_num, text) items: a <num>, a line element, or loose text in a container."""
    tag = _local(elem.tag)
    if tag in _USLM_SKIP:
        return
    if tag == "num":
        yield True, "".join(elem.itertext())
        return
    if tag in _USLM_LINES and not any(_local(child.tag) in _USLM_BLOCKS for child in elem):
        yield False, "".join(elem.itertext())
        return
    if elem.text and elem.text.strip():
        yield False, elem.text
    for child in elem:
        yield from _uslm_items(child)
        if child.tail and child.tail.strip():
            yield False, child.tail


def _join_nums(items: Iterable[tuple[bool, str]]) -> Iterator[str]:
    """Put each number ("§ 1.", "(a)") in front of the next line: "(a) Heading", "(1) text"."""
    pending: list[str] = []
    for is_num, raw in items:
        text = _clean_line(raw)
        if not text:
            continue
        if is_num:
            pending.append(text)
        else:
            yield " ".join([*pending, text])
            pending.clear()
    if pending:
        yield " ".join(pending)


def uslm_to_text(xml: bytes) -> str:
    """USLM XML (a US Code title) -> headings and body paragraphs as lines, a blank line between.

    Notes, source credits and tables of contents are left out (the reference is statutory text
    only). U+202F/U+2000/U+2001 become spaces, U+00AD goes, repeated spaces collapse.
    """
    try:
        parser = ET.iterparse(io.BytesIO(xml), events=("end",))
        for _, elem in parser:
            if _local(elem.tag) in _USLM_SKIP:  # free the notes as we go (most of the file)
                del elem[:]
                elem.text = None
        root = parser.root  # type: ignore[attr-defined]
    except ET.ParseError as e:
        raise CorpusError(f"not valid USLM XML: {flat(e)}") from None
    lines = list(_join_nums(_uslm_items(root)))
    if not lines:
        raise CorpusError("USLM XML holds no text")
    return "\n\n".join(lines) + "\n"


def xml_from_zip(raw: bytes, member: str) -> bytes:
    """The bytes of `member` (else the only .xml file) in a zip archive."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            names = archive.namelist()
            xml_names = [n for n in names if n.rsplit("/", 1)[-1] == member]
            xml_names = xml_names or [n for n in names if n.endswith(".xml")]
            if len(xml_names) != 1:
                raise CorpusError(f"zip archive has no single {member} (members: {names[:5]})")
            return archive.read(xml_names[0])
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:  # zlib: a damaged member
        raise CorpusError(f"not a readable zip archive: {flat(e)}") from None


def prepare_irc(raw: bytes) -> str:
    """An OLRC release-point zip (xml_usc26@...) -> Title 26 statutory text."""
    return uslm_to_text(xml_from_zip(raw, "usc26.xml"))
