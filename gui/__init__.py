"""The PyQt5 desktop front end of vo-al, installed as ``vo_al.gui``.

Widgets, Qt models, dialogs and workers over one
:class:`vo_al.workspace.Workspace` (the Qt-free application layer every
door uses): :mod:`vo_al.gui.app` (``main``), :mod:`vo_al.gui.main_window`,
:mod:`vo_al.gui.viewer`, :mod:`vo_al.gui.queue_model` and
:mod:`vo_al.gui.queue_panel`, :mod:`vo_al.gui.plots`,
:mod:`vo_al.gui.samp_panel`, :mod:`vo_al.gui.workers`,
:mod:`vo_al.gui.events` (the workspace's events as Qt signals),
:mod:`vo_al.gui.crossmatch` (what spectra are known as),
:mod:`vo_al.gui.dialogs`, :mod:`vo_al.gui.settings` and
:mod:`vo_al.gui.errors`. See ``docs/gui.md`` and ``docs/architecture.md``.
"""
