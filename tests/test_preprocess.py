"""Unit tests of vo_al.preprocess on hand-made spectra, and its bad-pixel rules
on the real LAMOST files."""

from __future__ import annotations

import dataclasses

import h5py
import numpy as np
import pytest
from astropy.io import fits

from vo_al.preprocess import (
    FWHM_PER_SIGMA,
    QUALITY_REASONS,
    PreprocessConfig,
    Preprocessed,
    Quality,
    air_to_vacuum,
    blur_sigma_angstrom,
    preprocess,
    vacuum_to_air,
)
from vo_al.spectra import read_spectrum
from vo_al.spectra.lamost import read_lamost_image
from vo_al.spectra.record import Spectrum

HALPHA_AIR = 6562.801
HALPHA_VACUUM = 6564.614


def make_spectrum(wavelength, flux, medium="vacuum", resolving_power=1800.0, **kwargs):
    """A Spectrum built by hand (what a reader would return)."""
    return Spectrum(
        wavelength=np.asarray(wavelength, dtype=float), flux=np.asarray(flux, dtype=float),
        medium=medium, id="test", format="test", source="memory",
        resolving_power=resolving_power, **kwargs,
    )


def lamost_like(flux_fn=None, **kwargs):
    """Log-linear vacuum grid like LAMOST (3909 px from 3699 Å, R = 1800)."""
    wavelength = 10.0 ** (3.5682 + 1e-4 * np.arange(3909))
    flux = np.full(wavelength.size, 100.0) + 0.01 * (wavelength - 6000.0)
    if flux_fn is not None:
        flux = flux_fn(wavelength, flux)
    return make_spectrum(wavelength, flux, **kwargs)


def ccd700_like(step=0.2567, start=6250.0, stop=6760.0, flux_fn=None, **kwargs):
    """Linear air grid like the Ondřejov CCD700 (R = 13,000)."""
    wavelength = np.arange(start, stop, step)
    flux = np.ones(wavelength.size)
    if flux_fn is not None:
        flux = flux_fn(wavelength, flux)
    kwargs.setdefault("medium", "air")
    kwargs.setdefault("resolving_power", 13000.0)
    return make_spectrum(wavelength, flux, **kwargs)


# --- air and vacuum -------------------------------------------------------------

def test_vald_halpha():
    assert air_to_vacuum(HALPHA_AIR) == pytest.approx(HALPHA_VACUUM, abs=1e-3)
    assert vacuum_to_air(HALPHA_VACUUM) == pytest.approx(HALPHA_AIR, abs=1e-3)


def test_air_vacuum_round_trip():
    air = np.linspace(3000.0, 10000.0, 1001)
    vacuum = air_to_vacuum(air)
    assert vacuum.shape == air.shape
    assert np.all(vacuum > air)
    np.testing.assert_allclose(vacuum_to_air(vacuum), air, rtol=0, atol=1e-8)
    np.testing.assert_allclose(air_to_vacuum(vacuum_to_air(air)), air, rtol=0, atol=1e-8)


# --- blur width -------------------------------------------------------------------

def test_blur_sigma_formula():
    expected = np.sqrt((6563 / 1800) ** 2 - (6563 / 13000) ** 2) / 2.3548
    assert blur_sigma_angstrom(13000, 1800, 6563) == pytest.approx(expected, rel=1e-4)
    assert FWHM_PER_SIGMA == pytest.approx(2.3548, abs=1e-4)


@pytest.mark.parametrize("source_R", [1800.0, 1000.0, float("nan"), 0.0])
def test_blur_sigma_zero_when_not_sharper(source_R):
    assert blur_sigma_angstrom(source_R, 1800, 6563) == 0.0


def _blurred_width(step, blur):
    """σ (Å) of a one-pixel line after preprocessing onto a fine grid."""
    centre = 6600.0

    def delta(wavelength, flux):
        flux = flux.copy()
        flux[np.argmin(np.abs(wavelength - centre))] += 1.0
        return flux

    spectrum = ccd700_like(step=step, flux_fn=delta, medium="vacuum")
    config = PreprocessConfig(wave_min=6570.0, wave_max=6630.0, n_points=1201, blur=blur)
    result = preprocess(spectrum, config)
    assert result.quality == Quality.OK
    weight = result.vector.astype(float) + 1.0  # baseline -1 -> 0
    grid = config.grid()
    mean = np.sum(grid * weight) / np.sum(weight)
    return np.sqrt(np.sum((grid - mean) ** 2 * weight) / np.sum(weight))


def test_two_ccd700_pixel_scales_get_the_same_physical_blur():
    wide, narrow = _blurred_width(0.2567, "resolution"), _blurred_width(0.2309, "resolution")
    expected = blur_sigma_angstrom(13000, 1800, 0.5 * (6570 + 6630))
    assert wide == pytest.approx(expected, rel=0.03)
    assert narrow == pytest.approx(expected, rel=0.03)
    assert wide == pytest.approx(narrow, rel=0.02)


def test_fixed_blur_is_in_native_pixels():
    wide, narrow = _blurred_width(0.2567, "fixed"), _blurred_width(0.2309, "fixed")
    assert wide == pytest.approx(7 * 0.2567, rel=0.03)
    assert narrow == pytest.approx(7 * 0.2309, rel=0.03)


def test_fixed_blur_leaves_low_resolution_spectra_alone():
    line = lambda w, f: f * (1 - 0.5 * np.exp(-0.5 * ((w - HALPHA_VACUUM) / 2.0) ** 2))
    spectrum = lamost_like(line)
    fixed = preprocess(spectrum, PreprocessConfig(blur="fixed")).vector
    none = preprocess(spectrum, PreprocessConfig(blur="none")).vector
    np.testing.assert_array_equal(fixed, none)


# --- wavelengths land in the right place ---------------------------------------------

def _peak_position(vector, grid):
    """Centre of a Gaussian line on a −1 baseline: parabola through log(v + 1) at 3 points."""
    i = int(np.argmax(vector))
    y0, y1, y2 = np.log(vector[i - 1 : i + 2].astype(float) + 1.0)
    return grid[i] + 0.5 * (y0 - y2) / (y0 - 2 * y1 + y2) * (grid[1] - grid[0])


@pytest.mark.parametrize("blur", ["none", "resolution"])
def test_air_spectrum_line_lands_at_its_vacuum_wavelength(blur):
    emission = lambda w, f: f + 3.0 * np.exp(-0.5 * ((w - HALPHA_AIR) / 1.5) ** 2)
    config = PreprocessConfig(blur=blur)
    result = preprocess(ccd700_like(flux_fn=emission), config)
    assert result.quality == Quality.OK
    grid = config.grid()
    assert int(np.argmax(result.vector)) == int(np.argmin(np.abs(grid - HALPHA_VACUUM)))
    assert _peak_position(result.vector, grid) == pytest.approx(HALPHA_VACUUM, abs=0.1)


def test_vacuum_spectrum_in_an_air_window():
    emission = lambda w, f: 1.0 + 3.0 * np.exp(-0.5 * ((w - HALPHA_VACUUM) / 2.0) ** 2)
    config = PreprocessConfig(vacuum=False, wave_min=6517.0, wave_max=6730.0)
    result = preprocess(lamost_like(emission), config)
    assert _peak_position(result.vector, config.grid()) == pytest.approx(HALPHA_AIR, abs=0.15)


# --- scaling and bad pixels -----------------------------------------------------------

def test_min_max_scaling_is_exact():
    absorption = lambda w, f: f * (1 - 0.4 * np.exp(-0.5 * ((w - HALPHA_VACUUM) / 3.0) ** 2))
    result = preprocess(lamost_like(absorption))
    assert isinstance(result, Preprocessed) and result.ok and result.reason == ""
    assert result.vector.dtype == np.float32 and result.vector.shape == (140,)
    assert result.vector.min() == -1.0 and result.vector.max() == 1.0


@pytest.mark.parametrize("unit", [1e-17, 1e300])
def test_any_flux_unit_gives_the_same_vector(unit):
    absorption = lambda w, f: f * (1 - 0.4 * np.exp(-0.5 * ((w - HALPHA_VACUUM) / 3.0) ** 2))
    reference = preprocess(lamost_like(absorption)).vector
    spectrum = lamost_like(lambda w, f: absorption(w, f) * unit)
    result = preprocess(spectrum)
    assert result.ok
    assert result.vector.min() == -1.0 and result.vector.max() == 1.0
    np.testing.assert_allclose(result.vector, reference, atol=1e-6)


def test_extreme_flux_does_not_overflow():
    """Values near the float64 limit neither warn (warnings are errors here) nor break."""
    wavelength = np.linspace(6400.0, 6800.0, 400)
    flux = 1.7e308 * np.sin(wavelength / 20.0)
    result = preprocess(make_spectrum(wavelength, flux, resolving_power=13000.0))
    assert result.ok and np.isfinite(result.vector).all()
    assert result.vector.min() == -1.0 and result.vector.max() == 1.0


def _spiked(mark):
    """LAMOST-like spectrum with a huge spike at 6600 Å, flagged by ``mark``."""
    spectrum = lamost_like()
    i = int(np.argmin(np.abs(spectrum.wavelength - 6600.0)))
    flux = spectrum.flux.copy()
    flux[i] = {"nan": np.nan, "ivar": 0.0}.get(mark, 1e4)  # LAMOST: ivar = 0 with zero flux
    ivar = np.ones(flux.size)
    bad = np.zeros(flux.size, bool)
    if mark == "mask":
        bad[i] = True
    elif mark == "ivar":
        ivar[i] = 0.0
    return dataclasses.replace(spectrum, flux=flux, ivar=ivar, bad=bad)


@pytest.mark.parametrize("mark", ["mask", "ivar", "nan"])
def test_bad_pixels_are_interpolated(mark):
    clean = preprocess(lamost_like()).vector
    result = preprocess(_spiked(mark))
    assert result.quality == Quality.OK
    np.testing.assert_allclose(result.vector, clean, atol=1e-5)


def test_ivar_zero_with_real_flux_is_kept():
    """LAMOST zeroes ivar over strong Hα emission cores: they must survive."""
    emission = lambda w, f: f + 50.0 * np.exp(-0.5 * ((w - HALPHA_VACUUM) / 2.0) ** 2)
    spectrum = lamost_like(emission)
    ivar = np.where(np.abs(spectrum.wavelength - HALPHA_VACUUM) < 4.0, 0.0, 1.0)
    with_ivar = dataclasses.replace(spectrum, ivar=ivar, bad=None)
    np.testing.assert_array_equal(preprocess(with_ivar).vector, preprocess(spectrum).vector)


def test_one_weighted_pixel_is_enough():
    """Only a window with no ivar > 0 at all is refused; zeroed cores are kept."""
    wavelength = np.linspace(6400.0, 6800.0, 400)
    ivar = np.zeros(400)
    ivar[200] = 1.0
    result = preprocess(make_spectrum(wavelength, np.sin(wavelength / 10.0), ivar=ivar))
    assert result.quality == Quality.OK


def test_unmasked_spike_is_kept():
    result = preprocess(_spiked("none"))
    assert result.vector.max() == 1.0
    assert np.sum(result.vector > 0) <= 3  # the spike dominates the scaling


# --- the bad-pixel rules on the real LAMOST files -------------------------------------

def _real_lamost(manifest, profile=None):
    return [row["file"] for row in manifest if row["file"].startswith("lamost/")
            and profile in (None, row["halpha_profile"])]


def test_real_emission_stars_keep_their_emission(real_data, manifest):
    """The three real emission stars have ivar = 0 over their Hα cores; the
    vector peaks at Hα as if there were no ivar at all."""
    config = PreprocessConfig()
    grid = config.grid()
    files = _real_lamost(manifest, "emission")
    assert len(files) == 3
    for name in files:
        spectrum = read_spectrum(real_data / name)
        result = preprocess(spectrum, config)
        assert result.ok, (name, result.reason)
        assert abs(grid[np.argmax(result.vector)] - HALPHA_VACUUM) < config.step, name
        assert np.median(result.vector) < -0.5, name  # a peak well above the continuum
        without_ivar = dataclasses.replace(spectrum, ivar=None)
        np.testing.assert_array_equal(preprocess(without_ivar, config).vector, result.vector)


def test_real_files_with_ivar_zeroed_over_the_window_are_unusable(real_data, manifest):
    config = PreprocessConfig()
    for name in _real_lamost(manifest):
        spectrum = read_spectrum(real_data / name)
        ivar = spectrum.ivar.copy()
        ivar[(spectrum.wavelength > config.wave_min - 5) & (spectrum.wavelength < config.wave_max + 5)] = 0
        result = preprocess(dataclasses.replace(spectrum, ivar=ivar), config)
        assert result.quality == Quality.ALL_BAD, name
        assert "ivar > 0" in result.reason and "140 pixels" in result.reason


def _read_rows(path, rows):
    """The LAMOST reader's spectrum of ``path`` with its data rows replaced (in memory)."""
    with fits.open(path) as hdul:
        hdul[0].data = rows
        return read_lamost_image(hdul, str(path))


def test_real_or_masked_zero_ivar_pixel_is_interpolated(real_data):
    """A pixel with ivar = 0 *and* an or-mask bit is a spike to interpolate over;
    without the bit it would be kept like an emission core."""
    path = real_data / "lamost/spec-56257-GAC089N38V2_sp01-001.fits"
    with fits.open(path) as hdul:
        data = hdul[0].data.astype(np.float64)
    reference = preprocess(read_spectrum(path)).vector
    i = int(np.argmin(np.abs(data[2] - 6600.0)))
    data[0, i] *= 20.0  # a cosmic ray ...
    data[1, i] = 0.0  # ... that the pipeline gave no weight
    kept = _read_rows(path, data)
    assert not kept.bad[i]
    assert not np.allclose(preprocess(kept).vector, reference, atol=0.05)
    data[4, i] = 64  # the or-mask bit the real DR2 files set on spikes
    dropped = _read_rows(path, data)
    assert dropped.bad[i]
    np.testing.assert_allclose(preprocess(dropped).vector, reference, atol=0.05)


# --- quality codes --------------------------------------------------------------------

def _quality_cases():
    wavelength = np.linspace(6400.0, 6800.0, 400)
    rng = np.random.default_rng(0)
    flux = 1.0 + 0.1 * rng.standard_normal(wavelength.size)
    mostly_bad = np.zeros(wavelength.size, bool)
    mostly_bad[::4] = True
    mostly_bad[1::4] = True
    mostly_bad[2::4] = True
    return {
        "all NaN": (make_spectrum(wavelength, np.full(400, np.nan)), Quality.ALL_BAD),
        "all zero": (make_spectrum(wavelength, np.zeros(400)), Quality.FLAT_OR_ZERO),
        "flat": (make_spectrum(wavelength, np.full(400, 5.0)), Quality.FLAT_OR_ZERO),
        "all masked": (make_spectrum(wavelength, flux, bad=np.ones(400, bool)), Quality.ALL_BAD),
        "all ivar 0, flux 0": (make_spectrum(wavelength, np.zeros(400), ivar=np.zeros(400)),
                               Quality.ALL_BAD),
        "all ivar 0, real flux": (make_spectrum(wavelength, flux, ivar=np.zeros(400)),
                                  Quality.ALL_BAD),
        "ivar NaN": (make_spectrum(wavelength, flux, ivar=np.full(400, np.nan)), Quality.ALL_BAD),
        "75% bad": (make_spectrum(wavelength, flux, bad=mostly_bad), Quality.TOO_MANY_BAD),
        "blue only": (make_spectrum(np.linspace(4000, 6000, 400), flux), Quality.WINDOW_NOT_COVERED),
        "starts late": (make_spectrum(np.linspace(6550, 7000, 400), flux), Quality.WINDOW_NOT_COVERED),
        "decreasing": (make_spectrum(wavelength[::-1], flux), Quality.NO_WAVELENGTH),
        "NaN wavelength": (
            make_spectrum(np.where(np.arange(400) == 7, np.nan, wavelength), flux),
            Quality.NO_WAVELENGTH,
        ),
        "repeated wavelength": (make_spectrum(np.r_[wavelength[:200], wavelength[199:-1]], flux),
                                Quality.NO_WAVELENGTH),
        "one pixel": (make_spectrum([6600.0], [1.0]), Quality.NO_WAVELENGTH),
        "empty": (make_spectrum([], []), Quality.NO_WAVELENGTH),
    }


@pytest.mark.parametrize("case", list(_quality_cases()))
def test_unusable_spectra_return_a_quality(case):
    spectrum, quality = _quality_cases()[case]
    result = preprocess(spectrum)
    assert result.quality == quality
    assert not result.ok
    assert result.reason.startswith(QUALITY_REASONS[quality])
    assert result.vector.dtype == np.float32 and result.vector.shape == (140,)
    assert not result.vector.any()


def test_window_covered_within_one_step():
    wavelength = np.linspace(6520.0, 6731.0, 300)  # 1 Å short on each side, step 1.53 Å
    result = preprocess(make_spectrum(wavelength, np.sin(wavelength / 10.0)))
    assert result.quality == Quality.OK


def test_some_bad_pixels_are_tolerated():
    wavelength = np.linspace(6400.0, 6800.0, 400)
    bad = np.zeros(400, bool)
    bad[100:250] = True  # 6500–6650 Å: 131 of the 213 window pixels (> 50 %)
    assert preprocess(make_spectrum(wavelength, np.sin(wavelength), bad=bad)).quality == Quality.TOO_MANY_BAD
    bad[:] = False
    bad[150:200] = True  # 50 of 213 (< 50 %)
    assert preprocess(make_spectrum(wavelength, np.sin(wavelength), bad=bad)).quality == Quality.OK


def test_quality_values_are_stable():
    assert {q.name: int(q) for q in Quality} == {
        "OK": 0, "NO_WAVELENGTH": 1, "WINDOW_NOT_COVERED": 2,
        "ALL_BAD": 3, "FLAT_OR_ZERO": 4, "TOO_MANY_BAD": 5,
    }
    assert Quality.OK.reason == ""
    assert all(Quality(q).reason for q in range(1, 6))
    assert max(Quality) < 256  # stored as uint8


# --- config ---------------------------------------------------------------------------

def test_config_grid():
    config = PreprocessConfig()
    np.testing.assert_array_equal(config.grid(), np.linspace(6519.0, 6732.0, 140))


def test_config_attrs_round_trip(tmp_path):
    config = PreprocessConfig(wave_min=6500.0, n_points=128, blur="fixed", vacuum=False,
                              target_resolving_power=2000.0, max_bad_fraction=0.25)
    attrs = config.to_attrs()
    assert all(isinstance(v, (str, float, int)) for v in attrs.values())
    assert PreprocessConfig.from_attrs(attrs) == config
    with h5py.File(tmp_path / "pool.h5", "w") as fh:
        fh.attrs.update(attrs)
        fh.attrs["something_else"] = "ignored"
    with h5py.File(tmp_path / "pool.h5", "r") as fh:
        assert PreprocessConfig.from_attrs(dict(fh.attrs)) == config
    assert PreprocessConfig.from_attrs(PreprocessConfig().to_attrs()) == PreprocessConfig()


def test_config_from_attrs_needs_every_field():
    attrs = PreprocessConfig().to_attrs()
    del attrs["blur"]
    with pytest.raises(KeyError):
        PreprocessConfig.from_attrs(attrs)


@pytest.mark.parametrize("bad", [dict(blur="gauss"), dict(n_points=1), dict(wave_min=7000.0),
                                 dict(max_bad_fraction=1.5), dict(target_resolving_power=0.0)])
def test_config_rejects_nonsense(bad):
    with pytest.raises(ValueError):
        PreprocessConfig(**bad)


# --- many -----------------------------------------------------------------------------
