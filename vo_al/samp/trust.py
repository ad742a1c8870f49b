"""Which SAMP clients may change labels or make vo-al read local files.

Any client of a hub can send vo-al a message, and on a hub that offers
SAMP's Web Profile (TOPCAT's own hub does) that includes web pages the
user happens to open. Two guards keep them from training data and files:

1. vo-al's subscriptions mark every MType that changes labels or reads a
   URL as not harmless (``samp.mostly-harmless`` = ``"0"``, SAMP 1.3):
   a JSAMP hub (TOPCAT's included) then refuses to pass them on from
   Web Profile clients at all. See :data:`HARMLESS`.
2. vo-al itself takes labels (a label table, ``voal.label.set``/``undo``,
   an armed row selection) and reads ``file:`` URLs only for senders
   whose ``samp.name`` it trusts: by default the desktop tools of
   :data:`DESKTOP_TOOLS`, plus the names the user adds (``vo-al samp
   --trust NAME``, or the app's question when another client asks).

A ``samp.name`` is declared by the client itself, so (2) alone cannot
tell a web page calling itself ``topcat`` from TOPCAT; (1) can, on hubs
that honour it. Everything else (highlighting a row, selecting rows
without an armed label, classifying a spectrum from an ``http:`` URL)
is open to every client.
"""

from __future__ import annotations

from .messages import (LABEL_SET, LABEL_UNDO, SPECTRUM_LOAD, TABLE_HIGHLIGHT, TABLE_LOAD,
                       TABLE_SELECT)

__all__ = ["DESKTOP_TOOLS", "HARMLESS", "Trust", "subscription_annotations"]

#: ``samp.name`` of the desktop tools trusted by default (compared in any case).
DESKTOP_TOOLS = ("topcat", "stilts", "splat-vo", "splat", "aladin", "ds9", "gaia", "vo-al")

#: Whether each handled MType is harmless from any client (web pages included).
HARMLESS = {TABLE_HIGHLIGHT: True, TABLE_SELECT: False, TABLE_LOAD: False,
            SPECTRUM_LOAD: False, LABEL_SET: False, LABEL_UNDO: False}


def subscription_annotations(mtype: str) -> dict:
    """The annotation map declared with a subscription (both spellings JSAMP honours)."""
    if mtype not in HARMLESS:
        return {}
    flag = "1" if HARMLESS[mtype] else "0"
    return {"samp.mostly-harmless": flag, "x-samp.mostly-harmless": flag}


class Trust:
    """The ``samp.name`` values of the clients the user trusts.

    Parameters
    ----------
    names : iterable of str
        Trusted besides :data:`DESKTOP_TOOLS`.

    Examples
    --------
    >>> trust = Trust(["my-script"])
    >>> trust.trusts("TOPCAT"), trust.trusts("my-script"), trust.trusts("webpage")
    (True, True, False)
    """

    def __init__(self, names=()):
        self._names = {name.casefold() for name in DESKTOP_TOOLS}
        for name in names:
            self.add(name)

    def trusts(self, name: str) -> bool:
        """Whether a client of this ``samp.name`` is trusted."""
        return name.strip().casefold() in self._names

    def add(self, name: str):
        """Trust clients of this ``samp.name`` from now on.

        Raises
        ------
        ValueError
            For an empty name.
        """
        if not name.strip():
            raise ValueError("a trusted client needs a non-empty samp.name")
        self._names.add(name.strip().casefold())

    @property
    def names(self) -> list[str]:
        """The trusted names (case-folded), sorted."""
        return sorted(self._names)
