"""The core library never imports Qt (STYLE.md: glue's core/front-end split)."""

import subprocess
import sys

SCRIPT = r"""
import importlib, pkgutil, sys

class BlockQt:
    def find_spec(self, name, path=None, target=None):
        if (name.split('.')[0] in {'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'pyqtgraph'}
                or name.startswith('vo_al.gui')):
            raise ImportError(f'core imported {name}')
        return None

sys.meta_path.insert(0, BlockQt())
import vo_al
for module in pkgutil.walk_packages(vo_al.__path__, 'vo_al.'):
    importlib.import_module(module.name)
import vo_al.workspace  # the application layer every door uses is core too
assert 'vo_al.workspace' in sys.modules and 'vo_al.events' in sys.modules
print('imported', len(sys.modules))
"""


def test_every_core_module_imports_with_qt_blocked():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "imported" in result.stdout


def test_the_command_line_parser_loads_no_heavy_library():
    """``vo-al --help`` and every command's argument parsing start at once:
    the defaults shown come from vo_al.options, not from the modules that
    need torch, scipy, astropy, pyvo, h5py or Dask."""
    script = ("import sys; from vo_al.cli import build_parser; build_parser(); "
              "print(sorted({'torch', 'scipy', 'astropy', 'pyvo', 'h5py', 'distributed'} "
              "& set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
