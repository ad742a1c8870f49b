"""The queue arrays and their table model, with 100,000 rows."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import require_qt  # noqa: E402

require_qt()
from PyQt5 import QtCore, QtWidgets  # noqa: E402

from vo_al.queues import Queue  # noqa: E402
from vo_al.gui.queue_model import ANSWERED_BRUSH, SKIPPED_BRUSH, QueueModel  # noqa: E402
from vo_al.gui.queue_panel import QueuePanel  # noqa: E402
from vo_al.labellog import Entry  # noqa: E402

CLASSES = ["other", "emission", "double-peak"]


def _strings(values) -> np.ndarray:
    values = list(values)
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def make_queue(n: int, seed: int = 0) -> Queue:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet([1, 1, 1], n).astype(np.float32)
    probs[::97] = np.nan  # some unscored rows
    kinds = np.where(np.arange(n) < 100, "query", np.where(np.arange(n) < 130, "estimate",
                                                           "candidate"))
    return Queue("test", 3, CLASSES, "skip", np.arange(n, dtype=np.int64),
                 _strings(f"id{i:06d}" for i in range(n)),
                 _strings(f"LAMOST J{i:06d}" for i in range(n)),
                 _strings(f"/data/{i}.fits" for i in range(n)), _strings(kinds),
                 rng.uniform(0, 360, n), rng.uniform(-90, 90, n), probs,
                 _strings([""] * n), _strings([""] * n))


def entry(spectrum_id, label, action="label"):
    return Entry(1, spectrum_id, label, action, None, "viewer", "me", "t", 3, "query")


def test_sort_order_is_stable_and_puts_missing_last():
    q = make_queue(300)
    key = "p:1"
    ascending = q.sort_order(key)
    descending = q.sort_order(key, descending=True)
    values = q.probs[:, 1]
    scored = ~np.isnan(values)
    assert np.isnan(values[ascending[scored.sum():]]).all()
    assert np.all(np.diff(values[ascending[:scored.sum()]]) >= 0)
    assert np.all(np.diff(values[descending[:scored.sum()]]) <= 0)
    by_kind = q.sort_order("kind")
    kinds = q.kind[by_kind]
    assert list(kinds[:30]) == ["candidate"] * 30
    # equal keys keep the queue's order, either way round
    same = by_kind[kinds == "query"]
    assert list(same) == sorted(same)
    same = q.sort_order("kind", descending=True)[:100]
    assert list(q.kind[same]) == ["query"] * 100 and list(same) == list(range(100))


def test_answers_and_remaining():
    q = make_queue(200)
    assert q.remaining() == (130, 130)
    assert q.set_answer("id000005", entry("id000005", "emission")) == [5]
    assert q.set_answer("id000006", entry("id000006", None, "skip")) == [6]
    assert q.answer[5] == "emission" and q.answer[6] == "skip"
    assert q.remaining() == (128, 130)
    q.set_answer("id000005", None)
    assert q.answer[5] == "" and q.remaining() == (129, 130)
    assert q.set_answer("not-listed", None) == []
    assert q.uncertainty[0] != q.uncertainty[0]  # unscored: NaN
    assert 0 <= np.nanmin(q.uncertainty) and np.nanmax(q.uncertainty) <= 1


def test_model_with_100000_rows_stays_fast(qtbot):
    n = 100_000
    q = make_queue(n)
    model = QueueModel(q)
    panel = QueuePanel(model)
    qtbot.addWidget(panel)
    panel.resize(700, 500)
    panel.show()
    qtbot.waitExposed(panel)
    assert model.rowCount() == n
    assert model.data(model.index(n - 1, 1)) == f"id{n - 1:06d}"

    column = [key for key, _ in q.columns()].index("p:1")  # p(emission)
    panel.table.sortByColumn(column, QtCore.Qt.DescendingOrder)
    top = model.queue_row(0)
    assert q.probs[top, 1] == np.nanmax(q.probs[:, 1])  # times: benchmarks/gui_latency.py

    panel.select_view_row(n - 1)
    panel.table.viewport().repaint()
    QtWidgets.QApplication.processEvents()
    assert panel.current_view_row() == n - 1

    i = model.queue_row(n - 1)
    model.answer_changed(q.set_answer(q.ids[i], entry(q.ids[i], "emission")))
    assert model.data(model.index(n - 1, 0), QtCore.Qt.BackgroundRole) == ANSWERED_BRUSH
    model.answer_changed(q.set_answer(q.ids[i], entry(q.ids[i], None, "skip")))
    assert model.data(model.index(n - 1, 0), QtCore.Qt.BackgroundRole) == SKIPPED_BRUSH
    assert model.data(model.index(0, 0), QtCore.Qt.BackgroundRole) is None

    # a new queue clears the sort and starts in the queue's own order
    model.reset(make_queue(10, seed=1))
    assert model.rowCount() == 10 and [model.queue_row(r) for r in range(10)] == list(range(10))
    assert panel.table.horizontalHeader().sortIndicatorSection() == -1
