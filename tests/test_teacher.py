"""Teacher force field: eV/Å values equal OpenMM's, forces = -dE/dx, stability and density."""
from __future__ import annotations

import numpy as np
import openmm
import pytest
from ase import units as ase_units
from openmm import app, unit

from cgaa.systems.build import build_box, make_topology
from cgaa.teacher.forcefield import Teacher, create_system, get_platform
from cgaa.systems.topology import box_density, topology_from_residues

# Independent conversion factors (ASE's CODATA constants), not cgaa.core.units.
EV_PER_KJMOL = ase_units.kJ / ase_units.mol
EVANG_PER_KJMOLNM = EV_PER_KJMOL / 10.0


@pytest.fixture(scope="module")
def small_box(tmp_path_factory):
    res = build_box("lipf6-ec-emc-1m", 600, tmp_path_factory.mktemp("teacher") / "box.pdb", seed=11)
    pdb = app.PDBFile(str(res.path))
    return pdb, res


@pytest.fixture(scope="module")
def relaxed(small_box):
    """Positions after a short minimisation (a realistic, non-clashing configuration), Å."""
    pdb, res = small_box
    system = create_system(pdb.topology, cutoff=0.8)
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), get_platform("Reference"))
    ctx.setPositions(pdb.positions)
    openmm.LocalEnergyMinimizer.minimize(ctx, 50.0, 200)
    pos = ctx.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.angstrom)
    return np.asarray(pos)


def test_energy_forces_equal_openmm_after_conversion(small_box, relaxed):
    pdb, res = small_box
    t = Teacher(pdb.topology, platform="Reference", cutoff=0.8)
    e_ev, f_ev = t.compute(relaxed)
    system = create_system(pdb.topology, cutoff=0.8)
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(relaxed * unit.angstrom)
    st = ctx.getState(getEnergy=True, getForces=True)
    e_kj = st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    f_kj = st.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    # (ASE uses CODATA 2014, cgaa CODATA 2018: they differ by ~1e-8 relative)
    assert e_ev == pytest.approx(e_kj * EV_PER_KJMOL, rel=1e-7)
    np.testing.assert_allclose(f_ev, np.asarray(f_kj) * EVANG_PER_KJMOLNM, rtol=1e-7, atol=1e-10)


def test_forces_are_minus_energy_gradient(small_box, relaxed):
    pdb, _ = small_box
    t = Teacher(pdb.topology, platform="Reference", cutoff=0.8)
    _, f = t.compute(relaxed)
    rng = np.random.default_rng(0)
    # a few atoms of each kind of molecule: Li, P, F, carbonyl O, H
    atoms = list(pdb.topology.atoms())
    picks = []
    for want in ("LI", "P1", "F3", "O1", "H2", "C1"):
        idx = [a.index for a in atoms if a.name == want]
        picks.append(int(rng.choice(idx)))
    h = 1e-4  # Å
    for i in picks:
        for k in range(3):
            p = relaxed.copy()
            p[i, k] += h
            ep, _ = t.compute(p)
            p[i, k] -= 2 * h
            em, _ = t.compute(p)
            fd = -(ep - em) / (2 * h)
            assert fd == pytest.approx(f[i, k], rel=2e-3, abs=2e-3), (atoms[i].name, k, fd, f[i, k])


def test_pf6_octahedron_is_stable_in_vacuum_box():
    top = make_topology({"PF6": 1}, box_length=25.0)
    from cgaa.systems.species import get_species

    sp = get_species("PF6")
    system = create_system(top, cutoff=1.0)
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), get_platform("Reference"))
    rng = np.random.default_rng(1)
    ctx.setPositions((sp.positions + 12.5 + rng.normal(0, 0.05, sp.positions.shape)) * unit.angstrom)
    openmm.LocalEnergyMinimizer.minimize(ctx, 1.0, 1000)
    pos = ctx.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.angstrom)
    v = np.asarray(pos)[1:] - np.asarray(pos)[0]
    cos = (v @ v.T) / np.outer(np.linalg.norm(v, axis=1), np.linalg.norm(v, axis=1))
    off = cos[~np.eye(6, dtype=bool)]
    assert np.sum(off < -0.99) == 6  # 3 trans pairs (counted twice)
    assert np.all(np.abs(off[off > -0.99]) < 0.05)  # the others at 90 degrees


def test_topology_roundtrip_from_residues(small_box):
    pdb, _ = small_box
    resn = [a.residue.name for a in pdb.topology.atoms()]
    grain = [a.residue.index for a in pdb.topology.atoms()]
    top = topology_from_residues(resn, grain, np.eye(3) * 20.0)
    assert top.getNumBonds() == pdb.topology.getNumBonds()
    with pytest.raises(ValueError, match="grain 0"):
        topology_from_residues(resn[1:], grain[1:] if False else [0] * (len(resn) - 1))


def test_clear_errors():
    with pytest.raises(ValueError, match="half the box"):
        create_system(make_topology({"EC": 2}, box_length=15.0), cutoff=1.0)
    top = make_topology({"EC": 1}, box_length=30.0)
    next(top.residues()).name = "XXX"
    with pytest.raises(ValueError, match="XXX"):
        create_system(top)
    with pytest.raises(ValueError, match="no periodic box"):
        create_system(make_topology({"EC": 1}))
    with pytest.raises(ValueError, match="platform 'Nope'"):
        get_platform("Nope")


#: The teacher's NPT density of the 1000-atom lipf6-ec-emc-1m box at 298 K, 1 bar (g/cm³;
#: docs/benchmarks.md, two 60 ps replicas from equilibrated states: 1.170-1.178).
TEACHER_NPT_DENSITY = 1.17


@pytest.mark.slow
def test_npt_density_within_5_percent(tmp_path):
    """Short NPT of a ~1000-atom 1 M LiPF6 EC:EMC 3:7 box: stable, density within 5 % of the
    teacher's own NPT equilibrium (1.17 g/cm³ over 2 × 60 ps in docs/benchmarks.md; the recipe's
    1.20 is the experimental density, 2.5 % above it, and the packed box overshoots below 1.17
    for several ps, so 5 % of 1.20 left too little room: one run read 1.139)."""
    res = build_box("lipf6-ec-emc-1m", 1000, tmp_path / "npt.pdb", seed=3)
    pdb = app.PDBFile(str(res.path))
    system = create_system(pdb.topology, cutoff=0.9, constraints="hbonds")
    baro = openmm.MonteCarloBarostat(1.0 * unit.bar, 298.15 * unit.kelvin, 0)
    baro.setRandomNumberSeed(11)
    system.addForce(baro)
    integ = openmm.LangevinMiddleIntegrator(298.15 * unit.kelvin, 1.0 / unit.picosecond, 2.0 * unit.femtosecond)
    integ.setRandomNumberSeed(5)
    ctx = openmm.Context(system, integ, get_platform("CPU"))
    ctx.setPositions(pdb.positions)
    openmm.LocalEnergyMinimizer.minimize(ctx, 10.0, 500)
    ctx.setVelocitiesToTemperature(298.15 * unit.kelvin, 7)
    integ.step(1000)  # 2 ps NVT
    ctx.setParameter(openmm.MonteCarloBarostat.Pressure(), 1.0)
    baro.setFrequency(20)
    ctx.reinitialize(preserveState=True)
    dens = []
    for block in range(12):  # 12 ps NPT, 1 ps blocks: a sanity check (converged: 1.167, docs/benchmarks.md)
        integ.step(500)
        st = ctx.getState(getEnergy=True)
        cell = st.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.angstrom)
        dens.append(box_density(pdb.topology, np.asarray(cell)))
        assert np.isfinite(st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
    mean = float(np.mean(dens[4:]))
    print(f"NPT density (last 8 ps): {mean:.4f} g/cm3 (recipe {res.recipe.density})")
    assert abs(mean - TEACHER_NPT_DENSITY) / TEACHER_NPT_DENSITY < 0.05


def test_all_species_box_is_stable(tmp_path):
    """Every species of the library together in one box: short MD keeps molecules intact."""
    from cgaa.systems.build import make_recipe
    from cgaa.systems.species import get_species

    r = make_recipe({"LiTFSI": 0.3, "NaBF4": 0.3, "LiFSI": 0.3, "NaPF6": 0.3},
                    {"EC": 1, "PC": 1, "FEC": 1, "DMC": 1, "EMC": 1, "DEC": 1}, density=1.3, name="all")
    res = build_box(r, 1400, tmp_path / "all.pdb", seed=2)
    assert {get_species(s).resname for s in res.counts} >= {"LI", "NA", "TFS", "BF4", "FSI", "PF6", "EC",
                                                           "PC", "FEC", "DMC", "EMC", "DEC"}
    pdb = app.PDBFile(str(res.path))
    system = create_system(pdb.topology, cutoff=0.8)
    integ = openmm.LangevinMiddleIntegrator(298 * unit.kelvin, 1 / unit.picosecond, 1 * unit.femtosecond)
    integ.setRandomNumberSeed(3)
    ctx = openmm.Context(system, integ, get_platform("CPU"))
    ctx.setPositions(pdb.positions)
    openmm.LocalEnergyMinimizer.minimize(ctx, 10.0, 300)
    ctx.setVelocitiesToTemperature(298 * unit.kelvin, 4)
    integ.step(1000)
    st = ctx.getState(getEnergy=True, getPositions=True)
    assert np.isfinite(st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
    pos = st.getPositions(asNumpy=True).value_in_unit(unit.angstrom)
    for a, b in pdb.topology.bonds():
        assert np.linalg.norm(pos[a.index] - pos[b.index]) < 2.2, (a.residue.name, a.name, b.name)
