"""What the desktop app shows of the cross-match: the task that runs
:meth:`~vo_al.workspace.Workspace.crossmatch` in a job, and what the
spectra are known as (:class:`KnownAs`, read in a job after each match and
looked up as the user moves through the queue)."""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import numpy as np

from vo_al.workspace import Workspace

__all__ = ["KnownAs", "crossmatch_task", "describe_summaries"]


def crossmatch_task(workspace: Workspace, catalogues=None, refresh: bool = False):
    """A :class:`~vo_al.gui.workers.Job` task matching the candidates with
    catalogues (None: those matched before); it returns the
    :class:`~vo_al.crossmatch.MatchSummary` list."""
    def task(progress, cancel):
        def report(name, done, total):
            progress("crossmatch", done, total,
                     f"cross-match with {name}: {done:,} of {total:,} candidates")

        return workspace.crossmatch(catalogues, refresh=refresh, progress=report,
                                    cancel=cancel)

    return task


def describe_summaries(summaries) -> str:
    """One line on what a cross-match did, per catalogue."""
    parts = [f"{s.catalogue.name}: {s.known:,} of {s.stored:,} candidates known "
             f"({s.queried:,} matched now)" for s in summaries]
    return "cross-match done: " + "; ".join(parts)


@dataclass(frozen=True)
class KnownAs:
    """The session's matches, as the window shows them.

    Attributes
    ----------
    catalogues : list of vo_al.catalogues.Catalogue
        The catalogues matched (empty: no cross-match yet).
    matches : dict
        Spectrum id → its matches (:meth:`Workspace.known_as`).
    known : frozenset of str
        Spectra whose object some catalogue knows (:meth:`Workspace.known_spectra`).
    """

    catalogues: list = field(default_factory=list)
    matches: dict = field(default_factory=dict)
    known: frozenset = frozenset()

    @classmethod
    def read(cls, workspace: Workspace) -> "KnownAs":
        """Read the session's matches (slow for large sessions: call it in a job)."""
        return cls(workspace.matched_catalogues(), workspace.known_as(),
                   frozenset(workspace.known_spectra()))

    def describe(self, spectrum_id: str) -> str:
        """What a spectrum is known as, as rich text ('' before any cross-match).

        For example ``simbad: gam Cas, Be*, 0.4″``, one entry per catalogue
        with an object within its radius, nearest first.
        """
        if not self.catalogues:
            return ""
        matches = self.matches.get(spectrum_id)
        if matches is None:
            return "<b>known as</b> <i>not cross-matched (not a candidate when matched)</i>"
        if matches:
            return "<b>known as</b> " + " · ".join(_match_text(m) for m in matches)
        if spectrum_id in self.known:
            return ("<b>known as</b> <i>nothing within the radius, but another spectrum of "
                    "its object is known</i>")
        names = ", ".join(c.name for c in self.catalogues)
        return f"<b>new</b>: in none of {html.escape(names)}"

    def hidden(self, ids) -> np.ndarray:
        """Which of ``ids`` belong to known objects."""
        ids = np.asarray(ids, dtype=str)
        if not self.known or not len(ids):
            return np.zeros(len(ids), bool)
        return np.isin(ids, np.array(sorted(self.known), dtype=str))


def _match_text(match: dict) -> str:
    words = [match["id"], match["type"], f"{match['sep_arcsec']:.1f}″"]
    return html.escape(f"{match['catalogue']}: " + ", ".join(w for w in words if w))
