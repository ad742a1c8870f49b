"""``synth:`` sources: the files of a survey written without them, made again.

A pool written by :func:`~vo_al.synth.generate_pools` has no files: the
``source`` of each row names the generator call that made the spectrum::

    synth:lamost/<file name>?seed=S&fraction=F&index=I
    synth:ondrejov/<file name>?seed=S&index=I

``lamost/<file name>`` is the file :func:`~vo_al.synth.generate_survey`
would write for it (truth.csv's ``file``); the query holds the generator's
arguments (CCD700 spectra do not depend on the emission fraction).
:func:`vo_al.spectra.read_spectrum` reads such a source as a file: the
bytes are made again by :func:`regenerate_file` and read by the reader
that claims them, so the record is the one the file would give.

>>> from vo_al.spectra import read_spectrum
>>> read_spectrum("synth:ondrejov/ma210004.fits?seed=0&index=5").id  # doctest: +SKIP
'ma210004'
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from urllib.parse import parse_qsl

from ..spectra.errors import CorruptFile, UnsupportedFormat
from ..spectra.registry import SYNTH_PREFIX
from .ccd700_files import ccd700_file
from .lamost_files import lamost_file
from .survey import checked_arguments

__all__ = ["PARAMETERS", "SynthSource", "regenerate_file"]

#: The query parameters of each instrument's source, in the order written.
PARAMETERS = {"lamost": ("seed", "fraction", "index"), "ondrejov": ("seed", "index")}


@dataclass(frozen=True)
class SynthSource:
    """A generated spectrum: the file it would be and the generator's arguments.

    ``str()`` gives the ``synth:`` source; :meth:`parse` reads one.

    Parameters
    ----------
    file : str
        ``lamost/<name>`` or ``ondrejov/<name>``, as truth.csv's ``file``.
    seed, index : int
    emission_fraction : float or None
        The survey's; written only for LAMOST, whose spectra depend on it.
    """

    file: str
    seed: int
    index: int
    emission_fraction: float | None = None

    def __post_init__(self):
        if "fraction" in PARAMETERS[self.instrument] and self.emission_fraction is None:
            raise ValueError(f"a {self.instrument} source needs the emission fraction")

    @property
    def instrument(self) -> str:
        """``lamost`` or ``ondrejov``: the folder of :attr:`file`."""
        return self.file.split("/", 1)[0]

    def __str__(self) -> str:
        values = {"seed": self.seed, "index": self.index, "fraction": self.emission_fraction}
        query = "&".join(f"{name}={values[name]!r}" for name in PARAMETERS[self.instrument])
        return f"{SYNTH_PREFIX}{self.file}?{query}"

    @classmethod
    def parse(cls, source: str) -> SynthSource:
        """The generated spectrum a ``synth:`` source names.

        Raises
        ------
        vo_al.spectra.UnsupportedFormat
            For another instrument, a missing, unknown or invalid parameter
            (pools written before the source held ``fraction`` lack it).
        """
        file, _, query = source.removeprefix(SYNTH_PREFIX).partition("?")
        instrument, _, name = file.partition("/")
        if instrument not in PARAMETERS or not name or "/" in name:
            forms = " or ".join(f"{SYNTH_PREFIX}{i}/<file>?" + "&".join(f"{n}=…" for n in names)
                                for i, names in PARAMETERS.items())
            raise UnsupportedFormat(source, f"not a synthetic spectrum: expected {forms}")
        values = dict(parse_qsl(query, keep_blank_values=True))
        _check_names(source, instrument, values)
        try:
            seed, index = int(values["seed"]), int(values["index"])
            fraction = float(values["fraction"]) if "fraction" in values else None
            checked_arguments({"seed": seed, "index": index}, fraction or 0.0, 1)
        except ValueError as exc:
            raise UnsupportedFormat(source, f"invalid synthetic source: {exc}") from None
        return cls(file, seed, index, fraction)


def _check_names(source: str, instrument: str, values: dict):
    """Refuse a query without each of the instrument's parameters, or with others."""
    expected = PARAMETERS[instrument]
    missing = [name for name in expected if name not in values]
    unknown = sorted(set(values) - set(expected))
    if missing:
        why = (" (the survey's emission fraction: pools written by `vo-al synth --pool` "
               "before sources held it must be written again)" if "fraction" in missing else "")
        raise UnsupportedFormat(source, f"cannot regenerate this {instrument} spectrum: the "
                                f"source lacks {', '.join(missing)}{why}")
    if unknown:
        raise UnsupportedFormat(source, f"unknown parameter {', '.join(unknown)} in a "
                                f"synthetic {instrument} source (expected {', '.join(expected)})")


def regenerate_file(source: str) -> bytes:
    """The FITS file a ``synth:`` source stands for, made again.

    Parameters
    ----------
    source : str
        A pool's ``source`` written by :func:`~vo_al.synth.generate_pools`.

    Returns
    -------
    bytes
        The file :func:`~vo_al.synth.generate_survey` writes, uncompressed:
        a reader makes of it the record it makes of that file.

    Raises
    ------
    vo_al.spectra.UnsupportedFormat
        See :meth:`SynthSource.parse`; also for a seed or index too large
        for the generator.
    vo_al.spectra.CorruptFile
        When the generator makes another file of these arguments (a source
        edited, or written by another version of the generator).
    """
    wanted = SynthSource.parse(source)
    try:
        if wanted.instrument == "lamost":
            made = lamost_file(wanted.seed, wanted.index, wanted.emission_fraction)
        else:
            made = ccd700_file(wanted.seed, wanted.index)
    except (OverflowError, ValueError) as exc:  # a seed or index beyond the generator's range
        raise UnsupportedFormat(source, f"the generator cannot make this file: {exc}") from exc
    file = f"{wanted.instrument}/{made.name}"
    if file != wanted.file:
        raise CorruptFile(source, f"these arguments make {file}, not {wanted.file}: the source "
                          "was edited or written by another version of the generator")
    return gzip.decompress(made.data) if made.name.endswith(".gz") else made.data
