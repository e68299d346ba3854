"""Tests for `corpora`: registry, resolution, fetching, reading, vocabulary, splitting, preparation
and the CLI.

Downloads go to a loopback-only http.server thread; nothing leaves the machine. Tests on the real
corpora read them from $CHARNN_DATA_DIR (CI sets it to shared/corpora) and skip when it is unset.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import re
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

import corpora.prepare
from corpora import (
    REGISTRY,
    CorpusConfig,
    CorpusError,
    CorpusSpec,
    Vocab,
    data_dir_from_env,
    default_cache_dir,
    fetch,
    file_sha256,
    load_corpus,
    read_text,
    resolve_corpus,
    split_ids,
)
from corpora.cli import main
from corpora.fetch import local_path
from corpora.prepare import (
    prepare_irc,
    prepare_monte_cristo,
    prepare_nginx,
    prepare_war_and_peace,
    uslm_to_text,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = os.environ.get("CHARNN_DATA_DIR")
needs_data = pytest.mark.skipif(
    not DATA_DIR, reason="CHARNN_DATA_DIR is not set (CI sets it to shared/corpora)"
)


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the user's real cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


# ---------------------------------------------------------------------------------------------
# A loopback HTTP server that counts requests


@dataclasses.dataclass
class Server:
    url: str
    payloads: dict[str, bytes]
    requests: Counter[str]
    delay_s: float = 0.0
    missing_bytes: int = 0  # promised in Content-Length but never sent: a cut connection


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server(url="", payloads={}, requests=Counter())
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            with lock:
                state.requests[self.path] += 1
            time.sleep(state.delay_s)
            body = state.payloads.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body) + state.missing_bytes))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


def shout(raw: bytes) -> str:
    """A stand-in preparation function whose effect is visible."""
    return raw.decode("utf-8").upper()


RAW = "héllo, wörld — tiny corpus\n".encode()


def tiny_spec(server: Server, raw: bytes = RAW, sha256: str | None = None) -> CorpusSpec:
    server.payloads["/tiny.raw"] = raw
    expected = hashlib.sha256(shout(raw).encode()).hexdigest()
    return CorpusSpec(
        name="tiny",
        filename="tiny.txt",
        title="test corpus",
        url=f"{server.url}/tiny.raw",
        sha256=sha256 or expected,
        prepare=shout,
    )


# ---------------------------------------------------------------------------------------------
# Registry


def test_registry_entries_are_complete() -> None:
    assert list(REGISTRY) == ["irc", "monte-cristo", "war-and-peace", "nginx"]
    for name, spec in REGISTRY.items():
        assert spec.name == name
        assert spec.filename.endswith(".txt")
        assert spec.url.startswith("https://")
        assert re.fullmatch(r"[0-9a-f]{64}", spec.sha256), spec.sha256
        # Each source is prepared by its own function (Gutenberg, USLM XML, C sources).
        assert spec.prepare is getattr(corpora.prepare, f"prepare_{name.replace('-', '_')}")
    assert REGISTRY["irc"].note and REGISTRY["war-and-peace"].note  # re-rendered sources


@needs_data
@pytest.mark.parametrize("name", list(REGISTRY))
def test_registry_checksums_match_real_files(name: str) -> None:
    spec = REGISTRY[name]
    assert file_sha256(Path(DATA_DIR) / spec.filename) == spec.sha256


@needs_data
@pytest.mark.parametrize("name", ["monte-cristo", "war-and-peace"])
def test_gutenberg_preparation_is_idempotent_on_reference(
    name: str, server: Server, tmp_path: Path
) -> None:
    """Serving the reference file itself: prepare() leaves it unchanged, so fetch verifies."""
    spec = REGISTRY[name]
    server.payloads["/ref"] = (Path(DATA_DIR) / spec.filename).read_bytes()
    path = fetch(dataclasses.replace(spec, url=f"{server.url}/ref"), tmp_path / "cache")
    assert file_sha256(path) == spec.sha256


# ---------------------------------------------------------------------------------------------
# Resolution: path > data dir > cache > download


def test_default_dirs_follow_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "char-rnn-search"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "char-rnn-search"
    monkeypatch.setenv("CHARNN_DATA_DIR", str(tmp_path))
    assert data_dir_from_env() == tmp_path
    monkeypatch.delenv("CHARNN_DATA_DIR")
    assert data_dir_from_env() is None


def test_resolution_order(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHARNN_DATA_DIR", raising=False)
    spec = tiny_spec(server)
    monkeypatch.setitem(REGISTRY, "tiny", spec)
    data, env_data, cache = tmp_path / "data", tmp_path / "env-data", tmp_path / "cache"
    data.mkdir()
    env_data.mkdir()

    with pytest.raises(CorpusError, match="not available locally"):
        resolve_corpus("tiny", data, cache, download=False)
    assert server.requests["/tiny.raw"] == 0

    assert resolve_corpus("tiny", data, cache) == cache / "tiny.txt"  # downloaded
    assert server.requests["/tiny.raw"] == 1
    assert resolve_corpus("tiny", data, cache, download=False) == cache / "tiny.txt"

    monkeypatch.setenv("CHARNN_DATA_DIR", str(env_data))
    (env_data / "tiny.txt").write_text("from env\n")
    assert resolve_corpus("tiny", None, cache) == env_data / "tiny.txt"  # env data dir > cache
    (data / "tiny.txt").write_text("from data\n")
    assert resolve_corpus("tiny", data, cache) == data / "tiny.txt"  # argument > env

    other = tmp_path / "my corpus.txt"
    other.write_text("anything\n")
    assert resolve_corpus(str(other), data, cache) == other  # an existing path beats everything
    assert server.requests["/tiny.raw"] == 1


def test_resolution_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHARNN_DATA_DIR", raising=False)
    with pytest.raises(CorpusError, match=r"unknown corpus 'nope': not a registered name \(irc, "):
        resolve_corpus("nope", cache_dir=tmp_path)
    with pytest.raises(CorpusError, match="is a directory"):
        resolve_corpus(str(tmp_path), cache_dir=tmp_path)
    with pytest.raises(CorpusError, match="is not an existing folder"):
        resolve_corpus("irc", tmp_path / "missing", tmp_path)
    monkeypatch.setenv("CHARNN_DATA_DIR", str(tmp_path / "missing"))
    with pytest.raises(CorpusError, match="CHARNN_DATA_DIR .* is not an existing folder"):
        resolve_corpus("irc", cache_dir=tmp_path)


# ---------------------------------------------------------------------------------------------
# Fetching


def test_fetch_downloads_once_then_serves_cache(server: Server, tmp_path: Path) -> None:
    spec = tiny_spec(server)
    cache = tmp_path / "cache"
    path = fetch(spec, cache)
    assert path == cache / "tiny.txt"
    assert path.read_text(encoding="utf-8") == shout(RAW)  # prepared, not raw
    assert file_sha256(path) == spec.sha256
    assert fetch(spec, cache) == path
    assert server.requests["/tiny.raw"] == 1
    assert not list(cache.glob(".*.tmp"))  # no temporary file left behind


def test_a_cached_copy_that_no_longer_matches_is_downloaded_again(
    server: Server, tmp_path: Path
) -> None:
    spec = tiny_spec(server)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "tiny.txt").write_text("<html>503 Service Unavailable</html>")  # damaged copy
    assert local_path(spec, None, cache) is None  # never trained on
    assert fetch(spec, cache) == cache / "tiny.txt"
    assert file_sha256(cache / "tiny.txt") == spec.sha256 and server.requests["/tiny.raw"] == 1
    assert fetch(spec, cache) == cache / "tiny.txt" and server.requests["/tiny.raw"] == 1


def test_a_download_cut_short_says_so(server: Server, tmp_path: Path) -> None:
    server.missing_bytes = 1000
    with pytest.raises(CorpusError, match=r"could not download .*connection closed after \d+ of"):
        fetch(tiny_spec(server), tmp_path / "cache")
    assert not (tmp_path / "cache" / "tiny.txt").exists()


def test_fetch_checksum_mismatch_installs_nothing(server: Server, tmp_path: Path) -> None:
    spec = dataclasses.replace(tiny_spec(server, sha256="0" * 64), note="Renderings differ.")
    cache = tmp_path / "cache"
    with pytest.raises(CorpusError) as info:
        fetch(spec, cache)
    message = str(info.value)
    assert "checksum mismatch" in message and "0" * 64 in message
    assert hashlib.sha256(shout(RAW).encode()).hexdigest() in message
    assert "Renderings differ." in message and "CHARNN_DATA_DIR / --data-dir" in message
    assert "\n" not in message
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == []


def test_fetch_download_error_is_one_line(server: Server, tmp_path: Path) -> None:
    spec = dataclasses.replace(tiny_spec(server), url=f"{server.url}/missing")
    with pytest.raises(CorpusError, match=r"could not download .*404.*--data-dir") as info:
        fetch(spec, tmp_path)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "tiny.txt").exists()


def test_a_download_prepare_cannot_read_is_one_line_naming_the_corpus(
    server: Server, tmp_path: Path
) -> None:
    spec = dataclasses.replace(tiny_spec(server), prepare=prepare_nginx)  # text, not a tarball
    with pytest.raises(CorpusError) as info:
        fetch(spec, tmp_path)
    message = str(info.value)
    assert message.startswith(f"could not prepare corpus 'tiny' from {spec.url}: not a readable ")
    assert "--data-dir" in message and "\n" not in message
    assert not (tmp_path / "tiny.txt").exists()


def test_concurrent_fetch_in_threads_downloads_once(server: Server, tmp_path: Path) -> None:
    spec = tiny_spec(server)
    server.delay_s = 0.3  # keep the first download in flight while the second thread arrives
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(fetch(spec, tmp_path))) for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [tmp_path / "tiny.txt"] * 2
    assert server.requests["/tiny.raw"] == 1


CHILD = """
import sys
from pathlib import Path
from corpora import CorpusSpec, fetch
spec = CorpusSpec("tiny", "tiny.txt", "t", sys.argv[1], sys.argv[2], lambda raw: raw.decode())
print(fetch(spec, Path(sys.argv[3])))
"""


def test_concurrent_fetch_in_processes_downloads_once(server: Server, tmp_path: Path) -> None:
    server.payloads["/p.raw"] = RAW
    server.delay_s = 0.5
    args = [f"{server.url}/p.raw", hashlib.sha256(RAW).hexdigest(), str(tmp_path)]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [child.communicate(timeout=30) for child in children]
    assert [child.returncode for child in children] == [0, 0], outputs
    assert [out.strip() for out, _ in outputs] == [str(tmp_path / "tiny.txt")] * 2
    assert server.requests["/p.raw"] == 1


# ---------------------------------------------------------------------------------------------
# Reading


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        (None, "no such file"),
        (b"", "is empty"),
        (b"abc\x00def", "binary .*offset 3"),
        (b"abc\xff", "not valid UTF-8 .*offset 3"),
        (b"\xef\xbb\xbfabc\xff", "not valid UTF-8 .*offset 6"),  # offsets count the file's bytes
        (b"\xef\xbb\xbf", "is empty"),
    ],
)
def test_read_text_errors(tmp_path: Path, content: bytes | None, pattern: str) -> None:
    path = tmp_path / "f.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CorpusError, match=pattern) as info:
        read_text(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_read_text_directory_and_success(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="is a directory"):
        read_text(tmp_path)
    path = tmp_path / "ok.txt"
    path.write_bytes("é\r\nx".encode())
    assert read_text(path) == "é\r\nx"  # strict: no newline translation
    path.write_bytes(b"\xef\xbb\xbf" + "é\r\nx".encode())
    assert read_text(path) == "é\r\nx"  # a byte-order mark is not a character of the text


# ---------------------------------------------------------------------------------------------
# Vocabulary


def test_vocab_round_trip_non_ascii() -> None:
    text = "Dantès — “Wait and hope” 你好 🙂\n"
    vocab = Vocab.from_text(text)
    assert list(vocab.chars) == sorted(set(text))
    assert len(vocab) == len(set(text))
    ids = vocab.encode(text)
    assert ids.dtype == np.uint8 and ids.shape == (len(text),)
    assert vocab.decode(ids) == text
    assert vocab.decode(ids.tolist()) == text
    assert vocab.decode(ids[:0]) == "" and vocab.encode("").shape == (0,)


def test_vocab_unknown_and_out_of_range() -> None:
    vocab = Vocab.from_text("abc")
    with pytest.raises(CorpusError, match=r"'é' \(U\+00E9\) at position 1"):
        vocab.encode("aéb")
    with pytest.raises(CorpusError, match="'🙂'"):  # beyond the lookup table
        vocab.encode("🙂")
    with pytest.raises(CorpusError, match="out of range"):
        vocab.decode([0, 3])
    with pytest.raises(CorpusError, match="sorted"):
        Vocab(("b", "a"))


def test_vocab_dtype_grows_with_size() -> None:
    text = "".join(map(chr, range(0x100, 0x100 + 300)))
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    assert ids.dtype == np.int16 and vocab.decode(ids) == text
    assert Vocab.from_text("".join(map(chr, range(0x4E00, 0x4E00 + 40000)))).dtype == np.int32


@needs_data
def test_irc_encodes_whole() -> None:  # its speed is measured by benchmarks/bench_encode.py
    text = read_text(Path(DATA_DIR) / "irc.txt")
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    assert (len(text), len(vocab), ids.dtype) == (10_523_383, 98, np.uint8)
    assert vocab.decode(ids[-1000:]) == text[-1000:]


# ---------------------------------------------------------------------------------------------
# Splitting and loading


def test_split_ids_by_position() -> None:
    train, val, test = split_ids(np.arange(100), 0.1)
    np.testing.assert_array_equal(train, np.arange(90))
    np.testing.assert_array_equal(val, np.arange(90, 100))
    assert len(test) == 0  # no test split unless asked for
    train, val, test = split_ids(np.arange(100), 0.1, 0.05)  # [train | val | test]
    np.testing.assert_array_equal(val, np.arange(85, 95))
    np.testing.assert_array_equal(test, np.arange(95, 100))
    assert len(train) == 85
    with pytest.raises(CorpusError, match="would be empty"):
        split_ids(np.arange(10), 0.01)
    with pytest.raises(CorpusError, match="would be empty"):
        split_ids(np.arange(10), 0.2, 0.01)  # a test split asked for, of no character
    with pytest.raises(CorpusError, match="val_fraction"):
        split_ids(np.arange(10), 1.5)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_chars": 0},
        {"max_chars": -5},
        {"val_fraction": 0.0},
        {"val_fraction": 0.5},
        {"test_fraction": -0.1},
        {"val_fraction": 0.3, "test_fraction": 0.2},
        {"name": ""},
    ],
)
def test_corpus_config_validation(kwargs: dict[str, object]) -> None:
    with pytest.raises(CorpusError):
        CorpusConfig(**kwargs)  # type: ignore[arg-type]


def test_load_corpus_max_chars_prefix(tmp_path: Path) -> None:
    path = tmp_path / "story.txt"
    text = "abcdefghij" * 10 + "ZZZ"
    path.write_text(text, encoding="utf-8")
    corpus = load_corpus(
        CorpusConfig(name=str(path), max_chars=100, val_fraction=0.1), download=False
    )
    assert (corpus.name, corpus.path, corpus.n_chars) == ("story", str(path), 100)
    assert corpus.sha256 == file_sha256(path)  # of the whole file
    assert "Z" not in corpus.vocab.chars  # vocabulary of the prefix only
    assert (len(corpus.train_ids), len(corpus.val_ids)) == (90, 10)
    assert corpus.vocab.decode(np.concatenate([corpus.train_ids, corpus.val_ids])) == text[:100]
    assert not corpus.train_ids.flags.writeable and len(corpus.test_ids) == 0
    split = load_corpus(
        CorpusConfig(name=str(path), max_chars=100, val_fraction=0.1, test_fraction=0.2),
        download=False,
    )
    assert (len(split.train_ids), len(split.val_ids), len(split.test_ids)) == (70, 10, 20)
    assert split.vocab.decode(split.test_ids) == text[80:100]


@needs_data
def test_load_corpus_real_monte_cristo(tmp_path: Path) -> None:
    config = CorpusConfig(name="monte-cristo", data_dir=DATA_DIR)
    corpus = load_corpus(config, cache_dir=tmp_path, download=False)
    assert corpus.name == "monte-cristo"
    assert corpus.sha256 == REGISTRY["monte-cristo"].sha256
    assert (corpus.n_chars, len(corpus.vocab)) == (2_623_222, 130)
    assert len(corpus.train_ids) + len(corpus.val_ids) == corpus.n_chars
    assert len(corpus.val_ids) == round(0.02 * corpus.n_chars)
    ending = "comedy of _L’Avare_.—Ed.\n"
    assert corpus.vocab.decode(corpus.val_ids[-len(ending) :]) == ending
    assert corpus.vocab.decode(corpus.train_ids[:25]) == "THE COUNT OF MONTE CRISTO"


# ---------------------------------------------------------------------------------------------
# Preparation functions


def test_prepare_gutenberg_with_header_and_footer() -> None:
    raw = (
        "\ufeffThe Project Gutenberg EBook of War and Peace\r\n\r\n"
        "*** START OF THIS PROJECT GUTENBERG EBOOK WAR AND PEACE ***\r\n\r\n\r\n"
        "An Anonymous Volunteer, and David Widger\r\n\r\n"
        "WAR AND PEACE   \r\n\r\n\r\n\r\n\r\n\r\nCHAPTER I\r\n\r\n“Well, Prince”\t\r\n\r\n"
        "End of the Project Gutenberg EBook of War and Peace, by Leo Tolstoy\r\n\r\n"
        "*** END OF THIS PROJECT GUTENBERG EBOOK WAR AND PEACE ***\r\nlicence...\r\n"
    ).encode()
    assert prepare_war_and_peace(raw) == "WAR AND PEACE\n\n\nCHAPTER I\n\n“Well, Prince”\n"


def test_prepare_gutenberg_new_markers_and_placeholders() -> None:
    raw = (
        b"header\n*** START OF THE PROJECT GUTENBERG EBOOK 1184 ***\n"
        b"THE COUNT OF MONTE CRISTO\n\n\n\nby Dumas\n\n0009m \n\n\n\n400340m\n\nChapter 1.\n"
        b"*** END OF THE PROJECT GUTENBERG EBOOK 1184 ***\nfooter\n"
    )
    assert prepare_monte_cristo(raw) == "THE COUNT OF MONTE CRISTO\n\n\nby Dumas\n\n\nChapter 1.\n"
    assert prepare_monte_cristo(b"no markers \nat all\n\n") == "no markers\nat all\n"
    with pytest.raises(CorpusError, match="not valid UTF-8"):
        prepare_monte_cristo(b"\xff")


def _tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_prepare_nginx_from_tar() -> None:
    raw = _tar_gz(
        {
            "nginx-3f6f78/src/event/x.c": b"x\n",
            "nginx-3f6f78/src/core/b.c": b"\n/* b */\nint b;\n\n\n",
            "nginx-3f6f78/src/core/a.h": b"/* a */\r\nint a;",
            "nginx-3f6f78/src/core/notes.txt": b"not C\n",
            "nginx-3f6f78/auto/cc.c": b"not under src\n",
            "nginx-3f6f78/README": b"readme\n",
        }
    )
    # sorted paths; LF; one final newline per file; files separated as in the reference file
    assert prepare_nginx(raw) == "/* a */\nint a;\n\n\n\n/* b */\nint b;\n\n\nx\n"
    with pytest.raises(CorpusError, match="no src"):
        prepare_nginx(_tar_gz({"nginx/README": b"x"}))
    with pytest.raises(CorpusError, match="tar"):
        prepare_nginx(b"not a tarball")


USLM = """<?xml version="1.0" encoding="UTF-8"?>
<uscDoc xmlns="http://xml.house.gov/schemas/uslm/1.0" xmlns:dc="http://purl.org/dc/elements/1.1/">
<meta><dc:title>Title 26</dc:title></meta>
<main><title identifier="/us/usc/t26"><num value="26">Title 26—</num>
<heading>INTERNAL REVENUE CODE</heading>
<subtitle><num value="A">Subtitle A—</num><heading>Income Taxes</heading>
<toc><layout><tocItem><column>1.</column><column>Normal taxes</column></tocItem></layout></toc>
<section identifier="/us/usc/t26/s1"><num value="1">§ 1.</num><heading> Tax imposed</heading>
<subsection><num value="a">(a)</num><heading> Married  individuals</heading>
<chapeau>There is hereby imposed on the taxable income of—</chapeau>
<paragraph><num value="1">(1)</num><content>every married individual (as defined in
<ref href="/us/usc/t26/s7703">section 7703</ref>),&#x202F;and</content></paragraph>
<continuation>a tax in accordance with the follow&#xAD;ing table:</continuation>
<table xmlns="http://www.w3.org/1999/xhtml"><tr><th>If taxable income is:</th>
<th>The tax is:</th></tr><tr><td>Not over $36,900</td><td>15%&#x2001;of taxable income.</td></tr>
</table></subsection>
<subsection><num value="b">(b)</num><content><p>First.</p><p>Second   one.</p></content>
</subsection>
<sourceCredit>(Aug. 16, 1954, ch. 736, 68A Stat. 5.)</sourceCredit>
<notes><note topic="amendments"><heading>Amendments</heading><p>2017—Pub. L. 115–97</p></note>
</notes></section>
<section status="repealed"><num value="2">[§ 2.</num>
<heading> Repealed. Pub. L. 99–514, Oct. 22, 1986 , 100 Stat. 2085 ]</heading></section>
</subtitle></title></main></uscDoc>
"""

USLM_TEXT = """Title 26— INTERNAL REVENUE CODE

Subtitle A— Income Taxes

§ 1. Tax imposed

(a) Married individuals

There is hereby imposed on the taxable income of—

(1) every married individual (as defined in section 7703), and

a tax in accordance with the following table:

If taxable income is:

The tax is:

Not over $36,900

15% of taxable income.

(b) First.

Second one.

[§ 2. Repealed. Pub. L. 99–514, Oct. 22, 1986, 100 Stat. 2085 ]
"""


def test_uslm_to_text() -> None:
    assert uslm_to_text(USLM.encode()) == USLM_TEXT
    with pytest.raises(CorpusError, match="not valid USLM XML"):
        uslm_to_text(b"<uscDoc><main>")


def test_prepare_irc_from_zip() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("usc26.xml", USLM)
    assert prepare_irc(buffer.getvalue()) == USLM_TEXT
    with pytest.raises(CorpusError, match="zip"):
        prepare_irc(b"not a zip")
    damaged = io.BytesIO()
    with zipfile.ZipFile(damaged, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("usc26.xml", USLM * 20)
    raw = bytearray(damaged.getvalue())
    raw[60:120] = bytes(b ^ 0xFF for b in raw[60:120])  # inside the compressed member
    with pytest.raises(CorpusError, match="not a readable zip archive"):
        prepare_irc(bytes(raw))


# ---------------------------------------------------------------------------------------------
# CLI


def run_cli(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    return subprocess.run(
        [sys.executable, "-m", "corpora", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@needs_data
def test_cli_list_with_data_dir(tmp_path: Path) -> None:
    result = run_cli("list", "--data-dir", DATA_DIR, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["name", "source", "local"]
    irc = next(line for line in lines if line.startswith("irc "))
    assert " yes " in irc and "10.56" in irc and "10,523,383" in irc and " 98 " in irc
    assert all(" yes " in line for line in lines[1:])


def test_cli_list_without_files_shows_urls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CHARNN_DATA_DIR", raising=False)
    assert main(["list", "--data-dir", str(tmp_path), "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count(" no ") == len(REGISTRY)
    assert "download: " + REGISTRY["nginx"].url in out


def test_cli_list_shows_an_unreadable_file_in_its_own_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CHARNN_DATA_DIR", raising=False)
    (tmp_path / "irc.txt").write_bytes("café".encode("latin-1"))
    (tmp_path / "nginx_c_source.txt").write_text("int main(void) { return 0; }\n")
    assert main(["list", "--data-dir", str(tmp_path), "--cache-dir", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    rows = {line.split()[0]: line for line in captured.out.splitlines()[1:]}
    assert " unreadable " in rows["irc"] and " differs " in rows["nginx"]
    assert captured.err.startswith("warning: ") and "not valid UTF-8" in captured.err
    assert captured.err.count("\n") == 1


def test_cli_fetch_resolves_from_data_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "irc.txt").write_text("tax\n")
    assert main(["fetch", "irc", "--data-dir", str(tmp_path), "--no-download"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "irc.txt")


def test_cli_bad_name_exits_2_with_one_line(tmp_path: Path) -> None:
    result = run_cli("fetch", "no-such-corpus", tmp_path=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: unknown corpus 'no-such-corpus'")
    assert len(result.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------------------
# Downloads that must not be trusted, and local files that are not what they claim


def test_a_redirect_from_https_to_http_is_refused() -> None:
    import urllib.error
    import urllib.request

    from corpora.fetch import _NoDowngrade

    handler = _NoDowngrade()
    request = urllib.request.Request("https://example.org/corpus.zip")
    with pytest.raises(urllib.error.URLError, match="refused redirect from https"):
        handler.redirect_request(request, None, 302, "Found", {}, "http://example.org/x.zip")
    allowed = handler.redirect_request(request, None, 302, "Found", {}, "https://cdn.org/x.zip")
    assert allowed.full_url == "https://cdn.org/x.zip"


def test_a_download_over_the_size_cap_is_refused(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetch_module = sys.modules["corpora.fetch"]  # `corpora.fetch` is also the function's name
    monkeypatch.setattr(fetch_module, "MAX_DOWNLOAD_BYTES", 10)
    with pytest.raises(CorpusError, match="byte cap"):
        fetch(tiny_spec(server), tmp_path / "cache")
    assert not (tmp_path / "cache" / "tiny.txt").exists()


def test_a_held_download_lock_times_out_naming_the_lock_file(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from filelock import FileLock

    monkeypatch.setattr(sys.modules["corpora.fetch"], "LOCK_TIMEOUT_S", 0.2)
    cache = tmp_path / "cache"
    cache.mkdir()
    with FileLock(cache / "tiny.txt.lock"), pytest.raises(CorpusError) as info:
        fetch(tiny_spec(server), cache)
    message = str(info.value)
    assert "another process has been downloading corpus 'tiny'" in message
    assert str(cache) in message and "\n" not in message


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"", "empty"), (b"\x00\x01 binary", "binary"), ("café".encode("latin-1"), "UTF-8")],
)
def test_fetch_checks_the_content_of_a_local_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: bytes, message: str
) -> None:
    (tmp_path / "monte_cristo.txt").write_bytes(data)
    assert main(["fetch", "monte-cristo", "--data-dir", str(tmp_path), "--no-download"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_a_registered_name_with_another_file_is_flagged_everywhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "monte_cristo.txt").write_text("Not Dumas at all.\n" * 500, encoding="utf-8")
    assert main(["fetch", "monte-cristo", "--data-dir", str(tmp_path), "--no-download"]) == 0
    assert "not the registry's reference file" in capsys.readouterr().err
    corpus = load_corpus(CorpusConfig(name="monte-cristo", data_dir=str(tmp_path)))
    assert corpus.verified is False
    assert main(["list", "--data-dir", str(tmp_path)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("monte-cristo"))
    assert " differs " in line
    own = tmp_path / "notes.txt"
    own.write_text("my own text\n" * 100, encoding="utf-8")
    assert load_corpus(CorpusConfig(name=str(own))).verified is None  # a path: nothing to check


def test_relative_paths_are_kept_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint or a search's settings keep the corpus and data folder they were given: made
    absolute, they name the same files when read from another working folder."""
    from search.folder.config import SearchConfig

    (tmp_path / "data").mkdir()
    (tmp_path / "notes.txt").write_text("some notes\n")
    monkeypatch.chdir(tmp_path)
    config = CorpusConfig(name="notes.txt", data_dir="data")
    assert (config.name, config.data_dir) == (str(tmp_path / "notes.txt"), str(tmp_path / "data"))
    search = SearchConfig(corpus="notes.txt", data_dir="data")
    assert (search.corpus, search.data_dir) == (config.name, config.data_dir)
    assert search.corpus_config().data_dir == config.data_dir
    # A registered name, and a folder that does not exist (its error names it as given), stay.
    assert CorpusConfig(name="irc", data_dir="missing").data_dir == "missing"
    assert CorpusConfig(name="irc").name == "irc"
