"""Nothing lost, nothing counted twice: concurrent writers, locks, resume edge cases, and every
bad file a user can hand over becoming one line. Ray-free, so they run in the fast tier."""

import json
import multiprocessing
import os
import re
import shutil
import signal
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest
import torch
from filelock import FileLock

from corpora.files import atomic_path, atomic_write
from model.errors import ConfigError
from model.evaluate import EvalConfig
from model.sample import main as sample_main
from model.train import main as train_main
from search.folder.config import SearchConfig, default_name
from search.folder.store import SearchFolder
from search.reports import report

TINY = ["--corpus", "monte-cristo", "--hidden-size", "16", "--num-layers", "1", "--batch-size",
        "8", "--seq-len", "16", "--max-chars", "50000", "--eval-every-chars", "2048",
        "--device", "cpu"]  # fmt: skip


def write_many(path: str, tag: str) -> None:
    for _ in range(200):
        atomic_write(path, tag * 10_000)


def test_two_writers_of_one_file_never_mix_or_fail(tmp_path):
    target = tmp_path / "shared.txt"
    writers = [multiprocessing.Process(target=write_many, args=(str(target), t)) for t in "ab"]
    for w in writers:
        w.start()
    for w in writers:
        w.join(timeout=60)
    assert [w.exitcode for w in writers] == [0, 0]  # no FileNotFoundError on rename
    text = target.read_text()
    assert text in ("a" * 10_000, "b" * 10_000)  # one writer's whole file, never both
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "table.txt"
    atomic_write(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("the writer died")
    assert target.read_text() == "old" and not list(tmp_path.glob(".*.tmp"))


def test_a_search_folder_has_one_owner_at_a_time(tmp_path):
    folder = SearchFolder(tmp_path / "search")
    held = folder.lock()
    try:
        with pytest.raises(ConfigError, match="in use by another process"):
            SearchFolder(tmp_path / "search").lock()
    finally:
        held.release()
    SearchFolder(tmp_path / "search").lock().release()  # free again


def test_default_names_differ_within_one_second():
    names = {default_name("irc") for _ in range(50)}
    for path, stem in [("/data/my book.txt", "my-book"), ("./.notes.txt", "notes"),
                       ("/data/¿qué?.txt", "qu")]:  # fmt: skip
        name = default_name(path)
        assert name.startswith(f"{stem}-") and SearchConfig(name=name).name == name
    assert len(names) == 50 and all(re.fullmatch(r"irc-\d{8}-\d{6}-[0-9a-f]{6}", n) for n in names)


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("error: ") and not any("Traceback" in e for e in err), err
    return err[-1]


def test_a_run_folder_has_one_trainer_at_a_time(corpus_dir, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    with FileLock(out / ".lock"):
        code = train_main([*TINY, "--data-dir", str(corpus_dir), "--out", str(out)])
    assert code == 2 and "in use by another training process" in one_line(capsys)
    assert not (out / "checkpoint.pt").exists()


@pytest.fixture(scope="module")
def trained_once(corpus_dir, tmp_path_factory):
    """One finished tiny run, trained once for the module; tests get copies to spoil."""
    out = tmp_path_factory.mktemp("trained") / "run"
    assert train_main([*TINY, "--data-dir", str(corpus_dir), "--max-train-chars", "4096",
                       "--out", str(out)]) == 0  # fmt: skip
    return out


@pytest.fixture
def trained(trained_once, tmp_path):
    return Path(shutil.copytree(trained_once, tmp_path / "run"))


def test_resume_writes_no_row_twice_after_a_kill_between_the_two_writes(trained, capsys):
    # As if killed after writing metrics.parquet but before the checkpoint (the old order):
    # the table holds a row the checkpoint never reached.
    rows = pq.read_table(trained / "metrics.parquet").to_pylist()
    checkpoint = torch.load(trained / "checkpoint.pt", weights_only=True)
    checkpoint["progress"]["chars_seen"] = rows[0]["chars_seen"]
    checkpoint["run_config"]["max_train_chars"] = 6144
    torch.save(checkpoint, trained / "checkpoint.pt")
    assert train_main(["--out", str(trained), "--resume"]) == 0
    seen = pq.read_table(trained / "metrics.parquet").column("chars_seen").to_pylist()
    assert seen == sorted(set(seen)) == [2048, 4096, 6144]


def test_resuming_a_diverged_run_says_so_and_changes_nothing(corpus_dir, tmp_path, capsys):
    out = tmp_path / "diverged"
    args = [*TINY, "--data-dir", str(corpus_dir), "--lr", "1000000", "--grad-clip", "0",
            "--max-train-chars", "4096", "--out", str(out)]  # fmt: skip
    # A run whose loss exploded trained no model: status 1 and what to change, not the 0 of a
    # finished run (a script chaining runs would go on with it).
    assert train_main(args) == 1
    captured = capsys.readouterr()
    assert "diverged: val_bpc nan after" in captured.out, captured.out  # no best: none kept
    (line,) = [ln for ln in captured.err.splitlines() if ln.startswith("error: ")]
    assert "diverged after" in line and "lower --lr" in line, captured.err
    before = (out / "metrics.parquet").read_bytes()
    for _ in range(2):
        assert train_main(["--out", str(out), "--resume"]) == 2
        assert "diverged" in one_line(capsys)
    assert (out / "metrics.parquet").read_bytes() == before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (lambda c: torch.zeros(3), "not a checkpoint of this project: Tensor"),
        (lambda c: {"model": c["model"]}, "not a checkpoint of this project: a dict without"),
        (
            lambda c: {**c, "model": {k: v[:1] for k, v in c["model"].items()}},
            "do not fit the model of its config: size mismatch for",
        ),
        (  # written by a version with another setting: the error names the file
            lambda c: {**c, "run_config": {**c["run_config"], "grace_chars": 1000}},
            ".pt: unknown setting(s): grace_chars",
        ),
    ],
    ids=["bare tensor", "missing keys", "wrong shapes", "another version's setting"],
)
def test_a_foreign_checkpoint_is_one_line(trained, capsys, content, message):
    good = torch.load(trained / "checkpoint.pt", weights_only=True)
    for name in ("checkpoint.pt", "best.pt"):
        torch.save(content(good), trained / name)
    assert train_main(["--out", str(trained), "--resume"]) == 2
    assert message in one_line(capsys)
    assert sample_main(["--checkpoint", str(trained)]) == 2
    assert message in one_line(capsys)


def test_an_unreadable_checkpoint_says_why_in_one_line(trained, capsys):
    whole = (trained / "best.pt").read_bytes()
    bad = [(whole[: len(whole) // 2], "not a torch checkpoint (cut short, or another kind"),
           (b"some text, not a checkpoint\n", "not a torch checkpoint")]  # fmt: skip
    middle = len(whole) // 2  # inside a tensor's bytes: torch would load it, changed
    flipped = whole[:middle] + bytes(b ^ 0xFF for b in whole[middle : middle + 200])
    bad.append((flipped + whole[middle + 200 :], "damaged ("))
    for content, message in bad:
        (trained / "best.pt").write_bytes(content)
        assert sample_main(["--checkpoint", str(trained / "best.pt")]) == 2
        assert message in one_line(capsys)


def test_a_corrupt_metrics_table_is_one_line(trained, capsys):
    (trained / "metrics.parquet").write_bytes(b"PAR1 not really")
    assert train_main(["--out", str(trained), "--resume"]) == 2
    assert "cannot read metrics" in one_line(capsys)


def test_settings_of_a_search_folder_are_read_through_the_store(tmp_path):
    folder = SearchFolder(tmp_path / "s")
    (folder.path / "state").mkdir(parents=True)
    (folder.path / "state" / "search.json").write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read search settings"):
        folder.read_settings()
    (folder.path / "state" / "search.json").write_text(json.dumps([1, 2]))
    with pytest.raises(ConfigError, match="not a mapping"):
        folder.read_settings()
    assert folder.rungs() == [] and folder.legacy_stops() == set()
    (folder.path / "stopped.txt").write_text("t1\nt2\n")  # as an earlier version kept them
    assert folder.legacy_stops() == {"t1", "t2"}
    assert not Path(folder.path / "trials.parquet").exists()


def test_a_new_best_model_never_keeps_the_previous_ones_test_bits_or_sample(tmp_path):
    """A resume that finds a better trial replaces best/; were it killed while scoring the new
    model, the old model's test bits must not be read as the new one's."""
    folder = SearchFolder(tmp_path / "s")
    folder.path.mkdir()
    old = tmp_path / "old.pt"
    old.write_bytes(b"old model")
    folder.keep_best(old, {"trial_id": "old"})
    folder.write_test_bits([1.0, 2.0], [1.0, 1.5])
    folder.write_sample("old text")
    new = tmp_path / "new.pt"
    new.write_bytes(b"new model")
    folder.keep_best(new, {"trial_id": "new"})
    assert sorted(p.name for p in folder.best.iterdir()) == ["best.pt", "trial.json"]
    assert folder.test_bits() is None and (folder.best / "best.pt").read_bytes() == b"new model"


def test_test_bits_of_another_test_split_are_refused_not_compared(tmp_path):
    """best/test_bits.parquet holds one static and one dynamic figure per test character of the
    split the search scored; were the split to change (another --max-chars, another text), the
    comparison would pair them with other characters: refused, naming both lengths."""
    folder = SearchFolder(tmp_path / "s")
    folder.path.mkdir()
    folder.best.mkdir()
    folder.write_test_bits([1.0, 2.0, 3.0], [1.0, 1.5, 2.5])
    text = SimpleNamespace(test="abcd")  # four test characters now; three were scored
    for test_fraction in (0.1, 0.0):  # with no test split kept, there is nothing to compare
        search = SimpleNamespace(
            folder=folder, name="s", config=SimpleNamespace(test_fraction=test_fraction)
        )
        if test_fraction:
            with pytest.raises(ConfigError, match="scored 3 test characters, but the test split"):
                report.test_part(search, text, EvalConfig())
        else:
            assert report.test_part(search, text, EvalConfig()) is None


def test_the_speeds_a_search_measured_are_kept_for_its_resume(tmp_path):
    folder = SearchFolder(tmp_path / "s")
    assert folder.speeds() is None  # never measured: a resume measures
    folder.write_speeds({"lstm 1x512 b32 s64": 15_387.0})
    assert folder.speeds() == {"lstm 1x512 b32 s64": 15_387.0}
    (folder.path / "state" / "speeds.json").write_text("[1, 2]")
    assert folder.speeds() is None  # unreadable: measured again, not misread


def test_a_folder_of_an_earlier_version_is_read_then_moved_into_state(tmp_path):
    """Earlier versions kept the JSON files at the folder's top, where Tune re-copies them."""
    folder = SearchFolder(tmp_path / "old")
    folder.path.mkdir()
    settings = {"name": "old", "corpus": "irc"}
    (folder.path / "search.json").write_text(json.dumps(settings))
    (folder.path / "clock.json").write_text(json.dumps({"started": 1.0, "deadline": 2.0}))
    (folder.path / "holder.json").write_text("{}")  # left by a driver that was killed
    (folder.path / "experiment_state-2026.json").write_text("{}")  # Tune's: stays
    assert folder.exists() and folder.read_settings() == settings
    assert folder.clock() == {"started": 1.0, "deadline": 2.0}
    lock = folder.lock()  # the next run: its holder.json goes into state/
    folder.migrate()
    assert [p.name for p in folder.path.glob("*.json")] == ["experiment_state-2026.json"]
    moved = sorted(p.name for p in (folder.path / "state").iterdir())
    assert moved == ["clock.json", "holder.json", "search.json"]
    folder.release(lock)
    assert folder.read_settings() == settings and folder.clock()["deadline"] == 2.0


def test_trial_folders_the_saved_state_does_not_know_are_set_aside_not_deleted(tmp_path):
    """A resume after a SIGKILL: trials started after Tune's last save move to lost/, whole."""
    folder = SearchFolder(tmp_path / "s")
    for name in ("train_trial_aaaa0001_1_x=1", "train_trial_bbbb0002_2_x=2"):
        (folder.path / name).mkdir(parents=True)
        (folder.path / name / "result.json").write_text("{}\n")
    (folder.path / "state").mkdir()
    moved = folder.set_aside({"train_trial_aaaa0001_1_x=1"})
    assert moved == [folder.path / "lost" / "train_trial_bbbb0002_2_x=2"]
    assert (moved[0] / "result.json").read_text() == "{}\n"
    assert sorted(p.name for p in folder.path.iterdir()) == [
        "lost", "state", "train_trial_aaaa0001_1_x=1"]  # fmt: skip
    assert folder.set_aside({"train_trial_aaaa0001_1_x=1"}) == []  # nothing more to move


# -- signals: SIGTERM is Ctrl-C wherever the driver is -----------------------------------------


def test_sigterm_before_and_after_tune_interrupts_and_during_tune_tells_tune():
    """Outside Tune's `fit`, SIGTERM raises KeyboardInterrupt (the folder's lock and Ray are let
    go, and the command line says so); inside, it is Tune's SIGUSR1 (save, then stop), and
    before Tune listens for that it is KeyboardInterrupt again, not SIGUSR1's default end.
    `ray.init` puts `sys.exit(15)` in place: a SIGTERM while Ray starts is the same interrupt."""
    from search.engine.tuning import (
        keeps_sigterm_handler,
        sigterm_interrupts,
        sigterm_stops_gracefully,
    )

    handled = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)
    before = [signal.getsignal(s) for s in handled]
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"), sigterm_interrupts():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)  # delivered at the next bytecode; never reached
    with sigterm_interrupts():
        with pytest.raises(KeyboardInterrupt), keeps_sigterm_handler():
            signal.signal(signal.SIGTERM, lambda signum, _: sys.exit(signum))  # as ray.init
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        with pytest.raises(KeyboardInterrupt), sigterm_stops_gracefully() as received:
            os.kill(os.getpid(), signal.SIGTERM)  # Tune is not listening yet
            time.sleep(1)
        assert received == [signal.SIGTERM]
        told = []
        with sigterm_stops_gracefully() as received:
            signal.signal(signal.SIGUSR1, lambda signum, _: told.append(signum))  # as Tune does
            signal.signal(signal.SIGINT, lambda signum, _: told.append(signum))  # and keeps
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.1)
        assert received == [signal.SIGTERM] and told == [signal.SIGUSR1]
    assert [signal.getsignal(s) for s in handled] == before  # Ctrl-C is Ctrl-C after Tune
