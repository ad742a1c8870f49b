"""The PyQt5 desktop front end of vo-al (a thin layer over :mod:`vo_al`)."""
