"""The real-data check of the preprocessing: the same star seen by Ondřejov and LAMOST.

For every pair in ``pairs.csv`` the preprocessed Ondřejov vector (air, R ≈ 13,000,
blurred) is compared with the preprocessed LAMOST vector (vacuum, R ≈ 1800) by
Pearson correlation, for no blur, the paper's fixed 7 px blur and vo-al's
resolution-matched blur. Run with ``pytest -s`` to see the table.
"""

from __future__ import annotations

import numpy as np
import pytest

from vo_al.preprocess import PreprocessConfig, Quality, preprocess
from vo_al.spectra import read_spectrum

MODES = {"none": "none", "paper (7 px)": "fixed", "vo-al (R)": "resolution"}
EMISSION_MIN_R = 0.98


def pair_correlations(real_dir, pairs, config: PreprocessConfig) -> list[float]:
    """Pearson r between the preprocessed Ondřejov and LAMOST vectors of each pair."""
    out = []
    for pair in pairs:
        a = preprocess(read_spectrum(real_dir / pair["ondrejov_file"]), config)
        b = preprocess(read_spectrum(real_dir / pair["lamost_file"]), config)
        assert a.ok and b.ok, (pair, a.reason, b.reason)
        out.append(float(np.corrcoef(a.vector, b.vector)[0, 1]))
    return out


@pytest.fixture(scope="module")
def table(real_data, pairs):
    """{mode: [r per pair]}, printed as a table."""
    rows = {name: pair_correlations(real_data, pairs, PreprocessConfig(blur=blur))
            for name, blur in MODES.items()}
    print("\nOndřejov vs LAMOST, Pearson r of the preprocessed vectors")
    print(f"{'object':16s} {'profile':10s} " + " ".join(f"{m:>12s}" for m in MODES))
    for i, pair in enumerate(pairs):
        print(f"{pair['object']:16s} {pair['halpha_profile']:10s} "
              + " ".join(f"{rows[m][i]:12.4f}" for m in MODES))
    print(f"{'mean':27s} " + " ".join(f"{np.mean(rows[m]):12.4f}" for m in MODES))
    return rows


def test_pairs_file_is_usable(pairs):
    assert len(pairs) >= 10
    assert sum(p["halpha_profile"] == "emission" for p in pairs) >= 3


def test_resolution_blur_is_at_least_as_good_as_the_paper(table):
    assert np.mean(table["vo-al (R)"]) >= np.mean(table["paper (7 px)"])


def test_blurring_helps(table):
    assert np.mean(table["vo-al (R)"]) > np.mean(table["none"]) + 0.02


def test_emission_pairs_agree(table, pairs):
    for pair, r in zip(pairs, table["vo-al (R)"]):
        if pair["halpha_profile"] == "emission":
            assert r >= EMISSION_MIN_R, (pair["object"], r)


def test_every_pair_is_positively_correlated(table):
    assert min(table["vo-al (R)"]) > 0.5


def test_every_supported_real_file_preprocesses(real_data, manifest):
    for row in manifest:
        if row["file"].startswith("other/"):
            continue
        result = preprocess(read_spectrum(real_data / row["file"]))
        assert result.quality == Quality.OK, (row["file"], result.reason)
        assert result.vector.min() == -1.0 and result.vector.max() == 1.0
