"""vo-al: active deep learning for rare spectra in large surveys.

The core library. It never imports Qt: the desktop front end lives in the
separate :mod:`gui` package and talks to this one through plain calls.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vo-al")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
