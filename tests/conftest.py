"""Shared fixtures: the real survey files and small synthetic surveys."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

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


@pytest.fixture(scope="session")
def pairs(real_data) -> list[dict]:
    with open(real_data / "pairs.csv", newline="") as fh:
        return list(csv.DictReader(fh))
