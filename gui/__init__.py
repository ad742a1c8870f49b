"""The PyQt5 desktop front end of vo-al (a thin layer over :mod:`vo_al`).

Qt-free parts, testable without a window:

- :mod:`gui.queue`: the labelling queue as numpy arrays, and the lists
  (batch, top candidates, search) built by streaming the pool and scores;
- :mod:`gui.spectrum`: what the viewer shows of one spectrum;
- :mod:`gui.stats`: the numbers behind the status bar and the plots.

Qt parts: :mod:`gui.app` (``main``), :mod:`gui.main_window`,
:mod:`gui.viewer`, :mod:`gui.queue_model` and :mod:`gui.queue_panel`,
:mod:`gui.plots`, :mod:`gui.samp_panel`, :mod:`gui.workers`,
:mod:`gui.dialogs`, :mod:`gui.settings`, :mod:`gui.errors` and
:mod:`gui.screenshots`. See ``docs/gui.md``.
"""
