"""Messages, peer files and SDM spectra, without any peer (STILTS where marked)."""

from __future__ import annotations

import bz2
import gzip
import lzma
import math
import os
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.io.votable import parse_single_table
from astropy.units import UnitsWarning

from test_samp_support import Trickle, require, serving
from vo_al.samp import messages as m
from vo_al.samp.errors import MessageRejected
from vo_al.samp.download import Transfer, download, refuse_remote_streams
from vo_al.samp.files import PeerFiles
from peers import run_tool
from vo_al.samp.sdm import full_spectrum, sdm_meta, window_spectrum, write_sdm
from vo_al.spectra import read_spectrum

UTYPES = {"spectral": "spec:Spectrum.Data.SpectralAxis.Value",
          "flux": "spec:Spectrum.Data.FluxAxis.Value",
          "error": "spec:Spectrum.Data.FluxAxis.Accuracy.StatError"}


@pytest.mark.parametrize("bad", [3, 2.5, None, True, {"k": [1]}, {1: "a"}, ["a", None]])
def test_only_strings_lists_and_maps_leave(bad):
    with pytest.raises(TypeError, match="SAMP takes only|not a string"):
        m.check_samp_value(m.message("x.y", value=bad))


def test_built_messages_are_all_strings():
    built = [m.load_table("file:///t.vot", "vo-al:1", "c"), m.highlight_row("t", "u", 3),
             m.select_rows("t", "u", np.array([0, 5])), m.point_at(10.5, -3.25),
             m.load_spectrum("u", "n", {"Access.Format": m.FITS_MIME}),
             m.ok({"n": "1"}), m.warning("w", {}), m.error("e")]
    for message in built:
        m.check_samp_value(message)
    assert built[1]["samp.params"] == {"table-id": "t", "url": "u", "row": "3"}
    assert built[2]["samp.params"]["row-list"] == ["0", "5"]
    assert float(built[3]["samp.params"]["dec"]) == -3.25


def test_texts_leave_as_ascii():
    sent = m.to_ascii(m.error("absorption → other for Ondřejov\0"))
    assert sent["samp.error"]["samp.errortxt"] == "absorption \\u2192 other for Ondrejov"
    assert m.to_ascii({"ř": ["é", 3]}) == {"r": ["e", 3]}


@pytest.mark.parametrize("row, expected", [("0", 0), ("9", 9), (" 4 ", 4), ("007", 7)])
def test_rows_are_zero_based_integer_strings(row, expected):
    assert m.row_param({"row": row}, 10) == expected


@pytest.mark.parametrize("row, text", [
    ("10", "out of range"), ("-1", "integer string"), ("1.5", "integer string"),
    ("x", "integer string"), ("", "integer string"), (["1"], "integer string"),
    ("+1", "integer string"), ("1" * 40, "integer string")])
def test_bad_rows_are_refused(row, text):
    with pytest.raises(MessageRejected, match=text):
        m.row_param({"row": row}, 10)


def test_row_lists_are_checked_whole_and_deduplicated():
    assert m.row_list_param({"row-list": ["2", "0", "2"]}, 3) == [2, 0]
    with pytest.raises(MessageRejected, match="has 100000 rows; the table has only 3"):
        m.row_list_param({"row-list": ["x"] * 100_000}, 3)
    with pytest.raises(MessageRejected, match="must be a list"):
        m.row_list_param({"row-list": "0,1"}, 3)
    with pytest.raises(MessageRejected, match="item 1 must be"):
        m.row_list_param({"row-list": ["0", "one"]}, 3)
    with pytest.raises(MessageRejected, match="missing parameter 'row-list'"):
        m.row_list_param({}, 3)


def test_parameter_types_are_checked():
    with pytest.raises(MessageRejected, match="samp.params must be a map"):
        m.params_of(["url"])
    with pytest.raises(MessageRejected, match="missing parameter 'url'"):
        m.string_param({}, "url")
    with pytest.raises(MessageRejected, match="'url' is empty"):
        m.string_param({"url": "  "}, "url")
    with pytest.raises(MessageRejected, match="must be a string, not a dict"):
        m.string_param({"url": {"a": "b"}}, "url")
    with pytest.raises(MessageRejected, match="must be a map"):
        m.map_param({"meta": "x"}, "meta")
    assert m.optional_string({}, "name") == "" and m.map_param({}, "meta") == {}


# --------------------------------------------------------------------------
# Peer files


def test_peer_files_are_unguessable_held_and_removed(tmp_path):
    files = PeerFiles(tmp_path)
    first = files.acquire("a", ".txt", lambda p: p.write_text("a"))
    again = files.acquire("a", ".txt", lambda p: pytest.fail("written twice"))
    assert first == again and len(first.stem) == 32 and first.parent.parent == tmp_path / "samp"
    assert (first.stat().st_mode & 0o777) and (first.parent.stat().st_mode & 0o777) == 0o700
    files.release("a")
    assert first.exists()
    files.release("a")
    assert not first.exists() and files.held() == 0
    with pytest.raises(ZeroDivisionError):
        files.acquire("b", ".txt", lambda p: (p.write_text("half"), 1 / 0))
    assert list(files.directory.glob("*.txt")) == []
    files.acquire("c", ".txt", lambda p: p.write_text("c"))
    with files.temporary(".vot") as path:
        path.write_text("x")
    assert not path.exists()
    files.close()
    assert not (tmp_path / "samp").exists()


def test_a_dead_runs_folder_is_removed_but_a_live_one_kept(tmp_path):
    live = PeerFiles(tmp_path)
    dead = tmp_path / "samp" / "run-0123456789abcdef"
    dead.mkdir()
    (dead / ".lock").write_bytes(b"")
    (dead / "left-over.fits").write_bytes(b"x")
    other = PeerFiles(tmp_path)
    assert not dead.exists() and live.directory.is_dir()
    live.close()
    assert (tmp_path / "samp").is_dir()  # the other bridge's folder is still there
    other.close()
    assert not (tmp_path / "samp").exists()


def test_download_reads_file_urls_and_refuses_the_rest(tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("hello")
    download(source.as_uri(), tmp_path / "out.txt", local=True)
    assert (tmp_path / "out.txt").read_text() == "hello"
    for url, text in [((tmp_path / "missing").as_uri(), "cannot read"),
                      ("ftp://example.org/x", "only file, http, https"),
                      ("no-scheme", "only file"), ("http://127.0.0.1:9/x.vot", "cannot read"),
                      ("file://elsewhere/etc/passwd", "must name this machine")]:
        with pytest.raises(MessageRejected, match=text):
            download(url, tmp_path / "out.txt", local=True)
    with pytest.raises(MessageRejected, match="larger than"):
        download(source.as_uri(), tmp_path / "out.txt", local=True, limit=3)


def test_download_opens_regular_files_only(tmp_path):
    fifo = tmp_path / "x.fits"
    os.mkfifo(fifo)  # nobody writes to it: reading it would wait for ever
    for url in (fifo.as_uri(), "file:///dev/zero", tmp_path.as_uri()):
        with pytest.raises(MessageRejected, match="not a regular file"):
            download(url, tmp_path / "out", local=True)


def test_untrusted_file_urls_are_refused_alike_whatever_the_path(tmp_path):
    real = tmp_path / "real.txt"
    real.write_text("secret")
    os.mkfifo(tmp_path / "fifo")
    texts = set()
    for path in (real, tmp_path / "missing", tmp_path / "fifo", Path("/etc/passwd")):
        with pytest.raises(MessageRejected) as refused:
            download(path.as_uri(), tmp_path / "out", local=False)
        texts.add(refused.value.text)
    assert len(texts) == 1 and "only for clients vo-al trusts" in texts.pop()


def test_download_decompresses_and_bounds_what_it_writes(tmp_path):
    out = tmp_path / "out"
    for name, data in [("t.gz", gzip.compress(b"a" * 5000) + gzip.compress(b"b" * 10)),
                       ("t.bz2", bz2.compress(b"c" * 5000)), ("t.xz", lzma.compress(b"d" * 5000))]:
        (tmp_path / name).write_bytes(data)
        download((tmp_path / name).as_uri(), out, local=True)
        assert out.read_bytes() in (b"a" * 5000 + b"b" * 10, b"c" * 5000, b"d" * 5000)
    bomb = tmp_path / "bomb.fits.gz"
    bomb.write_bytes(gzip.compress(bytes(8 << 20)))  # 8 KiB that decompress to 8 MiB
    assert bomb.stat().st_size < 64 << 10
    with pytest.raises(MessageRejected, match="decompresses to more than 1 MiB"):
        download(bomb.as_uri(), out, local=True, limit=1 << 20)
    assert out.stat().st_size <= 1 << 20
    refused = [("twice.gz", gzip.compress(gzip.compress(b"x" * 100)), "compressed twice"),
               ("a.zip", b"PK\x03\x04" + bytes(100), "zip archive"),
               ("cut.gz", gzip.compress(os.urandom(5000))[:-100], "ends before")]
    for name, data, text in refused:
        (tmp_path / name).write_bytes(data)
        with pytest.raises(MessageRejected, match=text):
            download((tmp_path / name).as_uri(), out, local=True)


@pytest.fixture
def trickle():
    with serving(Trickle) as url:
        yield f"{url}/spectrum.fits"


def test_a_slow_server_meets_the_deadline_and_a_cancel_stops_it(trickle, tmp_path):
    with pytest.raises(MessageRejected, match="was not read within 0.5 s"):
        download(trickle, tmp_path / "out", local=False, transfer=Transfer(0.5))
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    with pytest.raises(MessageRejected, match="stopped"):
        download(trickle, tmp_path / "out", local=False, transfer=Transfer(600, cancel))


def test_votable_data_behind_a_stream_href_are_refused(tmp_path):
    path = tmp_path / "t.vot"
    path.write_text('<VOTABLE><RESOURCE><TABLE><FIELD name="id" datatype="char"/><DATA>'
                    '<BINARY><STREAM href="file:///dev/zero"/></BINARY></DATA></TABLE>'
                    '</RESOURCE></VOTABLE>')
    with pytest.raises(MessageRejected, match="STREAM href are not fetched"):
        refuse_remote_streams(path, "http://peer/t.vot")


# --------------------------------------------------------------------------
# SDM spectra


@pytest.fixture(scope="module")
def lamost(real_data):
    return read_spectrum(real_data / "lamost" / "spec-55916-B5591606_sp01-001.fits")


def test_full_spectrum_in_fits_has_sdm_utypes_and_error_from_ivar(lamost, tmp_path):
    sdm = full_spectrum(lamost)
    write_sdm(sdm, tmp_path / "s.fits", "fits")
    with fits.open(tmp_path / "s.fits") as hdul:
        header, data = hdul[1].header, hdul[1].data
        assert [header[f"TUTYP{i}"] for i in (1, 2, 3)] == list(UTYPES.values())
        assert header["VOSEGT"] == "Spectrum" and header["OBJECT"] == lamost.designation
        assert len(data) == lamost.n_pixels
        assert np.array_equal(data["spectral"], lamost.wavelength)
        good = lamost.ivar > 0
        assert np.allclose(data["error"][good], 1 / np.sqrt(lamost.ivar[good]))
        assert np.isnan(data["error"][~good]).all()
    meta = sdm_meta(sdm, "file:///x.fits", "fits")
    assert meta["Access.Format"] == "application/fits"
    assert meta["vox:spectrum_axes"] == "spectral flux error"
    assert meta["Target.Name"] == lamost.designation
    m.check_samp_value(meta)


def test_window_spectrum_in_votable_has_sdm_utypes(tmp_path):
    grid = np.linspace(6519, 6732, 140)
    sdm = window_spectrum("star", grid, np.linspace(-1, 1, 140), "vacuum", 10.0, math.nan)
    write_sdm(sdm, tmp_path / "w.vot", "votable")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnitsWarning)  # "Angstrom" is not VOUnit's favourite
        table = parse_single_table(tmp_path / "w.vot")
    assert {f.name: f.utype for f in table.fields} == {k: UTYPES[k] for k in ("spectral", "flux")}
    assert len(table.array) == 140
    assert sdm_meta(sdm, "u", "votable")["Access.Format"] == "application/x-votable+xml"
    with pytest.raises(ValueError, match="SDM format"):
        write_sdm(sdm, tmp_path / "w.txt", "csv")


@pytest.mark.stilts
def test_sdm_files_load_in_stilts(lamost, tmp_path):
    require("stilts")
    for fmt, suffix in (("fits", ".fits"), ("votable", ".vot")):
        path = tmp_path / f"s{suffix}"
        write_sdm(full_spectrum(lamost), path, fmt)
        result = run_tool(["stilts", "tpipe", f"in={path}", "omode=count"],
                          {**os.environ, "HOME": str(tmp_path),
                           "JAVA_TOOL_OPTIONS": f"-Duser.home={tmp_path}"})
        assert result.returncode == 0, result.stderr
        assert f"columns: 3   rows: {lamost.n_pixels}" in result.stdout
