"""Acting on incoming calls, on the thread that owns the session.

:meth:`Receiver.process` takes one :class:`~vo_al.samp.inbox.Call`, checks
it completely before changing anything, acts, and answers through the
bridge: ``samp.ok``; ``samp.warning`` when part of a request was refused
(the reply lists what and why); ``samp.error`` with ``samp.errortxt`` for a
malformed or impossible request, which changes nothing. It never raises.

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

What happened is also reported to ``on_event(kind, detail)``: ``current``
(id), ``selection`` (ids), ``labelled`` (entries), ``undone`` (entry),
``imported`` (entries), ``classified`` (Classification) — the GUI updates
its views from these, the headless runner logs them.
"""

from __future__ import annotations

import logging
import warnings
from typing import Callable

from astropy.io.votable.exceptions import VOWarning

from ..labelfile import LabelFileError, read_label_pairs
from ..session import LabelRefused, Session
from ..spectra import SpectrumReadError, read_spectrum
from .classify import Classifier
from .errors import MessageRejected
from .files import PeerFiles, download
from .inbox import Call
from .messages import (LABEL_SET, LABEL_UNDO, SPECTRUM_LOAD, TABLE_HIGHLIGHT, TABLE_LOAD,
                       TABLE_SELECT, error, map_param, ok, optional_string, params_of,
                       row_list_param, row_param, string_param, warning)
from .tables import SentTable, TableRegistry

__all__ = ["Receiver"]

_log = logging.getLogger(__name__)

#: Refused items quoted in a reply; the rest are counted.
_QUOTED = 20


def _refusal_text(refused, what: str) -> str:
    quoted = "; ".join(f"{i}: {reason}" for i, reason in refused[:_QUOTED])
    more = f"; and {len(refused) - _QUOTED} more" if len(refused) > _QUOTED else ""
    return f"{len(refused)} {what} refused: {quoted}{more}"


class Receiver:
    """Validates and acts on incoming calls for one session.

    Parameters
    ----------
    session : Session
    tables : TableRegistry
        The tables vo-al sent, to resolve ``table-id`` and rows.
    files : PeerFiles
        Where fetched files are put while they are read.
    reply : callable
        ``reply(msg_id, response)``, e.g. :meth:`SampBridge.reply`.
    armed : str, optional
        A class (or alias, or the skip name) given to every spectrum of an
        incoming row selection.
    id_column, label_column : str
        Column names read from tables sent to vo-al.
    on_event : callable, optional
        ``on_event(kind, detail)``, see the module documentation.

    Attributes
    ----------
    current : str or None
        The spectrum a peer last highlighted.
    selection : list of str
        The spectra of the last row selection.
    classified : list of Classification
        Spectra peers sent, in order of arrival.
    """

    def __init__(self, session: Session, tables: TableRegistry, files: PeerFiles,
                 reply: Callable[[str, dict], object], *, armed: str | None = None,
                 id_column: str = "id", label_column: str = "label",
                 on_event: Callable[[str, object], None] | None = None):
        self.session = session
        self._tables = tables
        self._files = files
        self._reply = reply
        self._armed: str | None = None
        self.armed = armed
        self.id_column = id_column
        self.label_column = label_column
        self._on_event = on_event or (lambda kind, detail: None)
        self._classifier = Classifier(session)
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
            self._armed = self.session.config.canonical(name)
        except KeyError:
            raise ValueError(f"cannot arm {name!r}: the classes are "
                             f"{', '.join(self.session.config.class_names)}") from None

    def process(self, call: Call) -> dict:
        """Check, act on and answer one call (a notification gets no answer).

        Returns
        -------
        dict
            The response (also sent for a call).
        """
        try:
            handler = self._handlers.get(call.mtype)
            if handler is None:
                raise MessageRejected(f"vo-al does not handle {call.mtype!r}"[:200])
            response = handler(params_of(call.params), call)
        except MessageRejected as exc:
            response = error(exc.text)
        except Exception as exc:  # an answer must come, whatever went wrong
            _log.exception("%s from %s failed", call.mtype, call.sender_name)
            response = error(f"vo-al failed on {call.mtype}: {type(exc).__name__}: {exc}")
        if not call.is_notification:
            self._reply(call.msg_id, response)
        return response

    # ------------------------------------------------------------------

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
            accepted, refused = self.session.label_many(
                [(i, self.armed) for i in ids], source=self._source(call), sender=call.sender_name)
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
            entry = self.session.label(spectrum_id, label, source=self._source(call),
                                       sender=call.sender_name)
        except LabelRefused as exc:
            raise MessageRejected(exc.reason) from None
        self._on_event("labelled", [entry])
        return ok({"seq": str(entry.seq), "spectrum-id": entry.spectrum_id,
                   "label": entry.label or entry.action, "purpose": entry.purpose or ""})

    def _label_undo(self, params, call):
        spectrum_id = optional_string(params, "spectrum-id") or None
        entry = self.session.undo(source=self._source(call), sender=call.sender_name,
                                  spectrum_id=spectrum_id)
        if entry is None:
            raise MessageRejected("nothing to undo" + (f" for {spectrum_id!r}" if spectrum_id
                                                       else ""))
        self._on_event("undone", entry)
        return ok({"seq": str(entry.seq), "undone": str(entry.undoes),
                   "spectrum-id": entry.spectrum_id})

    def _read_pairs(self, url: str) -> list:
        with self._files.temporary(".vot") as path:
            download(url, path)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", VOWarning)
                    return read_label_pairs(path, self.id_column, self.label_column)
            except LabelFileError as exc:
                raise MessageRejected(str(exc).replace(str(path), url)) from None

    def _changed(self, pairs) -> list:
        """The pairs that would change the answer in force."""
        current = self.session.log.current()
        config = self.session.config
        changed = []
        for spectrum_id, label in pairs:
            entry = current.get(spectrum_id)
            try:
                same = entry is not None and config.canonical(label) == (entry.label or
                                                                         config.skip_name)
            except KeyError:
                same = False  # an unknown class: refused, with its reason, below
            if not same:
                changed.append((spectrum_id, label))
        return changed

    def _load_table(self, params, call):
        url = string_param(params, "url")
        pairs = self._read_pairs(url)
        if not pairs:
            raise MessageRejected(f"{url} has no rows with a label in column "
                                  f"{self.label_column!r}")
        changed = self._changed(pairs)
        accepted, refused = self.session.label_many(
            changed, source=self._source(call), sender=call.sender_name)
        if accepted:
            self._on_event("imported", accepted)
        result = {"imported": str(len(accepted)), "refused": str(len(refused)),
                  "unchanged": str(len(pairs) - len(changed))}
        if refused and not accepted:
            raise MessageRejected(_refusal_text(refused, "labels") + "; nothing was imported")
        if refused:
            return warning(_refusal_text(refused, "labels"), result)
        return ok(result)

    def _load_spectrum(self, params, call):
        url = string_param(params, "url")
        map_param(params, "meta")
        optional_string(params, "name")
        with self._files.temporary(".fits") as path:
            download(url, path)
            try:
                spectrum = read_spectrum(path)
            except SpectrumReadError as exc:
                raise MessageRejected(f"{url}: {exc.reason}"[:500]) from None
        spectrum.source = url
        result = self._classifier.classify(spectrum)
        self.classified.append(result)
        self._on_event("classified", result)
        if result.problem:
            return warning(result.problem, result.as_samp())
        return ok(result.as_samp())
