"""A non-editable install finds the shipped data (forcefields/, systems/) inside the package."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_ships_and_finds_data(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                           "-w", str(tmp_path / "dist"), str(ROOT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("cgaa-*.whl"))
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    names = zipfile.ZipFile(wheel).namelist()
    assert "cgaa/_data/forcefields/models/lipf6-ec-emc-1m.pt" in names
    assert any(n.startswith("cgaa/_data/systems/recipes/") for n in names)
    assert "cgaa/_data/forcefields/data/sevennet/test-sevenn.xyz.xz" in names  # labelled data ship too
    code = ("import cgaa, cgaa.core.resources as r; from cgaa.systems.build import list_recipes; "
            "print(cgaa.__file__); print(r.forcefields_dir()); print('lipf6-ec-emc-1m' in list_recipes())")
    env = dict(os.environ, PYTHONPATH=str(unpacked))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.split()
    assert lines[0].startswith(str(unpacked)) and lines[1].startswith(str(unpacked)) and lines[2] == "True"
