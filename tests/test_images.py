"""Any lattice image of any atom gives the same physics: a box whose atoms are wrapped into the
cell one by one (as GROMACS, LAMMPS and many converters write them), or shifted by arbitrary
lattice vectors, has the same energies and forces as the same box with whole molecules, through
OpenMM itself, for the shipped model (create_system, MLPotential), its prior, and the classical
teacher (System, Teacher, ASE calculator), in orthorhombic and triclinic boxes."""
from __future__ import annotations

import numpy as np
import pytest

openmm = pytest.importorskip("openmm")
from openmm import unit  # noqa: E402

from cgaa.core.units import angstrom_to_nm, nm_to_angstrom  # noqa: E402
from cgaa.systems.topology import topology_from_atoms  # noqa: E402
from molecules import molecule_box  # noqa: E402

BOXES = {"orthorhombic": np.diag([18.5, 18.5, 18.5]),
         "triclinic": np.array([[18.5, 0.0, 0.0], [4.0, 18.5, 0.0], [-3.0, 2.5, 18.5]])}
COUNTS = {"EC": 5, "EMC": 8, "Li": 2, "PF6": 2}


def _box(kind):
    """(topology with teacher residue names, whole-molecule positions Å, the same with random
    lattice shifts of single atoms and of whole molecules, cell Å)."""
    atoms, gidx = molecule_box(COUNTS, BOXES[kind], seed=4, spacing=6.0)
    cell = atoms.cell[:]
    # molecule_box wraps atom by atom: make each molecule whole (minimum image about its first atom)
    whole = atoms.positions.copy()
    inv = np.linalg.inv(cell)
    for g in np.unique(gidx):
        idx = np.flatnonzero(gidx == g)
        d = whole[idx] - whole[idx[0]]
        whole[idx] -= np.round(d @ inv) @ cell
    rng = np.random.default_rng(7)
    shifted = whole.copy()
    atoms_moved = rng.choice(len(whole), size=len(whole) // 4, replace=False)
    shifted[atoms_moved] += rng.integers(-2, 3, size=(len(atoms_moved), 3)) @ cell
    for g in rng.choice(np.unique(gidx), size=4, replace=False):
        shifted[gidx == g] += rng.integers(-3, 4, size=3) @ cell
    assert np.abs(shifted - whole).max() > 10.0
    atoms.positions = whole
    top, _ = topology_from_atoms(atoms, gidx)
    for res in top.residues():
        res.name = res.name.upper()  # the teacher's template names (LI, PF6, EC, EMC)
    return top, whole, shifted, cell


def _energy_forces(system, pos_A, platform="Reference"):
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName(platform))
    ctx.setPositions(angstrom_to_nm(pos_A) * unit.nanometer)
    st = ctx.getState(getEnergy=True, getForces=True)
    return (st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole),
            st.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer))


def _same(a, b, e_tol, f_tol):
    (ea, fa), (eb, fb) = a, b
    assert abs(ea - eb) <= e_tol, (ea, eb)
    assert np.abs(fa - fb).max() <= f_tol * max(1.0, np.abs(fa).max())


@pytest.mark.parametrize("kind", list(BOXES))
def test_shipped_model_gives_the_same_energy_for_any_image_of_any_atom(kind):
    import torch
    from openmmml import MLPotential

    from cgaa.openmm import create_system, resolve_model

    top, whole, shifted, _ = _box(kind)
    # the shipped file (float32): equal to float32 rounding of positions tens of Å from the origin
    for system in (create_system(top), MLPotential("cgaa").createSystem(top)):
        a, b = _energy_forces(system, whole), _energy_forces(system, shifted)
        assert np.isfinite(a[0])
        _same(a, b, e_tol=1e-5 * abs(a[0]), f_tol=1e-4)
    # the same weights in float64: equal to 1e-6 kJ/mol, network and prior (whose PME Coulomb
    # term used to move by hundreds of kJ/mol when single atoms were shifted)
    double = resolve_model().to_eager().to(torch.float64)
    system = create_system(top, double)
    _same(_energy_forces(system, whole), _energy_forces(system, shifted), e_tol=1e-6, f_tol=1e-8)


@pytest.mark.parametrize("kind", list(BOXES))
def test_teacher_gives_the_same_energy_for_any_image_of_any_atom(kind):
    from cgaa.teacher.forcefield import Teacher, create_system
    from cgaa.teacher.label import TeacherCalculator

    top, whole, shifted, cell = _box(kind)
    system = create_system(top, cutoff=0.8)
    _same(_energy_forces(system, whole), _energy_forces(system, shifted), e_tol=1e-6, f_tol=1e-7)
    t = Teacher(top, cutoff=0.8)
    (e0, f0), (e1, f1) = t.compute(whole, cell), t.compute(shifted, cell)
    assert e0 == pytest.approx(e1, abs=1e-8) and np.abs(f0 - f1).max() < 1e-8  # eV, eV/Å
    from cgaa.core.extxyz import make_frame

    resname = [a.residue.name for a in top.atoms()]
    grain = [a.residue.index for a in top.atoms()]
    symbols = [a.element.symbol for a in top.atoms()]
    energies = []
    for pos in (whole, shifted):
        at = make_frame(symbols, pos, cell, grain=grain, resname=resname)
        at.calc = TeacherCalculator(cutoff=0.8)
        energies.append(at.get_potential_energy())
    assert energies[0] == pytest.approx(energies[1], abs=1e-8)


@pytest.mark.parametrize("kind", list(BOXES))
def test_prior_labels_are_the_same_for_any_image_of_any_atom(kind):
    """subtract_prior (training labels) and the prior in OpenMM see the same energy."""
    from cgaa.priors import PriorEvaluator

    top, whole, shifted, cell = _box(kind)
    ev = PriorEvaluator(top, "teacher_dispersion")
    (e0, f0), (e1, f1) = ev.compute(whole, cell), ev.compute(shifted, cell)
    assert e0 == pytest.approx(e1, abs=1e-8) and np.abs(f0 - f1).max() < 1e-8
    assert nm_to_angstrom(1.0) == 10.0
