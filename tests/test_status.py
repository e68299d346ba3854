"""Watching a search: the progress display, `python -m search.status`, and a search's pictures.

Fast tier: fake search folders built in tmp_path (no Ray). One slow test runs a real search
with stdout to a file and reads its progress lines.
"""

import io
import json
import os
import socket
import subprocess
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path
from types import SimpleNamespace

import pytest

from model.errors import ConfigError
from search.engine.builders import PROGRESS_ENV, progress_every
from search.engine.driver import begin_run
from search.folder.config import SearchConfig
from search.folder.schedule import plan_schedule
from search.folder.store import HOLDER, SearchFolder
from search.reports.plots import BEST_PNG, TRIALS_PNG, TrialCurve, best_so_far, plot_search
from search.reports.progress import Board, progress_line, rung_of, running_lines, short_config
from search.reports.status import read_status
from search.status import main as status_main

ROOT = Path(__file__).resolve().parents[1]
CONFIG = {"cell": "lstm", "num_layers": 2, "hidden_size": 128, "dropout": 0.1, "seq_len": 64,
          "batch_size": 32, "lr": 3e-3, "origin": "warm"}  # fmt: skip


def whole(value: float, train_s: float, at: float) -> dict:
    return {"val_bpc": value, "train_s": train_s, "val_chars": 100, "val_total": 100, "time": at}


def fake_search(tmp_path: Path, state: str = "running", pid: int | None = None) -> SearchFolder:
    """A search folder as a driver leaves it: settings, schedule, clock, status, lock holder."""
    config = SearchConfig(name="fake", storage=str(tmp_path), time_budget_s=300.0)
    folder = SearchFolder(config.path)
    folder.write_settings(config)
    schedule = plan_schedule(300.0, 2)
    folder.write_schedule(schedule)
    now = time.time()
    folder.write_clock(now - 100, now + 200)
    begin_run(folder.path, now - 100, now + 200)  # the driver's own clock, for ProgressLines
    board = Board(now - 100, now + 200, folder.rungs())
    board.start("aaaa0001", CONFIG)
    board.report("aaaa0001", CONFIG, whole(2.5, 30.0, now - 60))
    board.end("aaaa0001", CONFIG, "stopped")
    board.start("bbbb0002", {**CONFIG, "hidden_size": 64})
    board.report("bbbb0002", {}, whole(2.2, 40.0, now - 40))
    board.report("bbbb0002", {}, {"val_bpc": 2.4, "train_s": 50.0, "val_chars": 10,
                                   "val_total": 100, "time": now - 5})  # fmt: skip
    folder.write_status(board.snapshot(now, state=state))
    if pid is not None:
        holder = {"host": socket.gethostname(), "pid": pid, "since": now - 110}
        folder.state_file(HOLDER).write_text(json.dumps(holder))
    return folder


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# -- the progress display's text -------------------------------------------------------------------


def test_progress_line_names_the_budget_left_and_the_best_so_far():
    board = Board(started=1000.0, deadline=1300.0, rungs=[11.0, 33.0, 99.0])
    assert progress_line(board.snapshot(1075.0), 1075.0) == (
        "[#####...............] 75/300 s, 225 s left | no trial yet | best so far: none yet"
    )
    board.start("t1", CONFIG)
    board.report("t1", CONFIG, whole(2.5, 40.0, 1070.0))
    line = progress_line(board.snapshot(1075.0), 1075.0)
    assert "225 s left | 1 running | best so far 2.5000 (trial t1: lstm 2x128" in line
    assert running_lines(board.snapshot(1075.0)) == [
        "trial t1 lstm 2x128 do 0.10 seq 64 b 32 lr 3.0e-03: rung 2/3, 40 s trained, val 2.5000"
    ]
    assert rung_of(10.9, [11.0, 33.0]) == 0 and rung_of(33.0, [11.0, 33.0]) == 2
    assert short_config({}) == "-"


def test_a_report_given_twice_is_one_point():  # a trial's last report comes again as it ends
    board = Board(0.0, 100.0)
    for result in (whole(2.5, 40.0, 50.0), whole(2.4, 80.0, 90.0), whole(2.4, 80.0, 90.0)):
        board.report("t1", CONFIG, result)
    assert [point[0] for point in board.snapshot(95.0)["trials"][0]["curve"]] == [40.0, 80.0]


def test_a_value_on_a_prefix_is_marked_and_never_the_best():
    board = Board(0.0, 100.0)
    board.report("t1", CONFIG, {"val_bpc": 1.0, "train_s": 5.0, "val_chars": 10, "val_total": 99})
    board.report("t2", CONFIG, {"val_bpc": 9.9, "train_s": 5.0, "diverged": True})
    snap = board.snapshot(10.0)
    assert snap["best"] is None and running_lines(snap)[0].endswith("val 1.0000*")
    assert "no value yet" in running_lines(snap)[1]


def test_the_callback_prints_lines_and_writes_status_only_when_due(tmp_path):
    from search.engine.adapters import ProgressLines  # imports Ray's Tune classes, starts no Ray

    folder = fake_search(tmp_path)
    progress = ProgressLines(0, folder=str(folder.path), every_s=0.0, terminal=False,
                             status_every_s=0.0)  # fmt: skip
    out = io.StringIO()
    with redirect_stdout(out):
        progress.setup()
        trial = SimpleNamespace(trial_id="cccc0003", config=CONFIG, last_result={})
        progress.on_trial_start(0, [trial], trial)
        progress.on_step_end(1, [trial])
        result = {**whole(2.0, 12.0, time.time()), "end": "cut"}
        progress.on_trial_result(2, [trial], trial, result)
        trial.last_result = result
        progress.on_trial_complete(3, [trial], trial)
        progress.on_step_end(4, [trial])
        progress.every_s = progress.status_every_s = 3600.0
        progress.on_step_end(5, [trial])  # still due: a last line, then none for an hour
        for i in range(1000):  # Tune's loop: a step that is not due only reads the clock
            progress.on_step_end(6 + i, [trial])
    lines = out.getvalue().splitlines()
    assert "1 running" in lines[0] and "s left" in lines[0]
    assert "trial 1 cccc0003 cut by the budget after 12 s of training, val_bpc 2.0000" in lines[1]
    assert "1 cut | best so far 2.0000 (trial cccc0003" in lines[2]
    assert len(lines) == 4
    status = folder.status()
    assert [r["trial_id"] for r in status["trials"]] == ["cccc0003"]
    # What the display cost the driver is measured and kept (README: under 1% of a core).
    assert status["trials"][0]["status"] == "cut" and status["display_cost_s"] > 0


def test_on_a_terminal_the_callback_draws_bars(tmp_path):
    from search.engine.adapters import ProgressLines

    folder = fake_search(tmp_path)
    progress = ProgressLines(0, folder=str(folder.path), terminal=True, refresh_s=0.0)
    out = io.StringIO()
    with redirect_stdout(out):
        progress.setup()
        trial = SimpleNamespace(trial_id="cccc0003", config=CONFIG, last_result={})
        progress.on_trial_start(0, [trial], trial)
        progress.on_step_end(1, [trial])
        progress.on_experiment_end([trial])
    text = out.getvalue()
    assert "budget" in text and "s left" in text and "trial cccc0003 lstm 2x128" in text
    assert folder.status()["trials"][0]["status"] == "unfinished"


# -- python -m search.status ---------------------------------------------------------------------


def test_status_of_a_running_search(tmp_path, capsys):
    folder = fake_search(tmp_path, pid=os.getpid())
    info = read_status(folder.path)
    assert info["state"] == "running" and info["holder"]["pid"] == os.getpid()
    assert 190 < info["left_s"] <= 200 and 99 <= info["used_s"] < 110
    assert info["best"]["trial_id"] == "bbbb0002" and info["best"]["val_bpc"] == 2.2
    assert [t["trial_id"] for t in info["trials"]] == ["bbbb0002", "aaaa0001"]
    assert status_main([str(folder.path)]) == 0
    out = capsys.readouterr().out
    assert f"running\nrun by pid {os.getpid()} on {socket.gethostname()}" in out
    assert "s left" in out and "best so far 2.2000 (trial bbbb0002: lstm 2x64" in out
    assert "trial bbbb0002 lstm 2x64 do 0.10 seq 64 b 32 lr 3.0e-03: rung" in out
    assert status_main([str(folder.path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"] == {"stopped": 1, "running": 1}


def test_a_search_measuring_speeds_before_its_budget_is_starting(tmp_path, capsys):
    """Its driver holds the folder before it writes its settings: starting, not 'no search';
    once that driver is gone, the folder holds no search."""
    folder = SearchFolder(tmp_path / "early")
    holder = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}
    (folder.path / "state").mkdir(parents=True)
    folder.state_file(HOLDER).write_text(json.dumps(holder))
    info = read_status(folder.path)
    assert info["state"] == "starting" and info["holder"]["pid"] == os.getpid()
    assert info["trials"] == [] and info["best"] is None and info["left_s"] is None
    assert status_main([str(folder.path), "--plot"]) == 0
    out, err = capsys.readouterr()
    assert f"early ({folder.path}): starting\nrun by pid {os.getpid()}" in out
    assert "measuring the warm starts' speeds" in out and "nothing to draw" in err
    folder.state_file(HOLDER).write_text(json.dumps({**holder, "pid": dead_pid()}))
    assert status_main([str(folder.path)]) == 2
    assert "holds no search" in capsys.readouterr().err


def test_a_study_folder_is_named_as_one(tmp_path, capsys):
    """A running study (`search.study`) holds its folder without a search's settings: not
    'starting' forever, nor 'no search'; a finished one leaves study.parquet."""
    folder = SearchFolder(tmp_path / "cell-study")
    lock = folder.lock(kind="study")
    try:
        assert status_main([str(folder.path), "--watch"]) == 2
        err = capsys.readouterr().err
        assert "is a study's (python -m search.study)" in err and err.count("\n") == 1
    finally:
        folder.release(lock)
    (folder.path / "study.parquet").write_bytes(b"")
    assert status_main([str(folder.path)]) == 2
    assert "report is study.md" in capsys.readouterr().err


def test_status_of_a_finished_search(tmp_path, capsys):
    folder = fake_search(tmp_path, state="finished")
    info = read_status(folder.path)
    assert info["state"] == "finished" and info["holder"] is None and info["resume"] is None
    assert status_main([str(folder.path)]) == 0
    assert "finished" in capsys.readouterr().out


def test_a_killed_search_is_interrupted_and_names_resume(tmp_path, capsys):
    folder = fake_search(tmp_path, pid=dead_pid())  # status.json still says running
    info = read_status(folder.path)
    assert info["state"] == "interrupted" and info["holder"] is None
    assert info["counts"] == {"stopped": 1, "unfinished": 1}
    assert info["resume"] == (
        f"python -m search.run --corpus monte-cristo --time-budget 300 --storage {tmp_path} "
        "--name fake --resume"
    )
    assert status_main([str(folder.path)]) == 0
    assert "interrupted; resume with:\n  python -m search.run" in capsys.readouterr().out


def test_another_host_sees_a_search_alive_from_its_lock_on(tmp_path):
    """A reader on another host has only the files' times: a driver that holds the folder but
    has not written status.json yet (measuring speeds, starting Ray) is starting, then running;
    not 'no search', nor interrupted."""
    holder = {"host": "node-7.invalid", "pid": 4242, "since": time.time() - 5}
    early = SearchFolder(tmp_path / "early")
    (early.path / "state").mkdir(parents=True)
    early.state_file(HOLDER).write_text(json.dumps(holder))
    assert read_status(early.path)["state"] == "starting"
    folder = fake_search(tmp_path)
    folder.state_file("status.json").unlink()  # its budget started; no trial reported yet
    folder.state_file(HOLDER).write_text(json.dumps({**holder, "since": time.time() - 110}))
    assert read_status(folder.path)["state"] == "running"


def test_a_resumed_search_is_starting_until_its_budget_starts_and_interrupted_if_killed(
    tmp_path, capsys
):
    """Resumed, a finished search is starting until this run's clock; killed before its first
    status.json, it is interrupted (holder.json outlives only a killed driver), not finished."""
    folder = fake_search(tmp_path, state="finished")
    holder = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}
    folder.state_file(HOLDER).write_text(json.dumps(holder))
    assert read_status(folder.path)["state"] == "starting"  # the clock is the earlier run's
    folder.state_file(HOLDER).write_text(json.dumps({**holder, "pid": dead_pid()}))
    info = read_status(folder.path)
    assert info["state"] == "interrupted" and info["resume"].endswith("--name fake --resume")
    assert 99 <= info["used_s"] <= 101  # until its holder was last heard of, not until now


def test_a_reused_pid_does_not_keep_a_dead_search_running(tmp_path):
    """After a reboot (or in another container) the holder's pid may be another process: a
    holder not heard of for longer than STALE_S is gone, whatever its pid."""
    from search.reports.status import STALE_S

    folder = fake_search(tmp_path, pid=os.getpid())  # a live pid: this test's
    later = time.time() + STALE_S + 1
    assert read_status(folder.path, now=later - 2 * STALE_S)["state"] == "running"
    info = read_status(folder.path, now=later)
    assert info["state"] == "interrupted" and info["used_s"] == pytest.approx(100, abs=1)


def test_status_of_the_current_folder_names_it(tmp_path, monkeypatch, capsys):
    folder = fake_search(tmp_path, pid=dead_pid())
    monkeypatch.chdir(folder.path)
    info = read_status(".")
    assert info["search"] == "fake" and info["resume"].endswith("--name fake --resume")


def test_an_interrupted_search_this_version_cannot_resume_still_shows(tmp_path, capsys):
    folder = fake_search(tmp_path, pid=dead_pid())
    settings = json.loads((folder.state_file("search.json")).read_text())
    settings["grace_chars"] = 1000  # a setting of an earlier version
    folder.state_file("search.json").write_text(json.dumps(settings))
    assert status_main([str(folder.path)]) == 0
    out = capsys.readouterr().out
    assert "interrupted; this version cannot resume it: " in out and "grace_chars" in out


@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        ("clock.json", {}, "not a clock"),
        ("clock.json", [1, 2], "not a clock"),
        ("status.json", "row without status", "a trial row is malformed"),
    ],
)
def test_well_formed_json_of_the_wrong_shape_is_one_line(tmp_path, capsys, file, content, message):
    folder = fake_search(tmp_path, pid=os.getpid())
    if content == "row without status":
        content = folder.status()
        del content["trials"][0]["status"]
    folder.state_file(file).write_text(json.dumps(content))
    assert status_main([str(folder.path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_a_holder_with_an_odd_since_is_shown(tmp_path, capsys):
    folder = fake_search(tmp_path, pid=os.getpid())
    holder = json.loads(folder.state_file(HOLDER).read_text())
    folder.state_file(HOLDER).write_text(json.dumps({**holder, "since": "yesterday"}))
    assert status_main([str(folder.path)]) == 0
    assert "since yesterday" in capsys.readouterr().out


def test_ctrl_c_ends_a_watch_quietly(tmp_path, monkeypatch, capsys):
    import search.status

    def interrupted(seconds):
        raise KeyboardInterrupt

    folder = fake_search(tmp_path, pid=os.getpid())
    monkeypatch.setattr(search.status.time, "sleep", interrupted)
    assert status_main([str(folder.path), "--watch"]) == 0
    assert "running" in capsys.readouterr().out


def test_status_names_the_dashboard_and_the_extra_it_needs(tmp_path, capsys, monkeypatch):
    folder = fake_search(tmp_path, state="finished")
    assert read_status(folder.path)["dashboard"] is None  # no study yet
    folder.study_file.write_text("")
    board = read_status(folder.path)["dashboard"]
    assert board["command"] == f"optuna-dashboard {folder.study_file}"
    monkeypatch.setattr("search.reports.status.DASHBOARD_MODULE", "no_such_dashboard_module")
    assert status_main([str(folder.path)]) == 0
    assert (f"Optuna dashboard: optuna-dashboard {folder.study_file}  (not installed: "
            "pip install -e '.[dashboard]')") in capsys.readouterr().out  # fmt: skip


@pytest.mark.parametrize("case", ["missing", "no search", "corrupt status", "corrupt table",
                                  "corrupt settings"])  # fmt: skip
def test_bad_folders_are_one_line_and_exit_2(tmp_path, capsys, case):
    folder = fake_search(tmp_path, state="finished")
    path = folder.path
    if case == "missing":
        path = tmp_path / "nothing-here"
    elif case == "no search":
        path = tmp_path / "plain"
        path.mkdir()
        (path / "notes.txt").write_text("not a search")
    elif case == "corrupt status":
        folder.state_file("status.json").write_text('{"state": "runn')
    elif case == "corrupt table":
        (path / "trials.parquet").write_bytes(b"PAR1 not really")
    else:
        folder.state_file("search.json").write_text("[1, 2")
    assert status_main([str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err


def test_a_log_says_how_the_search_is_doing_three_times_per_first_rung(monkeypatch):
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    for budget in (20, 60, 300, 1200, 3600, 36000):
        schedule = plan_schedule(budget, slots=2)
        every = progress_every(schedule)
        assert every <= 30.0 and 3 * every <= schedule.grace_s * (1 + 1e-9), budget
        assert every == 30.0 or 3 * every == pytest.approx(schedule.grace_s), budget  # no more
    monkeypatch.setenv(PROGRESS_ENV, "7")
    assert progress_every(plan_schedule(60, 2)) == 7.0
    monkeypatch.setenv(PROGRESS_ENV, "soon")
    with pytest.raises(ConfigError, match=f"{PROGRESS_ENV} must be seconds, got 'soon'"):
        progress_every(plan_schedule(60, 2))


# -- the search's pictures -----------------------------------------------------------------------


def test_plot_writes_both_pictures_from_the_status_file(tmp_path, capsys):
    folder = fake_search(tmp_path, pid=os.getpid())
    assert status_main([str(folder.path), "--plot"]) == 0
    for name in (TRIALS_PNG, BEST_PNG):
        assert (folder.path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in plot_search(folder)] == [TRIALS_PNG, BEST_PNG]


def test_best_so_far_steps_down_on_whole_text_values_only():
    curves = [
        TrialCurve("a", "stopped", ((5.0, 3.0, True, 110.0), (9.0, 2.0, False, 115.0))),
        TrialCurve("b", "cut", ((5.0, 2.5, True, 120.0), (20.0, 2.8, True, 130.0))),
        TrialCurve("c", "cut", ((5.0, 2.1, True, 140.0),)),
    ]
    assert best_so_far(curves, 100.0) == [(10.0, 3.0), (20.0, 2.5), (40.0, 2.1)]


# -- a real search -------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_search_logs_progress_before_its_first_trial_ends(ray_local, corpus_dir, tmp_path):
    """The promise of docs/search.md: a 60-second search with stdout to a file says how it is
    doing (the time left, the best so far or none yet) at least 3 times before its first trial
    ends. (A line every twelfth of the budget said it only twice where trials start quickly: the
    first rung is a tenth of a 60 s budget.)"""
    log = tmp_path / "search.log"
    args = [
        sys.executable, "-m", "search.run", "--corpus", "monte-cristo", "--name", "watched",
        "--storage", str(tmp_path), "--data-dir", str(corpus_dir), "--address", ray_local,
        "--preset", "tiny", "--time-budget", "60", "--wandb-mode", "disabled",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("CHARNN_PROGRESS_S", None)  # the default: a third of the first rung (6 s)
    with open(log, "w") as out:
        done = subprocess.run(args, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
                              timeout=300)  # fmt: skip
    text = log.read_text()
    assert done.returncode == 0, text
    lines = text.splitlines()
    first_end = next(i for i, line in enumerate(lines) if " trial 1 " in line)
    progress = [line for line in lines[:first_end] if " s left | " in line]
    assert len(progress) >= 3, text
    assert all("best so far" in line for line in progress), progress
    assert "Number of trials" not in text and "tensorboard" not in text.lower()
    assert "will be ignored" not in text, text  # Tune took every setting it was given
    assert (tmp_path / "watched" / TRIALS_PNG).is_file()
    assert (tmp_path / "watched" / BEST_PNG).is_file()
    assert read_status(tmp_path / "watched")["state"] == "finished"


def write_tables(folder: SearchFolder) -> None:
    """A minimal trials.parquet and curves.parquet (the columns these views read)."""
    from search.folder.results import CURVES_SCHEMA, TRIALS_SCHEMA

    now = time.time()
    trials = [
        {"trial_id": "aaaa0001", "status": "cut", "val_chars": 100, "final_val_chars": 100,
         "final_val_bpc": 2.1, "best_val_bpc": 2.0, "train_s": 90.0, **CONFIG},
        {"trial_id": "bbbb0002", "status": "stopped", "val_chars": 100, "final_val_chars": 10,
         "final_val_bpc": 2.9, "best_val_bpc": None, "train_s": 9.0, **CONFIG},
    ]  # fmt: skip
    curves = [
        {"trial_id": "aaaa0001", "train_s": 9.0, "val_bpc": 2.8, "val_chars": 10, "time": now - 80},
        {"trial_id": "aaaa0001", "train_s": 90.0, "val_bpc": 2.0, "val_chars": 100, "time": now},
        {"trial_id": "bbbb0002", "train_s": 9.0, "val_bpc": 2.9, "val_chars": 10, "time": now - 70},
    ]
    folder.write_tables(trials, curves, TRIALS_SCHEMA, CURVES_SCHEMA)


def test_a_finished_search_is_read_from_its_tables_and_drawn(tmp_path):
    folder = fake_search(tmp_path, state="finished")
    write_tables(folder)
    info = read_status(folder.path)
    assert [(t["trial_id"], t["status"]) for t in info["trials"]] == [
        ("aaaa0001", "cut"), ("bbbb0002", "stopped")]  # fmt: skip
    assert info["best"]["val_bpc"] == 2.0 and info["counts"] == {"cut": 1, "stopped": 1}
    paths = plot_search(folder)
    assert all(p.stat().st_size > 1000 for p in paths)


def test_a_resumed_search_shows_the_trials_of_its_earlier_runs(tmp_path):
    from search.engine.adapters import ProgressLines

    folder = fake_search(tmp_path, state="interrupted")
    write_tables(folder)
    progress = ProgressLines(0, folder=str(folder.path), terminal=False)
    with redirect_stdout(io.StringIO()) as out:
        progress.setup()
        progress.on_step_end(0, [])
    assert "1 cut, 1 stopped | best so far 2.0000 (trial aaaa0001" in out.getvalue()


def test_a_resumed_search_killed_before_its_tables_shows_every_run(tmp_path):
    """Killed in its second run, before it wrote the tables: status.json (newer) knows the
    trials of both runs and this run's points, the tables the earlier run's points."""
    from search.reports.plots import search_curves

    folder = fake_search(tmp_path, state="interrupted")
    write_tables(folder)  # the first run's: aaaa0001 cut, bbbb0002 stopped
    started = time.time() + 1.0  # the second run's budget starts after the tables were written
    folder.write_clock(started, started + 300)
    now = started + 60
    board = Board(started, started + 300, folder.rungs())
    for row in folder.trials().to_pylist():
        board.earlier(row)
    board.report("aaaa0001", CONFIG, whole(1.9, 120.0, now - 2))  # resumed from its checkpoint
    board.start("cccc0003", CONFIG)
    board.report("cccc0003", {}, whole(2.6, 9.0, now - 1))
    folder.write_status(board.snapshot(now))  # state running: the driver never said it ended
    folder.state_file(HOLDER).write_text(
        json.dumps({"host": socket.gethostname(), "pid": dead_pid(), "since": now - 60})
    )
    info = read_status(folder.path)
    assert info["state"] == "interrupted"
    assert {t["trial_id"]: t["status"] for t in info["trials"]} == {
        "aaaa0001": "cut", "bbbb0002": "stopped", "cccc0003": "unfinished"}  # fmt: skip
    assert info["best"]["val_bpc"] == 1.9
    points = {c.trial_id: [p[:2] for p in c.points] for c in search_curves(folder)}
    assert points == {"aaaa0001": [(9.0, 2.8), (90.0, 2.0), (120.0, 1.9)],
                      "bbbb0002": [(9.0, 2.9)], "cccc0003": [(9.0, 2.6)]}  # fmt: skip
    drawn = {c.trial_id: c.status for c in search_curves(folder, running=False)}
    assert drawn["cccc0003"] == "unfinished"  # as the text says, not "running"
    assert {c.status for c in search_curves(folder)} >= {"running"}  # a live driver's


def test_a_driver_holding_its_folder_stays_alive_for_another_host(tmp_path):
    """From taking the lock to giving it back the driver may write nothing else for minutes
    (measuring speeds and starting Ray before its first status.json, scoring the best model on
    a test split after its trials): a reader on another machine, which has only the files'
    times to go by, sees it alive while its heartbeat renews holder.json, and interrupted once
    the heartbeat stops."""
    from search.engine.tuning import heartbeat
    from search.reports.status import STALE_S

    folder = fake_search(tmp_path)
    holder = {"host": "another-machine.invalid", "pid": 1, "since": time.time() - 600}
    folder.state_file(HOLDER).write_text(json.dumps(holder))
    folder.write_status({**folder.status(), "updated": time.time() - 10 * STALE_S})
    assert read_status(folder.path)["state"] == "interrupted"  # silent for 20 minutes
    with heartbeat(folder, every_s=0.05):
        deadline = time.monotonic() + 10
        while read_status(folder.path)["state"] != "running":
            assert time.monotonic() < deadline, "holder.json was not renewed"
            time.sleep(0.05)
    renewed = folder.holder()["beat"]
    time.sleep(0.2)
    assert folder.holder() == {**holder, "beat": renewed}  # stopped with its block
    assert read_status(folder.path, now=renewed + STALE_S + 1)["state"] == "interrupted"
