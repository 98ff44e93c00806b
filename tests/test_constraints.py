"""H-bond constraints for CGAA MD: every bond to H, at the teacher's equilibrium lengths."""
from __future__ import annotations

import pytest

from cgaa.openmm.guards import XH_BOND_NM, add_hbond_constraints


def _xh_bonds(topology):
    return [(a, b) for a, b in topology.bonds() if (a.element.symbol == "H") != (b.element.symbol == "H")]


def test_hbond_constraints_use_teacher_lengths(tmp_path):
    import openmm
    from openmm.app import PDBFile

    from cgaa.systems.build import build_box
    from cgaa.teacher.forcefield import create_system as teacher_system

    build_box("lipf6-ec-emc-1m", 400, tmp_path / "box.pdb", seed=2)
    top = PDBFile(str(tmp_path / "box.pdb")).topology
    system = openmm.System()
    for a in top.atoms():
        system.addParticle(a.element.mass)
    n = add_hbond_constraints(system, top)
    assert n == len(_xh_bonds(top)) == system.getNumConstraints() > 0
    ref = teacher_system(top, constraints="hbonds", cutoff=0.3)
    got = {tuple(sorted(system.getConstraintParameters(k)[:2])): system.getConstraintParameters(k)[2]
           for k in range(n)}
    for k in range(ref.getNumConstraints()):
        i, j, d = ref.getConstraintParameters(k)
        assert got[tuple(sorted((i, j)))] == d


def test_unknown_residues_fall_back_to_typical_lengths():
    import openmm
    from openmm.app import Element, Topology

    top = Topology()
    res = top.addResidue("XYZ", top.addChain())
    o = top.addAtom("O", Element.getBySymbol("O"), res)
    h1 = top.addAtom("H1", Element.getBySymbol("H"), res)
    h2 = top.addAtom("H2", Element.getBySymbol("H"), res)
    top.addBond(o, h1)
    top.addBond(o, h2)
    system = openmm.System()
    for _ in range(3):
        system.addParticle(1.0)
    assert add_hbond_constraints(system, top) == 2
    assert system.getConstraintParameters(0)[2].value_in_unit(openmm.unit.nanometer) == pytest.approx(XH_BOND_NM["O"])


def test_bond_guard_is_flat_then_restoring(tmp_path):
    import numpy as np
    import openmm
    from openmm import unit
    from openmm.app import PDBFile

    from cgaa.systems.build import build_box
    from cgaa.openmm.guards import BOND_GUARD_MARGIN_NM, add_bond_guard

    build_box("lipf6-ec-emc-1m", 400, tmp_path / "box.pdb", seed=2)
    pdb = PDBFile(str(tmp_path / "box.pdb"))
    top = pdb.topology
    system = openmm.System()
    system.setDefaultPeriodicBoxVectors(*top.getPeriodicBoxVectors())
    for a in top.atoms():
        system.addParticle(a.element.mass)
    n = add_bond_guard(system, top)
    assert n == top.getNumBonds()
    guard = system.getForce(0)
    i, j, (r0,) = guard.getBondParameters(0)
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    pos = np.array(pdb.positions.value_in_unit(unit.nanometer))
    u = pos[j] - pos[i]
    u /= np.linalg.norm(u)

    def energy_force(r):
        p = pos.copy()
        p[j] = p[i] + r * u
        ctx.setPositions(p)
        st = ctx.getState(getEnergy=True, getForces=True)
        e = st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        f = st.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)[j]
        return e, float(f @ u)

    base, _ = energy_force(r0)
    inside, f_in = energy_force(r0 + 0.9 * BOND_GUARD_MARGIN_NM)
    assert inside - base == pytest.approx(0.0, abs=1e-9) and f_in == pytest.approx(0.0, abs=1e-6)
    out, f_out = energy_force(r0 + BOND_GUARD_MARGIN_NM + 0.01)
    assert out - base > 1.0 and f_out < 0           # pulled back towards r0
    short, f_short = energy_force(r0 - BOND_GUARD_MARGIN_NM - 0.01)
    assert short - base > 1.0 and f_short > 0
