"""The example notebooks execute from top to bottom (build → simulate → analyze).

The kernel is pinned to the interpreter running the tests: a throw-away kernelspec whose
argv is ``sys.executable -m ipykernel_launcher`` is put on JUPYTER_PATH, so a fresh venv
with only ``ipykernel`` installed works and no other Python is picked up.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOTEBOOKS = ["analysis_walkthrough.ipynb", "electrolyte_pipeline.ipynb"]
KERNEL = "cgaa-test-python"


@pytest.fixture
def pinned_kernel(tmp_path, monkeypatch) -> str:
    kdir = tmp_path / "jupyter" / "kernels" / KERNEL
    kdir.mkdir(parents=True)
    (kdir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "cgaa tests", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    return KERNEL


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_committed_without_outputs(name):
    nb = nbformat.read(EXAMPLES / name, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{name}: strip outputs before committing"


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_executes(name, tmp_path, pinned_kernel):
    nb = nbformat.read(EXAMPLES / name, as_version=4)
    # first check that the kernel is this very interpreter's environment
    nb.cells.insert(0, nbformat.v4.new_code_cell("import sys; print(sys.prefix)"))
    run_dir = tmp_path / "cwd"
    run_dir.mkdir()
    client = nbclient.NotebookClient(nb, kernel_name=pinned_kernel, timeout=600,
                                     resources={"metadata": {"path": str(run_dir)}})
    client.execute()
    first = "".join(o.get("text", "") for o in nb.cells[0].outputs if o.output_type == "stream").strip()
    assert Path(first).resolve() == Path(sys.prefix).resolve()
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            assert out.output_type != "error", f"{name}: {out.get('ename')}: {out.get('evalue')}"
    if name == "analysis_walkthrough.ipynb":
        report = json.loads((run_dir / "walkthrough-run" / "analysis" / "report.json").read_text())
        assert report["species"]["Li"]["D"]["unit"] == "m^2/s"
        assert (run_dir / "walkthrough-run" / "analysis" / "msd.png").is_file()
    if name == "electrolyte_pipeline.ipynb":
        assert (run_dir / "pipeline-run" / "run" / "traj.dcd").is_file()
        report = json.loads((run_dir / "pipeline-run" / "analysis" / "report.json").read_text())
        assert "Li" in report["species"]
