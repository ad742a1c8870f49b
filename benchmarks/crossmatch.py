"""Cross-match through TAP upload against the local DaCHS, against the
astropy match of the same rows: the time of each and their agreement.

    python benchmarks/crossmatch.py [--catalogue 1000000] [--candidates 100000]
                                    [--chunk-rows 10000 50000] [--modes sync async]
                                    [--json FILE]

Generates a catalogue (uniform on the sky; a SIMBAD-like table with the
real ``basic`` column names), imports it into DaCHS as ``voalbench.basic``
through ``scripts/dachs import`` (q3c-indexed, as tests/dachs/voaltest/q.rd
declares), and candidates of which a third lie within 2″ of a catalogue
row and the rest anywhere. The TAP match (:class:`vo_al.tapmatch.TapCatalogue`,
upload chunks of each ``--chunk-rows``, each ``--mode``) and the local
match (:func:`vo_al.crossmatch.match_file`, astropy's ``search_around_sky``
on the same rows) must agree on every candidate's nearest catalogue object
within 3″ (the separations to 1 mas). Needs DaCHS (``scripts/dachs install``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.table import Table, vstack

from vo_al.catalogues import CrossmatchError, file_catalogue, tap_catalogue
from vo_al.crossmatch import match_file, nearest
from vo_al.tapmatch import TapCatalogue, TapOptions

REPO = Path(__file__).resolve().parents[1]
TAP_URL = "http://127.0.0.1:8080/tap"
SCHEMA = "voalbench"


def sky(rng, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` positions uniform on the sphere, degrees."""
    return rng.uniform(0, 360, n), np.degrees(np.arcsin(rng.uniform(-1, 1, n)))


def make_catalogue(rng, n: int) -> Table:
    ra, dec = sky(rng, n)
    kinds = np.array(["Star", "Be*", "Em*", "HAeBe*", "EB*"])
    return Table({"oid": np.arange(1, n + 1), "main_id": [f"BENCH {i}" for i in range(n)],
                  "ra": ra, "dec": dec, "otype": kinds[rng.integers(0, len(kinds), n)]})


def make_candidates(rng, catalogue: Table, n: int) -> tuple[np.ndarray, np.ndarray]:
    near = n // 3
    pick = rng.choice(len(catalogue), near, replace=False)
    offset = rng.uniform(-2, 2, (2, near)) / 3600 / np.sqrt(2)
    ra_far, dec_far = sky(rng, n - near)
    dec_near = np.clip(np.asarray(catalogue["dec"])[pick] + offset[1], -90, 90)
    ra_near = (np.asarray(catalogue["ra"])[pick]
               + offset[0] / np.maximum(np.cos(np.radians(dec_near)), 1e-3)) % 360
    return np.concatenate([ra_near, ra_far]), np.concatenate([dec_near, dec_far])


def import_into_dachs(catalogue: Table, folder: Path) -> float:
    """Write the resource (the test RD with another schema) and import it."""
    resource = folder / SCHEMA
    resource.mkdir()
    rd = (REPO / "tests" / "dachs" / "voaltest" / "q.rd").read_text()
    (resource / "q.rd").write_text(rd.replace('schema="voaltest"', f'schema="{SCHEMA}"'))
    catalogue.write(resource / "basic.csv", format="ascii.csv")
    Table({"LAMOST": ["none"], "RAJ2000": [0.0], "DEJ2000": [0.0], "Class": ["-"]}).write(
        resource / "hou2016.csv", format="ascii.csv")
    started = time.perf_counter()
    subprocess.run(["bash", str(REPO / "scripts" / "dachs"), "import", str(resource)],
                   check=True, capture_output=True)
    return time.perf_counter() - started


def run_tap(ra, dec, chunk_rows: int, mode: str) -> tuple[Table, float]:
    catalogue = tap_catalogue(TAP_URL, f"{SCHEMA}.basic", "bench")
    started = time.perf_counter()
    with TapCatalogue(catalogue, TapOptions(chunk_rows=chunk_rows, mode=mode)) as service:
        parts = [pairs for _, _, pairs in service.match(ra, dec)]
    seconds = time.perf_counter() - started
    return nearest(vstack(parts), len(ra)), seconds


def agreement(tap: Table, local: Table) -> dict:
    same_id = np.asarray(tap["match_id"]) == np.asarray(local["match_id"])
    both = np.isfinite(tap["sep_arcsec"]) & np.isfinite(local["sep_arcsec"])
    difference = np.abs(np.asarray(tap["sep_arcsec"])[both]
                        - np.asarray(local["sep_arcsec"])[both])
    return {"agree_percent": round(100.0 * same_id.mean(), 4),
            "max_sep_difference_mas": round(float(difference.max(initial=0)) * 1000, 4)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalogue", type=int, default=1_000_000, help="catalogue rows")
    parser.add_argument("--candidates", type=int, default=100_000, help="candidates")
    parser.add_argument("--chunk-rows", type=int, nargs="+", default=[5_000, 10_000, 50_000],
                        help="upload chunk sizes to time")
    parser.add_argument("--modes", nargs="+", default=["sync", "async"],
                        choices=("sync", "async"), help="TAP query modes to time")
    parser.add_argument("--seed", type=int, default=1, help="seed of the positions")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if shutil.which("dachs") is None:
        print("needs GAVO DaCHS: scripts/dachs install", file=sys.stderr)
        return 2
    subprocess.run(["bash", str(REPO / "scripts" / "dachs"), "start"], check=True)
    rng = np.random.default_rng(args.seed)
    catalogue = make_catalogue(rng, args.catalogue)
    ra, dec = make_candidates(rng, catalogue, args.candidates)
    results = {"catalogue_rows": args.catalogue, "candidates": args.candidates, "runs": [],
               "refused": []}
    with tempfile.TemporaryDirectory() as folder:
        results["dachs_import_s"] = round(import_into_dachs(catalogue, Path(folder)), 2)
        started = time.perf_counter()
        _, pairs = match_file(file_catalogue(Path(folder) / SCHEMA / "basic.csv"), ra, dec,
                              table=catalogue)
        local = nearest(pairs, len(ra))
        results["astropy_s"] = round(time.perf_counter() - started, 2)
    results["found"] = int(np.count_nonzero(local["n_matches"]))
    print(f"astropy search_around_sky: {results['astropy_s']} s, {results['found']:,} of "
          f"{len(ra):,} candidates with a match (DaCHS import {results['dachs_import_s']} s)")
    for mode in args.modes:
        for chunk_rows in args.chunk_rows:
            try:
                tap, seconds = run_tap(ra, dec, chunk_rows, mode)
            except CrossmatchError as exc:  # e.g. over the service's upload limit
                results["refused"].append({"mode": mode, "chunk_rows": chunk_rows,
                                           "error": str(exc)})
                print(f"TAP upload, {mode}, chunks of {chunk_rows:,}: {exc}")
                continue
            run = {"mode": mode, "chunk_rows": chunk_rows, "seconds": round(seconds, 2),
                   **agreement(tap, local)}
            results["runs"].append(run)
            print(f"TAP upload, {mode}, chunks of {chunk_rows:,}: {run['seconds']} s, "
                  f"agreement {run['agree_percent']} % (separations within "
                  f"{run['max_sep_difference_mas']} mas)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if results["runs"] and all(r["agree_percent"] == 100.0
                                        for r in results["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
