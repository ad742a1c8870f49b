"""The application layer: what a user does with one open session.

Every door (the ``vo-al`` commands, the SAMP bridge, the desktop app)
works through a :class:`Workspace` and nothing else: none of them opens a
pool, a scores file or an iteration folder itself. The workspace owns the
:class:`~vo_al.session.Session` and its open pool, takes the session's
iteration lock for an iteration (:mod:`vo_al.lock`), and publishes what
happens on an :class:`~vo_al.events.EventHub` (labels from this process
or, through :meth:`Workspace.poll_labels`, from any other one; iterations
started, progressing, finished, cancelled or failed).

One rule for provenance: the workspace records the door (``source``) and
the user or client (``sender``); the spectrum's role, and so what its
label is used for, comes from the session (:meth:`Session.roles`), never
from the door.

Thread use: one thread (the owner: the GUI thread, the SAMP bridge's
thread, the CLI) calls the labelling and list methods; :meth:`iterate`
may run in a worker thread, on its own session handle.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cancel import Cancelled
from .events import (EventHub, IterationCancelled, IterationFailed, IterationFinished,
                     IterationProgress, IterationStarted, LabelsChanged)
from .export import FORMATS
from .labellog import Entry
from .loop import IterationOptions, IterationResult, precision_curve, run_iteration
from .preprocess import PreprocessConfig
from .queues import Queue, batch_queue, candidate_queue, search_queue
from .records import (OriginalSpectrum, SpectrumRecord, describe_entry, load_original,
                      marked_lines, sexagesimal, spectrum_record)
from .scoring import ScoreConfig
from .session import LabelRefused, Session, SessionConfig, SessionError
from .strategies import STRATEGIES
from .summary import (SessionSummary, UncertaintyHistogram, format_precision, session_summary,
                      uncertainty_histogram)

__all__ = [
    "Workspace", "ImportResult", "describe_progress", "STRATEGY_NAMES",
    # the public types of the workspace's methods, for the doors
    "Cancelled", "Entry", "FORMATS", "IterationOptions", "IterationResult", "LabelRefused",
    "OriginalSpectrum", "PreprocessConfig", "Queue", "ScoreConfig", "SessionConfig", "SessionError",
    "SessionSummary", "SpectrumRecord", "UncertaintyHistogram", "format_precision",
    "describe_entry", "sexagesimal",
]

#: Names of the query strategies, for a door's choices.
STRATEGY_NAMES = tuple(STRATEGIES)


@dataclass(frozen=True)
class ImportResult:
    """What a table of labels did to the session.

    Attributes
    ----------
    accepted : list of Entry
        The answers recorded.
    refused : list of (str, str)
        ``(spectrum_id, reason)`` of the rows not recorded.
    unchanged : int
        Rows whose answer was already in force (not recorded again).
    """

    accepted: list
    refused: list
    unchanged: int


def describe_progress(step: str, event) -> tuple[int, int, str]:
    """``(done, total, text)`` for a :func:`~vo_al.loop.run_iteration` event."""
    if step == "train":
        loss = "" if np.isnan(event.val_loss) else f", validation loss {event.val_loss:.3f}"
        return (event.epoch, event.max_epochs,
                f"training: epoch {event.epoch} of at most {event.max_epochs}{loss}")
    if step == "score":
        done, total = event
        return done, total, f"scoring the pool: {done:,} of {total:,}"
    return 0, 0, "choosing the next batch"


class Workspace:
    """One open session, as its user works with it.

    Parameters
    ----------
    session : Session
        Owned from now on: :meth:`close` closes it.
    events : EventHub, optional
        Where events go (a new hub by default).
    """

    def __init__(self, session: Session, events: EventHub | None = None):
        self.session = session
        self.events = events or EventHub()
        self._pool = None
        self._seen_seq = session.log.last_seq()
        self._poll_lock = threading.Lock()

    # ------------------------------------------------------------ opening

    @classmethod
    def open(cls, directory, events: EventHub | None = None) -> "Workspace":
        """Open an existing session directory.

        Raises
        ------
        vo_al.session.SessionError
            When ``directory`` is not a session or its pools are missing.
        """
        return cls(Session.open(directory), events)

    @classmethod
    def create(cls, directory, train_path, pool_path, events: EventHub | None = None,
               **config) -> "Workspace":
        """Create a session (see :meth:`Session.create`) and open it."""
        return cls(Session.create(directory, train_path, pool_path, **config), events)

    @classmethod
    def relocate(cls, directory, pool_path=None, train_path=None,
                 events: EventHub | None = None) -> "Workspace":
        """Point a session at its moved pools (:meth:`Session.relocate`) and open it."""
        return cls(Session.relocate(directory, pool_path, train_path), events)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Close the pool and the session."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        self.session.close()

    @property
    def directory(self) -> Path:
        """The session directory."""
        return self.session.directory

    @property
    def config(self) -> SessionConfig:
        """The session's settings (classes, pools, defaults)."""
        return self.session.config

    @property
    def iteration(self) -> int:
        """Completed iterations."""
        return self.session.iteration

    @property
    def preprocess(self) -> PreprocessConfig:
        """The pool's preprocessing (its window and medium)."""
        return self._open_pool().config

    def _open_pool(self):
        if self._pool is None:
            self._pool = self.session.pool()
        return self._pool

    # ------------------------------------------------------------ labels

    def label(self, spectrum_id: str, class_name: str, *, source: str, sender: str = "",
              iteration: int | None = None) -> Entry:
        """Record one answer (a class, an alias or the skip name).

        ``iteration`` is the iteration whose list the answer comes from
        (default: the latest).

        Raises
        ------
        vo_al.session.LabelRefused
            With the reason, when the answer cannot be recorded.
        """
        entry = self.session.label(spectrum_id, class_name, source=source, sender=sender,
                                   iteration=iteration)
        self._announce([entry])
        return entry

    def skip(self, spectrum_id: str, *, source: str, sender: str = "") -> Entry:
        """Record "unsure" for a spectrum: it is never trained on."""
        return self.label(spectrum_id, self.config.skip_name, source=source, sender=sender)

    def undo(self, *, source: str, sender: str = "",
             spectrum_id: str | None = None) -> Entry | None:
        """Take back the latest answer (of one spectrum, if given); None when
        there was nothing to undo."""
        entry = self.session.undo(source=source, sender=sender, spectrum_id=spectrum_id)
        if entry is not None:
            self._announce([entry])
        return entry

    def import_labels(self, pairs, *, source: str, sender: str = "") -> ImportResult:
        """Record many answers at once; answers already in force are not
        recorded again (re-importing a table changes nothing).

        Parameters
        ----------
        pairs : iterable of (str, str)
            ``(spectrum_id, class name)``.
        source, sender : str
            Provenance, as for :meth:`label`.

        Returns
        -------
        ImportResult
        """
        pairs = [(str(i).strip(), c) for i, c in pairs]
        changed = self.changed(pairs)
        accepted, refused = self.session.label_many(changed, source=source, sender=sender)
        self._announce(accepted)
        return ImportResult(accepted, refused, len(pairs) - len(changed))

    def changed(self, pairs) -> list:
        """The ``(spectrum_id, class name)`` pairs that would change the
        answer in force (an unknown class counts as a change: it is refused,
        with its reason, when recorded)."""
        current = self.session.log.current(spectrum_id for spectrum_id, _ in pairs)
        config = self.config
        changed = []
        for spectrum_id, name in pairs:
            entry = current.get(spectrum_id)
            try:
                same = entry is not None and config.canonical(name) == (entry.label
                                                                        or config.skip_name)
            except KeyError:
                same = False  # an unknown class: refused, with its reason, by the session
            if not same:
                changed.append((spectrum_id, name))
        return changed

    def entries(self, spectrum_id: str | None = None, include_undone: bool = True) -> list:
        """The label log (of one spectrum), oldest first."""
        return self.session.log.entries(include_undone=include_undone, spectrum_id=spectrum_id)

    def answers(self) -> dict[str, Entry]:
        """The answer in force of every answered spectrum."""
        return self.session.log.current()

    def label_counts(self) -> dict[str, int]:
        """Spectra per class among the answers in force."""
        return self.session.log.counts()

    def _announce(self, entries):
        if not entries:
            return
        with self._poll_lock:
            self._seen_seq = max(self._seen_seq, max(e.seq for e in entries))
        self.events.publish(LabelsChanged(tuple(entries), here=True))

    def poll_labels(self) -> list[Entry]:
        """Entries written since the last look by anyone else (another
        process, another workspace on the session), published as
        :class:`~vo_al.events.LabelsChanged` with ``here=False``."""
        with self._poll_lock:
            entries = self.session.log.entries_after(self._seen_seq)
            if entries:
                self._seen_seq = entries[-1].seq
        if entries:
            self.events.publish(LabelsChanged(tuple(entries), here=False))
        return entries

    # ------------------------------------------------------------ lists

    def batch(self, iteration: int | None = None) -> Queue:
        """The query batch, then the estimate sample, of an iteration
        (default: the latest; empty before the first)."""
        return batch_queue(self.session, iteration)

    def candidates(self, class_name: str, k: int, iteration: int | None = None,
                   cancel=None) -> Queue:
        """The ``k`` spectra most probably of a class, most probable first."""
        return candidate_queue(self.session, class_name, k, iteration, cancel=cancel)

    def search(self, text: str, limit: int = 1000, cancel=None) -> Queue:
        """Spectra by id, or by part of an id or designation."""
        return search_queue(self.session, text, limit, cancel=cancel)

    def summary(self) -> SessionSummary:
        """Label counts, the learning curve and the predicted class counts."""
        return session_summary(self.session)

    def histogram(self, iteration: int | None = None, bins: int = 50,
                  cancel=None) -> UncertaintyHistogram:
        """The normalised-entropy histogram of an iteration's scores."""
        return uncertainty_histogram(self.session, iteration, bins, cancel=cancel)

    def learning_curve(self) -> list[dict]:
        """The estimated precision, per completed iteration."""
        return precision_curve(self.session)

    def metrics(self, iteration: int | None = None) -> dict:
        """An iteration's metrics (default: the latest; empty before the first)."""
        n = self.iteration if iteration is None else iteration
        return self.session.read_metrics(n) if n else {}

    def record(self, queue: Queue, index: int) -> SpectrumRecord:
        """What the viewer shows of row ``index`` of ``queue``."""
        pool = self._open_pool()
        return spectrum_record(self.session, pool, pool.wavelength, queue, index)

    def original(self, path: str) -> OriginalSpectrum:
        """A spectrum's original file on the viewer's axes (slow: call it
        off the owner thread)."""
        return load_original(path, self.preprocess)

    def marked_lines(self) -> dict[str, float]:
        """The lines the viewer marks, in the pool's medium."""
        return marked_lines(self.preprocess)

    # ------------------------------------------------------------ iterating

    def iterate(self, options: IterationOptions = IterationOptions(), progress=None,
                cancel=None, client=None) -> IterationResult:
        """Train, score the pool and choose the next lists: one iteration.

        It runs on its own session handle, so it may be called from a
        worker thread while the owner thread keeps labelling.

        Parameters
        ----------
        options : IterationOptions
        progress : callable, optional
            ``progress(step, event)``, as for :func:`~vo_al.loop.run_iteration`;
            the same steps are published as
            :class:`~vo_al.events.IterationProgress`.
        cancel : threading.Event-like, optional
        client : distributed.Client, optional
            Score on this Dask cluster (:func:`~vo_al.loop.run_iteration`).

        Raises
        ------
        vo_al.lock.IterationLocked
            When another iteration runs on the session (any process).
        vo_al.cancel.Cancelled
            When cancelled; nothing of the iteration is kept.
        """
        n = self.iteration + 1

        def report(step, event):
            done, total, text = describe_progress(step, event)
            self.events.publish(IterationProgress(n, step, done, total, text))
            if progress is not None:
                progress(step, event)

        with Session.open(self.directory) as session:
            self.events.publish(IterationStarted(n))
            try:
                result = run_iteration(session, options, progress=report, cancel=cancel,
                                       client=client)
            except Cancelled:
                self.events.publish(IterationCancelled(n))
                raise
            except Exception as exc:
                self.events.publish(IterationFailed(n, str(exc)))
                raise
        self.events.publish(IterationFinished(result))
        return result

    def simulate(self, truth_path, iterations: int,
                 options: IterationOptions = IterationOptions(), on_iteration=None,
                 progress=None, baseline: str | None = None, client=None) -> list[dict]:
        """Run iterations answered from a truth table (:func:`vo_al.simulate.simulate`),
        beside a ``baseline`` twin session when given, scoring on the Dask
        cluster of ``client`` when given.

        Returns
        -------
        list of dict
            One report per iteration.
        """
        from .simulate import simulate

        reports = simulate(self.session, truth_path, iterations, options,
                           on_iteration=on_iteration, progress=progress, baseline=baseline,
                           client=client)
        self.poll_labels()  # the oracle's answers, as events
        return reports

    def simulation_records(self) -> list[dict]:
        """The kept report of every simulated iteration, oldest first."""
        session = self.session
        return [r for r in (session.read_record(n, "simulation")
                            for n in range(1, session.iteration + 1)) if r]

    # ------------------------------------------------------------ tables

    def candidate_table(self, iteration: int | None = None):
        """The candidate table of an iteration (:func:`vo_al.export.candidate_table`)."""
        from .export import candidate_table

        return candidate_table(self.session, iteration)

    def export(self, path, iteration: int | None = None) -> int:
        """Write the candidate table as ``.vot``, ``.fits`` or ``.csv``.

        Returns
        -------
        int
            Rows written.

        Raises
        ------
        ValueError
            For an unknown suffix or a session with no completed iteration.
        FileNotFoundError
            When the folder of ``path`` does not exist.
        """
        from .export import write_table

        folder = Path(path).expanduser().absolute().parent
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such folder; create it first or choose "
                                    f"another place for {Path(path).name}")
        table = self.candidate_table(iteration)
        write_table(table, path)
        return len(table)

    # ------------------------------------------------------------ catalogues

    def crossmatch(self, catalogues=None, *, refresh: bool = False,
                   iteration: int | None = None, options=None, progress=None,
                   cancel=None) -> list:
        """Match the candidates with catalogues; the matches are kept in the
        session (:func:`vo_al.crossmatch.crossmatch`).

        It runs on its own session handle, so it may be called from a
        worker thread.

        Parameters
        ----------
        catalogues : list of vo_al.catalogues.Catalogue, optional
            Default: every catalogue matched before.
        refresh : bool
            Match every candidate again, not only those not matched yet.
        iteration : int, optional
            Whose predictions make the candidates (default: the latest).
        options : vo_al.options.TapOptions, optional
        progress : callable, optional
            ``progress(name, done, total)``.
        cancel : threading.Event-like, optional

        Returns
        -------
        list of vo_al.crossmatch.MatchSummary

        Raises
        ------
        vo_al.catalogues.CrossmatchError
            Naming the service or file and what failed; matches stored
            before stay.
        vo_al.cancel.Cancelled
        """
        from .crossmatch import crossmatch
        from .options import TapOptions

        with Session.open(self.directory) as session:
            return crossmatch(session, catalogues, refresh=refresh, iteration=iteration,
                              options=options or TapOptions(), progress=progress,
                              cancel=cancel)

    def matched_catalogues(self) -> list:
        """The catalogues the session's candidates were matched with."""
        from .crossmatch import MatchStore

        return MatchStore(self.directory).catalogues()

    def matches(self):
        """Every matched spectrum with its object and what it is known as
        (:func:`vo_al.crossmatch.match_table`)."""
        from .crossmatch import match_table

        return match_table(self.directory)

    def report(self, iteration: int | None = None, min_probability: float | None = None,
               labelled_only: bool = False) -> dict:
        """The discovery report: new and known spectra and objects per
        interesting class (:func:`vo_al.report.discovery_report`)."""
        from .report import discovery_report

        return discovery_report(self.session, iteration, min_probability, labelled_only)

    def known_as(self, spectrum_ids=None) -> dict[str, list[dict]]:
        """What matched spectra are known as in the catalogues.

        Parameters
        ----------
        spectrum_ids : iterable of str, optional
            Default: every spectrum matched with some catalogue.

        Returns
        -------
        dict
            Spectrum id → one ``{"catalogue": NAME, "id": str, "type": str,
            "sep_arcsec": float}`` per catalogue with an object within its
            radius, nearest first; an empty list when the spectrum was
            matched and no catalogue knows it. Spectra never matched are
            left out.
        """
        table = self.matches()
        ids = np.asarray(table["id"]).astype(str)
        columns = {name: (np.asarray(table[f"{name}_id"]).astype(str),
                          np.asarray(table[f"{name}_type"]).astype(str),
                          np.asarray(table[f"{name}_sep_arcsec"], np.float64))
                   for name in sorted(table.meta["catalogues"])}
        wanted = None if spectrum_ids is None else set(spectrum_ids)
        known = {}
        for row, spectrum_id in enumerate(ids):
            if wanted is not None and spectrum_id not in wanted:
                continue
            found = [{"catalogue": name, "id": str(match[row]), "type": str(kind[row]),
                      "sep_arcsec": float(sep[row])}
                     for name, (match, kind, sep) in columns.items() if match[row]]
            known[spectrum_id] = sorted(found, key=lambda m: m["sep_arcsec"])
        return known

    def known_spectra(self) -> set[str]:
        """Ids of the matched spectra whose object some catalogue knows.

        An object is the spectra within 3″ of each other (repeated
        observations of one star, :func:`vo_al.crossmatch.group_objects`),
        so a repeat of a known star counts although it matched nothing
        itself, as in :meth:`report`.
        """
        table = self.matches()
        objects = np.asarray(table["object_id"]).astype(str)
        known = np.unique(objects[np.asarray(table["known"], bool)])
        return set(np.asarray(table["id"]).astype(str)[np.isin(objects, known)])

    @staticmethod
    def dask_client(address: str | None = None, scheduler_file=None):
        """The Dask cluster for :meth:`iterate` and :meth:`simulate`, as a context.

        A thin door to :func:`vo_al.distributed.connect`, so that a caller
        needs no Dask import when no cluster is named.

        Parameters
        ----------
        address : str, optional
            A scheduler address (``tcp://host:8786``), or ``local:N`` for N
            worker processes started here and stopped on exit.
        scheduler_file : path-like, optional
            The scheduler file of a running cluster.

        Returns
        -------
        context manager
            Gives a checked ``distributed.Client``, closed on exit; None
            when neither is given.

        Raises
        ------
        ImportError
            When a cluster is named and dask.distributed is not installed.
        vo_al.distributed.ClusterError
            On entering: the scheduler cannot be reached, or its workers run
            other versions.
        """
        if not address and not scheduler_file:
            import contextlib

            return contextlib.nullcontext()
        try:
            from .distributed import connect
        except ImportError as exc:
            raise ImportError(f"a Dask cluster needs dask.distributed "
                              f"(pip install 'vo-al[dask]'): {exc}") from exc
        return connect(address or None, scheduler_file or None)
