"""Ondřejov 2-m CCD700 files: the IRAF 1-D image and the archive's SSAP/SDM table.

File names follow the observatory: before 2014 ``<year letter><month
letter><day><4-digit exposure>`` (``oe270005`` = 2005 May 27, exposure 5),
from 2014 ``a<YYYYMMDD><4-digit exposure>``. Twenty exposures a night, one
night every 12 days, so names are unique by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np

from . import names
from .fitsfile import Card, bintable_hdu, empty_primary, fits_bytes, image_hdu
from .instruments import Observation, observe_ccd700
from .stars import ONDREJOV_MIX, ONDREJOV_RANGES, class_for, draw_star, file_rng
from .truth import SynthFile, star_columns

__all__ = ["STREAM", "LAYOUTS", "era_and_layout", "Exposure", "exposure", "ccd700_file",
           "ccd700_spectrum"]

STREAM = 2
_NIGHT_STREAM = 12
LAYOUTS = ("ondrejov-iraf-image", "ondrejov-ssap-table")
_PER_NIGHT = 20
_NIGHTS_PER_CYCLE = 300
_NIGHT_SPACING = 12
_FIRST_NIGHT = {"old": date(2003, 1, 10), "new": date(2014, 1, 10)}
_DEC_MIN = -25.0
_UTYPE = "spec:spectrum.data.{}axis.value"


def era_and_layout(index: int) -> tuple[str, str]:
    """Set-up era (60 % 'old' 0.2567 Å/px, 40 % 'new') and layout of file ``index``."""
    era = "old" if index % 5 < 3 else "new"
    return era, LAYOUTS[index % 2]


@dataclass(frozen=True)
class Exposure:
    """Name, time and target of one CCD700 exposure."""

    name: str
    mjd_start: float
    exptime: float
    ra: float
    dec: float
    object: str

    @property
    def mjd_mid(self) -> float:
        """Modified Julian date of mid-exposure."""
        return self.mjd_start + self.exptime / 2.0 / 86400.0


def _rank(index: int, era: str) -> int:
    """Position of file ``index`` among the files of its era."""
    block, rest = divmod(index, 5)
    return block * 3 + rest if era == "old" else block * 2 + rest - 3


def exposure(seed: int, index: int, era: str, rng: np.random.Generator) -> Exposure:
    """The exposure (name, date, target) of CCD700 file ``index``.

    Parameters
    ----------
    seed, index : int
    era : {'old', 'new'}
    rng : numpy.random.Generator
        The file's generator (time of night, exposure time, target).

    Returns
    -------
    Exposure
    """
    night, number = divmod(_rank(index, era), _PER_NIGHT)
    cycle, slot = divmod(night, _NIGHTS_PER_CYCLE)
    night_rng = file_rng(seed, _NIGHT_STREAM, 2 * night + (era == "new"))
    day = _FIRST_NIGHT[era] + timedelta(
        days=slot * _NIGHT_SPACING + int(night_rng.integers(0, _NIGHT_SPACING)))
    sequence = cycle * _PER_NIGHT + number + 1
    if era == "old":
        name = (f"{chr(ord('a') + day.year - 1991)}{chr(ord('a') + day.month - 1)}"
                f"{day.day:02d}{sequence:04d}")
    else:
        name = f"a{day:%Y%m%d}{sequence:04d}"
    hours = 18.0 + 10.0 * number / _PER_NIGHT + float(rng.uniform(0.0, 0.4))
    mjd = (datetime(day.year, day.month, day.day) - names.MJD_EPOCH).days + hours / 24.0
    ra, dec = names.sky_position(rng, _DEC_MIN)
    return Exposure(name=name, mjd_start=mjd, exptime=float(rng.uniform(600.0, 3600.0)),
                    ra=ra, dec=dec, object=f"HD {int(rng.integers(1, 359_084))}")


def _iraf_cards(shot: Exposure, obs: Observation, rng) -> list:
    start = names.mjd_to_datetime(shot.mjd_start)
    end = names.mjd_to_datetime(shot.mjd_start + shot.exptime / 86400.0)
    old = obs.header["DETECTOR"].startswith("SITe")
    ra, dec = names.sexagesimal(shot.ra, shot.dec, plus_sign=bool(rng.random() < 0.5))
    step = float(obs.wave[1] - obs.wave[0])
    jd_mid = shot.mjd_mid + 2_400_000.5
    return [
        Card("ORIGIN", "NOAO-IRAF FITS Image Kernel July 2003", "FITS file originator"),
        Card("OBJECT", shot.object, "Title of observation"),
        Card("DATE", names.iso(shot.mjd_start + 2.0), "Date FITS file was generated"),
        Card("OBSERVAT", "ONDREJOV", "Name of observatory (IRAF style)"),
        Card("LATITUDE", 49.910555, "Telescope latitude  (degrees), +49:54:38.0"),
        Card("LONGITUD", 14.783611, "Telescope longitud  (degrees), +14:47:01.0"),
        Card("HEIGHT", 528, "Height above sea level [m]."),
        Card("IMAGETYP", "object", "Type of observation, eg. FLAT"),
        Card("FILENAME", f"{shot.name}.fit", "Original file name"),
        Card("TELESCOP", "ZEISS-2m", "2m Ondrejov observatory telescope"),
        Card("TELSYST", "COUDE", "Telescope setup - COUDE or CASSegrain"),
        Card("EXPTIME", round(shot.exptime, 3), "Length of observation excluding pauses"),
        Card("DATE-OBS", f"{start:%Y-%m-%d}" if old else f"{start:%Y-%m-%dT%H:%M:%S}",
             "UTC date start of observation"),
        Card("UT", f"{start:%H:%M:%S}", "UTC of  start of observation"),
        Card("TM_END", end.hour * 3600 + end.minute * 60 + end.second, f"{end:%H:%M:%S}"),
        Card("INSTRUME", "COUDE700", "Coude spectrograph setup - 1400/700mm focus"),
        Card("DETECTOR", obs.header["DETECTOR"], "Name of the detector"),
        Card("BUNIT", "ADU", "Unit of the array of image data"),
        Card("GAIN", 1.07, "Electrons per ADU"),
        Card("READNOIS", 7.0, "Readout noise in electrons per pix"),
        Card("SLITWID", 0.2, "Slit width in mm"),
        Card("COMPLAMP", "ThAr-BS/15mA", "Comparison arc setup"),
        Card("RA", ra, f"{shot.ra / 15.0:.6f}"),
        Card("DEC", dec, f"{shot.dec:.6f}"),
        Card("EQUINOX", 2000.0, "Equinox of RA and DEC"),
        Card("EPOCH", 2000.0, "Same as EQUINOX - for back compat."),
        Card("WCSDIM", 1),
        Card("LTM1_1", 1.0),
        Card("WAT0_001", "system=equispec"),
        Card("WAT1_001", "wtype=linear label=Wavelength units=angstroms"),
        Card("JD", round(shot.mjd_start + 2_400_000.5, 8)),
        Card("AIRMASS", round(float(rng.uniform(1.0, 2.0)), 6)),
        Card("CTYPE1", "LINEAR"),
        Card("CRVAL1", float(obs.wave[0])),
        Card("CRPIX1", 1.0),
        Card("CDELT1", step),
        Card("CD1_1", step),
        Card("DC-FLAG", 0),
        Card("HJD", round(jd_mid - 0.0016, 8)),
        Card("VHELIO", obs.header["VHELIO"]),
    ]


def _ssap_cards(shot: Exposure, obs: Observation) -> list:
    band = "6255-6767" if obs.header["DETECTOR"].startswith("SITe") else "6260-6735"
    slug = shot.object.lower().replace(" ", "")
    lo, hi = float(obs.wave[0]) * 1e-10, float(obs.wave[-1]) * 1e-10
    return [
        Card("TITLE", f"ccd700/data/{slug}/{band}/{shot.name}.fit"),
        Card("DS_IDPUB", f"ivo://asu.cas.cz/stel/ccd700/{shot.name}"),
        Card("DATE", names.iso(shot.mjd_start + 2.0)),
        Card("VODATE", names.iso(shot.mjd_start + 400.0, 6)),
        Card("SPECBAND", "Optical"),
        Card("OBJECT", shot.object),
        Card("SRCCLASS", "star"),
        Card("RA", shot.ra),
        Card("DEC", shot.dec),
        Card("APERTURE", 0.000167, "[deg]"),
        Card("TMID", round(shot.mjd_mid, 9), "[d]"),
        Card("TELAPSE", round(shot.exptime, 1), "[s]"),
        Card("SPEC_VAL", (lo + hi) / 2.0, "[m]"),
        Card("SPEC_BW", hi - lo, "[m]"),
        Card("TDMIN1", lo, "[m]"),
        Card("TDMAX1", hi, "[m]"),
        Card("RADECSYS", "ICRS"),
        Card("SPECSDIM", "Angstrom"),
        Card("VOSEGT", "Spectrum"),
        Card("VOPUB", "ivo://asu.cas.cz/org"),
        Card("DSSOURCE", "pointed"),
        Card("CRETYPE", "archival"),
        Card("FLUX_CAL", "UNCALIBRATED"),
        Card("SPEC_CAL", "ABSOLUTE"),
    ]


def _ssap_hdus(shot: Exposure, obs: Observation) -> bytes:
    columns = [("spectral", obs.wave.astype(">f8"), "Air wavelength"),
               ("flux", (obs.flux / obs.continuum).astype(">f8"), "Relative flux")]
    column_cards = [Card("TUNIT1", "Angstrom"), Card("TUTYP1", _UTYPE.format("spectral")),
                    Card("TUTYP2", _UTYPE.format("flux"))]
    primary = empty_primary([Card("DATE", names.iso(shot.mjd_start + 400.0)[:10],
                                  "Date file was written")])
    return primary + bintable_hdu(columns, _ssap_cards(shot, obs), column_cards)


def ccd700_file(seed: int, index: int) -> SynthFile:
    """Generate Ondřejov CCD700 file ``index`` of a survey.

    The class mix is that of the paper's training set
    (:data:`~vo_al.synth.stars.ONDREJOV_MIX`).

    Parameters
    ----------
    seed, index : int

    Returns
    -------
    SynthFile
    """
    rng, star, layout, shot, obs = _parts(seed, index)
    if layout == LAYOUTS[0]:
        data = image_hdu(obs.flux.astype(">f4"), _iraf_cards(shot, obs, rng), extend=False)
    else:
        data = _ssap_hdus(shot, obs)
    return SynthFile(f"{shot.name}.fits", fits_bytes(data), _truth_row(star, layout, shot, obs),
                     star, obs)


def _parts(seed: int, index: int):
    rng = file_rng(seed, STREAM, index)
    star = draw_star(rng, class_for(seed, STREAM, index, ONDREJOV_MIX), "ondrejov",
                     ONDREJOV_RANGES)
    era, layout = era_and_layout(index)
    shot = exposure(seed, index, era, rng)
    obs = observe_ccd700(rng, star, era, "iraf" if layout == LAYOUTS[0] else "ssap")
    return rng, star, layout, shot, obs


def _truth_row(star, layout: str, shot: Exposure, obs: Observation) -> dict:
    return {"id": shot.name, "layout": layout, "instrument": "ondrejov", "medium": "air",
            "gzip": 0, "ra": round(shot.ra, 6), "dec": round(shot.dec, 6),
            "object": shot.object, **star_columns(star, obs)}


def ccd700_spectrum(seed: int, index: int, source: str = ""):
    """CCD700 spectrum ``index`` as the reader would give it, without writing FITS.

    The same star and observation as :func:`ccd700_file`. IRAF image: flux
    rounded to float32, air wavelengths CRVAL1 + CDELT1·i from the header
    values, position parsed from the sexagesimal header strings; SSAP table:
    float64 air wavelengths and normalised flux, position in degrees. Ids are
    the reader's (FILENAME stem, last part of DS_IDPUB: both the exposure
    name).

    Parameters
    ----------
    seed, index : int
    source : str
        Stored as ``Spectrum.source`` (there is no file).

    Returns
    -------
    spectrum : vo_al.spectra.Spectrum
    row : dict
        The truth.csv row of the file (``file`` included, relative to OUTDIR).
    """
    from ..spectra.ondrejov import CCD700_RESOLVING_POWER, _sexagesimal
    from ..spectra.record import AIR, Spectrum

    _rng, star, layout, shot, obs = _parts(seed, index)
    if layout == LAYOUTS[0]:
        flux = obs.flux.astype(">f4").astype(np.float64)
        start, step = float(obs.wave[0]), float(obs.wave[1] - obs.wave[0])
        wave = start + step * (np.arange(flux.size, dtype=np.float64) + 1.0 - 1.0)
        ra_text, dec_text = names.sexagesimal(shot.ra, shot.dec, plus_sign=False)
        ra, dec = _sexagesimal(ra_text, "hourangle"), _sexagesimal(dec_text, "deg")
        kind = "ccd700-iraf"
    else:
        wave = obs.wave.astype(">f8").astype(np.float64)
        flux = (obs.flux / obs.continuum).astype(">f8").astype(np.float64)
        ra, dec, kind = float(shot.ra), float(shot.dec), "ccd700-sdm"
    spectrum = Spectrum(
        wavelength=wave, flux=flux, medium=AIR, format=kind, source=source, id=shot.name,
        object_name=shot.object, designation=shot.object, ra=ra, dec=dec,
        instrument="Ondrejov 2m CCD700", resolving_power=CCD700_RESOLVING_POWER,
    )
    row = {"file": f"ondrejov/{shot.name}.fits", **_truth_row(star, layout, shot, obs)}
    return spectrum, row

