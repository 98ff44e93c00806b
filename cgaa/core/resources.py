"""Locate the shipped data folders ``forcefields/`` and ``systems/``.

In a source checkout (editable install) they are the top-level folders of the
repository; after a non-editable ``pip install .`` they live inside the installed
package as ``cgaa/_data/forcefields`` and ``cgaa/_data/systems``.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Union

_REPO = Path(__file__).resolve().parents[2]  # cgaa/core/resources.py → the checkout


def _data_dir(name: str) -> Path:
    checkout = _REPO / name
    if checkout.is_dir() and (_REPO / "pyproject.toml").is_file():
        return checkout
    spec = importlib.util.find_spec(f"cgaa._data.{name}")
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            if Path(loc).is_dir():
                return Path(loc)
    raise FileNotFoundError(
        f"cgaa data folder '{name}' not found (looked in {checkout} and the installed package); "
        "reinstall cgaa"
    )


def forcefields_dir() -> Path:
    """Folder holding the classical teacher force fields and the trained CGAA models."""
    return _data_dir("forcefields")


def systems_dir() -> Path:
    """Folder holding molecule templates and electrolyte recipes."""
    return _data_dir("systems")


def forcefield_path(name: str) -> Path:
    """Path of a file under ``forcefields/`` (raises FileNotFoundError naming it)."""
    p = forcefields_dir() / name
    if not p.exists():
        raise FileNotFoundError(f"no shipped force field file '{name}' in {forcefields_dir()}")
    return p


def systems_path(name: str) -> Path:
    """Path of a file under ``systems/`` (raises FileNotFoundError naming it)."""
    p = systems_dir() / name
    if not p.exists():
        raise FileNotFoundError(f"no shipped systems file '{name}' in {systems_dir()}")
    return p


def repository_path(path: Union[str, Path]) -> str:
    """``path`` relative to the source checkout when it lies inside it (``build/x/train.xyz``),
    else its absolute path: how a model card names a file so that the name means the same on
    every clone."""
    p = Path(path).resolve()
    try:
        return p.relative_to(_REPO.resolve()).as_posix() if (_REPO / "pyproject.toml").is_file() else str(p)
    except ValueError:
        return str(p)
