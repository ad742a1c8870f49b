"""Shared fixtures: the real survey files and small synthetic surveys."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from vo_support import dachs, dachs_tables, vo_survey  # noqa: F401  (shared fixtures)

REPO = Path(__file__).resolve().parents[1]


def real_data_dir() -> Path:
    """Real LAMOST/Ondřejov files: ``$VO_AL_REAL_DATA`` or ``../shared/data/real``."""
    return Path(os.environ.get("VO_AL_REAL_DATA", REPO.parent / "shared" / "data" / "real"))


@pytest.fixture(scope="session")
def real_data() -> Path:
    path = real_data_dir()
    if not (path / "MANIFEST.tsv").is_file():
        pytest.fail(f"real data not found at {path}: set VO_AL_REAL_DATA")
    return path


@pytest.fixture(scope="session")
def manifest(real_data) -> list[dict]:
    with open(real_data / "MANIFEST.tsv", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def build_real_pools(real_data: Path, manifest: list[dict], folder: Path) -> tuple[Path, Path]:
    """Pools of the real files: a training set of the Ondřejov spectra labelled
    from MANIFEST.tsv's Hα profile, and a pool of the LAMOST spectra."""
    from vo_al.labelfile import read_label_csv
    from vo_al.pool import ingest

    folder.mkdir(parents=True, exist_ok=True)
    labels = folder / "labels.csv"
    with open(labels, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "label"])
        for row in manifest:
            if row["file"].startswith("ondrejov/"):
                writer.writerow([real_data / row["file"], row["halpha_profile"]])
    ingest([real_data / "ondrejov"], folder / "train.h5", labels=read_label_csv(labels),
           workers=1)
    ingest([real_data / "lamost"], folder / "pool.h5", workers=1)
    return folder / "train.h5", folder / "pool.h5"


@pytest.fixture(scope="session")
def pools(real_data, manifest, tmp_path_factory) -> tuple[Path, Path]:
    """``(train.h5, pool.h5)`` built once from the real files (read-only)."""
    return build_real_pools(real_data, manifest, tmp_path_factory.mktemp("real-pools"))


@pytest.fixture(scope="session")
def pairs(real_data) -> list[dict]:
    with open(real_data / "pairs.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def require_qt():
    """Skip a GUI test module without PyQt5 and pyqtgraph, or, with ``CI``
    set, fail it: CI must run the desktop app's tests."""
    for module in ("PyQt5", "pyqtgraph"):
        try:
            __import__(module)
        except ImportError as exc:
            text = f"needs {module} (pip install 'vo-al[gui]'): {exc}"
            if os.environ.get("CI"):
                pytest.fail(f"{text}; CI is set, so the GUI tests must run", pytrace=False)
            pytest.skip(text, allow_module_level=True)
