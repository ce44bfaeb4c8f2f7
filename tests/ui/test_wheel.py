"""The web view's assets ship in the wheel (a non-editable install serves them, offline)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from launcher_plugin.ui.app import PAGES, STATIC_DIR

REPO = Path(__file__).resolve().parents[2]


def test_wheel_holds_every_static_file(tmp_path: Path) -> None:
    # Build from a copy: setuptools writes build/ and *.egg-info next to the sources.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for package in ("trackers", "launcher_plugin", "components"):
        shutil.copytree(REPO / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(src)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (wheel,) = (tmp_path / "dist").glob("torchx_lineage-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {
        f"launcher_plugin/ui/static/{p.relative_to(STATIC_DIR).as_posix()}"
        for p in STATIC_DIR.rglob("*")
        if p.is_file()
    }
    assert shipped - names == set()
    for needed in ("vendor/uPlot.iife.min.js", "vendor/dagre.min.js", "vendor/uPlot.LICENSE",
                   "vendor/dagre.LICENSE", "vendor/graphlib.LICENSE", "VENDORED.md"):  # fmt: skip
        assert f"launcher_plugin/ui/static/{needed}" in names
    scripts = {script for _, script, _ in PAGES.values()} | {"common.js", "app.css"}
    assert {f"launcher_plugin/ui/static/{s}" for s in scripts} <= names
