"""What the viewer shows of one spectrum, gathered from the core (no Qt).

:func:`spectrum_record` collects the preprocessed window from the pool,
the queue row's probabilities and the spectrum's label history;
:func:`load_original` reads the original file (run it off the GUI thread)
and brings it to the pool's wavelength medium and flux scale, so both lines
can be drawn on one axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import Angle

from .labellog import Entry
from .pool import PoolReader
from .preprocess import PreprocessConfig, to_working_medium, vacuum_to_air
from .session import Session
from .spectra import SYNTH_PREFIX, read_spectrum

from .queues import Queue

__all__ = ["LINES_VACUUM", "SpectrumRecord", "OriginalSpectrum", "spectrum_record",
           "load_original", "marked_lines", "sexagesimal", "describe_entry"]

#: Lines marked in the viewer, vacuum wavelengths in Å.
LINES_VACUUM = {"Hα": 6564.61, "He I 6678": 6679.99}


@dataclass(frozen=True)
class SpectrumRecord:
    """One spectrum as the viewer shows it.

    Attributes
    ----------
    index : int
        Row of the queue.
    spectrum_id, designation, source, kind : str
        Pool id, designation, file path, and why it is listed.
    ra, dec : float
        Degrees, NaN when unknown.
    wavelength, flux : ndarray
        The preprocessed window the network sees (pool grid, [−1, 1]).
    class_names : list of str
    probs : ndarray
        The model's class probabilities (NaN when unscored).
    uncertainty : float
        Normalised entropy, 0–1 (NaN when unscored).
    history : list of Entry
        Every log entry of this spectrum, oldest first.
    skip_name : str
    """

    index: int
    spectrum_id: str
    designation: str
    source: str
    kind: str
    ra: float
    dec: float
    wavelength: np.ndarray
    flux: np.ndarray
    class_names: list
    probs: np.ndarray
    uncertainty: float
    history: list
    skip_name: str


@dataclass(frozen=True)
class OriginalSpectrum:
    """The original spectrum in the pool's medium, scaled like the window.

    Attributes
    ----------
    path : str
    wavelength : ndarray
        Å, in the pool's medium.
    flux : ndarray
        Scaled so that its minimum and maximum inside the window are −1
        and 1 (NaN at bad pixels).
    """

    path: str
    wavelength: np.ndarray
    flux: np.ndarray

    @property
    def name(self) -> str:
        """What to call it: the file's name; for a ``synth:`` source, the name
        of the file it stands for, marked as made again."""
        if self.path.startswith(SYNTH_PREFIX):
            return f"{Path(self.path.split('?', 1)[0]).name} (regenerated)"
        return Path(self.path).name


def spectrum_record(session: Session, pool: PoolReader, wavelength: np.ndarray, queue: Queue,
                    index: int) -> SpectrumRecord:
    """Gather what the viewer shows for row ``index`` of ``queue``.

    Parameters
    ----------
    session : Session
    pool : PoolReader
        The session's pool, kept open by the caller.
    wavelength : ndarray
        The pool's wavelength grid.
    queue : Queue
    index : int

    Returns
    -------
    SpectrumRecord
    """
    row = int(queue.rows[index])
    spectrum_id = queue.ids[index]
    return SpectrumRecord(
        index=index, spectrum_id=spectrum_id, designation=queue.designation[index],
        source=queue.source[index], kind=queue.kind[index], ra=float(queue.ra[index]),
        dec=float(queue.dec[index]), wavelength=wavelength,
        flux=pool.read("spectra", row, row + 1)[0], class_names=queue.class_names,
        probs=queue.probs[index], uncertainty=float(queue.uncertainty[index]),
        history=session.log.entries(spectrum_id=spectrum_id), skip_name=queue.skip_name)


def marked_lines(config: PreprocessConfig) -> dict[str, float]:
    """:data:`LINES_VACUUM` in the pool's working medium."""
    if config.vacuum:
        return dict(LINES_VACUUM)
    return {name: float(vacuum_to_air(w)) for name, w in LINES_VACUUM.items()}


def load_original(path: str, config: PreprocessConfig) -> OriginalSpectrum:
    """Read a spectrum file and bring it onto the viewer's axes.

    Parameters
    ----------
    path : str
        The pool's ``source`` of the spectrum.
    config : PreprocessConfig
        The pool's preprocessing: its medium and window.

    Returns
    -------
    OriginalSpectrum

    Raises
    ------
    vo_al.spectra.SpectrumReadError
        When the file is gone or unreadable.
    """
    spectrum = read_spectrum(path)
    wavelength = to_working_medium(spectrum.wavelength, spectrum.medium, config)
    flux = np.where(spectrum.bad, np.nan, spectrum.flux)
    inside = (wavelength >= config.wave_min) & (wavelength <= config.wave_max) & np.isfinite(flux)
    reference = flux[inside] if inside.any() else flux[np.isfinite(flux)]
    if reference.size and np.ptp(reference) > 0:
        low, high = float(reference.min()), float(reference.max())
        flux = 2.0 * (flux - low) / (high - low) - 1.0
    return OriginalSpectrum(str(path), wavelength, flux)


def sexagesimal(ra: float, dec: float) -> str:
    """``hh:mm:ss.ss ±dd:mm:ss.s`` for degrees, or '' when unknown."""
    if not (math.isfinite(ra) and math.isfinite(dec)):
        return ""
    seconds = round(ra % 360.0 * 240.0, 2) % 86400.0  # so 23:59:59.999 shows as 00:00:00.00
    alpha = Angle(seconds / 240.0, u.deg)
    delta = Angle(dec, u.deg)
    return (f"{alpha.to_string(unit=u.hourangle, sep=':', precision=2, pad=True)} "
            f"{delta.to_string(unit=u.deg, sep=':', precision=1, pad=True, alwayssign=True)}")


def describe_entry(entry: Entry, skip_name: str) -> str:
    """One line of a spectrum's history: time, answer, door/sender, purpose."""
    what = (entry.label if entry.action == "label" else skip_name if entry.action == "skip"
            else f"undo of #{entry.undoes}")
    by = entry.source + (f"/{entry.sender}" if entry.sender else "")
    purpose = f", {entry.purpose}" if entry.purpose else ""
    when = entry.time[:19].replace("T", " ")
    return f"{when}  {what} — {by} (iteration {entry.iteration}{purpose})"
