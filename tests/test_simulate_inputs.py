"""What `cgaa simulate` checks in its input before anything runs: coordinates (non-finite,
absurdly far from the box: the atom named by PDB serial), molecules wrapped into the box
atom by atom (made whole, same energy, whole in frame 0), settings that would be ignored or
round to nothing (--pressure without npt, --time-ps below a step), a training checkpoint
given as --model; errors name the command line's flags."""
from __future__ import annotations

import json

import numpy as np
import pytest

openmm = pytest.importorskip("openmm")
pytest.importorskip("openmmtorch")
from openmm import unit  # noqa: E402

from cgaa.md.rundir import load_state_csv  # noqa: E402
from cgaa.md.run import run_simulation  # noqa: E402
from test_openmm import small_system, stabilizer  # noqa: E402
from test_simulate import _dcd, system_parts  # noqa: E402,F401


@pytest.fixture(scope="module")
def cli_box(tmp_path_factory):
    """A PDB of test_openmm's 68-atom box and a weak deployed model for it (the CLI cannot add
    the stabiliser, so the model is weak enough to stay sane alone)."""
    from openmm.app import PDBFile

    from cgaa.core.modelfile import save_model

    root = tmp_path_factory.mktemp("inputs")
    weak, top, pos, _ = small_system(rms_force=0.02)
    pdb = root / "good.pdb"
    with open(pdb, "w") as fh:
        PDBFile.writeFile(top, pos * unit.nanometer, fh)
    return pdb, save_model(weak, root / "weak.pt"), top


def _edit_atom(pdb, dst, serial, x=None):
    """Copy ``pdb`` to ``dst`` with the x coordinate (columns 31-38) of atom ``serial`` set to ``x``."""
    lines = []
    for line in pdb.read_text().splitlines(keepends=True):
        if line.startswith(("ATOM", "HETATM")) and int(line[6:11]) == serial:
            line = line[:30] + f"{x:>8}" + line[38:]
        lines.append(line)
    dst.write_text("".join(lines))
    return dst


def _atom(top, serial):
    a = list(top.atoms())[serial - 1]
    return a.name, a.residue.name


@pytest.mark.parametrize("x, why", [("nan", "non-finite position"), ("9999.999", "box lengths from the origin")])
def test_bad_coordinates_are_refused_naming_the_atom(tmp_path, cli_box, capsys, x, why):
    from cgaa.cli import main

    pdb, model, top = cli_box
    bad = _edit_atom(pdb, tmp_path / "bad.pdb", 17, x)
    name, res = _atom(top, 17)
    capsys.readouterr()
    code = main(["simulate", str(bad), "--model", str(model), "--out", str(tmp_path / "run"), "--platform",
                 "Reference", "--steps", "10", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err, err
    assert f"atom 17 ({name}, residue {res} " in err and why in err, err
    assert not (tmp_path / "run" / "run.json").exists()  # refused before anything ran


def test_atom_wrapped_input_is_made_whole(tmp_path, system_parts, capsys):  # noqa: F811
    """A box written GROMACS/LAMMPS style (each atom wrapped into the cell on its own): the
    same first-frame energy as the whole box, molecules whole in frame 0 (equal to the whole
    input up to a lattice vector per molecule), one printed line and run.json say how many."""
    from openmm.app import PDBFile

    model, top, pos = system_parts
    box = np.array(top.getPeriodicBoxVectors().value_in_unit(unit.nanometer))
    pos = np.asarray(pos, dtype=float) + 0.37 * box.sum(axis=0)  # (a translation: the same box) across the faces
    wrapped = pos - np.floor(pos @ np.linalg.inv(box)) @ box
    broken = sum(1 for r in top.residues()
                 if len({tuple(np.floor(pos[a.index] @ np.linalg.inv(box))) for a in r.atoms()}) > 1)
    assert broken > 0  # the test box has molecules across the cell faces
    runs = {}
    for name, inp in (("whole", (top, pos)), ("wrapped", (top, wrapped)), ("file", "wrapped.pdb")):
        if name == "file":
            with open(tmp_path / inp, "w") as fh:
                PDBFile.writeFile(top, wrapped * unit.nanometer, fh)
            inp = str(tmp_path / inp)
        capsys.readouterr()
        run_simulation(inp, model, tmp_path / name, steps=0, minimize=False, thermalize_ps=0.0,
                       platform="Reference", progress=False, customize_system=stabilizer(pos))
        runs[name] = (load_state_csv(tmp_path / name / "state.csv")["potential_energy_kJ_mol"][0],
                      capsys.readouterr().err, json.loads((tmp_path / name / "run.json").read_text()))
    (ew, errw, iw), (er, errr, ir), (ef, errf, inf) = runs["whole"], runs["wrapped"], runs["file"]
    assert er == pytest.approx(ew, rel=1e-9)  # exact but for round-off
    assert ef == pytest.approx(ew, abs=0.1)  # (the PDB keeps 0.001 A)
    assert iw["input_made_whole"].startswith("made 0 molecules whole") and "molecules whole" not in errw
    for info, err in ((ir, errr), (inf, errf)):
        assert info["input_made_whole"].startswith(f"made {broken} molecules whole")
        assert len([ln for ln in err.splitlines() if f"made {broken} molecules whole" in ln]) == 1, err
    frame0 = _dcd(tmp_path / "file" / "traj.dcd", tmp_path / "file" / "topology.pdb").xyz[0].astype(float)
    inv = np.linalg.inv(box)
    for r in top.residues():
        idx = [a.index for a in r.atoms()]
        d = (frame0[idx] - frame0[idx[0]]) @ inv
        assert np.abs(d).max() < 0.5, r  # whole: every atom within half a box of the first
        shift = (frame0[idx] - pos[idx]) @ inv  # the whole input moved by one lattice vector
        assert np.allclose(shift, np.round(shift[0]), atol=2e-4), r


def test_pressure_without_npt_and_time_below_a_step_are_refused(tmp_path, cli_box, capsys):
    from cgaa.cli import main
    from cgaa.md.settings import resolve_settings

    with pytest.raises(ValueError, match=r"pressure=5.0 is only used with ensemble='npt'.*'nvt'"):
        resolve_settings({"pressure": 5.0})
    with pytest.raises(ValueError, match=r"pressure=1.0 .*'nve'"):
        resolve_settings({"pressure": 1.0, "ensemble": "nve"})
    assert resolve_settings({"pressure": 5.0, "ensemble": "npt"})["pressure"] == 5.0
    assert resolve_settings({"ensemble": "nvt"}, {"ensemble": "nvt", "pressure": 1.0})["pressure"] == 1.0
    with pytest.raises(ValueError, match=r"time_ps=0.0005 ps is less than half a time step \(timestep_fs=1 fs\)"):
        resolve_settings({"time_ps": 0.0005})
    assert resolve_settings({"time_ps": 0.0006})["steps"] == 1  # rounds to whole steps
    pdb, model, _ = cli_box
    base = ["simulate", str(pdb), "--model", str(model), "--platform", "Reference", "--no-progress"]
    capsys.readouterr()
    assert main(base + ["--out", str(tmp_path / "a"), "--pressure", "5"]) == 2
    err = capsys.readouterr().err
    assert "--pressure 5.0 is only used with --ensemble npt" in err and "nvt" in err
    assert main(base + ["--out", str(tmp_path / "b"), "--ensemble", "nve", "--pressure", "5"]) == 2
    assert "--ensemble npt" in capsys.readouterr().err
    assert main(base + ["--out", str(tmp_path / "c"), "--time-ps", "0.0005"]) == 2
    err = capsys.readouterr().err
    assert "--time-ps 0.0005 ps is less than half a time step (--timestep 1 fs)" in err
    assert "timestep_fs" not in err and "time_ps" not in err
    for args, want in ((["--timestep", "0"], "--timestep must be > 0"),
                       (["--report-interval", "0"], "--report-interval must be >= 1"),
                       (["--checkpoint-interval", "0"], "--checkpoint-interval must be >= 1"),
                       (["--friction", "-1"], "--friction must be > 0"),
                       (["--thermalize-ps", "-1"], "--thermalize-ps must be >= 0")):
        assert main(base + ["--out", str(tmp_path / "d")] + args) == 2, args
        err = capsys.readouterr().err
        assert want in err and "_" not in err.split("error:")[1].split(",")[0], err


def test_training_checkpoint_as_model_says_deploy_it(tmp_path, cli_box, capsys):
    """best.pt of `cgaa train` (a torch.save dict with "format": cgaa-checkpoint-N) is not a
    deployed model: the message gives the cgaa deploy command."""
    torch = pytest.importorskip("torch")
    from cgaa.cli import main
    from cgaa.md.inputs import is_training_checkpoint
    from cgaa.train.trainer import CHECKPOINT_FORMAT, save_checkpoint

    pdb, model, _ = cli_box
    best = save_checkpoint(tmp_path / "best.pt", {"format": CHECKPOINT_FORMAT, "epoch": 3,
                                                  "model": {"w": torch.zeros(2)}, "model_config": {}})
    assert is_training_checkpoint(best) and not is_training_checkpoint(model)
    capsys.readouterr()
    assert main(["simulate", str(pdb), "--model", str(best), "--out", str(tmp_path / "run"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"this is a training checkpoint: run cgaa deploy {best} -o model.pt" in err
    assert not (tmp_path / "run" / "run.json").exists()
    with pytest.raises(ValueError, match="this is a training checkpoint"):
        run_simulation(str(pdb), best, tmp_path / "run2", progress=False)
