"""The synthetic survey: real file layouts, truth.csv, determinism and physics."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from vo_al.preprocess import PreprocessConfig, Quality, preprocess
from vo_al.spectra import SpectrumReadError, read_spectrum
from vo_al.spectra.lamost import lamost_bad_pixels
from vo_al.synth import TRUTH_COLUMNS, generate_survey, read_truth
from vo_al.synth.ccd700_files import ccd700_file
from vo_al.synth.corrupt import DEFECTS
from vo_al.synth.fitsfile import Card
from vo_al.synth.instruments import LAMOST_MASK
from vo_al.synth.lamost_files import LAYOUTS as LAMOST_LAYOUTS
from vo_al.synth.lamost_files import lamost_file
from vo_al.synth.physics import C_KMS, HALPHA, air_to_vacuum

SURVEY = {"n_lamost": 40, "n_ondrejov": 12, "seed": 7, "emission_fraction": 0.3,
          "corrupt": len(DEFECTS)}
ALL_LAYOUTS = set(LAMOST_LAYOUTS) | {"ondrejov-iraf-image", "ondrejov-ssap-table"}
HALPHA_AIR = 6562.80
LAMOST_KEYS = ("FILENAME", "DESIG", "RA", "DEC", "OBJNAME", "OBJTYPE", "PLANID", "LMJD", "MJD",
               "SPID", "FIBERID", "CLASS", "SUBCLASS", "Z", "Z_ERR", "VERSPIPE", "TELESCOP",
               "DATE-OBS")


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    calls = []
    report = generate_survey(root, workers=1, progress=lambda done, total: calls.append(
        (done, total)), **SURVEY)
    return root, report, read_truth(root / "truth.csv"), calls


@pytest.fixture(scope="module")
def rows(survey):
    return survey[2]


def _good(rows, **match):
    return [r for r in rows if r["kind"] != "corrupt" and all(r[k] == v for k, v in match.items())]


def _regenerate(row):
    """The generated arrays behind a truth row."""
    index = int(row["index"])
    if row["instrument"] == "lamost":
        return lamost_file(SURVEY["seed"], index, SURVEY["emission_fraction"])
    return ccd700_file(SURVEY["seed"], index)


def test_report_and_progress(survey):
    _, report, rows, calls = survey
    total = 40 + 12 + len(DEFECTS)
    assert report.n_files == len(rows) == total
    assert report.n_corrupt == len(DEFECTS)
    assert set(report.classes) == {"absorption", "emission", "double-peak"}
    assert sum(report.classes.values()) == 52
    assert report.files_per_second > 0
    assert calls[-1] == (total, total)
    assert "files/s" in report.summary()


def test_every_layout_class_and_defect_written(rows):
    assert {r["layout"] for r in _good(rows)} == ALL_LAYOUTS
    for instrument in ("lamost", "ondrejov"):
        assert {r["class"] for r in _good(rows, instrument=instrument)} == {
            "absorption", "emission", "double-peak"}
    assert any(r["file"].endswith(".fits.gz") for r in _good(rows))
    assert {r["defect"] for r in rows if r["kind"] == "corrupt"} == set(DEFECTS)


def test_truth_columns_and_ids(survey):
    root, _, rows, _ = survey
    with open(root / "truth.csv", encoding="utf-8") as fh:
        assert tuple(fh.readline().strip().split(",")) == TRUTH_COLUMNS
    names = [r["file"] for r in rows]
    assert len(set(names)) == len(names)
    for row in rows:
        assert "\\" not in row["file"] and (root / row["file"]).is_file()
        assert row["file"].startswith(("lamost/", "ondrejov/"))
        if row["kind"] == "corrupt":
            assert row["class"] == "" and row["defect"] in DEFECTS
        else:
            assert row["class"] in ("absorption", "emission", "double-peak")
            assert row["id"] and row["defect"] == ""
    ids = [r["id"] for r in rows if r["id"]]
    assert len(set(ids)) == len(ids)


def _check_designation(header):
    match = re.fullmatch(r"LAMOST J(\d\d)(\d\d)(\d\d\.\d\d)([+-])(\d\d)(\d\d)(\d\d\.\d)",
                         header["DESIG"])
    h, m, s, sign, d, dm, ds = match.groups()
    ra = 15.0 * (int(h) + int(m) / 60 + float(s) / 3600)
    dec = (1 if sign == "+" else -1) * (int(d) + int(dm) / 60 + float(ds) / 3600)
    assert abs(ra - header["RA"]) * math.cos(math.radians(dec)) < 0.01 / 3600 * 15 + 1e-6
    assert abs(dec - header["DEC"]) < 0.1 / 3600 + 1e-6


def test_lamost_headers_and_shapes(survey, rows):
    root = survey[0]
    for row in _good(rows, instrument="lamost"):
        layout = LAMOST_LAYOUTS[row["layout"]]
        with fits.open(root / row["file"]) as hdul:
            hdul.verify("exception")
            header = hdul[0].header
            for key in LAMOST_KEYS:
                assert key in header, (row["file"], key)
            assert header["TELESCOP"] == "LAMOST"
            assert header["VERSPIPE"] == layout["verspipe"]
            assert Path(row["file"]).name.removesuffix(".gz") == header["FILENAME"]
            assert re.fullmatch(r"spec-\d{5}-\w+_sp\d\d-\d{3}\.fits", header["FILENAME"])
            assert ("OBSID" in header) == bool(layout["data_v"])
            _check_designation(header)
            if row["layout"].endswith("-image"):
                assert hdul[0].data.shape == (5, int(row["n_pixels"]))
                assert header["BITPIX"] == (-64 if row["layout"] == "lamost-dr2-image" else -32)
                assert header["EXTEN0"] == layout["exten0"]
                assert (header["CRVAL1"], header["CD1_1"], header["CRPIX1"]) == (3.5682, 1e-4, 1)
                assert header["CTYPE1"] == "LINEAR"
            else:
                assert header["NAXIS"] == 0 and len(hdul) == 2
                table = hdul["COADD"].data
                assert len(table) == 1
                assert table.columns.names == ["FLUX", "IVAR", "WAVELENGTH", "ANDMASK",
                                               "ORMASK", "NORMALIZATION"]
                assert table["ANDMASK"].dtype.kind == "i" and table["FLUX"].dtype.itemsize == 4


def test_lamost_wavelengths_masks_and_normalisation(survey, rows):
    root = survey[0]
    for row in _good(rows, instrument="lamost"):
        with fits.open(root / row["file"]) as hdul:
            if row["layout"].endswith("-table"):
                cells = hdul["COADD"].data[0]
                wave, ivar, andmask = cells["WAVELENGTH"], cells["IVAR"], cells["ANDMASK"]
                ormask, normalised = cells["ORMASK"], cells["NORMALIZATION"]
            else:
                data = hdul[0].data.astype(np.float64)
                ivar, andmask, ormask = data[1], data[3], data[4].astype(int)
                wave, normalised = (None, data[2]) if "Subcontinuum" in hdul[0].header[
                    "EXTEN0"] else (data[2], None)
            expected = 10.0 ** (3.5682 + 1e-4 * np.arange(int(row["n_pixels"])))
            if wave is not None:
                assert np.max(np.abs(wave - expected)) < 0.01
            if normalised is not None:
                assert abs(np.median(normalised[ivar > 0]) - 1.0) < 0.15
            flagged = (ormask & LAMOST_MASK["OUTLIER"]) != 0
            assert np.all(ivar[(andmask != 0) | flagged] == 0)
            unmasked_zero = (ivar == 0) & (andmask == 0) & ~flagged  # emission cores only
            assert row["class"] != "absorption" or not unmasked_zero.any(), row
            assert np.all(np.isfinite(ivar)) and (andmask != 0).sum() < 200


def test_ondrejov_layouts(survey, rows):
    root = survey[0]
    scales = set()
    for row in _good(rows, instrument="ondrejov"):
        with fits.open(root / row["file"]) as hdul:
            hdul.verify("exception")
            if row["layout"] == "ondrejov-iraf-image":
                header = hdul[0].header
                assert hdul[0].data.dtype == np.dtype(">f4") and hdul[0].data.ndim == 1
                assert (header["BUNIT"], header["TELESCOP"], header["INSTRUME"]) == (
                    "ADU", "ZEISS-2m", "COUDE700")
                assert header["CRPIX1"] == 1 and header["CDELT1"] == header["CD1_1"]
                for key in ("OBJECT", "DATE-OBS", "HJD", "VHELIO"):
                    assert key in header
                assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d", header["RA"])
                assert re.fullmatch(r"[+-]?\d\d:\d\d:\d\d\.\d", header["DEC"])
                assert header["FILENAME"] == f"{row['id']}.fit"
                n, step = header["NAXIS1"], header["CDELT1"]
                assert np.median(hdul[0].data) > 100.0
            else:
                assert hdul[0].header["NAXIS"] == 0
                table = hdul[1]
                header = table.header
                assert table.columns.names == ["spectral", "flux"]
                assert [c.format for c in table.columns] == ["D", "D"]
                assert header["TUNIT1"] == "Angstrom"
                assert header["TUTYP1"] == "spec:spectrum.data.spectralaxis.value"
                assert header["TUTYP2"] == "spec:spectrum.data.fluxaxis.value"
                assert header["VOSEGT"] == "Spectrum" and header["SPECSDIM"] == "Angstrom"
                assert header["DS_IDPUB"] == f"ivo://asu.cas.cz/stel/ccd700/{row['id']}"
                for key in ("OBJECT", "TMID", "TITLE", "FLUX_CAL"):
                    assert key in header
                assert isinstance(header["RA"], float) and isinstance(header["DEC"], float)
                assert abs(np.median(table.data["flux"]) - 1.0) < 0.1
                spectral = table.data["spectral"]
                n, step = spectral.size, spectral[1] - spectral[0]
            scales.add((n, round(step, 3)))
    assert {s for _, s in scales} == {0.257, 0.231}
    assert {1997, 1953} <= {n for n, _ in scales}


def test_same_seed_any_workers_identical_bytes(survey, tmp_path):
    root, _, rows, _ = survey
    generate_survey(tmp_path, workers=2, **SURVEY)
    assert (tmp_path / "truth.csv").read_bytes() == (root / "truth.csv").read_bytes()
    for row in rows:
        assert (tmp_path / row["file"]).read_bytes() == (root / row["file"]).read_bytes()


def test_other_seed_differs_and_prefix_is_stable(survey, tmp_path):
    root, _, rows, _ = survey
    generate_survey(tmp_path / "other", n_lamost=3, seed=8, workers=1)
    other = read_truth(tmp_path / "other" / "truth.csv")
    assert [r["teff"] for r in other] != [r["teff"] for r in rows[:3]]
    generate_survey(tmp_path / "prefix", n_lamost=5, seed=SURVEY["seed"], workers=1,
                    emission_fraction=SURVEY["emission_fraction"])
    for row in read_truth(tmp_path / "prefix" / "truth.csv"):
        assert (tmp_path / "prefix" / row["file"]).read_bytes() == (root / row["file"]).read_bytes()


def _halpha_window(row, made, half_kms=900.0):
    """Pixels within ±half_kms of the shifted Hα, in the file's wavelengths."""
    rest = HALPHA if row["medium"] == "vacuum" else HALPHA_AIR
    center = rest * (1.0 + float(row["rv_obs_kms"]) / C_KMS)
    wave = made.observation.wave
    return np.abs(wave - center) < center * half_kms / C_KMS, center


def test_physics_halpha_by_class(rows):
    for row in _good(rows):
        made = _regenerate(row)
        model = made.observation.model
        near, center = _halpha_window(row, made)
        ew = float(row["halpha_ew"])
        if row["class"] == "absorption":
            assert model.max() <= 1.0 + 1e-9 and ew > 0.0
            assert model[near].min() < 0.97
        elif row["kind"] == "weak-emission-infill":
            assert 0.0 < ew < float(row["halpha_abs_ew"])
        else:
            assert model[near].max() > 1.1, row
            if row["kind"] in ("clean", "low-snr"):
                assert ew < 0.0
            if row["kind"] == "p-cygni":
                assert model[near].min() < 0.97
        if row["class"] == "double-peak" and row["kind"] == "clean":
            peaks = np.flatnonzero((model[1:-1] > model[:-2]) & (model[1:-1] > model[2:])
                                   & (model[1:-1] > 1.02) & near[1:-1])
            assert peaks.size >= 2, row


def test_halpha_absorption_at_the_right_wavelength(rows):
    """Air wavelengths for Ondřejov, vacuum for LAMOST, shifted by rv_obs_kms."""
    hot = [r for r in _good(rows, kind="clean") if r["class"] == "absorption"
           and 7500 < float(r["teff"]) < 15000]
    assert {r["medium"] for r in hot} == {"air", "vacuum"}
    for row in hot:
        made = _regenerate(row)
        near, center = _halpha_window(row, made, 150.0)
        wave, model = made.observation.wave[near], made.observation.model[near]
        # air and vacuum differ by 1.8 Å; fast rotators have flat cores
        tolerance = 0.6 if row["medium"] == "air" else 1.5
        assert abs(wave[np.argmin(model)] - center) < tolerance, row
    assert abs(air_to_vacuum(HALPHA_AIR) - HALPHA) < 0.01


def test_lamost_noise_matches_ivar_and_snr(rows):
    pulls = []
    for row in _good(rows, instrument="lamost", kind="clean"):
        obs = _regenerate(row).observation
        good = obs.ivar > 0
        pulls.append((obs.flux - obs.noiseless)[good] * np.sqrt(obs.ivar[good]))
        window = good & (obs.wave > 6400) & (obs.wave < 6500)
        snr = np.median(obs.noiseless[window] * np.sqrt(obs.ivar[window]))
        assert snr == pytest.approx(float(row["snr"]), rel=0.25)
    assert np.std(np.concatenate(pulls)) == pytest.approx(1.0, abs=0.03)


def test_hard_cases_leave_traces(rows):
    for row in _good(rows):
        made = _regenerate(row)
        obs = made.observation
        if row["kind"] == "cosmic-ray":
            assert int(row["n_cosmic"]) >= 1 and row["artefact_waves"]
            assert np.max(obs.flux - obs.noiseless) > 0.4 * np.median(obs.noiseless)
        if row["kind"] == "low-snr":
            assert 3.0 <= float(row["snr"]) <= 8.0
        if row["kind"] == "p-cygni":
            assert float(row["pcyg_v_kms"]) < 0 and float(row["pcyg_depth"]) > 0
        if row["kind"] == "shell":
            assert float(row["shell_depth"]) > 0 and row["class"] == "double-peak"


OH_NEAR_HALPHA_AIR = (6553.617, 6568.779, 6577.284)  # Osterbrock et al. 1996


def _lamost_kinds(kinds, n=150, fraction=0.0):
    """LAMOST files 0 … n−1 of seed 7 whose star is of one of ``kinds``."""
    made = (lamost_file(SURVEY["seed"], i, fraction) for i in range(n))
    return [f for f in made if f.star.kind in kinds]


def test_strong_emission_cores_have_zero_ivar_and_survive_preprocessing(survey, rows):
    """Like the real pipeline: ivar = 0 over strong emission cores, flux kept; the
    preprocessed vector still peaks at Hα."""
    root, config, strong = survey[0], PreprocessConfig(), 0
    for row in _good(rows, instrument="lamost"):
        made = _regenerate(row)
        obs = made.observation
        core = (obs.ivar == 0) & (obs.andmask == 0) & ((obs.ormask & LAMOST_MASK["OUTLIER"]) == 0)
        assert np.all(obs.model[core] >= 1.15), row
        assert np.all(obs.flux[core] != 0.0), row  # the flux is kept
        near, center = _halpha_window(row, made)
        if obs.model[near].max() < 2.0:
            continue
        strong += 1
        assert core[np.flatnonzero(near)[np.argmax(obs.model[near])]], row
        assert 3 <= core[near].sum() <= 30, row
        spectrum = read_spectrum(root / row["file"])
        assert not spectrum.bad[core].any()
        result = preprocess(spectrum, config)
        assert result.ok, row
        # double peaks are ≤ 650 km/s apart: either peak is within 10 Å of Hα
        assert abs(config.grid()[np.argmax(result.vector)] - center) < 10.0, row
    assert strong >= 3


def test_spikes_are_sometimes_flagged_like_the_real_pipeline():
    """Cosmic rays and sky residuals: in half the files the pipeline flags the
    spike pixels (or-mask bit 64, ivar = 0, flux kept) and the reader drops them."""
    flagged_files = unflagged_files = 0
    for made in _lamost_kinds(("cosmic-ray", "sky-residual")):
        obs = made.observation
        flagged = (obs.ormask & LAMOST_MASK["OUTLIER"]) != 0
        if not flagged.any():
            unflagged_files += 1
            continue
        flagged_files += 1
        assert np.all(obs.ivar[flagged] == 0) and np.all(obs.andmask[flagged] == 0)
        assert np.all(obs.flux[flagged] != obs.noiseless[flagged])
        assert lamost_bad_pixels(obs.ivar, obs.andmask, obs.ormask)[flagged].all()
        if made.star.kind == "cosmic-ray":
            hits = [float(w) for w in made.row["artefact_waves"].split(";")]
            for wave in obs.wave[flagged]:
                assert min(abs(wave - hit) for hit in hits) < 2.5, (wave, hits)
    assert flagged_files >= 2 and unflagged_files >= 2


def test_sky_residuals_sit_at_the_oh_lines_next_to_halpha():
    oh = [float(air_to_vacuum(w)) for w in OH_NEAR_HALPHA_AIR]
    files = _lamost_kinds(("sky-residual",))
    assert files
    for made in files:
        waves = [float(w) for w in made.row["artefact_waves"].split(";")]
        assert any(abs(w - line) < 0.06 for w in waves for line in oh), waves


def test_synthetic_spectrum_without_ivar_in_the_window_is_unusable(survey, rows):
    config = PreprocessConfig()
    row = _good(rows, instrument="lamost")[0]
    spectrum = read_spectrum(survey[0] / row["file"])
    assert preprocess(spectrum, config).ok
    inside = (spectrum.wavelength > config.wave_min - 5) & (spectrum.wavelength < config.wave_max + 5)
    ivar = np.where(inside, 0.0, spectrum.ivar)
    result = preprocess(dataclasses.replace(spectrum, ivar=ivar), config)
    assert result.quality == Quality.ALL_BAD and "ivar > 0" in result.reason


@pytest.mark.parametrize("value", [3.5682, 1e-4, 1.649e-05, -0.00017148, 2453518.43752315,
                                   6.50744808761135e-07, 1997, True, False, "it's", "", -64])
def test_header_cards_round_trip_through_astropy(value):
    card = fits.Card.fromstring(Card("KEY", value, "a comment").image())
    assert card.value == value and type(card.value) is type(value)
    assert card.comment == "a comment"


READER_OF_LAYOUT = {
    "lamost-dr1-image": "lamost-image", "lamost-dr2-image": "lamost-image",
    "lamost-dr7-image": "lamost-image", "lamost-dr9-table": "lamost-table",
    "ondrejov-iraf-image": "ccd700-iraf", "ondrejov-ssap-table": "ccd700-sdm",
}


def test_round_trip_through_readers(survey, rows):
    root = survey[0]
    seen = set()
    for row in _good(rows):
        spectrum = read_spectrum(root / row["file"])
        assert spectrum.format == READER_OF_LAYOUT[row["layout"]]
        seen.add(spectrum.format)
        assert spectrum.id == row["id"]
        assert spectrum.medium == row["medium"]
        assert spectrum.n_pixels == int(row["n_pixels"])
        assert spectrum.wavelength[0] == pytest.approx(float(row["wave_min"]), abs=0.01)
        assert spectrum.wavelength[-1] == pytest.approx(float(row["wave_max"]), abs=0.01)
        # IRAF headers give RA to 0.1 s of time (0.0004°)
        assert spectrum.ra == pytest.approx(float(row["ra"]), abs=5e-4)
        assert spectrum.dec == pytest.approx(float(row["dec"]), abs=1e-4)
    assert seen == set(READER_OF_LAYOUT.values())


def test_corrupt_files_are_refused_or_unusable(survey, rows):
    root = survey[0]
    for row in rows:
        if row["kind"] != "corrupt":
            continue
        try:
            spectrum = read_spectrum(root / row["file"])
        except SpectrumReadError:
            continue
        usable = ~spectrum.bad & (spectrum.flux != 0)
        assert not usable.any(), row


@pytest.mark.parametrize("kwargs", [{"n_lamost": -1}, {"emission_fraction": 1.5},
                                    {"seed": -3}, {"workers": 0}, {"corrupt": 1.5}])
def test_bad_arguments(tmp_path, kwargs):
    with pytest.raises(ValueError):
        generate_survey(tmp_path, **kwargs)
