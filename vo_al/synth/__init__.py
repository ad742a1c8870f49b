"""Synthetic survey: physically plausible spectra in the real file layouts.

:func:`generate_survey` writes LAMOST low-resolution files (DR1, DR2 and DR7
images, DR9 tables, some gzipped), Ondřejov CCD700 files (IRAF image and
SSAP/SDM table), optionally corrupt files, and ``truth.csv`` with the class,
hard-case kind and generating parameters of each file. :func:`generate_pools`
writes the same spectra straight into HDF5 pools (``pool.h5``, ``train.h5``)
as ``vo-al ingest`` would build them from the files. See ``docs/synth.md``.

>>> from vo_al.synth import generate_survey
>>> report = generate_survey("demo", n_lamost=2000, n_ondrejov=200)  # doctest: +SKIP
"""

from .pools import PoolsReport, generate_pools
from .survey import SynthReport, generate_survey
from .truth import TRUTH_COLUMNS, read_truth

__all__ = ["generate_survey", "SynthReport", "generate_pools", "PoolsReport", "TRUTH_COLUMNS",
           "read_truth"]
