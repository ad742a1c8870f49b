"""The readers on every real file in ../shared/data/real, checked against
the headers (read independently with astropy) and MANIFEST.tsv."""

from __future__ import annotations

import gzip
import re

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
import astropy.units as u

from vo_al.spectra import (CorruptFile, RefusedFile, UnsupportedFormat, identify_format,
                           read_spectrum)

EXPECTED_FORMAT = {
    "LAMOST low-res 5-row primary image": "lamost-image",
    "Ondrejov CCD700 SSAP/SDM binary table": "ccd700-sdm",
    "Ondrejov CCD700 IRAF 1D image": "ccd700-iraf",
}


def _supported(manifest):
    return [row for row in manifest if not row["file"].startswith("other/")]


def _expected_format(row):
    return next(v for k, v in EXPECTED_FORMAT.items() if row["format"].startswith(k))


def _designation_coord(designation):
    """'LAMOST J075703.80+025653.6' → SkyCoord."""
    m = re.search(r"J(\d\d)(\d\d)(\d\d\.\d+)([+-]\d\d)(\d\d)(\d\d\.\d+)", designation)
    ra = f"{m[1]}h{m[2]}m{m[3]}s"
    dec = f"{m[4]}d{m[5]}m{m[6]}s"
    return SkyCoord(ra, dec)


def test_every_supported_real_file_is_read(real_data, manifest):
    rows = _supported(manifest)
    assert len(rows) >= 30
    for row in rows:
        spectrum = read_spectrum(real_data / row["file"])
        assert spectrum.format == _expected_format(row), row["file"]
        assert identify_format(real_data / row["file"]) == spectrum.format
        assert spectrum.n_pixels > 1000
        assert np.all(np.diff(spectrum.wavelength) > 0)
        assert spectrum.bad.shape == spectrum.flux.shape
        assert np.isfinite(spectrum.ra) and np.isfinite(spectrum.dec)


@pytest.mark.parametrize("kind", ["lamost"])
def test_lamost_ids_wavelengths_coordinates_match_headers(real_data, manifest, kind):
    for row in manifest:
        if not row["file"].startswith(kind + "/"):
            continue
        path = real_data / row["file"]
        spectrum = read_spectrum(path)
        with fits.open(path) as hdul:
            header, data = hdul[0].header, hdul[0].data
        n = header["NAXIS1"]
        expected_id = str(header["OBSID"]) if "OBSID" in header else header["FILENAME"][: -len(".fits")]
        assert spectrum.id == expected_id
        assert spectrum.medium == "vacuum"
        assert spectrum.n_pixels == n
        first = 10 ** header["CRVAL1"]
        last = 10 ** (header["CRVAL1"] + header["CD1_1"] * (n - 1))
        assert spectrum.wavelength[0] == pytest.approx(first, abs=0.01)
        assert spectrum.wavelength[-1] == pytest.approx(last, abs=0.01)
        if "Wavelength" in header["EXTEN0"]:  # DR2+: the row is used and agrees
            np.testing.assert_allclose(spectrum.wavelength, data[2], atol=1e-3)
        assert spectrum.ra == header["RA"] and spectrum.dec == header["DEC"]
        assert spectrum.designation == row["object"].split(" CLASS=")[0]
        sky = SkyCoord(spectrum.ra * u.deg, spectrum.dec * u.deg)
        # designations follow the input catalogue, a few arcsec from RA/DEC
        assert sky.separation(_designation_coord(spectrum.designation)) < 10 * u.arcsec
        assert spectrum.survey_class == header["CLASS"].strip()
        assert spectrum.resolving_power == pytest.approx(1800)
        no_weight = data[1] <= 0
        np.testing.assert_array_equal(
            spectrum.bad, (no_weight & ((data[0] == 0) | (data[4] != 0))) | (data[3] != 0)
        )


def test_ondrejov_ids_wavelengths_coordinates_match_headers(real_data, manifest):
    for row in manifest:
        if not row["file"].startswith("ondrejov/"):
            continue
        path = real_data / row["file"]
        spectrum = read_spectrum(path)
        assert spectrum.medium == "air"
        assert spectrum.object_name == row["object"]
        assert spectrum.resolving_power == pytest.approx(13000)
        with fits.open(path) as hdul:
            if spectrum.format == "ccd700-iraf":
                header = hdul[0].header
                assert spectrum.id == header["FILENAME"].split(".")[0]
                assert spectrum.wavelength[0] == pytest.approx(header["CRVAL1"])
                assert spectrum.wavelength[1] - spectrum.wavelength[0] == pytest.approx(header["CDELT1"])
                expected = SkyCoord(header["RA"], header["DEC"], unit=(u.hourangle, u.deg))
            else:
                header = hdul[1].header
                assert header["DS_IDPUB"].endswith("/" + spectrum.id)
                np.testing.assert_array_equal(spectrum.wavelength, hdul[1].data["spectral"])
                assert spectrum.wavelength[0] == pytest.approx(header["TDMIN1"] * 1e10, abs=0.01)
                assert spectrum.wavelength[-1] == pytest.approx(header["TDMAX1"] * 1e10, abs=0.01)
                expected = SkyCoord(header["RA"] * u.deg, header["DEC"] * u.deg)
        got = SkyCoord(spectrum.ra * u.deg, spectrum.dec * u.deg)
        assert got.separation(expected) < 0.01 * u.arcsec


def test_pairs_of_the_same_star_agree_on_position(real_data, pairs):
    for pair in pairs:
        ondrejov = read_spectrum(real_data / pair["ondrejov_file"])
        lamost = read_spectrum(real_data / pair["lamost_file"])
        a = SkyCoord(ondrejov.ra * u.deg, ondrejov.dec * u.deg)
        b = SkyCoord(lamost.ra * u.deg, lamost.dec * u.deg)
        # bright stars move: catalogue epochs differ by up to ~20"
        assert a.separation(b) < 30 * u.arcsec, pair["object"]


def _peak_wavelength(spectrum, lo, hi):
    inside = (spectrum.wavelength > lo) & (spectrum.wavelength < hi) & ~spectrum.bad
    return spectrum.wavelength[inside][np.argmax(spectrum.flux[inside])]


def test_dr1_subcontinuum_file_gets_vacuum_wavelengths_from_header(real_data):
    """BT CMi's Hα emission sits at the vacuum wavelength 6564.6 Å.

    Its emission core has ivar = 0 in the file; the flux must stay usable.
    """
    spectrum = read_spectrum(real_data / "lamost/bt-cmi-lamost.fits")
    assert spectrum.meta["EXTEN0"].startswith("Flux Inverse Subcontinuum")
    assert abs(_peak_wavelength(spectrum, 6540, 6590) - 6564.6) < 3.0
    core = np.abs(spectrum.wavelength - 6564.6) < 5
    assert np.all(spectrum.ivar[core] == 0) and not spectrum.bad[core].any()


def test_ondrejov_emission_peak_is_at_air_halpha(real_data):
    spectrum = read_spectrum(real_data / "ondrejov/gamma-cas-emission.fits")
    assert abs(_peak_wavelength(spectrum, 6540, 6590) - 6562.8) < 2.0


def test_gzipped_and_float64_files(real_data, tmp_path):
    gz = read_spectrum(real_data / "lamost/spec-57287-KP193637N444141V03_sp10-161.fits.gz")
    assert gz.id == "359910161"
    f64 = read_spectrum(real_data / "lamost/spec-55916-B5591606_sp01-001.fits")
    assert f64.flux.dtype == np.float64
    # the same file gzipped by us reads identically
    raw = (real_data / "lamost/spec-55916-B5591606_sp01-001.fits").read_bytes()
    packed = tmp_path / "spec-55916-B5591606_sp01-001.fits.gz"
    packed.write_bytes(gzip.compress(raw))
    again = read_spectrum(packed)
    assert again.id == f64.id
    np.testing.assert_array_equal(again.flux, f64.flux)


def test_echelle_file_is_unsupported_with_a_clear_message(real_data):
    path = real_data / "other/TRES.fits"
    with pytest.raises(UnsupportedFormat) as info:
        read_spectrum(path)
    message = str(info.value)
    assert str(path) in message
    assert "lamost-image" in message and "ccd700-sdm" in message
    assert "(51, 2304)" in message


@pytest.mark.parametrize(
    "content",
    [b"", b"this is not FITS at all " * 200, "truncated"],
    ids=["empty", "garbage", "truncated"],
)
def test_broken_files_raise_corrupt_file(real_data, tmp_path, content):
    if content == "truncated":
        content = (real_data / "lamost/spec-56266-GAC080N32V4_sp15-012.fits").read_bytes()[:40000]
    path = tmp_path / "broken.fits"
    path.write_bytes(content)
    with pytest.raises(CorruptFile) as info:
        read_spectrum(path)
    assert str(path) in str(info.value)


DR2_FILE = "lamost/spec-58397-EG014118N254444M01_sp03-031.fits"


def _edited_copy(real_data, tmp_path, name, edit, source=DR2_FILE):
    """A copy of a real LAMOST file after ``edit(hdu)``, written with astropy."""
    with fits.open(real_data / source) as hdul:
        edit(hdul[0])
        hdul.writeto(tmp_path / name)
    return tmp_path / name


@pytest.mark.parametrize("source", [DR2_FILE, "lamost/spec-56257-GAC089N38V2_sp01-001.fits"])
def test_placeholder_crpix1_with_a_valid_wavelength_row_is_read(real_data, tmp_path, source):
    """Real DR5 files carry CRPIX1 = -9999 next to a complete wavelength row."""

    def placeholder(hdu):
        hdu.header["CRPIX1"] = -9999

    path = _edited_copy(real_data, tmp_path, "crpix.fits", placeholder, source)
    assert fits.getheader(path)["CRPIX1"] == -9999
    spectrum, original = read_spectrum(path), read_spectrum(real_data / source)
    np.testing.assert_array_equal(spectrum.wavelength, original.wavelength)
    np.testing.assert_array_equal(spectrum.flux, original.flux)
    np.testing.assert_array_equal(spectrum.bad, original.bad)


@pytest.mark.parametrize("garbage, message", [
    (lambda w: w[::-1], "not strictly increasing"),
    (lambda w: np.where(np.arange(w.size) == 100, np.nan, w), "not finite"),
    (lambda w: np.zeros_like(w), "not strictly increasing"),
    (lambda w: w / 10.0, "outside 3000–10500 Å"),  # nm, not Å
    (lambda w: np.linspace(w[0], w[-1], w.size), "not log-linear"),
], ids=["reversed", "nan", "zeros", "nanometres", "not-log-linear"])
def test_garbage_wavelength_row_is_refused(real_data, tmp_path, garbage, message):
    def spoil(hdu):
        hdu.data[2] = garbage(hdu.data[2].astype(np.float64))

    path = _edited_copy(real_data, tmp_path, "garbage.fits", spoil)
    with pytest.raises(CorruptFile, match=f"wavelength row .*{message}") as info:
        read_spectrum(path)
    assert str(path) in str(info.value)


def test_dr1_header_solution_is_checked_too(real_data, tmp_path):
    """DR1 has no wavelength row: a placeholder CRPIX1 there is fatal."""

    def placeholder(hdu):
        hdu.header["CRPIX1"] = -9999

    path = _edited_copy(real_data, tmp_path, "dr1.fits", placeholder,
                        "lamost/bt-cmi-lamost.fits")
    with pytest.raises(CorruptFile, match="header wavelength solution .* outside"):
        read_spectrum(path)


def _or_masked(real_data, manifest):
    """(ivar > 0, bad) of every or-masked pixel of the real LAMOST files."""
    weighted, bad = [], []
    for row in manifest:
        if row["file"].startswith("lamost/"):
            spectrum = read_spectrum(real_data / row["file"])
            ormask = fits.getdata(real_data / row["file"])[4]
            weighted.append(spectrum.ivar[ormask != 0] > 0)
            bad.append(spectrum.bad[ormask != 0])
    return np.concatenate(weighted), np.concatenate(bad)


def test_or_masked_pixels_are_bad_only_without_weight(real_data, manifest):
    """63 or-masked pixels in 4 real files: the 24 with ivar = 0 are spikes, dips or
    zeros (bad), the 39 with ivar > 0 agree with their neighbours (kept)."""
    weighted, bad = _or_masked(real_data, manifest)
    assert (weighted.size, int(weighted.sum())) == (63, 39)
    np.testing.assert_array_equal(bad, ~weighted)


def test_emission_cores_with_zero_ivar_are_kept(real_data, manifest):
    """LAMOST zeroes ivar over strong Hα emission cores (11, 11 and 14 pixels in
    the three real emission stars) and sets no mask bit there."""
    sizes = []
    for row in manifest:
        if row["file"].startswith("lamost/") and row["halpha_profile"] == "emission":
            spectrum = read_spectrum(real_data / row["file"])
            offset = np.abs(spectrum.wavelength - 6564.6)
            core = (offset < 15.0) & (spectrum.ivar == 0)
            assert not spectrum.bad[core].any(), row["file"]
            continuum = np.median(spectrum.flux[(offset > 20.0) & (offset < 40.0)])
            assert spectrum.flux[core].min() > 1.1 * continuum, row["file"]
            sizes.append(int(core.sum()))
    assert sorted(sizes) == [11, 11, 14]


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_spectrum(tmp_path / "nope.fits")


def _with_naxis1(raw: bytes, naxis1: int) -> bytes:
    at = raw.index(b"NAXIS1  =")
    return raw[:at] + f"NAXIS1  = {naxis1:>20d}".ljust(80).encode() + raw[at + 80:]


def test_header_claiming_more_data_than_the_bound_is_refused(real_data, tmp_path):
    raw = (real_data / "lamost/spec-56266-GAC080N32V4_sp15-012.fits").read_bytes()
    path = tmp_path / "lie.fits"
    path.write_bytes(_with_naxis1(raw, 1_000_000))  # 5 × 10⁶ float32: 20 MB > 16 MiB
    with pytest.raises(RefusedFile, match=r"claims 20,000,000 bytes of data .* 16 MiB"):
        read_spectrum(path)


def test_headers_without_end_are_refused_at_the_bound(tmp_path):
    path = tmp_path / "endless.fits.gz"
    path.write_bytes(gzip.compress(b"SIMPLE  = T".ljust(80) + b"COMMENT".ljust(80) * 10**5))
    with pytest.raises(RefusedFile, match="headers longer than 288,000 bytes"):
        read_spectrum(path)


def test_bytes_after_the_last_hdu_and_missing_padding_are_tolerated(real_data, tmp_path):
    raw = (real_data / "lamost/spec-56266-GAC080N32V4_sp15-012.fits").read_bytes()
    reference = read_spectrum(real_data / "lamost/spec-56266-GAC080N32V4_sp15-012.fits")
    unpadded = raw[:11520 + 5 * 3909 * 4]  # the data end before the last block does
    for name, content in (("junk.fits", raw + bytes(2**20)), ("unpadded.fits", unpadded)):
        (tmp_path / name).write_bytes(content)
        np.testing.assert_array_equal(read_spectrum(tmp_path / name).flux, reference.flux)


def test_truncated_data_are_reported_with_the_sizes(real_data, tmp_path):
    raw = (real_data / "lamost/spec-56266-GAC080N32V4_sp15-012.fits").read_bytes()
    path = tmp_path / "short.fits"
    path.write_bytes(raw[:40000])
    with pytest.raises(CorruptFile, match="claims 78,180 bytes of data, the file holds 28,480"):
        read_spectrum(path)
