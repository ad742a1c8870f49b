"""The application layer every door uses: labels and their events, one
iteration at a time per session (from any process), imports that do not
repeat themselves, and exports that fail with a sentence."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading

import pytest

from test_samp_support import build_session
from vo_al.cancel import Cancelled
from vo_al.cli import EXIT_BUSY, main
from vo_al.events import (Event, IterationCancelled, IterationFinished, IterationProgress,
                          IterationStarted, LabelsChanged)
from vo_al.lock import IterationLocked, iteration_lock
from vo_al.loop import IterationOptions
from vo_al.workspace import Workspace

FAST = IterationOptions(max_epochs=1, query_size=5, estimate_size=3)


@pytest.fixture(scope="module")
def template(real_data, manifest, tmp_path_factory):
    return build_session(real_data, manifest, tmp_path_factory.mktemp("workspace"))


@pytest.fixture
def directory(template, tmp_path):
    shutil.copytree(template, tmp_path / "s")
    return tmp_path / "s"


def record(workspace, event_type=Event) -> list:
    seen = []
    workspace.events.subscribe(event_type, seen.append)
    return seen


def first_query_id(workspace) -> str:
    queue = workspace.batch()
    return queue.ids[list(queue.kind).index("query")]


# ------------------------------------------------------------------ labels


def test_a_label_here_is_announced_as_from_here(directory):
    with Workspace.open(directory) as workspace:
        seen = record(workspace, LabelsChanged)
        entry = workspace.label(first_query_id(workspace), "emission", source="cli")
        undo = workspace.undo(source="cli")
    assert [e.here for e in seen] == [True, True]
    assert seen[0].entries == (entry,) and seen[1].entries == (undo,)


def test_labels_from_another_process_become_the_same_events(directory):
    with Workspace.open(directory) as workspace:
        seen = record(workspace, LabelsChanged)
        spectrum_id = first_query_id(workspace)
        assert workspace.poll_labels() == []
        # another process: `vo-al label` in a terminal
        assert subprocess.run([sys.executable, "-m", "vo_al.cli", "label", str(directory),
                               spectrum_id, "emission"], capture_output=True).returncode == 0
        new = workspace.poll_labels()
        assert workspace.poll_labels() == []  # announced once
    assert [e.spectrum_id for e in new] == [spectrum_id]
    assert len(seen) == 1 and seen[0].here is False and seen[0].entries == tuple(new)


def test_reimporting_a_table_records_nothing_twice(directory, tmp_path):
    with Workspace.open(directory) as workspace:
        ids = list(workspace.batch().ids[:3])
    table = tmp_path / "answers.csv"
    table.write_text("id,label\n" + "".join(f"{i},emission\n" for i in ids))
    assert main(["import-labels", str(directory), str(table)]) == 0
    assert main(["import-labels", str(directory), str(table)]) == 0
    with Workspace.open(directory) as workspace:
        entries = workspace.entries()
        again = workspace.import_labels([(i, "EMISSION") for i in ids], source="import")
    assert len(entries) == 3
    assert (again.accepted, again.refused, again.unchanged) == ([], [], 3)


def test_import_with_refused_rows_exits_non_zero_with_a_count(directory, tmp_path, capsys):
    with Workspace.open(directory) as workspace:
        good = workspace.batch().ids[0]
    table = tmp_path / "answers.csv"
    table.write_text(f"id,label\n{good},emission\nno-such-spectrum,emission\n{good}x,nonsense\n")
    assert main(["import-labels", str(directory), str(table)]) == 2
    out, err = capsys.readouterr()
    assert "imported 1 labels" in out and "refused 2" in out
    assert "no-such-spectrum" in err and "Traceback" not in err


def test_export_into_a_missing_folder_is_one_line(directory, capsys):
    with Workspace.open(directory) as workspace:
        assert workspace.iteration == 1
    assert main(["export", str(directory), str(directory / "nodir" / "cand.vot")]) == 2
    err = capsys.readouterr().err
    assert "no such folder" in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert not (directory / "nodir").exists()


# ------------------------------------------------------------------ iterations


def test_an_iteration_publishes_its_steps(directory):
    with Workspace.open(directory) as workspace:
        seen = record(workspace)
        result = workspace.iterate(FAST)
    kinds = [type(e) for e in seen]
    assert kinds[0] is IterationStarted and seen[0].iteration == 2
    assert kinds[-1] is IterationFinished and seen[-1].result is result
    steps = {e.step for e in seen if isinstance(e, IterationProgress)}
    assert steps == {"train", "score", "query"}


def test_a_cancelled_iteration_is_announced_and_leaves_nothing(directory):
    cancel = threading.Event()
    with Workspace.open(directory) as workspace:
        seen = record(workspace)

        def stop_after_training(step, event):
            if step == "train":
                cancel.set()  # the scoring that follows sees it

        with pytest.raises(Cancelled):
            workspace.iterate(FAST, progress=stop_after_training, cancel=cancel)
        assert workspace.iteration == 1
    assert isinstance(seen[-1], IterationCancelled) and seen[-1].iteration == 2
    assert not (directory / "iterations" / "002").exists()


def test_a_second_iteration_is_refused_and_nothing_is_written(directory, capsys):
    before = sorted(p.name for p in (directory / "iterations").iterdir())
    with iteration_lock(directory, "iteration 2"):  # as the window's worker holds it
        assert main(["iterate", str(directory), "--max-epochs", "1"]) == EXIT_BUSY
        with Workspace.open(directory) as workspace, pytest.raises(IterationLocked):
            workspace.iterate(FAST)
    err = capsys.readouterr().err
    assert f"process {os.getpid()}" in err and "running iteration 2" in err
    assert "Traceback" not in err
    assert sorted(p.name for p in (directory / "iterations").iterdir()) == before


HOLD = r"""
import sys, time
from vo_al.lock import iteration_lock
with iteration_lock(sys.argv[1], "iteration 2"):
    print("holding", flush=True)
    time.sleep(600)
"""


def test_the_lock_of_a_killed_process_is_gone_with_it(directory):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(directory)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(IterationLocked, match=f"process {holder.pid} "):
            with iteration_lock(directory):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        holder.stdout.close()
    with iteration_lock(directory):  # no stale lock after kill -9
        pass


def test_exported_tables_carry_units_ucds_and_descriptions(directory, tmp_path):
    from astropy.io import fits
    from astropy.io.votable import parse_single_table

    with Workspace.open(directory) as workspace:
        workspace.label(first_query_id(workspace), "emission", source="cli")
        assert workspace.export(tmp_path / "c.vot") >= 1
        assert workspace.export(tmp_path / "c.fits") >= 1
    fields = {f.name: f for f in parse_single_table(tmp_path / "c.vot").fields}
    assert str(fields["ra"].unit) == "deg" and str(fields["dec"].unit) == "deg"
    assert fields["ra"].ucd == "pos.eq.ra;meta.main"
    assert all(fields[n].ucd == "stat.probability" for n in fields if n.startswith("p_"))
    assert all(f.description for f in fields.values()), [n for n, f in fields.items()
                                                         if not f.description]
    with fits.open(tmp_path / "c.fits") as hdus:
        names = hdus[1].columns.names
        units = dict(zip(names, hdus[1].columns.units))
    assert units["ra"] == "deg" and units["dec"] == "deg"
    assert not list(tmp_path.glob(".*.part"))  # written through a temporary file


# ------------------------------------------------------------------ catalogues and clusters


def test_known_as_and_known_spectra_follow_the_planted_catalogues(vo_survey, tmp_path):
    from test_crossmatch import write_catalogues
    from vo_al.catalogues import file_catalogue

    shutil.copytree(vo_survey.directory, tmp_path / "s")
    simbad, hou = write_catalogues(vo_survey, tmp_path)
    e = vo_survey.labelled
    with Workspace.open(tmp_path / "s") as workspace:
        assert workspace.known_as() == {} and workspace.known_spectra() == set()
        workspace.crossmatch([file_catalogue(simbad, "simbad"), file_catalogue(hou, "hou2016")])
        known_as = workspace.known_as()
        assert workspace.known_as([e[4]]) == {e[4]: known_as[e[4]]}
        known = workspace.known_spectra()
    assert [(m["catalogue"], m["id"], m["type"]) for m in known_as[e[4]]] == [
        ("hou2016", "H e4", "CEL"), ("simbad", "S e4", "Be*")]  # nearest first
    assert abs(known_as[e[0]][0]["sep_arcsec"] - 0.5) < 0.01
    assert known_as[e[2]] == [] and known_as[e[5]] == []  # matched, within no radius
    assert {e[0], e[1], e[2], e[3], e[4]} <= known and e[5] not in known  # e2: e3's object
    assert known <= set(known_as)


def test_dask_client_is_none_without_a_cluster_and_refuses_a_bad_one():
    with Workspace.dask_client() as client:
        assert client is None
    from vo_al.distributed import ClusterError

    with pytest.raises(ClusterError, match="local:N"):
        with Workspace.dask_client("local:0"):
            pass
