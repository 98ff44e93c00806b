"""Multiple time stepping (cgaa.openmm.mts, ``cgaa simulate --fast-substeps``): which forces
are slow and which fast, exact per-grain properties of the split, energy conservation of
r-RESPA through run_simulation, restart and setting checks."""
from __future__ import annotations

import json

import numpy as np
import pytest

openmm = pytest.importorskip("openmm")
pytest.importorskip("openmmtorch")
from openmm import unit  # noqa: E402

from cgaa.core import units  # noqa: E402
from cgaa.openmm.mts import FAST_GROUP, SLOW_GROUP, mts_integrator, slow_force_names, split_force_groups  # noqa: E402
from cgaa.md.rundir import load_state_csv  # noqa: E402
from cgaa.md.settings import resolve_settings
from cgaa.md.run import run_simulation
from test_openmm import small_system, stabilizer  # noqa: E402
from test_prior import _box, _prior_model, _topology  # noqa: E402

KJ = unit.kilojoule_per_mole
KJNM = unit.kilojoule_per_mole / unit.nanometer


def _group_state(ctx, groups):
    st = ctx.getState(getEnergy=True, getForces=True, groups=groups)
    return st.getPotentialEnergy().value_in_unit(KJ), st.getForces(asNumpy=True).value_in_unit(KJNM)


@pytest.fixture(scope="module")
def dispersion_system():
    """A teacher_dispersion model's System with both guards, split into slow and fast groups."""
    from cgaa.openmm import create_system
    from cgaa.openmm.guards import add_bond_guard

    atoms, gidx = _box(8)
    top = _topology(atoms, gidx)
    model, _ = _prior_model(atoms, gidx, "teacher_dispersion")
    model.config.contact_floor = [[3, 8, 1.9], [3, 6, 2.4], [1, 9, 2.2]]
    system = create_system(top, model, contact_guard=True)
    # (this box is too small for the teacher's own bond lookup, so the guard gets its lengths here)
    add_bond_guard(system, top, bonds=[(a.index, b.index, 0.1) for a, b in top.bonds()])
    slow, fast = split_force_groups(system)
    return system, top, atoms, gidx, slow, fast


def test_the_network_and_everything_between_grains_is_slow(dispersion_system):
    system, _, _, _, slow, fast = dispersion_system
    from cgaa.openmm.guards import BOND_GUARD_NAME, CONTACT_GUARD_NAME
    from cgaa.openmm.torchforce import FORCE_NAME
    from cgaa.priors import PRIOR_FORCE_PREFIX as P

    assert set(slow) == {FORCE_NAME, P + "Coulomb", P + "Dispersion", CONTACT_GUARD_NAME, "CGAAMoleculeBonds"}
    assert set(slow) == set(slow_force_names())
    assert {P + "HarmonicBondForce", P + "HarmonicAngleForce", P + "PeriodicTorsionForce",
            P + "NonbondedForce", BOND_GUARD_NAME} <= set(fast)
    for f in system.getForces():
        want = SLOW_GROUP if f.getName() in slow else FAST_GROUP
        assert f.getForceGroup() == want, f.getName()


def test_fast_forces_act_inside_grains_only(dispersion_system):
    """The fast group's net force on every grain is zero and its energy ignores a rigid shift
    of one molecule; the two groups add up to the whole System."""
    system, _, atoms, gidx, _, _ = dispersion_system
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    pos = units.angstrom_to_nm(atoms.positions)
    ctx.setPositions(pos * unit.nanometer)
    e_all, f_all = _group_state(ctx, {SLOW_GROUP, FAST_GROUP})
    e_slow, f_slow = _group_state(ctx, {SLOW_GROUP})
    e_fast, f_fast = _group_state(ctx, {FAST_GROUP})
    assert e_slow + e_fast == pytest.approx(e_all, rel=1e-10, abs=1e-8)
    np.testing.assert_allclose(f_slow + f_fast, f_all, rtol=1e-10, atol=1e-8)
    scale = np.abs(f_fast).max()
    assert scale > 10.0  # bonds, angles and torsions away from their minima
    net_fast = np.array([f_fast[gidx == g].sum(0) for g in np.unique(gidx)])
    net_slow = np.array([f_slow[gidx == g].sum(0) for g in np.unique(gidx)])
    assert np.abs(net_fast).max() < 1e-9 * scale
    assert np.abs(net_slow).max() > 1e-3  # the network and Coulomb do move molecules
    # shift the first polyatomic molecule by 1 Å: the fast energy stays, the slow one changes
    g = next(g for g in np.unique(gidx) if (gidx == g).sum() > 1)
    moved = pos.copy()
    moved[gidx == g] += units.angstrom_to_nm(np.array([1.0, -0.5, 0.3]))
    ctx.setPositions(moved * unit.nanometer)
    assert _group_state(ctx, {FAST_GROUP})[0] == pytest.approx(e_fast, rel=1e-10, abs=1e-8)
    assert abs(_group_state(ctx, {SLOW_GROUP})[0] - e_slow) > 1e-3


def test_split_refuses_what_it_cannot_split():
    system = openmm.System()
    system.addParticle(1.0)
    system.addForce(openmm.HarmonicBondForce())
    with pytest.raises(ValueError, match="no CGAA TorchForce"):
        split_force_groups(system)
    with pytest.raises(ValueError, match="must differ"):
        split_force_groups(system, 2, 2)
    with pytest.raises(ValueError, match="0-31"):
        split_force_groups(system, 32, 0)
    for bad in (0, 1.5):
        with pytest.raises(ValueError, match="substeps"):
            mts_integrator(2.0, bad)


def _nve_row_drift(state):
    t, e, ke = state["time_ps"], state["total_energy_kJ_mol"], state["kinetic_energy_kJ_mol"]
    return abs(np.polyfit(t, e, 1)[0]) / ke.mean(), np.abs(e - e[0]).max() / ke.mean()


def test_rrespa_nve_through_simulate_conserves_energy(tmp_path):
    """cgaa simulate --ensemble nve --timestep 1 --fast-substeps 2 (network every 1 fs,
    classical bonds every 0.5 fs) conserves the total energy as plain Verlet at 0.5 fs does
    (test_openmm's bound; measured 0.006 and 0.011 <KE>, plain Verlet 0.004 and 0.006); the same
    integrator that never applies the network's group does not. (No H-bond constraints: the
    random model's stabilizer bonds are at other lengths than the constraints.)"""
    model, top, pos, _ = small_system(rms_force=0.5)
    res = run_simulation((top, pos), model, tmp_path / "mts", ensemble="nve", temperature=150.0,
                         timestep_fs=1.0, fast_substeps=2, steps=200, report_interval=10, constraints="none",
                         checkpoint_interval=100, platform="Reference", minimize=False, progress=False,
                         customize_system=stabilizer(pos))
    assert res.steps == 200
    st = load_state_csv(tmp_path / "mts" / "state.csv")
    assert np.allclose(st["time_ps"], st["step"] * 1e-3)
    drift, spread = _nve_row_drift(st)
    assert drift < 0.01 and spread < 0.02, (drift, spread)
    info = json.loads((tmp_path / "mts" / "run.json").read_text())
    assert info["settings"]["fast_substeps"] == 2

    # negative control: the network's group is left out of the integration (counted in the energy only)
    from cgaa.openmm import create_system

    system = create_system(top, model)
    stabilizer(pos)(system, top)
    split_force_groups(system)
    integ = mts_integrator(1.0, 2, slow_group=5)
    ctx = openmm.Context(system, integ, openmm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(pos)
    ctx.setVelocitiesToTemperature(150.0 * unit.kelvin, 7)
    rows = []
    for _ in range(11):
        s = ctx.getState(getEnergy=True)
        k = s.getKineticEnergy().value_in_unit(KJ)
        rows.append((s.getTime().value_in_unit(unit.picosecond), s.getPotentialEnergy().value_in_unit(KJ) + k, k))
        integ.step(10)
    a = np.array(rows)
    bad_drift, _ = _nve_row_drift({"time_ps": a[:, 0], "total_energy_kJ_mol": a[:, 1], "kinetic_energy_kJ_mol": a[:, 2]})
    assert bad_drift > 0.5, bad_drift


def test_rrespa_langevin_restart_and_settings(tmp_path):
    """nvt with fast substeps restarts exactly; fast_substeps is a dynamics setting a restart
    may not change; bad values are refused by name."""
    model, top, pos, _ = small_system(rms_force=0.3)
    args = dict(platform="Reference", report_interval=10, checkpoint_interval=20, minimize_iterations=20,
                progress=False, customize_system=stabilizer(pos), timestep_fs=1.0, fast_substeps=2, seed=4)
    run_simulation((top, pos), model, tmp_path / "full", steps=40, **args)
    run_simulation((top, pos), model, tmp_path / "part", steps=20, **args)
    args.pop("fast_substeps")
    res = run_simulation(None, None, tmp_path / "part", steps=40, restart=True, **args)
    assert res.restarted_from == 20 and res.steps == 40
    fa, fb = (openmm.XmlSerializer.deserialize((tmp_path / d / "final_state.xml").read_text())
              for d in ("full", "part"))
    assert np.abs(fa.getPositions(asNumpy=True)._value - fb.getPositions(asNumpy=True)._value).max() < 1e-10
    with pytest.raises(ValueError, match="fast_substeps was 2"):
        run_simulation(None, None, tmp_path / "part", steps=60, restart=True, fast_substeps=3, **args)
    for bad in (0, 2.5, True, "3"):
        with pytest.raises(ValueError, match="fast_substeps"):
            resolve_settings({"fast_substeps": bad})
    assert resolve_settings({})["fast_substeps"] == 1
