"""The persistent state of one active-learning session: a directory.

::

    SESSION/
      config.json          SessionConfig (versioned JSON)
      labels.sqlite        the append-only label log (vo_al.labellog), WAL mode
      pool-index.bin       cached id → pool row index (vo_al.idindex)
      iterations/001/      artefacts of iteration 1: model.pt, scores.h5,
                           query.json, estimate.json, metrics.json,
                           simulation.json (vo-al simulate), done
      iterations/002/ ...

An iteration counts once its ``done`` marker exists, so a kill in the middle
of one leaves the session as it was before it. The human's labels, from any
door (CLI, viewer, TOPCAT, SPLAT-VO, a file), go through :meth:`Session.label`,
which checks them against the session's classes and the pool. See
``docs/session.md``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy.stats import binomtest

from .atomic import write_text_atomic
from .idindex import IdIndex, read_rows
from .labellog import Entry, LabelLog, utc_now
from .options import CONFIG_VERSION, SessionConfig
from .pool import PoolReader
from .preprocess import Quality

__all__ = [
    "CONFIG_VERSION",
    "ITERATION_FILES",
    "SessionConfig",
    "Session",
    "SessionError",
    "LabelRefused",
    "precision_estimate",
]


#: File names inside ``iterations/NNN/``.
ITERATION_FILES = {
    "checkpoint": "model.pt",
    "scores": "scores.h5",
    "query": "query.json",
    "estimate": "estimate.json",
    "metrics": "metrics.json",
    "simulation": "simulation.json",
    "done": "done",
}

_CONFIG = "config.json"
_LOG = "labels.sqlite"
_INDEX = "pool-index.bin"
#: The index cache of vo-al before 2026-11-30 (loaded whole; 16 bytes per spectrum).
_OLD_INDEX = "pool-index.npz"
_ITERATIONS = "iterations"
_BATCH_KINDS = ("query", "estimate")

#: Roles of a spectrum (:meth:`Session.roles`), recorded as a label's purpose.
QUERY, ESTIMATE, BROWSE = "query", "estimate", "browse"


class SessionError(Exception):
    """A directory is not a session, or a session cannot be created."""


class LabelRefused(ValueError):
    """A label was not recorded; the message says what and why.

    Parameters
    ----------
    reason : str
        What was refused and why.
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _preprocess_difference(train: dict, pool: dict) -> list[str]:
    """``name (train X, pool Y)`` for every setting that differs."""
    return [f"{key} (train {train.get(key, 'missing')!r}, pool {pool.get(key, 'missing')!r})"
            for key in sorted(set(train) | set(pool)) if train.get(key) != pool.get(key)]


def _check_training_set(config: SessionConfig, train: PoolReader, pool: PoolReader):
    """Refuse a training set that cannot be used with this pool and these classes."""
    difference = _preprocess_difference(train.preprocess_attrs, pool.preprocess_attrs)
    if difference:
        raise SessionError(
            f"the training set {train.path} and the pool {pool.path} were preprocessed with "
            f"different settings: {'; '.join(difference)}; rebuild one with the other's settings")
    if train.class_names is None:
        raise SessionError(f"the training set {train.path} has no labels: build it with --labels")
    unknown = [n for n in train.class_names if n.casefold() not in _class_keys(config)]
    if unknown:
        raise SessionError(
            f"training classes {unknown} are not session classes {config.class_names}: "
            f"rename them or map them with aliases (now {config.aliases})")


def _class_keys(config: SessionConfig) -> set[str]:
    return {n.casefold() for n in [*config.class_names, *config.aliases]}


def precision_estimate(predicted, labelled, class_index, confidence: float = 0.95):
    """Precision among spectra predicted as a class, with its exact
    (Clopper–Pearson) binomial interval.

    The estimate samples are small (30 spectra) and their precision is
    often near 0 or 1, where the exact interval keeps its coverage and
    normal-approximation intervals do not.

    Parameters
    ----------
    predicted, labelled : array-like of int
        Predicted and human class indices of the same spectra.
    class_index : int or sequence of int
        The class; with several, a spectrum predicted as any of them counts
        and is correct when its label equals its prediction (the paper's
        accuracy on spectra predicted as interesting).
    confidence : float
        Coverage of the interval.

    Returns
    -------
    precision, low, high : float
        NaN, 0 and 1 when no spectrum was predicted as the class.
    n : int
        Spectra predicted as the class.

    Examples
    --------
    >>> p, low, high, n = precision_estimate([1] * 30, [1] * 27 + [0] * 3, 1)
    >>> round(p, 3), round(low, 3), round(high, 3), n
    (0.9, 0.735, 0.979, 30)
    """
    predicted, labelled = np.asarray(predicted), np.asarray(labelled)
    chosen = np.isin(predicted, np.atleast_1d(class_index))
    n = int(chosen.sum())
    if n == 0:
        return math.nan, 0.0, 1.0, 0
    correct = int((labelled[chosen] == predicted[chosen]).sum())
    interval = binomtest(correct, n).proportion_ci(confidence, method="exact")
    return correct / n, float(interval.low), float(interval.high), n


def _read_config(directory) -> SessionConfig:
    """config.json, with each pool path where the file now is.

    The absolute path wins while it exists (the session moved alone);
    otherwise the relative one (the session moved with its survey).
    """
    path = Path(directory) / _CONFIG
    if not path.is_file():
        raise SessionError(f"{directory} is not a vo-al session (no {_CONFIG})")
    try:
        config = SessionConfig.from_json(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise SessionError(f"{path}: {exc}") from None
    found = {}
    for name in ("train", "pool"):
        absolute, relative = getattr(config, f"{name}_path"), getattr(config, f"{name}_relative")
        moved = os.path.normpath(Path(directory).absolute() / relative) if relative else ""
        if not Path(absolute).is_file() and moved and Path(moved).is_file():
            found[f"{name}_path"] = moved
    return replace(config, **found)


def _write_config(directory, config: SessionConfig):
    """config.json, with each pool's path relative to the session as well."""
    here = Path(directory).resolve()
    config = replace(config, train_relative=os.path.relpath(config.train_path, here),
                     pool_relative=os.path.relpath(config.pool_path, here))
    write_text_atomic(Path(directory) / _CONFIG, config.to_json())


class Session:
    """One active-learning session, stored in a directory.

    Use :meth:`create` or :meth:`open`; close it (or use ``with``) to close
    the label log.

    Attributes
    ----------
    directory : Path
    config : SessionConfig
    log : LabelLog
    """

    def __init__(self, directory, config: SessionConfig):
        self.directory = Path(directory)
        self.config = config
        self.log = LabelLog(self.directory / _LOG)
        self._index: IdIndex | None = None
        self._index_lock = threading.Lock()
        self._roles: tuple[int, dict] = (-1, {})  # (completed iterations, roles)

    # ------------------------------------------------------------------
    # Creating, opening, closing

    @classmethod
    def create(cls, directory, train_path, pool_path, **config) -> "Session":
        """Start a session in a new (or empty) directory.

        Parameters
        ----------
        directory : path-like
        train_path : path-like
            A labelled pool (``label`` dataset, ``class_names`` attribute)
            preprocessed exactly like the pool.
        pool_path : path-like
            The pool to search.
        **config
            Other :class:`SessionConfig` fields.

        Returns
        -------
        Session

        Raises
        ------
        SessionError
            When the directory is not empty, or the training set differs
            from the pool in its preprocessing, has no labels, or has
            classes the session does not know.
        """
        directory = Path(directory)
        if directory.exists() and any(directory.iterdir()):
            raise SessionError(f"{directory} is not empty: a session needs a new directory")
        with PoolReader(train_path) as train, PoolReader(pool_path) as pool:
            settings = SessionConfig(train_path=str(Path(train_path).resolve()),
                                     pool_path=str(Path(pool_path).resolve()),
                                     preprocess=pool.preprocess_attrs, **config)
            _check_training_set(settings, train, pool)
        (directory / _ITERATIONS).mkdir(parents=True, exist_ok=True)
        _write_config(directory, settings)
        return cls(directory, _read_config(directory))

    @classmethod
    def open(cls, directory) -> "Session":
        """Open an existing session.

        Raises
        ------
        SessionError
            When the directory holds no session or an unreadable config, or
            its pool or training set is missing (the message gives the fix).
        """
        config = _read_config(directory)
        for name, what in (("pool", config.pool_path), ("train", config.train_path)):
            if not Path(what).is_file():
                raise SessionError(
                    f"{directory}: its {name} file {what} is missing (moved or deleted?). "
                    f"Put it back, or tell the session where it is now: "
                    f"vo-al relocate {directory} --{name} NEW_PATH")
        return cls(directory, config)

    @classmethod
    def relocate(cls, directory, pool_path=None, train_path=None) -> "Session":
        """Point a session at its pool or training set in a new place, and open it.

        Each file must be preprocessed exactly as the session's pool, and a
        new pool must hold every spectrum the session has labelled.

        Raises
        ------
        SessionError
            When a file differs, or is not a pool.
        """
        config = _read_config(directory)
        changes = {}
        for name, path in (("pool_path", pool_path), ("train_path", train_path)):
            if path is not None:
                with PoolReader(path) as reader:
                    differences = _preprocess_difference(reader.preprocess_attrs,
                                                         config.preprocess)
                if differences:
                    raise SessionError(f"{path} was preprocessed differently from the "
                                       f"session: {', '.join(differences)}")
                changes[name] = str(Path(path).resolve())
        if "pool_path" in changes:
            with LabelLog(Path(directory) / _LOG) as log:
                labelled = sorted(log.current())
            index = IdIndex.build(changes["pool_path"], Path(directory) / _INDEX)  # the next one
            rows = index.rows(labelled) if labelled else []
            missing = [i for i, r in zip(labelled, rows) if r < 0]
            if missing:
                raise SessionError(f"{pool_path} lacks {len(missing)} labelled spectra of the "
                                   f"session, e.g. {missing[:3]}: it is another pool")
        _write_config(directory, replace(config, **changes))
        return cls.open(directory)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Close the label log."""
        self.log.close()

    def pool(self) -> PoolReader:
        """The pool, opened for reading (a context manager)."""
        return PoolReader(self.config.pool_path)

    @property
    def index(self) -> IdIndex:
        """The pool's id index, built (or loaded from its cache) on first use."""
        with self._index_lock:
            if self._index is None:
                self._index = IdIndex.build(self.config.pool_path, self.directory / _INDEX)
                (self.directory / _OLD_INDEX).unlink(missing_ok=True)
            return self._index

    # ------------------------------------------------------------------
    # Iterations

    def iteration_dir(self, n: int) -> Path:
        """``iterations/NNN`` of iteration ``n`` (1 is the first); not created."""
        return self.directory / _ITERATIONS / f"{n:03d}"

    def iteration_file(self, n: int, kind: str) -> Path:
        """Path of one artefact of iteration ``n``; ``kind`` is a key of
        :data:`ITERATION_FILES`."""
        return self.iteration_dir(n) / ITERATION_FILES[kind]

    @property
    def iteration(self) -> int:
        """Completed iterations: the largest n with iterations 1..n all done."""
        n = 0
        while self.iteration_file(n + 1, "done").exists():
            n += 1
        return n

    def scored_iteration(self, iteration: int | None = None) -> int:
        """``iteration``, or the latest completed one, checked to have scores.

        Raises
        ------
        ValueError
            When no iteration is complete yet (or the one asked for is not).
        """
        latest = self.iteration
        n = latest if iteration is None else iteration
        if not 1 <= n <= latest:
            raise ValueError("the session has no completed iteration: run `vo-al iterate` first"
                             if latest < 1 else
                             f"iteration {n} is not complete: iterations 1-{latest} are")
        return n

    def begin_iteration(self) -> int:
        """Prepare the directory of the next iteration and return its number.

        Leftovers of an interrupted attempt at the same iteration are removed.
        """
        n = self.iteration + 1
        shutil.rmtree(self.iteration_dir(n), ignore_errors=True)
        self.iteration_dir(n).mkdir(parents=True)
        return n

    def discard_iteration(self, n: int):
        """Remove the folder of iteration ``n`` unless it is done (an
        interrupted attempt); a completed iteration is never removed."""
        if not self.iteration_file(n, "done").exists():
            shutil.rmtree(self.iteration_dir(n), ignore_errors=True)

    def mark_done(self, n: int):
        """Mark iteration ``n`` complete; it must be the next one.

        Raises
        ------
        ValueError
            When ``n`` is not ``iteration + 1`` or its directory is missing.
        """
        if n != self.iteration + 1 or not self.iteration_dir(n).is_dir():
            raise ValueError(f"iteration {n} cannot be marked done: {self.iteration} are done "
                             f"and only the next one, with its directory, can be")
        write_text_atomic(self.iteration_file(n, "done"), json.dumps({"time": utc_now()}) + "\n")

    def write_batch(self, n: int, kind: str, ids):
        """Store iteration ``n``'s query or estimate list (a JSON list of ids).

        Parameters
        ----------
        n : int
        kind : {'query', 'estimate'}
        ids : iterable of str
        """
        self._batch_kind(kind)
        self.iteration_dir(n).mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.iteration_file(n, kind), json.dumps([str(i) for i in ids]) + "\n")

    def read_batch(self, n: int, kind: str) -> list[str]:
        """Iteration ``n``'s query or estimate list; empty when there is none."""
        path = self.iteration_file(n, self._batch_kind(kind))
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []

    @staticmethod
    def _batch_kind(kind: str) -> str:
        if kind not in _BATCH_KINDS:
            raise ValueError(f"batch kind must be one of {_BATCH_KINDS}, not {kind!r}")
        return kind

    def write_record(self, n: int, kind: str, record: dict):
        """Store a JSON record of iteration ``n``.

        Parameters
        ----------
        n : int
        kind : {'metrics', 'simulation'}
            What the loop measured, or a simulated oracle's judgement of it.
        record : dict
            Any JSON-serialisable dict.
        """
        self.iteration_dir(n).mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.iteration_file(n, kind), json.dumps(record, indent=2) + "\n")

    def read_record(self, n: int, kind: str) -> dict:
        """A record written by :meth:`write_record`; empty when there is none."""
        path = self.iteration_file(n, kind)
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    def write_metrics(self, n: int, metrics: dict):
        """Store iteration ``n``'s metrics (any JSON-serialisable dict)."""
        self.write_record(n, "metrics", metrics)

    def read_metrics(self, n: int) -> dict:
        """Iteration ``n``'s metrics; empty when there are none."""
        return self.read_record(n, "metrics")

    def learning_curve(self) -> list[dict]:
        """The metrics of every completed iteration, each with its ``iteration``."""
        return [{**self.read_metrics(n), "iteration": n} for n in range(1, self.iteration + 1)]

    # ------------------------------------------------------------------
    # Labels

    def label(self, spectrum_id: str, class_name: str, *, source: str, sender: str = "",
              iteration: int | None = None) -> Entry:
        """Check and record one answer.

        Parameters
        ----------
        spectrum_id : str
            The pool's id (surrounding blanks are ignored).
        class_name : str
            A class, an alias (recorded as its class) or the skip name
            (recorded as a skip); any case.
        source, sender : str
            Provenance: the door (``cli``, ``viewer``, ``topcat``, ...) and
            the user or SAMP client.
        iteration : int, optional
            Default: :attr:`iteration`, the last completed iteration, whose
            lists the user is answering.

        Returns
        -------
        Entry
            The committed log entry. Its ``purpose`` is the spectrum's role
            (:meth:`roles`), decided here whatever the door.

        Raises
        ------
        LabelRefused
            For an empty id, an unknown class, an id not in the pool, or an
            unusable spectrum.
        """
        accepted, refused = self.label_many([(spectrum_id, class_name)], source=source,
                                            sender=sender, iteration=iteration)
        if refused:
            raise LabelRefused(refused[0][1])
        return accepted[0]

    def label_many(self, pairs, *, source: str, sender: str = "",
                   iteration: int | None = None) -> tuple[list[Entry], list[tuple[str, str]]]:
        """Check many answers and record the valid ones in one transaction.

        Parameters
        ----------
        pairs : iterable of (str, str)
            ``(spectrum_id, class_name)``, as for :meth:`label`.
        source, sender, iteration
            As for :meth:`label`.

        Returns
        -------
        accepted : list of Entry
        refused : list of (str, str)
            ``(spectrum_id, reason)`` of the answers not recorded.
        """
        pairs = [(str(i).strip(), c) for i, c in pairs]
        iteration = self.iteration if iteration is None else iteration
        reasons = self._refusals(pairs)
        roles = self.roles()
        rows = [self._row(i, c, source, sender, roles.get(i, BROWSE), iteration)
                for (i, c), reason in zip(pairs, reasons) if reason is None]
        refused = [(i, reason) for (i, _), reason in zip(pairs, reasons) if reason is not None]
        return self.log.append_many(rows), refused

    def _row(self, spectrum_id, class_name, source, sender, purpose, iteration) -> dict:
        """Keyword arguments of ``LabelLog.append`` for a checked answer."""
        canonical = self.config.canonical(class_name)
        skip = canonical == self.config.skip_name
        return dict(spectrum_id=spectrum_id, label=None if skip else canonical,
                    action="skip" if skip else "label", source=source, sender=sender,
                    iteration=iteration, purpose=purpose)

    def _refusals(self, pairs) -> list[str | None]:
        """For each ``(id, class)``: why it is refused, or None."""
        reasons = [self._class_refusal(c) or (None if i else f"empty spectrum id (class {c!r})")
                   for i, c in pairs]
        unchecked = [k for k, reason in enumerate(reasons) if reason is None]
        for k, reason in zip(unchecked, self._pool_refusals([pairs[k][0] for k in unchecked])):
            reasons[k] = reason
        return reasons

    def _class_refusal(self, class_name) -> str | None:
        try:
            self.config.canonical(class_name)
            return None
        except KeyError:
            aliases = ", ".join(f"{a} → {c}" for a, c in self.config.aliases.items())
            return (f"unknown class {class_name!r}: the classes are "
                    f"{', '.join(self.config.class_names)} (aliases: {aliases or 'none'}; "
                    f"{self.config.skip_name!r} records a skip)")

    def _pool_refusals(self, ids: list[str]) -> list[str | None]:
        """For each id: not in the pool, unusable, or None."""
        rows = self.index.rows(ids)
        quality = np.zeros(len(ids), dtype=np.uint8)
        if (rows >= 0).any():
            with self.pool() as pool:
                quality[rows >= 0] = read_rows(pool, "quality", rows[rows >= 0])
        return [
            f"{i!r} is not in the pool: labels for spectra from elsewhere are refused" if r < 0
            else f"{i!r} is unusable ({Quality(int(q)).reason}) and cannot be labelled" if q
            else None
            for i, r, q in zip(ids, rows, quality)
        ]

    def roles(self) -> dict[str, str]:
        """The role of every spectrum that any completed iteration drew.

        The one rule for what a label is used for, whatever door it comes
        through and whenever: a spectrum ever drawn into an estimate sample
        has the role ``estimate`` for good (its label counts for the
        precision estimate of the iteration that drew it and is never
        trained on); one drawn into a query batch has the role ``query``.
        Spectra not listed here are ``browse`` (labelled on the user's own
        initiative) and are trained on like query answers.

        Returns
        -------
        dict
            ``spectrum_id -> 'estimate' | 'query'``.
        """
        latest = self.iteration
        with self._index_lock:
            if self._roles[0] != latest:  # lists change only when an iteration completes
                roles = {}
                for n in range(1, latest + 1):
                    roles.update({i: QUERY for i in self.read_batch(n, "query")
                                  if i not in roles})
                    roles.update({i: ESTIMATE for i in self.read_batch(n, "estimate")})
                self._roles = (latest, roles)
            return dict(self._roles[1])

    def undo(self, *, source: str, sender: str = "",
             spectrum_id: str | None = None) -> Entry | None:
        """Take back the latest answer (optionally of one spectrum).

        Returns
        -------
        Entry or None
            The undo entry, or None when there was nothing to undo.
        """
        return self.log.undo(source=source, sender=sender, spectrum_id=spectrum_id,
                             iteration=self.iteration)

    def training_labels(self) -> tuple[np.ndarray, np.ndarray]:
        """The pool spectra to train on, from the labels in force.

        Skips, undone labels and every spectrum whose role is ``estimate``
        (:meth:`roles`: drawn into any iteration's estimate sample, whenever
        and through whichever door it was answered) are left out. The
        training pool's own labels are not included.

        Returns
        -------
        rows : ndarray of int64
            Pool rows, in the order of the log.
        classes : ndarray of int64
            Class indices into ``config.class_names``.

        Raises
        ------
        SessionError
            When a labelled spectrum is no longer in the pool (the pool file
            was replaced).
        """
        roles = self.roles()
        entries = [e for e in self.log.current().values()
                   if e.action == "label" and roles.get(e.spectrum_id) != ESTIMATE]
        rows = self.index.rows([e.spectrum_id for e in entries])
        if (rows < 0).any():
            missing = [e.spectrum_id for e, r in zip(entries, rows) if r < 0]
            raise SessionError(f"{len(missing)} labelled spectra are not in the pool "
                               f"{self.config.pool_path} any more, e.g. {missing[:5]}")
        classes = np.array([self.config.class_index(e.label) for e in entries], dtype=np.int64)
        return rows, classes

    def estimate_labels(self, n: int) -> dict[str, int]:
        """Labels in force for iteration ``n``'s estimate list.

        Returns
        -------
        dict
            ``spectrum_id -> class index`` in the list's order, for the ids
            labelled so far (skipped ones are left out).
        """
        current = self.log.current()
        return {i: self.config.class_index(current[i].label)
                for i in self.read_batch(n, "estimate")
                if i in current and current[i].action == "label"}
