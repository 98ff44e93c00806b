"""Package layout only (metadata lives in pyproject.toml).

The top-level data folders ``forcefields/`` and ``systems/`` are shipped inside the
package as ``cgaa._data.forcefields`` and ``cgaa._data.systems`` so that a plain,
non-editable ``pip install .`` still finds them (see ``cgaa/resources.py``).
"""
from setuptools import find_packages, setup

DATA = {"cgaa._data.forcefields": "forcefields", "cgaa._data.systems": "systems"}

setup(
    packages=find_packages(include=["cgaa", "cgaa.*"]) + list(DATA),
    package_dir=DATA,
)
