"""Sending the session to peers: tables, spectra, rows and positions.

Every method writes what the peers need under the run's
:class:`~vo_al.samp.files.PeerFiles` folder and makes a SAMP call whose
responses fill the returned :class:`~vo_al.samp.bridge.Pending` (and reach
the owner as :class:`~vo_al.samp.inbox.Response` items). Writing a large
table reads many spectrum files: run :meth:`Publisher.send_table` on a
worker thread in the GUI.

SDM files of the full spectra are written for the first ``access_limit``
rows of a table (the candidate list is sorted by the probability of being
interesting); later rows carry an empty access URL, their spectra can be
sent one by one with :meth:`Publisher.send_spectrum`.
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
from collections import deque

from ..cancel import check_cancel
from ..idindex import read_rows
from ..session import Session
from ..spectra import SpectrumReadError, read_spectrum
from .bridge import Pending, SampBridge
from .files import PeerFiles
from .messages import highlight_row, load_spectrum, load_table, point_at, select_rows
from .sdm import FORMATS, full_spectrum, sdm_meta, window_spectrum, write_sdm
from .tables import SentTable, TableRegistry, add_access_columns, make_table_id, peer_table

__all__ = ["Publisher", "VARIANTS"]

_log = logging.getLogger(__name__)

#: What :meth:`Publisher.send_spectrum` can send.
VARIANTS = ("full", "window")

#: Columns that, with the ids, make a table's identity.
_LABEL_COLUMNS = ("label", "label_source", "label_sender", "label_time")
#: And the cross-match columns (known, object_id, NAME_id, NAME_type,
#: NAME_sep_arcsec): like labels, they change within an iteration.
_MATCH_SUFFIXES = ("known", "_id", "_type", "_sep_arcsec")


class Publisher:
    """Sends tables and spectra of one session through a bridge.

    Parameters
    ----------
    session : Session
    bridge : SampBridge
    files : PeerFiles
    tables : TableRegistry
    access_limit : int
        Rows of a table that get an SDM file and an access URL.
    keep_spectra : int
        Spectra sent one by one whose files are kept for the peers.
    """

    def __init__(self, session: Session, bridge: SampBridge, files: PeerFiles,
                 tables: TableRegistry, *, access_limit: int = 500, keep_spectra: int = 16):
        self.session = session
        self._bridge = bridge
        self._files = files
        self._tables = tables
        self.access_limit = access_limit
        self._sent_spectra: deque = deque()
        self._keep_spectra = keep_spectra
        self._lock = threading.Lock()

    # ------------------------------------------------------------------
    # Tables

    def _spectrum_file(self, spectrum_id: str, source: str):
        key = ("sdm", spectrum_id, "full", "fits")
        path = self._files.acquire(
            key, FORMATS["fits"][1],
            lambda p: write_sdm(full_spectrum(read_spectrum(source)), p, "fits"))
        return key, self._files.url(path)

    def _access(self, ids, sources, cancel) -> tuple[list[str], list]:
        urls, keys = [], []
        try:
            for spectrum_id, source in zip(ids[:self.access_limit], sources):
                check_cancel(cancel, "writing the spectrum files")
                key, url = self._access_file(spectrum_id, source)
                urls.append(url)
                keys += [key] if key else []
        except BaseException:
            for held in keys:
                self._files.release(held)
            raise
        return urls + [""] * (len(ids) - len(urls)), keys

    def _access_file(self, spectrum_id: str, source) -> tuple:
        try:
            return self._spectrum_file(spectrum_id, str(source))
        except (SpectrumReadError, OSError) as exc:
            _log.warning("no SDM file for %s: %s", spectrum_id, exc)
            return None, ""

    def prepare_table(self, kind: str = "candidates", iteration: int | None = None,
                      cancel: threading.Event | None = None) -> SentTable:
        """Write a peer table and its spectrum files, and remember it.

        Parameters
        ----------
        kind : {'candidates', 'query'}
        iteration : int, optional
            Default: the latest completed one.
        cancel : threading.Event, optional
            Checked before each spectrum file; when set, the files written
            are removed and :class:`vo_al.cancel.Cancelled` is raised.

        Returns
        -------
        SentTable

        Raises
        ------
        ValueError
            When the session has no completed iteration.
        Cancelled
        """
        n = iteration or self.session.iteration
        table = peer_table(self.session, kind, n)
        ids = tuple(str(i) for i in table["id"])
        urls, keys = self._access(ids, table["source"], cancel)
        add_access_columns(table, urls)
        key = ("table", secrets.token_hex(8))
        try:
            path = self._files.acquire(key, FORMATS["votable"][1],
                                       lambda p: table.write(p, format="votable"))
        except BaseException:
            for held in keys:
                self._files.release(held)
            raise
        changing = [c for c in table.colnames
                    if c in _LABEL_COLUMNS or c.endswith(_MATCH_SUFFIXES)]
        content = [*ids, *(str(v) for name in changing for v in table[name])]
        sent = SentTable(make_table_id(self.session.directory, n, kind, content), kind, n,
                         f"vo-al {kind}, iteration {n}", self._files.url(path), ids,
                         (key, *keys))
        self._tables.add(sent)
        return sent

    def send_table(self, kind: str = "candidates", recipient: str | None = None,
                   iteration: int | None = None,
                   cancel: threading.Event | None = None) -> tuple[SentTable, Pending]:
        """Send the candidate list or the query batch (``table.load.votable``).

        Parameters
        ----------
        kind : {'candidates', 'query'}
        recipient : str, optional
            A client id; default: every client subscribed.
        iteration : int, optional
        cancel : threading.Event, optional
            As for :meth:`prepare_table`.

        Returns
        -------
        SentTable, Pending
        """
        sent = self.prepare_table(kind, iteration, cancel)
        return sent, self._bridge.call(load_table(sent.url, sent.table_id, sent.name), recipient)

    # ------------------------------------------------------------------
    # Rows and positions

    def highlight(self, spectrum_id: str, recipient: str | None = None) -> list[Pending]:
        """Highlight a spectrum's row in the newest table of each kind holding it."""
        return [self._bridge.call(highlight_row(table.table_id, table.url, row), recipient)
                for table, row in self._tables.containing(spectrum_id)]

    def select(self, spectrum_ids, recipient: str | None = None) -> list[Pending]:
        """Select spectra's rows (``table.select.rowList``) in the tables holding them."""
        spectrum_ids = [str(i) for i in spectrum_ids]
        by_table = {}
        for spectrum_id in spectrum_ids:
            for table, row in self._tables.containing(spectrum_id):
                by_table.setdefault(table.table_id, (table, []))[1].append(row)
        return [self._bridge.call(select_rows(table.table_id, table.url, rows), recipient)
                for table, rows in by_table.values()]

    def _pool_values(self, spectrum_id: str, columns) -> dict:
        row = int(self.session.index.rows([spectrum_id])[0])
        if row < 0:
            raise ValueError(f"{spectrum_id!r} is not in the pool")
        with self.session.pool() as pool:
            values = {name: read_rows(pool, name, [row])[0] for name in columns}
            if "spectra" in columns:
                values["wavelength"] = pool.wavelength
        return values

    def point_at(self, spectrum_id: str, recipient: str | None = None) -> Pending | None:
        """Point sky viewers at a spectrum's object (``coord.pointAt.sky``).

        Returns None when its position is unknown.
        """
        values = self._pool_values(spectrum_id, ("ra", "dec"))
        ra, dec = float(values["ra"]), float(values["dec"])
        if not (math.isfinite(ra) and math.isfinite(dec)):
            return None
        return self._bridge.call(point_at(ra, dec), recipient)

    # ------------------------------------------------------------------
    # Spectra

    def _sdm(self, spectrum_id: str, variant: str):
        if variant == "full":
            source = self._pool_values(spectrum_id, ("source",))["source"]
            return full_spectrum(read_spectrum(str(source)))
        values = self._pool_values(spectrum_id, ("spectra", "designation", "ra", "dec"))
        medium = "vacuum" if self.session.config.preprocess.get("vacuum", 1) else "air"
        return window_spectrum(str(values["designation"]) or spectrum_id, values["wavelength"],
                               values["spectra"], medium, float(values["ra"]),
                               float(values["dec"]))

    def send_spectrum(self, spectrum_id: str, variant: str = "full", fmt: str = "fits",
                      recipient: str | None = None) -> Pending:
        """Send a pool spectrum (``spectrum.load.ssa-generic``) as an SDM file.

        Parameters
        ----------
        spectrum_id : str
        variant : {'full', 'window'}
            The original spectrum with its error, or the preprocessed window.
        fmt : {'fits', 'votable'}
        recipient : str, optional

        Raises
        ------
        ValueError
            For an id not in the pool, or an unknown variant or format.
        SpectrumReadError, OSError
            When the original file cannot be read.
        """
        if variant not in VARIANTS or fmt not in FORMATS:
            raise ValueError(f"variant must be one of {VARIANTS} and fmt one of "
                             f"{sorted(FORMATS)}, not {variant!r}, {fmt!r}")
        sdm = self._sdm(spectrum_id, variant)
        key = ("sdm", spectrum_id, variant, fmt)
        url = self._files.url(self._files.acquire(key, FORMATS[fmt][1],
                                                  lambda p: write_sdm(sdm, p, fmt)))
        self._hold(key)
        return self._bridge.call(load_spectrum(url, f"{sdm.name} ({variant})",
                                               sdm_meta(sdm, url, fmt)), recipient)

    def _hold(self, key):
        with self._lock:
            self._sent_spectra.append(key)
            released = []
            while len(self._sent_spectra) > self._keep_spectra:
                released.append(self._sent_spectra.popleft())
        for old in released:
            self._files.release(old)

    def close(self):
        """Let go of the spectra sent one by one."""
        with self._lock:
            keys, self._sent_spectra = list(self._sent_spectra), deque()
        for key in keys:
            self._files.release(key)
