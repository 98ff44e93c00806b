"""Package layout only (metadata lives in pyproject.toml).

The top-level data folders ``forcefields/`` and ``systems/`` are shipped inside the
package as ``cgaa._data.forcefields`` and ``cgaa._data.systems`` so that a plain,
non-editable ``pip install .`` still finds them (see ``cgaa/resources.py``).
"""
import os

from setuptools import find_packages, setup

DATA = {"cgaa._data.forcefields": "forcefields", "cgaa._data.systems": "systems"}


def _data_packages() -> list:
    """Every folder under the data folders as a (data-only) package, so setuptools neither
    warns that they are importable but unlisted nor leaves their files out."""
    out = []
    for pkg, root in DATA.items():
        for dirpath, dirnames, _ in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "__")))
            rel = os.path.relpath(dirpath, root)
            out.append(pkg if rel == "." else pkg + "." + rel.replace(os.sep, "."))
    return out


DATA_PACKAGES = _data_packages()

setup(
    packages=find_packages(include=["cgaa", "cgaa.*"]) + DATA_PACKAGES,
    package_dir=DATA,
    package_data={"cgaa": ["py.typed"], **{p: ["*"] for p in DATA_PACKAGES}},
)
