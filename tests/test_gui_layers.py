"""The desktop app is widgets over the workspace: no gui module reaches into
the core's storage or numerics (pools, scores files, the id index, the
strategies, preprocessing) itself."""

from __future__ import annotations

import subprocess
import sys

from conftest import require_qt

#: Core modules the Qt layer must not import: it asks the workspace instead.
FORBIDDEN = ("vo_al.scoring", "vo_al.pool", "vo_al.idindex", "vo_al.strategies",
             "vo_al.preprocess", "vo_al.loop", "vo_al.queues", "vo_al.summary",
             "vo_al.records", "vo_al.features", "vo_al.train")

SCRIPT = r"""
import ast, pathlib, sys
import vo_al.gui
forbidden = set(sys.argv[1:])
found = []
for path in sorted(pathlib.Path(vo_al.gui.__file__).parent.glob("*.py")):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        found += [f"{path.name}: {n}" for n in names if n in forbidden]
print("\n".join(found))
"""


def test_no_gui_module_imports_core_internals():
    require_qt()
    result = subprocess.run([sys.executable, "-c", SCRIPT, *FORBIDDEN], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", "gui modules import core internals:\n" + result.stdout


def test_every_gui_module_imports():
    require_qt()
    import importlib
    import pkgutil

    import vo_al.gui

    names = [m.name for m in pkgutil.iter_modules(vo_al.gui.__path__, "vo_al.gui.")]
    assert "vo_al.gui.main_window" in names
    for name in names:
        importlib.import_module(name)
