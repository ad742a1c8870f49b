"""The command line on real and synthetic files: inspect, synth, ingest, demo."""

from __future__ import annotations

import json
import re
from pathlib import Path

import h5py

from vo_al.cli import main
from vo_al.session import Session

INSPECT_KEYS = {"format", "id", "designation", "ra", "dec", "n_pixels", "wavelength_min",
                "wavelength_max", "medium", "resolving_power"}


def test_inspect_json_on_real_files(real_data, capsys):
    assert main(["inspect", "--json", str(real_data / "lamost/spec-57287-KP193637N444141V03_sp10-161.fits.gz")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert INSPECT_KEYS <= set(summary)
    assert summary["format"] == "lamost-image" and summary["id"] == "359910161"
    assert summary["medium"] == "vacuum" and summary["n_pixels"] == 3909
    assert summary["designation"] == "LAMOST J192814.09+435530.8"
    assert abs(summary["wavelength_min"] - 3699.99) < 0.01
    assert main(["inspect", "--json", str(real_data / "ondrejov/oe270005.fits"),
                 str(real_data / "ondrejov/vl070030.fits")]) == 0
    both = json.loads(capsys.readouterr().out)
    assert [s["format"] for s in both] == ["ccd700-iraf", "ccd700-sdm"]
    assert all(s["medium"] == "air" and s["resolving_power"] == 13000 for s in both)


def test_inspect_text_and_unsupported_file(real_data, capsys):
    assert main(["inspect", str(real_data / "lamost/bt-cmi-lamost.fits")]) == 0
    out = capsys.readouterr().out
    assert "lamost-image" in out and "spec-56342-GAC121N02V2_sp14-101" in out
    assert main(["inspect", str(real_data / "other/TRES.fits")]) == 2
    err = capsys.readouterr().err
    assert "TRES.fits" in err and "no reader recognises" in err


def test_synth_then_ingest_with_labels_and_corrupt_files(tmp_path, capsys):
    survey = tmp_path / "survey"
    assert main(["synth", str(survey), "--lamost", "60", "--ondrejov", "20", "--corrupt", "3",
                 "--emission-fraction", "0.1", "--workers", "1"]) == 0
    assert (survey / "truth.csv").is_file()
    assert main(["ingest", str(survey / "lamost"), "--out", str(tmp_path / "pool.h5"),
                 "--workers", "2"]) == 0
    out = capsys.readouterr().out
    # the summary reads as sentences; the corrupt files are counted as rejected or unusable
    spectra, files = map(int, re.search(r"Wrote .*: (\d+) spectra from (\d+) files\.", out).groups())
    rejected = int(re.search(r"(\d+) files? could not be read", out).group(1))
    unusable = int(re.search(r"(\d+) are kept but never scored", out).group(1))
    assert spectra + rejected == files and rejected + unusable >= 1
    assert "{" not in out  # no Python dict
    assert main(["ingest", str(survey / "ondrejov"), "--labels", str(survey / "truth.csv"),
                 "--out", str(tmp_path / "train.h5"), "--workers", "1"]) == 0
    with h5py.File(tmp_path / "train.h5") as h5:
        assert (h5["label"][:] >= 0).all() and len(h5["label"]) == 20
    assert main(["ingest", str(survey / "ondrejov"), "--out", str(tmp_path / "train.h5")]) == 2


def test_demo_runs_end_to_end_without_a_display(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    demo = tmp_path / "demo"
    arguments = ["demo", "--dir", str(demo), "--lamost", "300", "--ondrejov", "150",
                 "--max-epochs", "1", "--workers", "1", "--query-size", "10"]
    assert main([*arguments, "--iterations", "1", "--no-baseline"]) == 0
    out = capsys.readouterr().out
    assert "entropy iteration  1: error on unseen" in out and "random" not in out
    assert "| entropy | " in out
    assert (demo / "learning-curves.png").stat().st_size > 10_000
    command = out.strip().splitlines()[-1].split(": ", 1)[1].split()
    assert command[-2:] == ["gui", str(demo / "session")]
    assert Path(command[0]).is_file() or command[0] == "vo-al"  # runnable as printed
    with Session.open(demo / "session") as session:
        first = session.log.entries()
        assert first and session.iteration == 1

    # the baseline (on by default) catches up with a session that ran without it
    assert main([*arguments, "--iterations", "1"]) == 0
    out = capsys.readouterr().out
    assert " random iteration  1: error on unseen" in out and "entropy iteration" not in out
    assert "| entropy | " in out and "| random | " in out

    assert main([*arguments, "--iterations", "2"]) == 0  # a rerun continues, keeping labels
    out = capsys.readouterr().out
    assert "continuing" in out and " random iteration  2: error on unseen" in out
    with Session.open(demo / "session") as session:
        assert session.iteration == 2 and session.log.entries()[:len(first)] == first
    with Session.open(demo / "session" / "baselines" / "random") as twin:
        assert twin.iteration == 2


def test_session_commands_on_a_directory_that_is_not_a_session(tmp_path, capsys):
    nosuch = str(tmp_path / "nosuch")
    answers = tmp_path / "answers.csv"
    answers.write_text("id,label\nx,emission\n")
    commands = [["iterate", nosuch], ["status", nosuch], ["queue", nosuch],
                ["label", nosuch, "x", "emission"], ["undo", nosuch], ["labels", nosuch],
                ["export", nosuch, str(tmp_path / "c.vot")],
                ["import-labels", nosuch, str(answers)],
                ["simulate", nosuch, "--truth", str(answers)]]
    for command in commands:
        assert main(command) == 2, command
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"vo-al {command[0]}: {nosuch} is not a vo-al session (no config.json)"]


def test_ctrl_c_during_an_iteration_is_one_line_and_leaves_no_half_iteration(
        pools, tmp_path, capsys, monkeypatch):
    train, pool = pools
    session = tmp_path / "s"
    assert main(["init", str(session), "--train", str(train), "--pool", str(pool)]) == 0

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("vo_al.loop.score_pool", interrupted)
    assert main(["iterate", str(session), "--max-epochs", "1"]) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "vo-al iterate: interrupted; nothing half-done was kept")
    assert list((session / "iterations").iterdir()) == []


def test_epoch_bar_shows_no_rate_until_measured_and_ends_at_100_percent_on_early_stopping(
        monkeypatch):
    import io
    import sys

    from vo_al.cli import _LoopProgress
    from vo_al.train import EpochProgress

    class Terminal(io.StringIO):
        def isatty(self):
            return True  # tqdm draws only on a terminal

    def run():
        progress = _LoopProgress()
        for epoch in (1, 2, 3):  # patience ran out after 3 of at most 10 epochs
            progress("train", EpochProgress(epoch, 10, 1.0, 1.0, 0.5, float(epoch)))
        progress("score", (100, 1000))
        progress.close()

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    run()  # no terminal, no bars: nothing to draw, nothing to fail
    assert sys.stderr.getvalue() == ""
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    run()
    frames = [f for f in re.split(r"[\r\n]+", terminal.getvalue()) if f.startswith("train")]
    first = next(f for f in frames if "1/10" in f)
    assert "?epoch/s" in first  # the first epoch's time is unknown: no rate yet
    assert "train (stopped early at epoch 3): 100%" in frames[-1] and "3/3" in frames[-1]
