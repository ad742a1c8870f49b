"""The built wheel, installed for real (not editable): every package under
the project's own name, the icon shipped as package data, no test support
inside, and the desktop app starting from it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import require_qt

ROOT = Path(__file__).resolve().parents[1]

CHECK = r"""
import sys, vo_al, vo_al.gui.app as app
assert vo_al.__file__.startswith(sys.argv[1]), vo_al.__file__
assert app.ICON.is_file(), app.ICON
assert not app.application().windowIcon().isNull()
print("icon", app.ICON)
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the sources (a build/ folder left in the
    checkout by an earlier build could hold files since removed)."""
    source, folder = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("vo_al", "gui", "resources"):
        shutil.copytree(ROOT / name, source / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(folder),
                    str(source)], check=True, capture_output=True)
    return next(folder.glob("vo_al-*.whl"))


def test_the_wheel_holds_only_packages_the_project_owns(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"vo_al"}, tops
    assert "vo_al/gui/app.py" in names and "vo_al/resources/vo-al.svg" in names
    assert not [n for n in names if n.endswith(("peers.py", "screenshots.py"))]


def test_the_installed_wheel_runs_the_app_with_its_icon(wheel, tmp_path, pools):
    require_qt()
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(site), str(wheel)], check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(site), "QT_QPA_PLATFORM": "offscreen"}
    run = dict(env=env, cwd=tmp_path, capture_output=True, text=True)  # not the source tree
    checked = subprocess.run([sys.executable, "-c", CHECK, str(site)], **run)
    assert checked.returncode == 0, checked.stderr
    train, pool = pools
    session = tmp_path / "session"
    made = subprocess.run([sys.executable, "-m", "vo_al.cli", "init", str(session), "--train",
                           str(train), "--pool", str(pool)], **run)
    assert made.returncode == 0, made.stderr
    shot = subprocess.run([sys.executable, "-m", "vo_al.cli", "gui", str(session),
                           "--screenshot", str(tmp_path / "window.png")], **run)
    assert shot.returncode == 0, shot.stderr
    assert (tmp_path / "window.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
