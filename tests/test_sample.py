"""cgaa sample: teacher MD frames in extxyz equal OpenMM energies/forces after conversion."""
from __future__ import annotations

import numpy as np
import openmm
import pytest
from ase import units as ase_units
from openmm import app, unit

from cgaa.systems.build import build_box
from cgaa.cli import main
from cgaa.core.extxyz import read_frames
from cgaa.teacher.sample import sample_teacher
from cgaa.teacher.forcefield import create_system

EV_PER_KJMOL = ase_units.kJ / ase_units.mol


@pytest.fixture(scope="module")
def sampled(tmp_path_factory):
    d = tmp_path_factory.mktemp("sample")
    res = build_box("lipf6-ec-emc-1m", 600, d / "box.pdb", seed=2)
    out = d / "frames.xyz"
    rc = main(["sample", str(res.path), "-o", str(out), "--temperatures", "298,400", "--frames", "4",
               "--stride", "20", "--equil-steps", "50", "--cutoff", "0.8", "--platform", "CPU",
               "--hot-fraction", "0.5", "--distorted-fraction", "0.5", "--seed", "3", "--no-progress"])
    assert rc == 0
    return res, out


def test_frames_and_metadata(sampled):
    res, out = sampled
    frames = read_frames(out)
    kinds = [f.info["config_type"] for f in frames]
    assert kinds.count("equilibrium") == 8 and kinds.count("hot") == 4 and kinds.count("distorted") == 4
    pdb = app.PDBFile(str(res.path))
    grain = [a.residue.index for a in pdb.topology.atoms()]
    resname = [a.residue.name for a in pdb.topology.atoms()]
    for f in frames:
        assert len(f) == pdb.topology.getNumAtoms()
        assert list(f.arrays["grain"]) == grain
        assert list(f.arrays["resname"]) == resname
        assert f.info["teacher"] == "opls_electrolyte"
        assert f.info["recipe"] == "lipf6-ec-emc-1m"
        assert f.pbc.all()
    temps = sorted({f.info["temperature"] for f in frames if f.info["config_type"] == "equilibrium"})
    assert temps == [298.0, 400.0]
    hot = {f.info["temperature"] for f in frames if f.info["config_type"] == "hot"}
    assert hot == {298.0 * 1.8, 400.0 * 1.8}
    eq_cell = frames[0].cell.array
    dist_cells = [f.cell.array for f in frames if f.info["config_type"] == "distorted"]
    assert all(not np.allclose(c, eq_cell) for c in dist_cells)


def test_frame_labels_equal_openmm(sampled):
    """REF_energy/REF_forces of every kind of frame equal OpenMM's kJ/mol values, converted
    with independent (ASE) constants."""
    res, out = sampled
    frames = read_frames(out)
    pdb = app.PDBFile(str(res.path))
    system = create_system(pdb.topology, cutoff=0.8)
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("CPU"))
    for f in [frames[0]] + [x for x in frames if x.info["config_type"] != "equilibrium"][:2]:
        ctx.setPeriodicBoxVectors(*[openmm.Vec3(*(row / 10.0)) for row in f.cell.array])
        ctx.setPositions(f.positions * unit.angstrom)
        st = ctx.getState(getEnergy=True, getForces=True)
        e = st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) * EV_PER_KJMOL
        F = np.asarray(st.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer))
        F *= EV_PER_KJMOL / 10.0
        # extxyz stores 8 decimals of positions: allow for that rounding
        assert f.info["REF_energy"] == pytest.approx(e, rel=1e-6, abs=1e-4)
        np.testing.assert_allclose(f.arrays["REF_forces"], F, rtol=1e-4, atol=2e-4)


def test_sample_from_recipe_name(tmp_path):
    r = sample_teacher("lipf6-ec-emc-1m", tmp_path / "r.xyz", n_atoms=600, n_frames=2, stride=10,
                       equilibration_steps=10, cutoff=0.8, platform="CPU", hot_fraction=0,
                       distorted_fraction=0, progress=False, seed=1)
    assert r.n_frames == 2 and r.pdb.is_file()
    frames = read_frames(tmp_path / "r.xyz")
    assert frames[0].info["temperature"] == pytest.approx(298.15)


def test_bad_inputs(tmp_path, capsys):
    assert main(["sample", str(tmp_path / "missing.pdb"), "-o", str(tmp_path / "x.xyz")]) == 2
    assert "missing.pdb" in capsys.readouterr().err
    assert main(["sample", "no-such-recipe", "-o", str(tmp_path / "x.xyz")]) == 2
    assert "no-such-recipe" in capsys.readouterr().err
    with pytest.raises(ValueError, match="ensemble"):
        sample_teacher("lipf6-ec-emc-1m", tmp_path / "y.xyz", ensemble="nve")
    assert not (tmp_path / "x.xyz").exists() and not (tmp_path / "y.xyz").exists()
