"""One user story through the three doors: label two spectra, take the
second answer back, iterate, export. The CLI, SAMP messages and the desktop
window all work through the workspace, so they leave the same session."""

from __future__ import annotations

import shutil

import pytest
from astropy.table import Table

from conftest import require_qt

require_qt()

from PyQt5 import QtCore  # noqa: E402

from test_samp_receiver import Parts, call  # noqa: E402
from test_samp_support import build_session  # noqa: E402
from vo_al.cli import main  # noqa: E402
from vo_al.gui.main_window import MainWindow  # noqa: E402
from vo_al.gui.settings import IterateSettings, Preferences  # noqa: E402
from vo_al.loop import IterationOptions  # noqa: E402
from vo_al.workspace import Workspace  # noqa: E402

FAST = IterationOptions(max_epochs=1, query_size=5, estimate_size=3)
FAST_ARGS = ["--max-epochs", "1", "--query-size", "5", "--estimate-size", "3"]


@pytest.fixture(scope="module")
def template(real_data, manifest, tmp_path_factory):
    return build_session(real_data, manifest, tmp_path_factory.mktemp("doors"))


@pytest.fixture
def directory(template, tmp_path):
    shutil.copytree(template, tmp_path / "s")
    return tmp_path / "s"


def story_ids(directory) -> tuple[str, str]:
    """The first query spectrum and the first estimate spectrum of iteration 1."""
    with Workspace.open(directory) as workspace:
        queue = workspace.batch()
    kinds = list(queue.kind)
    return queue.ids[kinds.index("query")], queue.ids[kinds.index("estimate")]


def state(directory, export) -> dict:
    """What the story leaves: the log without door, time or sender; the
    answers in force; the iterations; what was trained on; the export."""
    with Workspace.open(directory) as workspace:
        log = [(e.action, e.spectrum_id, e.label, e.purpose, e.iteration, e.undoes is not None)
               for e in workspace.entries()]
        answers = {i: e.label for i, e in workspace.answers().items()}
        metrics = workspace.metrics()
        iteration = workspace.iteration
    table = Table.read(export)
    labelled = {i: label for i, label in zip(table["id"], table["label"]) if label}
    return {"log": log, "answers": answers, "iteration": iteration,
            "trained": (metrics["n_train"], metrics["n_answers"]),
            "exported_labels": labelled, "columns": table.colnames}


def through_the_cli(directory, first, second, export):
    assert main(["label", str(directory), first, "emission"]) == 0
    assert main(["label", str(directory), second, "other"]) == 0
    assert main(["undo", str(directory)]) == 0
    assert main(["iterate", str(directory), *FAST_ARGS]) == 0
    assert main(["export", str(directory), str(export)]) == 0


def through_samp(directory, first, second, export):
    with Workspace.open(directory) as workspace:
        parts = Parts(workspace.session)
        try:
            for spectrum_id, label in ((first, "emission"), (second, "other")):
                response = call(parts, "voal.label.set", {"spectrum-id": spectrum_id,
                                                          "label": label})
                assert response["samp.status"] == "samp.ok", response
            response = call(parts, "voal.label.undo", {})
            assert response["samp.status"] == "samp.ok", response
        finally:
            parts.close()
        # a SAMP peer cannot start an iteration: the bridge's owner does, on its workspace
        parts.workspace.iterate(FAST)
        parts.workspace.export(export)


def through_the_window(qtbot, directory, first, second, export, tmp_path):
    preferences = Preferences(QtCore.QSettings(str(tmp_path / "prefs.ini"),
                                               QtCore.QSettings.IniFormat))
    preferences.set_iterate(IterateSettings(max_epochs=1, query_size=5, estimate_size=3))
    window = MainWindow(Workspace.open(directory), preferences)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: not window.busy() and window.model.rowCount() > 0, timeout=20000)
    for spectrum_id, label in ((first, "emission"), (second, "other")):
        window.go_to(spectrum_id)
        qtbot.waitUntil(lambda: window.current_id() == spectrum_id, timeout=10000)
        window.label_current(label)
    window.undo()
    with qtbot.waitSignal(window.sigIterationDone, timeout=60000):
        window.iterate()
    qtbot.waitUntil(lambda: not window.busy(), timeout=20000)
    window.export_to(str(export))
    qtbot.waitUntil(lambda: "wrote" in window.message.text(), timeout=20000)
    window.close()


def test_cli_samp_and_window_leave_the_same_session(qtbot, template, tmp_path):
    states = {}
    for door in ("cli", "samp", "window"):
        directory = tmp_path / door
        shutil.copytree(template, directory)
        first, second = story_ids(directory)
        export = tmp_path / f"{door}.vot"
        if door == "cli":
            through_the_cli(directory, first, second, export)
        elif door == "samp":
            through_samp(directory, first, second, export)
        else:
            through_the_window(qtbot, directory, first, second, export, tmp_path)
        states[door] = state(directory, export)
    cli = states["cli"]
    assert cli["iteration"] == 2 and cli["answers"] == {first: "emission"}
    assert [entry[0] for entry in cli["log"]] == ["label", "label", "undo"]
    assert cli["log"][0][3] == "query" and cli["log"][1][3] == "estimate"
    assert states["samp"] == cli
    assert states["window"] == cli
