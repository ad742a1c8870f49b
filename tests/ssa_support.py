"""A synthetic Ondřejov CCD700 archive served by the local GAVO DaCHS as an
SSA service (``tests/dachs/voalssa/q.rd``), for the fetch tests and
``benchmarks/fetch.py``.

The spectra are synthetic CCD700 files in the archive's SSAP/SDM layout
(:func:`vo_al.synth.ccd700_files.ccd700_file`, odd indices), generated into
a copy of the resource folder and imported with ``scripts/dachs import``.
The folder below ``data/`` tells the RD how each one is served:

- ``fits/``: the access URL is the FITS file;
- ``dl/``: the access URL is a DataLink document whose ``#this`` link is
  the FITS file (the first ``twins`` of them are also in ``fits/``: the
  same dataset, the same publisher DID, published both ways);
- ``junk/``: the record says FITS, the server sends an HTML page;
- ``nonspec/``: a FITS table with no spectrum in it (columns time, counts);
- ``noaccess/``: the record has no access URL.
"""

from __future__ import annotations

import io
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from astropy.io import fits

from vo_al.synth.ccd700_files import ccd700_file

REPO = Path(__file__).resolve().parents[1]
DACHS_SCRIPT = REPO / "scripts" / "dachs"
RESOURCE = REPO / "tests" / "dachs" / "voalssa"
SSA_URL = "http://127.0.0.1:8080/voalssa/q/ssa/ssap.xml"  # ssa_url()
ROUTES = ("fits", "dl", "junk", "nonspec", "noaccess")
_STRUCTURAL = re.compile(r"XTENSION|BITPIX|NAXIS\d*|PCOUNT|GCOUNT|TFIELDS|T(TYPE|FORM|UNIT|UTYP)\d+")


@dataclass
class Spectrum:
    """One spectrum as published.

    Attributes
    ----------
    name : str
        The exposure name (``a201402030013``): the spectrum's id in vo-al.
    did : str
        Its publisher DID (``ivo://asu.cas.cz/stel/ccd700/NAME``).
    route : str
        One of :data:`ROUTES`.
    ra, dec : float
    label : str
        Its class in the synthetic truth (absorption, emission, double-peak).
    """

    name: str
    did: str
    route: str
    ra: float
    dec: float
    label: str


@dataclass
class Archive:
    """The resource folder written and what it publishes."""

    resource: Path
    spectra: list = field(default_factory=list)

    def by_route(self, *routes) -> list:
        """The spectra served by one of ``routes``."""
        return [s for s in self.spectra if s.route in routes]

    @property
    def readable(self) -> list:
        """The distinct spectra vo-al can fetch and read (fits/ and dl/)."""
        seen = {}
        for s in self.by_route("fits", "dl"):
            seen.setdefault(s.did, s)
        return list(seen.values())


def _index(k: int) -> int:
    """The k-th file index of the SSAP/SDM layout (odd indices)."""
    return 2 * k + 1


def _not_a_spectrum(data: bytes) -> bytes:
    """The file's SSA header cards over a table of time and counts."""
    with fits.open(io.BytesIO(data)) as hdul:
        header = hdul[1].header
        columns = fits.ColDefs([fits.Column("time", "D", array=hdul[1].data["spectral"]),
                                fits.Column("counts", "D", array=hdul[1].data["flux"])])
        table = fits.BinTableHDU.from_columns(columns)
        for card in header.cards:
            if not _STRUCTURAL.fullmatch(card.keyword):
                table.header[card.keyword] = (card.value, card.comment)
        buffer = io.BytesIO()
        fits.HDUList([fits.PrimaryHDU(), table]).writeto(buffer)
    return buffer.getvalue()


def _write(data_dir: Path, route: str, name: str, data: bytes):
    folder = data_dir / route
    folder.mkdir(parents=True, exist_ok=True)
    if route == "nonspec":
        data = _not_a_spectrum(data)
    (folder / f"{name}.fits").write_bytes(data)
    if route == "junk":
        (folder / f"{name}.html").write_text(
            "<!DOCTYPE html><html><head><title>Maintenance</title></head>"
            "<body><p>The archive is under maintenance.</p></body></html>\n")


def ssa_url(schema: str = RESOURCE.name) -> str:
    """The SSA service of the resource imported under ``schema``."""
    return f"http://127.0.0.1:8080/{schema}/q/ssa/ssap.xml"


def write_archive(folder: Path, counts: dict, seed: int = 7, twins: int = 0,
                  schema: str = RESOURCE.name) -> Archive:
    """Copy the RD into ``folder/SCHEMA`` and generate its data.

    Parameters
    ----------
    folder : Path
    counts : dict
        Route → number of spectra served that way.
    seed : int
    twins : int
        How many of the ``dl`` spectra are copies of ``fits`` ones (same
        file, same DID).
    schema : str
        The resource's schema and folder name (the benchmark uses its own).

    Returns
    -------
    Archive
    """
    resource = folder / schema
    resource.mkdir(parents=True)
    rd = (RESOURCE / "q.rd").read_text(encoding="utf-8")
    (resource / "q.rd").write_text(rd.replace(f'schema="{RESOURCE.name}"', f'schema="{schema}"'),
                                   encoding="utf-8")
    archive = Archive(resource)
    k = 0
    made = {}
    for route in ROUTES:
        for n in range(counts.get(route, 0)):
            twin = route == "dl" and n < twins
            synth = made[list(made)[n]] if twin else ccd700_file(seed, _index(k))
            k += 0 if twin else 1
            name = synth.name[:-len(".fits")]
            made.setdefault(name, synth)
            _write(resource / "data", route, name, synth.data)
            row = synth.row
            archive.spectra.append(Spectrum(name, f"ivo://asu.cas.cz/stel/ccd700/{name}", route,
                                            float(row["ra"]), float(row["dec"]), row["class"]))
    return archive


def import_archive(archive: Archive):
    """Import the resource into the running DaCHS (replacing an earlier one)."""
    subprocess.run(["bash", str(DACHS_SCRIPT), "import", str(archive.resource)], check=True,
                   capture_output=True)
