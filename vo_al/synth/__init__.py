"""Synthetic survey: physically plausible spectra in the real file layouts.

:func:`generate_survey` writes LAMOST low-resolution files (DR1, DR2 and DR7
images, DR9 tables, some gzipped), Ondřejov CCD700 files (IRAF image and
SSAP/SDM table), optionally corrupt files, and ``truth.csv`` with the class,
hard-case kind and generating parameters of each file. See ``docs/synth.md``.

>>> from vo_al.synth import generate_survey
>>> report = generate_survey("demo", n_lamost=2000, n_ondrejov=200)  # doctest: +SKIP
"""

from .survey import SynthReport, generate_survey
from .truth import TRUTH_COLUMNS, read_truth

__all__ = ["generate_survey", "SynthReport", "TRUTH_COLUMNS", "read_truth"]
