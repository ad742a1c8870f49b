"""`vo-al synth --pool`: the synthetic survey straight into HDF5 pools.

The proof that it is the same generator and the same preprocessing: a small
survey written as FITS files and ingested gives the same ids, quality codes,
labels, vectors and truth as the direct route.
"""

from __future__ import annotations

import csv

import h5py
import numpy as np
import pytest

from vo_al.cli import main
from vo_al.labelfile import read_label_csv
from vo_al.pool import InputsChangedError, PoolExistsError, PoolReader, ingest, parts_path
from vo_al.synth import generate_pools, generate_survey

N_LAMOST, N_ONDREJOV, SEED = 60, 30, 3


def _by_id(path):
    with PoolReader(path) as pool:
        ids = list(pool.read("id"))
        columns = {name: pool.read(name) for name in pool.columns}
        return ids, columns, pool.class_names, dict(pool._h5.attrs)


def _truth(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def both_routes(tmp_path_factory):
    files = tmp_path_factory.mktemp("files")
    generate_survey(files, n_lamost=N_LAMOST, n_ondrejov=N_ONDREJOV, seed=SEED,
                    emission_fraction=0.1, workers=1)
    ingest([files / "lamost"], files / "pool.h5", workers=1)
    ingest([files / "ondrejov"], files / "train.h5", workers=1,
           labels=read_label_csv(files / "truth.csv"))
    direct = tmp_path_factory.mktemp("direct")
    report = generate_pools(direct, n_lamost=N_LAMOST, n_ondrejov=N_ONDREJOV, seed=SEED,
                            emission_fraction=0.1, workers=2, shard_rows=16)
    return files, direct, report


@pytest.mark.parametrize("name", ["pool.h5", "train.h5"])
def test_direct_pools_equal_fits_files_plus_ingest(both_routes, name):
    files, direct, _ = both_routes
    ids_f, cols_f, classes_f, attrs_f = _by_id(files / name)
    ids_d, cols_d, classes_d, attrs_d = _by_id(direct / name)
    assert sorted(ids_f) == sorted(ids_d) and len(set(ids_d)) == len(ids_d)
    assert len(ids_d) == (N_LAMOST if name == "pool.h5" else N_ONDREJOV)
    assert classes_f == classes_d
    assert set(cols_f) == set(cols_d)
    order = [ids_f.index(i) for i in ids_d]
    for column in cols_d:
        if column == "source":
            continue
        mine, theirs = cols_d[column], cols_f[column][order]
        if column == "spectra":
            np.testing.assert_allclose(mine, theirs, atol=1e-5, rtol=0)
        elif mine.dtype.kind == "f":
            np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-9)
        else:
            assert list(mine) == list(theirs), column
    skip = {"created"}
    assert {k: v for k, v in attrs_f.items() if k not in skip and k != "quality_names"
            and k != "class_names"} == {
        k: v for k, v in attrs_d.items() if k not in skip and k != "quality_names"
        and k != "class_names"}
    assert list(attrs_f["quality_names"]) == list(attrs_d["quality_names"])
    if name == "train.h5":
        labels = cols_d["label"]
        assert (labels >= 0).all() and len(set(labels)) == 3
        assert classes_d == ["absorption", "double-peak", "emission"]
    else:
        assert "label" not in cols_d and classes_d is None
    assert (cols_d["quality"] == 0).mean() > 0.9


def test_direct_truth_matches_the_files_truth(both_routes):
    files, direct, report = both_routes
    assert _truth(files / "truth.csv") == _truth(direct / "truth.csv")
    assert not parts_path(direct / "pool.h5").exists()
    assert not parts_path(direct / "train.h5").exists()
    assert not list(direct.glob("*.tmp")) and not list(direct.glob("*/"))
    assert report.pool.n_spectra == N_LAMOST and report.train.n_labelled == N_ONDREJOV
    assert sum(report.classes.values()) == N_LAMOST + N_ONDREJOV
    with h5py.File(direct / "pool.h5") as h5:
        assert h5["spectra"].chunks == (4096, 140) and h5.attrs["format_version"] == 1


def test_worker_count_and_resume_do_not_change_the_pools(both_routes, tmp_path):
    _, direct, _ = both_routes
    # an interrupted run: stage 1 finished for a part of the LAMOST pool only
    from vo_al.pool import write_shards
    from vo_al.synth.pools import SynthRecords

    records = SynthRecords("lamost", SEED, 0.1)
    write_shards(records.items(32), parts_path(tmp_path / "pool.h5"), records, workers=1,
                 shard_rows=16)
    report = generate_pools(tmp_path, n_lamost=N_LAMOST, n_ondrejov=N_ONDREJOV, seed=SEED,
                            emission_fraction=0.1, workers=1, shard_rows=16)
    assert report.resumed == 32
    for name in ("pool.h5", "train.h5"):
        with h5py.File(direct / name) as a, h5py.File(tmp_path / name) as b:
            for column in a:
                if column in ("wavelength",):
                    continue
                assert np.array_equal(a[column][:], b[column][:]), (name, column)
    assert (direct / "truth.csv").read_bytes() == (tmp_path / "truth.csv").read_bytes()
    with pytest.raises(PoolExistsError):
        generate_pools(tmp_path, n_lamost=N_LAMOST, seed=SEED)


def test_other_parameters_are_refused_on_resume(tmp_path):
    from vo_al.pool import write_shards
    from vo_al.synth.pools import SynthRecords

    records = SynthRecords("lamost", 1, 0.003)
    write_shards(records.items(8), parts_path(tmp_path / "pool.h5"), records, workers=1,
                 shard_rows=8)
    with pytest.raises(InputsChangedError):
        generate_pools(tmp_path, n_lamost=16, seed=2, workers=1, shard_rows=8)
    assert not (tmp_path / "pool.h5").exists() and not (tmp_path / "truth.csv").exists()


def test_cli_synth_pool(tmp_path, capsys):
    assert main(["synth", str(tmp_path), "--lamost", "20", "--ondrejov", "6", "--pool",
                 "--workers", "1"]) == 0
    assert "spectra/s" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "pool.h5", "pool.rejected.csv", "train.h5", "train.rejected.csv", "truth.csv"]
    with PoolReader(tmp_path / "train.h5") as train:
        assert len(train) == 6 and (train.read("label") >= 0).all()
    assert main(["synth", str(tmp_path), "--lamost", "20", "--pool"]) == 2
    assert main(["synth", str(tmp_path), "--pool", "--corrupt", "2"]) == 2
