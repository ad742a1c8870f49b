"""Preferences kept between runs in ``QSettings`` (organisation ``vo-al``)."""

from __future__ import annotations

import getpass
from dataclasses import dataclass, fields

from PyQt5 import QtCore

from vo_al.workspace import IterationOptions, ScoreConfig

__all__ = ["ORGANISATION", "APPLICATION", "Preferences", "IterateSettings", "default_settings"]

ORGANISATION = "vo-al"
APPLICATION = "vo-al"


def default_settings() -> QtCore.QSettings:
    """The user's settings (``~/.config/vo-al/vo-al.conf`` on Linux)."""
    return QtCore.QSettings(ORGANISATION, APPLICATION)


@dataclass
class IterateSettings:
    """The "Iterate" options the user chose; 0 / '' mean "the session's".

    Parameters
    ----------
    query_size, estimate_size : int
    mode : {'scratch', 'warm', 'head'}
    max_epochs, patience : int
    diversity : {'', 'kmeans++', 'coreset'}
    mc_samples : int
        −1: the default (20 for BALD, else 0).
    precision : {'auto', 'fp32', 'bf16'}
    batch_size : int
    dask : str
        The Dask cluster to score on, as ``vo-al iterate --dask`` takes it:
        a scheduler address (``tcp://host:8786``) or ``local:N``; '' for
        none.
    dask_scheduler_file : str
        The scheduler file of a running cluster (used when ``dask`` is '').
    """

    query_size: int = 0
    estimate_size: int = 0
    mode: str = IterationOptions.mode
    max_epochs: int = IterationOptions.max_epochs
    patience: int = IterationOptions.patience
    diversity: str = ""
    mc_samples: int = -1
    precision: str = ScoreConfig.precision
    batch_size: int = ScoreConfig.batch_size
    dask: str = ""
    dask_scheduler_file: str = ""

    def options(self, strategy: str | None) -> IterationOptions:
        """The core's :class:`~vo_al.loop.IterationOptions` for a strategy."""
        return IterationOptions(
            strategy=strategy or None, query_size=self.query_size or None,
            estimate_size=self.estimate_size or None, mode=self.mode,
            max_epochs=self.max_epochs, patience=self.patience,
            diversity=self.diversity or None,
            mc_samples=None if self.mc_samples < 0 else self.mc_samples,
            score=ScoreConfig(precision=self.precision, batch_size=self.batch_size))

    def cluster(self) -> tuple[str | None, str | None]:
        """``(address, scheduler_file)`` for
        :meth:`~vo_al.workspace.Workspace.dask_client`; ``(None, None)``: no cluster."""
        if self.dask:
            return self.dask, None
        return None, self.dask_scheduler_file or None


class Preferences:
    """Typed access to the stored preferences.

    Parameters
    ----------
    settings : QSettings, optional
        Default: :func:`default_settings`. Tests pass an INI file.
    """

    def __init__(self, settings: QtCore.QSettings | None = None):
        self.settings = settings if settings is not None else default_settings()

    def _get(self, key: str, default, kind):
        return self.settings.value(key, default, type=kind)

    @property
    def last_session(self) -> str:
        """The session opened last ('' for none)."""
        return self._get("session/last", "", str)

    @last_session.setter
    def last_session(self, path: str):
        self.settings.setValue("session/last", str(path))

    @property
    def user(self) -> str:
        """The name recorded as the sender of labels."""
        return self._get("user/name", "", str) or getpass.getuser()

    @user.setter
    def user(self, name: str):
        self.settings.setValue("user/name", name.strip())

    @property
    def skip_answered(self) -> bool:
        """Moving on after a label jumps over spectra already answered."""
        return self._get("queue/skip_answered", True, bool)

    @skip_answered.setter
    def skip_answered(self, on: bool):
        self.settings.setValue("queue/skip_answered", bool(on))

    @property
    def candidates(self) -> int:
        """Rows of a candidate list."""
        return self._get("queue/candidates", 1000, int)

    @candidates.setter
    def candidates(self, n: int):
        self.settings.setValue("queue/candidates", int(n))

    @property
    def show_original(self) -> bool:
        """The viewer overlays the original spectrum."""
        return self._get("viewer/original", True, bool)

    @show_original.setter
    def show_original(self, on: bool):
        self.settings.setValue("viewer/original", bool(on))

    @property
    def samp_connect(self) -> bool:
        """Connect to a SAMP hub when a session opens."""
        return self._get("samp/connect", True, bool)

    @samp_connect.setter
    def samp_connect(self, on: bool):
        self.settings.setValue("samp/connect", bool(on))

    @property
    def samp_own_hub(self) -> bool:
        """Start vo-al's own hub when none runs."""
        return self._get("samp/own_hub", False, bool)

    @samp_own_hub.setter
    def samp_own_hub(self, on: bool):
        self.settings.setValue("samp/own_hub", bool(on))

    @property
    def strategy(self) -> str:
        """The query strategy chosen in the toolbar ('' = the session's)."""
        return self._get("iterate/strategy", "", str)

    @strategy.setter
    def strategy(self, name: str):
        self.settings.setValue("iterate/strategy", name)

    def iterate(self) -> IterateSettings:
        """The stored "Iterate" options."""
        values = {}
        for f in fields(IterateSettings):
            values[f.name] = self._get(f"iterate/{f.name}", f.default, type(f.default))
        return IterateSettings(**values)

    def set_iterate(self, options: IterateSettings):
        """Store the "Iterate" options."""
        for f in fields(IterateSettings):
            self.settings.setValue(f"iterate/{f.name}", getattr(options, f.name))

    def geometry(self) -> tuple[QtCore.QByteArray | None, QtCore.QByteArray | None]:
        """The main window's saved geometry and dock/toolbar state."""
        return (self.settings.value("window/geometry", None),
                self.settings.value("window/state", None))

    def set_geometry(self, geometry: QtCore.QByteArray, state: QtCore.QByteArray):
        """Store the main window's geometry and state."""
        self.settings.setValue("window/geometry", geometry)
        self.settings.setValue("window/state", state)
