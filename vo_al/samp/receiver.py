"""Acting on incoming calls, on the thread that owns the session.

:meth:`Receiver.process` takes one :class:`~vo_al.samp.inbox.Call`, checks
it completely before changing anything, acts, and answers through the
bridge: ``samp.ok``; ``samp.warning`` when part of a request was refused
(the reply lists what and why); ``samp.error`` with ``samp.errortxt`` for a
malformed, impossible or untrusted request, which changes nothing. It
never raises.

==========================  ==================================================
``table.highlight.row``     the row's spectrum becomes the current one
``table.select.rowList``    the rows become the selection; with an armed
                            label every selected spectrum gets it, with
                            source ``samp:<sender name>``
``table.load.votable``      labels from its id and label columns are
                            imported (the session decides each one's role,
                            as for every door); the URL is read
                            before the reply
``spectrum.load.ssa-generic``  read, preprocessed and classified with the
                            latest model; the result is kept and reported
``voal.label.set``          ``label`` for ``spectrum-id`` (or ``table-id`` +
                            ``row``)
``voal.label.undo``         takes back the latest answer (of ``spectrum-id``)
==========================  ==================================================

The first four act at once. The last two kinds read a URL: the call is
checked on the owner thread, then a worker (:mod:`~vo_al.samp.work`)
downloads (:mod:`~vo_al.samp.download`), reads the table or the spectrum
and classifies it, and its result comes back to :meth:`Receiver.process`
as a :class:`~vo_al.samp.inbox.Step`: the labels are recorded on the owner
thread, a large table in slices of about :data:`SLICE_SECONDS` each with
other messages answered in between, and then the call is answered.

Labels and local files are for trusted senders only
(:mod:`~vo_al.samp.trust`): from any other client, a label table,
``voal.label.*``, an armed selection and a ``file:`` URL are refused
before anything is read.

What happened is also reported to ``on_event(kind, detail)``: ``current``
(id), ``selection`` (ids), ``labelled`` (entries), ``undone`` (entry),
``imported`` (entries, one slice at a time), ``progress``
(:class:`Progress`), ``classified`` (Classification) — the GUI updates its
views from these, the headless runner logs them.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from functools import partial
from typing import Callable

from ..cancel import Cancelled
from ..workspace import LabelRefused, Workspace
from ..spectra import SpectrumReadError, read_spectrum
from .classify import Classifier
from .download import DEADLINE, Transfer, download
from .errors import MessageRejected
from .files import PeerFiles
from .inbox import Call, Step
from .labeltable import read_pairs
from .messages import (LABEL_SET, LABEL_UNDO, SPECTRUM_LOAD, TABLE_HIGHLIGHT, TABLE_LOAD,
                       TABLE_SELECT, error, map_param, ok, optional_string, params_of,
                       row_list_param, row_param, string_param, warning)
from .tables import SentTable, TableRegistry
from .trust import Trust
from .work import Workers

__all__ = ["Receiver", "Progress", "SLICE_SECONDS", "FIRST_SLICE"]

_log = logging.getLogger(__name__)

#: Refused items quoted in a reply; the rest are counted.
_QUOTED = 20

#: Seconds one slice of a table's labels may hold the owner thread: slices
#: start at :data:`FIRST_SLICE` labels and grow or shrink to fit.
SLICE_SECONDS = 0.05
FIRST_SLICE = 1_000


@dataclass(frozen=True)
class Progress:
    """How far the work on a call has come.

    Attributes
    ----------
    call : Call
    text : str
        E.g. ``"read 100,000 rows"``.
    """

    call: Call
    text: str


def _untrusted(name: str, asks: str) -> str:
    return (f"vo-al takes labels and reads local files only for clients the user trusts, "
            f"and {name!r} is not one: it may not {asks}. To trust it, accept it in vo-al's "
            f"SAMP panel or run 'vo-al samp SESSION --trust {name}'")[:500]


def _refusal_text(refused, what: str) -> str:
    quoted = "; ".join(f"{i}: {reason}" for i, reason in refused[:_QUOTED])
    more = f"; and {len(refused) - _QUOTED} more" if len(refused) > _QUOTED else ""
    return f"{len(refused)} {what} refused: {quoted}{more}"


class Receiver:
    """Validates and acts on incoming calls for one session.

    Parameters
    ----------
    workspace : Workspace
        The open session; every label goes through it.
    tables : TableRegistry
        The tables vo-al sent, to resolve ``table-id`` and rows.
    files : PeerFiles
        Where fetched files are put while they are read.
    reply : callable
        ``reply(msg_id, response)``, e.g. :meth:`SampBridge.reply`.
    dispatch : callable
        The bridge's hook; workers hand their results back through it.
    armed : str, optional
        A class (or alias, or the skip name) given to every spectrum of an
        incoming row selection.
    id_column, label_column : str
        Column names read from tables sent to vo-al.
    on_event : callable, optional
        ``on_event(kind, detail)``, see the module documentation.
    trust : Trust, optional
        The clients trusted with labels and local files; default: the
        desktop tools of :data:`~vo_al.samp.trust.DESKTOP_TOOLS`.
    deadline : float
        Seconds a download may take.

    Attributes
    ----------
    current : str or None
        The spectrum a peer last highlighted.
    selection : list of str
        The spectra of the last row selection.
    classified : list of Classification
        Spectra peers sent, in order of arrival.
    trust : Trust
    """

    def __init__(self, workspace: Workspace, tables: TableRegistry, files: PeerFiles,
                 reply: Callable[[str, dict], object], dispatch: Callable[[object], None], *,
                 armed: str | None = None, id_column: str = "id", label_column: str = "label",
                 on_event: Callable[[str, object], None] | None = None,
                 trust: Trust | None = None, deadline: float = DEADLINE):
        self.workspace = workspace
        self._tables = tables
        self._files = files
        self._reply = reply
        self._dispatch = dispatch
        self._armed: str | None = None
        self.armed = armed
        self.id_column = id_column
        self.label_column = label_column
        self._on_event = on_event or (lambda kind, detail: None)
        self.trust = trust or Trust()
        self.deadline = deadline
        self._classifier = Classifier(workspace.session)
        self._workers = Workers(dispatch, self)
        self._heavy = threading.Lock()  # one table read or classification at a time
        self._open: dict[str, Call] = {}  # msg_id -> call whose work goes on
        self.current: str | None = None
        self.selection: list[str] = []
        self.classified: list = []
        self._handlers = {
            TABLE_HIGHLIGHT: self._highlight,
            TABLE_SELECT: self._select,
            TABLE_LOAD: self._load_table,
            SPECTRUM_LOAD: self._load_spectrum,
            LABEL_SET: self._label_set,
            LABEL_UNDO: self._label_undo,
        }

    @property
    def armed(self) -> str | None:
        """The label given to incoming selections, or None."""
        return self._armed

    @armed.setter
    def armed(self, name: str | None):
        """Arm a class, alias or the skip name (stored as its canonical name); None disarms.

        Raises
        ------
        ValueError
            For a name the session does not know.
        """
        if name is None:
            self._armed = None
            return
        try:
            self._armed = self.workspace.config.canonical(name)
        except KeyError:
            raise ValueError(f"cannot arm {name!r}: the classes are "
                             f"{', '.join(self.workspace.config.class_names)}") from None

    def needs_trust(self, call: Call) -> str:
        """What ``call`` asks that only a trusted sender may ask; ``''`` when nothing.

        Decided from the message alone: no file is looked at.
        """
        if self.trust.trusts(call.sender_name):
            return ""
        params = call.params if isinstance(call.params, dict) else {}
        url = params.get("url")
        if call.mtype == TABLE_LOAD:
            return "import labels from a table"
        if call.mtype in (LABEL_SET, LABEL_UNDO):
            return "change labels"
        if call.mtype == TABLE_SELECT and self.armed is not None:
            return f"label a selection as {self.armed}"
        if call.mtype == SPECTRUM_LOAD and isinstance(url, str) and \
                url.strip().lower().startswith("file:"):
            return "have a local file read"
        return ""

    @property
    def in_progress(self) -> int:
        """Calls whose work goes on (fetching, reading, importing)."""
        return len(self._open)

    def process(self, item: Call | Step) -> dict | None:
        """Check, act on and answer a call, or take the next step of one.

        Parameters
        ----------
        item : Call or Step
            A call from the bridge, or a step a worker (or an import in
            slices) handed back; a step made by another receiver is ignored.

        Returns
        -------
        dict or None
            The response once there is one (sent for a call, not for a
            notification); None while the work goes on.
        """
        if isinstance(item, Step):
            if item.owner is not self or self._workers.cancel.is_set():
                return None
            return self._finish(item.call, item.work)
        return self._finish(item, partial(self._begin, item))

    def close(self):
        """Stop the workers and answer every call still in progress with ``samp.error``."""
        self._workers.close()
        calls, self._open = list(self._open.values()), {}
        for call in calls:
            self._reply(call.msg_id, error(f"vo-al closed its SAMP link before it finished "
                                           f"{call.mtype}"))

    # ------------------------------------------------------------------

    def _begin(self, call: Call):
        handler = self._handlers.get(call.mtype)
        if handler is None:
            raise MessageRejected(f"vo-al does not handle {call.mtype!r}"[:200])
        params = params_of(call.params)
        asks = self.needs_trust(call)
        if asks:
            raise MessageRejected(_untrusted(call.sender_name, asks))
        return handler(params, call)

    def _finish(self, call: Call, work: Callable[[], "dict | None"]) -> dict | None:
        try:
            response = work()
        except MessageRejected as exc:
            response = error(exc.text)
        except Cancelled:
            response = error(f"vo-al closed its SAMP link before it finished {call.mtype}")
        except Exception as exc:  # an answer must come, whatever went wrong
            _log.exception("%s from %s failed", call.mtype, call.sender_name)
            response = error(f"vo-al failed on {call.mtype}: {type(exc).__name__}: {exc}")
        if response is None:
            if not call.is_notification:
                self._open[call.msg_id] = call
            return None
        if not call.is_notification:
            self._open.pop(call.msg_id, None)
            self._reply(call.msg_id, response)
        return response

    def _later(self, call: Call, fetch: Callable[[threading.Event], object],
               finish: Callable[[object], "dict | None"]) -> None:
        """Run ``fetch`` in a worker, then ``finish`` on its result here; no response yet."""
        self._workers.submit(call, fetch, finish)
        return None

    def _progress(self, call: Call, text: str):
        """From a worker: report progress on the owner thread."""
        def report():
            self._on_event("progress", Progress(call, text))

        self._workers.report(call, report)

    @staticmethod
    def _source(call: Call) -> str:
        return f"samp:{call.sender_name}"

    def _table(self, params) -> SentTable:
        return self._tables.get(string_param(params, "table-id"))

    def _highlight(self, params, call):
        table = self._table(params)
        spectrum_id = table.ids[row_param(params, len(table.ids))]
        self.current = spectrum_id
        self._on_event("current", spectrum_id)
        return ok({"spectrum-id": spectrum_id})

    def _select(self, params, call):
        table = self._table(params)
        ids = [table.ids[row] for row in row_list_param(params, len(table.ids))]
        accepted, refused = [], []
        if self.armed is not None:
            done = self.workspace.import_labels(
                [(i, self.armed) for i in ids], source=self._source(call), sender=call.sender_name)
            accepted, refused = done.accepted, done.refused
        self.selection = ids
        self._on_event("selection", ids)
        if accepted:
            self._on_event("labelled", accepted)
        result = {"selected": str(len(ids)), "labelled": str(len(accepted)),
                  "label": self.armed or ""}
        if refused:
            return warning(_refusal_text(refused, "labels"), result)
        return ok(result)

    def _label_set(self, params, call):
        label = string_param(params, "label")
        spectrum_id = optional_string(params, "spectrum-id")
        if not spectrum_id:
            if "table-id" not in params:
                raise MessageRejected("give 'spectrum-id', or 'table-id' and 'row'")
            table = self._table(params)
            spectrum_id = table.ids[row_param(params, len(table.ids))]
        try:
            entry = self.workspace.label(spectrum_id, label, source=self._source(call),
                                         sender=call.sender_name)
        except LabelRefused as exc:
            raise MessageRejected(exc.reason) from None
        self._on_event("labelled", [entry])
        return ok({"seq": str(entry.seq), "spectrum-id": entry.spectrum_id,
                   "label": entry.label or entry.action, "purpose": entry.purpose or ""})

    def _label_undo(self, params, call):
        spectrum_id = optional_string(params, "spectrum-id") or None
        entry = self.workspace.undo(source=self._source(call), sender=call.sender_name,
                                    spectrum_id=spectrum_id)
        if entry is None:
            raise MessageRejected("nothing to undo" + (f" for {spectrum_id!r}" if spectrum_id
                                                       else ""))
        self._on_event("undone", entry)
        return ok({"seq": str(entry.seq), "undone": str(entry.undoes),
                   "spectrum-id": entry.spectrum_id})

    # ------------------------------------------------------------------ label tables

    def _load_table(self, params, call):
        url = string_param(params, "url")
        return self._later(call, partial(self._read_table, call, url),
                           partial(self._start_import, call, url))

    def _read_table(self, call: Call, url: str, cancel: threading.Event):
        """Worker: download and read the pairs, and find those that change something."""
        with self._files.temporary(".vot") as path:
            download(url, path, local=True, transfer=Transfer(self.deadline, cancel))
            with self._heavy:
                pairs = read_pairs(path, url, self.id_column, self.label_column, cancel=cancel,
                                   progress=lambda rows: self._progress(call,
                                                                        f"read {rows:,} rows"))
        return pairs, self.workspace.changed(pairs)

    def _start_import(self, call: Call, url: str, read) -> dict | None:
        pairs, changed = read
        if not pairs:
            raise MessageRejected(f"{url} has no rows with a label in column "
                                  f"{self.label_column!r}"[:500])
        return self._import_slice(_Import(call, changed, len(pairs) - len(changed)))

    def _import_slice(self, job: "_Import") -> dict | None:
        """Owner thread: record one slice; queue the next, or answer."""
        call = job.call
        chunk = job.pairs[job.done:job.done + job.size]
        started = time.monotonic()
        done = self.workspace.import_labels(chunk, source=self._source(call),
                                            sender=call.sender_name)
        accepted, refused = done.accepted, done.refused
        job.fit(time.monotonic() - started)
        job.done += len(chunk)
        job.accepted += len(accepted)
        job.refused += refused
        if accepted:
            self._on_event("imported", accepted)
        if job.done < len(job.pairs):
            self._on_event("progress", Progress(call, f"recorded {job.done:,} of "
                                                      f"{len(job.pairs):,} labels"))
            self._workers.report(call, partial(self._import_slice, job))
            return None
        result = {"imported": str(job.accepted), "refused": str(len(job.refused)),
                  "unchanged": str(job.unchanged)}
        if job.refused and not job.accepted:
            raise MessageRejected(_refusal_text(job.refused, "labels") + "; nothing was imported")
        if job.refused:
            return warning(_refusal_text(job.refused, "labels"), result)
        return ok(result)

    # ------------------------------------------------------------------ spectra

    def _load_spectrum(self, params, call):
        url = string_param(params, "url")
        map_param(params, "meta")
        optional_string(params, "name")
        local = self.trust.trusts(call.sender_name)
        return self._later(call, partial(self._classify, url, local), self._classified)

    def _classify(self, url: str, local: bool, cancel: threading.Event):
        """Worker: download, read, preprocess and classify."""
        with self._files.temporary(".fits") as path:
            download(url, path, local=local, transfer=Transfer(self.deadline, cancel))
            with self._heavy:
                try:
                    spectrum = read_spectrum(path)
                except SpectrumReadError as exc:
                    raise MessageRejected(f"{url}: {exc.reason}"[:500]) from None
                spectrum.source = url
                return self._classifier.classify(spectrum)

    def _classified(self, result) -> dict:
        self.classified.append(result)
        self._on_event("classified", result)
        if result.problem:
            return warning(result.problem, result.as_samp())
        return ok(result.as_samp())


class _Import:
    """A label table being recorded, slice by slice."""

    def __init__(self, call: Call, pairs: list, unchanged: int):
        self.call = call
        self.pairs = pairs
        self.unchanged = unchanged
        self.size = FIRST_SLICE
        self.done = 0
        self.accepted = 0
        self.refused: list = []

    def fit(self, seconds: float):
        """Size the next slice after the last one took ``seconds``."""
        if seconds < SLICE_SECONDS / 2:
            self.size = min(2 * self.size, 64 * FIRST_SLICE)
        elif seconds > SLICE_SECONDS:
            self.size = max(self.size // 2, FIRST_SLICE // 10)
