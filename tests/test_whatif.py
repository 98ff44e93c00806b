"""Smoke test of the exploratory scripts in docs/benchmarks/ and docs/benchmarks/what-if/.

What it guarantees: every such script still imports against the current ``cgaa`` package (its
cgaa imports name modules and public names that exist), importing it runs nothing (all its work
sits in a ``main()`` called only under ``if __name__ == "__main__"``), and it has that callable
``main``. Imports of optional packages that are not installed here (CUDA-only or third-party
engines) belong inside ``main()``, so they do not break this test.

What it does not: run any script, so nothing here checks that a script still works end to end
with its command line, nor the numbers it prints or that docs/benchmarks.md quotes.
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "docs" / "benchmarks").glob("*.py")) + sorted(
    (ROOT / "docs" / "benchmarks" / "what-if").glob("*.py"))


def _id(path: Path) -> str:
    return path.relative_to(ROOT / "docs" / "benchmarks").as_posix()


def test_scripts_found():
    assert len(SCRIPTS) >= 15, f"expected at least 15 scripts under docs/benchmarks/, found {len(SCRIPTS)}"


@pytest.mark.parametrize("path", SCRIPTS, ids=[_id(p) for p in SCRIPTS])
def test_script_imports_without_running(path, monkeypatch):
    # no command-line arguments: a script that parsed them at import would fail here
    monkeypatch.setattr("sys.argv", [str(path)])
    name = "cgaa_whatif_" + re.sub(r"\W", "_", _id(path).removesuffix(".py"))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(getattr(module, "main", None)), f"{_id(path)} has no callable main()"
