"""Building and streaming the HDF5 pool, on the real files."""

from __future__ import annotations

import csv

import h5py
import numpy as np
import pytest

from vo_al.labelfile import read_label_csv
from vo_al.pool import (
    InputsChangedError,
    NoSpectraError,
    PoolExistsError,
    PoolReader,
    ingest,
    rejected_csv_path,
)
from vo_al.preprocess import PreprocessConfig, preprocess
from vo_al.spectra import read_spectrum


def _rejected(pool_path):
    with open(rejected_csv_path(pool_path), newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def real_pool(real_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("pool") / "real.h5"
    report = ingest([real_data], out, workers=2, shard_rows=8)
    return out, report


def test_real_files_become_a_pool_and_bad_files_are_listed(real_pool, manifest):
    out, report = real_pool
    supported = [row for row in manifest if not row["file"].startswith("other/")]
    assert report.n_inputs == len(manifest)
    assert report.n_spectra == report.n_usable == len(supported)
    assert report.n_rejected == 1
    (row,) = _rejected(out)
    assert row["path"].endswith("other/TRES.fits")
    assert "no reader recognises" in row["reason"] and row["action"] == "rejected"
    assert not out.with_name(out.name + ".parts").exists()


def test_pool_layout_and_rows_match_the_one_preprocessing_path(real_pool, real_data):
    out, _ = real_pool
    with h5py.File(out) as h5:
        assert h5["spectra"].dtype == np.float32 and h5["spectra"].chunks[1] == 140
        assert h5["quality"].dtype == np.uint8
        assert h5.attrs["format_version"] == 1 and "vo_al_version" in h5.attrs
        assert h5.attrs["preprocess.n_points"] == 140
        assert "label" not in h5
    with PoolReader(out) as pool:
        assert pool.config == PreprocessConfig()
        np.testing.assert_allclose(pool.wavelength, np.linspace(6519, 6732, 140))
        ids, sources = pool.read("id"), pool.read("source")
        assert len(set(ids)) == len(ids) == len(pool)
        spectra = pool.read("spectra")
        assert spectra.min() == -1.0 and spectra.max() == 1.0
        for i in (0, len(pool) - 1):
            expected = preprocess(read_spectrum(sources[i])).vector
            np.testing.assert_array_equal(spectra[i], expected)
            assert read_spectrum(sources[i]).id == ids[i]
        designations = pool.read("designation")
        assert "LAMOST J075703.80+025653.6" in designations
        assert np.isfinite(pool.read("ra")).all()


def test_streaming_covers_every_row_once(real_pool):
    out, _ = real_pool
    with PoolReader(out) as pool:
        seen = []
        for start, chunk in pool.iter_chunks(5, ("id", "spectra")):
            assert chunk["spectra"].shape == (len(chunk["id"]), 140)
            seen.extend(chunk["id"])
        assert seen == list(pool.read("id"))


def test_labels_attach_by_id_and_by_file(real_data, tmp_path):
    table = tmp_path / "labels.csv"
    table.write_text(
        "id,file,label\n"
        "a201402030013,,absorption\n"
        f",{real_data / 'ondrejov/gamma-cas-emission.fits'},emission\n"
    )
    out = tmp_path / "train.h5"
    report = ingest([real_data / "ondrejov"], out, labels=read_label_csv(table), workers=1)
    assert report.n_labelled == 2
    with PoolReader(out) as pool:
        assert pool.class_names == ["absorption", "emission"]
        labels = dict(zip(pool.read("id"), pool.read("label")))
    assert labels["a201402030013"] == 0 and labels["uk220017"] == 1
    assert sum(v >= 0 for v in labels.values()) == 2


def test_list_files_missing_paths_and_duplicates(real_data, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text(
        "# a list of spectra\n"
        f"{real_data / 'lamost/spec-56266-GAC080N32V4_sp15-012.fits'}\n"
        f"{tmp_path / 'not-there.fits'}\n\n"
    )
    again = real_data / "lamost/spec-56266-GAC080N32V4_sp15-012.fits"
    out = tmp_path / "p.h5"
    report = ingest([listing, again], out, workers=1)
    assert (report.n_spectra, report.n_rejected, report.n_duplicates) == (1, 1, 1)
    reasons = [row["reason"] for row in _rejected(out)]
    assert any("No such file" in r for r in reasons)
    assert any(r.startswith("duplicate id spec-56266") for r in reasons)


def test_unusable_spectra_are_kept_with_a_quality_and_listed(real_data, tmp_path):
    from astropy.io import fits

    with fits.open(real_data / "lamost/spec-56266-GAC080N32V4_sp15-012.fits") as hdul:
        hdul[0].data[0] = 0.0
        hdul.writeto(tmp_path / "zero.fits")
    out = tmp_path / "p.h5"
    report = ingest([tmp_path / "zero.fits"], out, workers=1)
    assert report.n_unusable == 1 and report.quality_counts == {"FLAT_OR_ZERO": 1}
    (row,) = _rejected(out)
    assert row["action"] == "kept, quality > 0" and row["reason"]
    with PoolReader(out) as pool:
        assert pool.read("quality")[0] != 0


class _Killed(Exception):
    pass


def test_interrupted_ingest_resumes_without_duplicates(real_data, tmp_path):
    out = tmp_path / "p.h5"
    calls = []

    def die_after_first_shard(done, total):
        calls.append(done)
        if done >= 8:
            raise _Killed

    with pytest.raises(_Killed):
        ingest([real_data], out, workers=1, shard_rows=8, progress=die_after_first_shard)
    assert not out.exists() and out.with_name("p.h5.parts").is_dir()
    report = ingest([real_data], out, workers=1, shard_rows=8)
    assert report.resumed_inputs == 8 > 0
    clean = ingest([real_data], tmp_path / "clean.h5", workers=1, shard_rows=8)
    with PoolReader(out) as resumed, PoolReader(tmp_path / "clean.h5") as fresh:
        assert list(resumed.read("id")) == list(fresh.read("id"))
        np.testing.assert_array_equal(resumed.read("spectra"), fresh.read("spectra"))
    assert report.n_spectra == clean.n_spectra


def test_resume_with_other_inputs_is_refused(real_data, tmp_path):
    out = tmp_path / "p.h5"
    with pytest.raises(_Killed):
        ingest([real_data / "lamost"], out, workers=1, shard_rows=4,
               progress=lambda done, total: (_ for _ in ()).throw(_Killed) if done else None)
    with pytest.raises(InputsChangedError, match="differ"):
        ingest([real_data / "ondrejov"], out, workers=1, shard_rows=4)


def test_existing_pool_needs_overwrite(real_data, tmp_path):
    out = tmp_path / "p.h5"
    ingest([real_data / "ondrejov"], out, workers=1)
    with pytest.raises(PoolExistsError):
        ingest([real_data / "ondrejov"], out, workers=1)
    assert ingest([real_data / "ondrejov"], out, workers=1, overwrite=True).n_spectra == 15


def test_kill_9_during_ingest_then_resume(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from vo_al.synth import generate_survey

    generate_survey(tmp_path / "survey", n_lamost=400, seed=5, corrupt=2, workers=1)
    inputs = str(tmp_path / "survey" / "lamost")
    out = tmp_path / "pool.h5"
    parts = tmp_path / "pool.h5.parts"
    command = [sys.executable, "-m", "vo_al.cli", "ingest", inputs, "--out", str(out),
               "--workers", "1", "--shard-rows", "16"]
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    deadline = time.time() + 60
    while len(list(parts.glob("shard-*.npz"))) < 3 and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not out.exists() and len(list(parts.glob("shard-*.npz"))) >= 3
    resumed = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    assert "resuming after" in resumed
    clean = ingest([inputs], tmp_path / "clean.h5", workers=1)
    with PoolReader(out) as a, PoolReader(tmp_path / "clean.h5") as b:
        assert list(a.read("id")) == list(b.read("id"))
        np.testing.assert_array_equal(a.read("spectra"), b.read("spectra"))
    assert len(_rejected(out)) == len(_rejected(tmp_path / "clean.h5")) == clean.n_rejected + \
        clean.n_unusable


def test_a_shard_of_rejected_files_only_is_fine(real_data, tmp_path):
    bad = [tmp_path / "a.fits", tmp_path / "b.fits"]
    bad[0].write_text("not a FITS file")
    bad[1].write_bytes(b"")
    good = sorted((real_data / "lamost").glob("spec-56*.fits"))[:2]
    out = tmp_path / "p.h5"
    report = ingest([*bad, *good], out, workers=1, shard_rows=2)  # the first shard: all bad
    assert (report.n_spectra, report.n_rejected) == (2, 2)
    with PoolReader(out) as pool:
        assert len(pool) == 2 and pool.read("spectra").shape == (2, pool.length)


@pytest.mark.parametrize("inputs", ["one-bad-file", "empty-folder", "mistyped-path"])
def test_no_readable_spectrum_is_an_error_and_leaves_no_pool(tmp_path, inputs):
    path = {"one-bad-file": tmp_path / "x.fits", "empty-folder": tmp_path / "empty",
            "mistyped-path": tmp_path / "nosuch"}[inputs]
    if inputs == "one-bad-file":
        path.write_text("not a FITS file")
    elif inputs == "empty-folder":
        path.mkdir()
    out = tmp_path / "p.h5"
    with pytest.raises(NoSpectraError, match="no readable spectrum"):
        ingest([path], out, workers=1)
    assert not out.exists() and not (tmp_path / "p.h5.parts").exists()


# ----------------------------------------------------------- duplicate ids


def _first_occurrences(ids) -> list[bool]:
    seen, first = set(), []
    for i in ids:
        first.append(i not in seen)
        seen.add(i)
    return first


def test_the_duplicate_index_keeps_first_occurrences_across_buckets(tmp_path):
    from vo_al.duplicates import DuplicateIndex

    rng = np.random.default_rng(4)
    ids = [f"spec-{n}" for n in rng.integers(0, 300, 1000)]
    shards = [ids[a:b] for a, b in zip([0, 0, 7, 400, 401, 990], [0, 7, 400, 401, 990, 1000])]
    # 16 rows per bucket: 63 buckets, read back in slices of at most 16 rows
    with DuplicateIndex(tmp_path / "ids", bucket_rows=16) as index:
        for shard in shards:
            index.add(shard)
        found = index.resolve()
        fresh = np.concatenate([index.fresh(len(shard)) for shard in shards])
        assert len(list((tmp_path / "ids").iterdir())) == 1  # the flags; buckets are gone
    assert fresh.tolist() == _first_occurrences(ids)
    assert found == len(ids) - len(set(ids))
    assert not (tmp_path / "ids").exists()


def _ingest_twice_over(real_data, out, **kwargs):
    """The LAMOST files, then the same files again: duplicates within and across shards."""
    return ingest([real_data / "lamost", real_data / "ondrejov", real_data / "lamost"], out,
                  workers=1, shard_rows=5, **kwargs)


def test_duplicates_across_shards_are_refused_in_input_order(real_data, tmp_path, monkeypatch):
    from vo_al import duplicates

    clean = _ingest_twice_over(real_data, tmp_path / "clean.h5")
    monkeypatch.setattr(duplicates, "BUCKET_ROWS", 4)  # many buckets, many slices each
    report = _ingest_twice_over(real_data, tmp_path / "p.h5")
    lamost = sorted(str(p) for p in (real_data / "lamost").iterdir())
    assert report.n_duplicates == clean.n_duplicates == len(lamost)
    sources = [row["path"] for row in _rejected(tmp_path / "p.h5")
               if row["reason"].startswith("duplicate id")]
    assert sources == lamost
    assert _rejected(tmp_path / "p.h5") == _rejected(tmp_path / "clean.h5")
    with PoolReader(tmp_path / "p.h5") as pool, PoolReader(tmp_path / "clean.h5") as fresh:
        assert list(pool.read("id")) == list(fresh.read("id"))
        assert len(set(pool.read("id"))) == len(pool) == report.n_spectra


_KILL_IN_CONSOLIDATION = r"""
import os, signal, sys
from pathlib import Path
from vo_al import duplicates
from vo_al.pool import ingest

method, calls = getattr(duplicates.DuplicateIndex, sys.argv[1]), []

def dying(self, *args):
    calls.append(args)
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return method(self, *args)

setattr(duplicates.DuplicateIndex, sys.argv[1], dying)
duplicates.BUCKET_ROWS = 4
real = Path(sys.argv[2])
ingest([real / "lamost", real / "ondrejov", real / "lamost"], sys.argv[3], workers=1,
       shard_rows=5)
"""


@pytest.mark.parametrize("step", ["add", "fresh"])  # building the index, writing the pool
def test_kill_9_during_consolidation_then_resume(real_data, tmp_path, step):
    import subprocess
    import sys

    out = tmp_path / "p.h5"
    killed = subprocess.run([sys.executable, "-c", _KILL_IN_CONSOLIDATION, step,
                             str(real_data), str(out)], capture_output=True)
    assert killed.returncode == -9, killed.stderr
    assert not out.exists() and (tmp_path / "p.h5.parts" / "duplicate-ids").is_dir()
    report = _ingest_twice_over(real_data, out)
    assert report.resumed_inputs == report.n_inputs
    clean = _ingest_twice_over(real_data, tmp_path / "clean.h5")
    assert report.n_duplicates == clean.n_duplicates > 0
    assert _rejected(out) == _rejected(tmp_path / "clean.h5")
    with PoolReader(out) as a, PoolReader(tmp_path / "clean.h5") as b:
        assert list(a.read("id")) == list(b.read("id"))
        np.testing.assert_array_equal(a.read("spectra"), b.read("spectra"))
    assert not (tmp_path / "p.h5.parts").exists()
