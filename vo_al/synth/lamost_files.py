"""LAMOST low-resolution files in the DR1, DR2, DR7 (image) and DR9 (table) layouts.

Targets come in plates of :data:`FILES_PER_PLATE` stars within 2.5° of the
plate centre; the plate fixes the observing night (LMJD), the plan name and
the fibres, so ``spec-LMJD-PLANID_spSS-FFF.fits`` names and OBSIDs are unique
by construction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import names
from .fitsfile import Card, Comment, bintable_hdu, empty_primary, fits_bytes, image_hdu
from .instruments import LAMOST_CD1_1, LAMOST_CRVAL1, Observation, observe_lamost
from .physics import C_KMS
from .stars import EMISSION_SHARE, LAMOST_RANGES, Star, class_for, draw_star, file_rng
from .truth import SynthFile, star_columns

__all__ = ["LAYOUTS", "STREAM", "FILES_PER_PLATE", "Target", "layout_for", "target",
           "header_cards", "file_rows", "lamost_parts", "lamost_file", "lamost_id",
           "lamost_file_name", "lamost_spectrum"]

STREAM = 1
_PLATE_STREAM = 11
FILES_PER_PLATE = 25
_PLATES_PER_NIGHT = 40
_FIRST_LMJD = 55_859
_DEC_MIN = -10.0
#: Layout name → pipeline version, data type, EXTEN0 and release keys.
LAYOUTS = {
    "lamost-dr1-image": {"verspipe": "v2.6.4", "dtype": ">f4", "data_v": None,
                         "exten0": "Flux Inverse Subcontinuum Andmask Ormask"},
    "lamost-dr2-image": {"verspipe": "2.7.5", "dtype": ">f8", "data_v": None,
                         "exten0": "Flux Inverse Wavelength Andmask Ormask"},
    "lamost-dr7-image": {"verspipe": "v2.9.7", "dtype": ">f4", "data_v": "LAMOST DR7",
                         "exten0": "Flux, Inverse, Wavelength, Andmask, Ormask"},
    "lamost-dr9-table": {"verspipe": "v2.9.8", "dtype": ">f4", "data_v": "LAMOST DR9",
                         "exten0": None},
}
# 20-file cycle: 15 % DR1, 30 % DR2, 35 % DR7, 20 % DR9; gzip every 9th and 9th+4th file.
_CYCLE = ("dr2", "dr7", "dr1", "dr7", "dr9", "dr2", "dr7", "dr2", "dr1", "dr9",
          "dr7", "dr2", "dr7", "dr9", "dr1", "dr2", "dr7", "dr9", "dr7", "dr2")
_PREFIXES = ("GAC", "VB", "HD", "EG", "KP")


def layout_for(index: int) -> tuple[str, bool]:
    """Layout name and gzip flag of LAMOST file ``index``."""
    release = _CYCLE[index % len(_CYCLE)]
    layout = next(name for name in LAYOUTS if f"-{release}-" in name)
    return layout, index % 9 in (4, 8)


@dataclass(frozen=True)
class Target:
    """Where, when and through which fibre a LAMOST spectrum was taken."""

    ra: float
    dec: float
    lmjd: int
    mjd_obs: float
    planid: str
    spid: int
    fiberid: int
    obsid: int

    @property
    def filename(self) -> str:
        """The FILENAME header value (always ``.fits``)."""
        return f"spec-{self.lmjd}-{self.planid}_sp{self.spid:02d}-{self.fiberid:03d}.fits"


def _plan_name(rng, plate, ra0, dec0):
    prefix = _PREFIXES[int(rng.integers(len(_PREFIXES)))]
    ns = "N" if dec0 >= 0 else "S"
    version = plate % _PLATES_PER_NIGHT + 1
    if prefix in ("GAC", "VB"):
        return f"{prefix}{int(ra0):03d}{ns}{int(abs(dec0)):02d}V{version}"
    ra_text, dec_text = names.sexagesimal(ra0, abs(dec0), plus_sign=False)
    digits = (ra_text[:8] + dec_text[:8]).replace(":", "").replace(".", "")
    return f"{prefix}{digits[:6]}{ns}{digits[6:12]}{'BMFV'[plate % 4]}{version:02d}"


def target(seed: int, index: int, rng: np.random.Generator) -> Target:
    """The plate, fibre and sky position of LAMOST file ``index``.

    Parameters
    ----------
    seed, index : int
    rng : numpy.random.Generator
        The file's generator (for the position within the plate).
    """
    plate, slot_in_plate = divmod(index, FILES_PER_PLATE)
    plate_rng = file_rng(seed, _PLATE_STREAM, plate)
    ra0, dec0 = names.sky_position(plate_rng, _DEC_MIN + 2.5)
    dec0 = min(dec0, 87.0)
    slot = int(plate_rng.permutation(4000)[slot_in_plate])
    lmjd = _FIRST_LMJD + plate // _PLATES_PER_NIGHT
    planid = _plan_name(plate_rng, plate, ra0, dec0)
    mjd_obs = lmjd - 1 + float(plate_rng.uniform(0.5, 0.85))
    radius, angle = 2.5 * math.sqrt(rng.random()), rng.uniform(0.0, 2.0 * math.pi)
    dec = min(dec0 + radius * math.sin(angle), 89.9)
    ra = (ra0 + radius * math.cos(angle) / math.cos(math.radians(dec))) % 360.0
    return Target(ra=ra, dec=dec, lmjd=lmjd, mjd_obs=mjd_obs, planid=planid,
                  spid=slot // 250 + 1, fiberid=slot % 250 + 1,
                  obsid=100_000_000 + (index * 7919) % 900_000_000)


def _identity_cards(layout, where: Target, rng):
    spec = LAYOUTS[layout]
    cards = [Comment("--------FILE INFORMATION"),
             Card("FILENAME", where.filename),
             Card("AUTHOR", "LAMOST Pipeline", "Who compiled the information")]
    if spec["data_v"]:
        cards += [Card("OBSID", where.obsid, "Unique number ID of this spectrum"),
                  Card("DATA_V", spec["data_v"], "Data release version")]
    if spec["exten0"]:
        cards += [Card("EXTEN0", spec["exten0"]), Card("N_EXTEN", 1, "The extension number")]
    if layout != "lamost-dr1-image" and spec["exten0"]:
        cards.append(Card("EXTNAME", "Flux", "The extension name"))
    created = names.iso(where.lmjd + 400 + int(rng.integers(0, 300)))
    cards += [Card("ORIGIN", "NAOC-LAMOST", "Organization responsible for creating this file"),
              Card("DATE", created, "Time when this HDU is created (UTC)"),
              Comment("--------TELESCOPE PARAMETERS"),
              Card("TELESCOP", "LAMOST", "GuoShouJing Telescope"),
              Card("LONGITUD", 117.58, "[deg] Longitude of site"),
              Card("LATITUDE", 40.39, "[deg] Latitude of site"),
              Card("FOCUS", 19964, "[mm] Telescope focus"),
              Card("CAMPRO", "NEWCAM", "Camera program name"),
              Card("CAMVER", "v2.0", "Camera program version")]
    return cards


def _observation_cards(layout, where: Target, star: Star, rng):
    start = where.mjd_obs - 0.03
    fiber = str(where.fiberid) if layout == "lamost-dr2-image" else where.fiberid
    mags = [99.0] * 7
    mags[2] = round(float(rng.uniform(9.0, 17.5)), 2)
    mags[5], mags[6] = round(mags[2] - 1.0, 2), round(mags[2] - 1.4, 2)
    return [
        Comment("--------OBSERVATION PARAMETERS"),
        Card("DATE-OBS", names.iso(where.mjd_obs, 2), "The observation median UTC"),
        Card("DATE-BEG", names.iso(start + 8 / 24, 1), "The observation start local time"),
        Card("DATE-END", names.iso(start + 8 / 24 + 0.06, 1), "The observation end local time"),
        Card("LMJD", where.lmjd, "Local Modified Julian Day"),
        Card("MJD", int(where.mjd_obs), "Modified Julian Day"),
        Card("PLANID", where.planid, "Plan ID in use"),
        Card("RA", round(where.ra, 6), "[deg] Right ascension of object"),
        Card("DEC", round(where.dec, 6), "[deg] Declination of object"),
        Card("DESIG", names.designation(where.ra, where.dec), "Designation of LAMOST target"),
        Card("FIBERID", fiber, "Fiber ID of Object"),
        Card("CELL_ID", f"{'ABCDEFGHIJKLMNOPQRSTUVWXYZ'[where.spid % 26]}{where.fiberid:04d}",
             "Fiber Unit ID on the focal plane"),
        Card("OBJNAME", f"{int(rng.integers(10**14, 10**15))}", "Name of object"),
        Card("OBJTYPE", "Star", "Object type from input catalog"),
        Card("OBJSOURC", "PILOT", "Name of input catalog"),
        Card("FIBERTYP", "Obj", "Fiber type of object"),
        Card("MAGTYPE", "ugrizjh", "Magnitude type of object"),
        *[Card(f"MAG{i + 1}", mag, f"[mag] Mag{i + 1} of object") for i, mag in enumerate(mags)],
        Card("OBS_TYPE", "OBJ", "The type of target (OBJ, FLAT, ARC or BIAS)"),
        Card("OBSCOMM", "Science", "Science, Test"),
        Card("RADECSYS", "FK5", "Equatorial coordinate system"),
        Card("EQUINOX", 2000.0, "Equinox in years"),
        Comment("--------SPECTROGRAPH PARAMETERS"),
        Card("SPID", where.spid, "Spectrograph ID"),
        Card("SLIT_MOD", "x2/3", "Slit mode, x1, x2/3 or x1/2"),
        Comment("--------WEATHER CONDITION"),
        Card("SEEING", round(float(rng.uniform(2.0, 4.5)), 1), "[arcsec] Seeing during exposure"),
        Card("MOONPHA", round(float(rng.uniform(0.0, 29.5)), 2),
             "[day] Moon phase for a 29.53 days period"),
        Comment("--------DATA REDUCTION PARAMETERS"),
        Card("EXTRACT", "aperture", "Extraction method"),
        Card("SFLATTEN", True, "Super flat has been applied"),
        Card("PCASKYSB", True, "PCA sky-subtraction has been applied"),
        Card("NSKIES", int(rng.integers(10, 50)), "Sky fiber number"),
        Card("EXPTIME", 1800.0, "[s] Minimum of exposure time for all cameras"),
        Card("HELIO", True, "Heliocentric correction"),
    ]


def _wavelength_cards(layout, obs: Observation):
    helio = ("" if layout == "lamost-dr2-image" else round(obs.header["HELIO_RV"], 5))
    cards = [Card("HELIO_RV", helio, "[km/s] Heliocentric correction"),
             Card("VACUUM", True, "Wavelengths are in vacuum"),
             Card("NWORDER", 2, "Number of linear-log10 coefficients"),
             Card("WFITTYPE", "LOG-LINEAR", "Linear-log10 dispersion"),
             Card("COEFF0", LAMOST_CRVAL1, "Central wavelength (log10) of first pixel"),
             Card("COEFF1", LAMOST_CD1_1, "Log10 dispersion per pixel")]
    if layout.endswith("-image"):
        cards += [Card("WAT0_001", "system=linear"),
                  Card("WAT1_001", "wtype=linear label=Wavelength units=Angstroms"),
                  Card("CRVAL1", LAMOST_CRVAL1, "Central wavelength (log10) of first pixel"),
                  Card("CD1_1", LAMOST_CD1_1, "Log10 dispersion per pixel"),
                  Card("CRPIX1", 1, "Starting pixel (1-indexed)"),
                  Card("CTYPE1", "LINEAR"),
                  Card("DC-FLAG", 1, "Log-linear flag")]
    return cards


def _analysis_cards(layout, star: Star, obs: Observation, rng):
    z = star.rv / C_KMS
    z_err = float(rng.uniform(0.5, 3.0)) * 1e-5
    cards = [Comment("--------SPECTRA ANALYSIS RESULTS"),
             Card("VERSPIPE", LAYOUTS[layout]["verspipe"], "Version of Pipeline"),
             Card("CLASS", "STAR", "Class of object"),
             Card("SUBCLASS", names.spectral_type(star.teff), "Subclass of object"),
             Card("Z", float(f"{z + rng.normal(0.0, z_err):.8f}"), "Redshift of object"),
             Card("Z_ERR", float(f"{z_err:.4g}"), "Redshift error of object")]
    style = "SN_{}" if layout in ("lamost-dr1-image", "lamost-dr2-image") else "SNR{}"
    for band in "UGRIZ":
        key = style.format(band)
        cards.append(Card(key, obs.header[f"SNR{band}"], f"SNR of {band.lower()} filter"))
    return cards


def header_cards(layout: str, where: Target, star: Star, obs: Observation, rng) -> list:
    """All header cards of a LAMOST file (after the mandatory ones).

    Parameters
    ----------
    layout : str
        A key of :data:`LAYOUTS`.
    where : Target
    star : Star
    obs : Observation
    rng : numpy.random.Generator
        Draws the incidental values (magnitudes, seeing, object name, ...).

    Returns
    -------
    list of Card or Comment
    """
    return (_identity_cards(layout, where, rng) + _observation_cards(layout, where, star, rng)
            + _wavelength_cards(layout, obs) + _analysis_cards(layout, star, obs, rng))


def file_rows(layout: str, obs: Observation) -> np.ndarray:
    """The 5 image rows: flux, ivar, wavelength (or normalised flux), and/or masks."""
    third = obs.flux / obs.continuum if layout == "lamost-dr1-image" else obs.wave
    rows = np.vstack([obs.flux, obs.ivar, third, obs.andmask, obs.ormask])
    return rows.astype(LAYOUTS[layout]["dtype"])


def _table(obs: Observation, cards) -> bytes:
    columns = [("FLUX", obs.flux, ""), ("IVAR", obs.ivar, ""), ("WAVELENGTH", obs.wave, ""),
               ("ANDMASK", obs.andmask, ""), ("ORMASK", obs.ormask, ""),
               ("NORMALIZATION", obs.flux / obs.continuum, "")]
    arrays = [(name, np.asarray(values, dtype=">i4" if "MASK" in name else ">f4")[None, :], c)
              for name, values, c in columns]
    return empty_primary(cards) + bintable_hdu(arrays, [Card("EXTNAME", "COADD")])


def lamost_parts(seed: int, index: int, emission_fraction: float):
    """Star, target and observation of LAMOST file ``index``.

    Returns
    -------
    rng : numpy.random.Generator
        The file's generator, ready for the header's random values.
    star : Star
    where : Target
    obs : Observation
    """
    rng = file_rng(seed, STREAM, index)
    mix = {"emission": emission_fraction * EMISSION_SHARE,
           "double-peak": emission_fraction * (1.0 - EMISSION_SHARE)}
    star = draw_star(rng, class_for(seed, STREAM, index, mix), "lamost", LAMOST_RANGES)
    where = target(seed, index, rng)
    return rng, star, where, observe_lamost(rng, star)


def lamost_file(seed: int, index: int, emission_fraction: float) -> SynthFile:
    """Generate LAMOST file ``index`` of a survey.

    Parameters
    ----------
    seed, index : int
    emission_fraction : float
        Share of emission plus double-peak spectra.

    Returns
    -------
    SynthFile
        Name (``.fits`` or ``.fits.gz``), bytes, truth row, star and observation.
    """
    rng, star, where, obs = lamost_parts(seed, index, emission_fraction)
    layout, compress = layout_for(index)
    cards = header_cards(layout, where, star, obs, rng)
    if layout.endswith("-table"):
        hdus = _table(obs, cards)
    else:
        hdus = image_hdu(file_rows(layout, obs), cards)
    return SynthFile(lamost_file_name(index, where), fits_bytes(hdus, compress=compress),
                     _truth_row(index, star, where, obs), star, obs)


def lamost_file_name(index: int, where: Target) -> str:
    """The file name (``.fits`` or ``.fits.gz``) of LAMOST file ``index``."""
    return where.filename + (".gz" if layout_for(index)[1] else "")


def _truth_row(index: int, star: Star, where: Target, obs: Observation) -> dict:
    layout, compress = layout_for(index)
    return {"id": lamost_id(layout, where), "layout": layout, "instrument": "lamost",
            "medium": "vacuum", "gzip": int(compress), "ra": round(where.ra, 6),
            "dec": round(where.dec, 6), "object": names.designation(where.ra, where.dec),
            **star_columns(star, obs)}


def _bad_pixels(ivar, andmask, ormask):
    """The reader's bad-pixel rule for LAMOST masks (one place: the reader's)."""
    try:
        from ..spectra.lamost import lamost_bad_pixels
    except ImportError:  # readers that only use the and-mask
        return np.asarray(andmask) != 0
    return lamost_bad_pixels(ivar, andmask, ormask)


def lamost_spectrum(seed: int, index: int, emission_fraction: float, source: str = ""):
    """LAMOST spectrum ``index`` as the reader would give it, without writing FITS.

    The same star and observation as :func:`lamost_file`; the arrays are
    rounded to the file layout's data type (float64 for DR2, float32
    otherwise), DR1 gets the wavelengths computed from CRVAL1/CD1_1 as the
    reader does, the masks become ``bad`` by the reader's rule
    (``lamost_bad_pixels``: and-mask, or or-mask where ivar = 0), and the
    id, designation and position are those of the header. Header-only random values (magnitudes,
    seeing, OBJNAME, ...) are not drawn: nothing in a pool depends on them.

    Parameters
    ----------
    seed, index : int
    emission_fraction : float
    source : str
        Stored as ``Spectrum.source`` (there is no file).

    Returns
    -------
    spectrum : vo_al.spectra.Spectrum
    row : dict
        The truth.csv row of the file (``file`` included, relative to OUTDIR).
    """
    from ..spectra.lamost import LAMOST_RESOLVING_POWER, loglinear_wavelength
    from ..spectra.record import VACUUM, Spectrum

    _rng, star, where, obs = lamost_parts(seed, index, emission_fraction)
    layout, _ = layout_for(index)
    if layout.endswith("-table"):
        as_f4 = [np.asarray(a, dtype=">f4").astype(np.float64)
                 for a in (obs.flux, obs.ivar, obs.wave)]
        flux, ivar, wave = as_f4
        bad = _bad_pixels(ivar, np.asarray(obs.andmask, dtype=">i4"),
                          np.asarray(obs.ormask, dtype=">i4"))
    else:
        rows = file_rows(layout, obs).astype(np.float64)
        flux, ivar, bad = rows[0], rows[1], _bad_pixels(rows[1], rows[3], rows[4])
        if layout == "lamost-dr1-image":
            header = {"CRVAL1": LAMOST_CRVAL1, "CD1_1": LAMOST_CD1_1, "CRPIX1": 1}
            wave = loglinear_wavelength(header, rows.shape[1])
        else:
            wave = rows[2]
    spectrum = Spectrum(
        wavelength=wave, flux=flux, ivar=ivar, bad=bad, medium=VACUUM,
        format="lamost-table" if layout.endswith("-table") else "lamost-image",
        source=source, instrument="LAMOST LRS", resolving_power=LAMOST_RESOLVING_POWER,
        id=lamost_id(layout, where), designation=names.designation(where.ra, where.dec),
        ra=round(where.ra, 6), dec=round(where.dec, 6), survey_class="STAR",
    )
    row = {"file": f"lamost/{lamost_file_name(index, where)}",
           **_truth_row(index, star, where, obs)}
    return spectrum, row


def lamost_id(layout: str, where: Target) -> str:
    """The reader's id: OBSID when the header has one, else the FILENAME stem."""
    return str(where.obsid) if LAYOUTS[layout]["data_v"] else where.filename[: -len(".fits")]
