"""Contact floor (closest inter-grain approach in the data) and the contact guard built on it."""
from __future__ import annotations

import numpy as np
import pytest

from cgaa.data.contacts import closest_contacts, merge_contact_floors
from cgaa.core.grains import grains_from_index
from core_utils import build, rel_err, run


class _Frame:
    """The parts of cgaa.data.dataset.Frame closest_contacts reads."""

    def __init__(self, numbers, positions, cell, grain_index):
        self.numbers = np.asarray(numbers)
        self.positions = np.asarray(positions, float)
        self.cell = None if cell is None else np.asarray(cell, float)
        self.grain_map = grains_from_index(grain_index, self.numbers)


def test_closest_contacts_counts_other_grains_and_periodic_images():
    cell = np.diag([10.0, 10.0, 10.0])
    # grain 0: C-H at 1.09 Å (intra-grain: ignored); grain 1: Li 2.3 Å from C through the x face;
    # grain 2: O 3.0 Å from H
    numbers = [6, 1, 3, 8]
    pos = [[0.5, 5.0, 5.0], [0.5, 6.09, 5.0], [8.2, 5.0, 5.0], [0.5, 9.09, 5.0]]
    f = _Frame(numbers, pos, cell, [0, 0, 1, 2])
    floor = {(a, b): d for a, b, d in closest_contacts([f], scan_A=4.0)}
    assert set(floor) == {(1, 1), (1, 3), (1, 6), (1, 8), (3, 3), (3, 6), (3, 8), (6, 6), (6, 8), (8, 8)}
    assert floor[(3, 6)] == pytest.approx(2.3, abs=1e-4)  # across the periodic boundary
    assert floor[(1, 8)] == pytest.approx(3.0, abs=1e-4)
    assert floor[(1, 6)] == 4.0  # C-H only inside grain 0: the scan distance
    li_h = np.hypot(8.2 - 10.0 - 0.5, 1.09)
    assert floor[(1, 3)] == pytest.approx(li_h, abs=1e-4)
    # a second frame with a closer Li-C pair lowers the floor; translation changes nothing
    g = _Frame(numbers, np.asarray(pos) + [0.3, 0.0, 0.0], cell, [0, 0, 1, 2])
    g.positions[2, 0] += 0.2
    both = {(a, b): d for a, b, d in closest_contacts([f, g], scan_A=4.0)}
    assert both[(3, 6)] == pytest.approx(2.1, abs=1e-4) and both[(1, 8)] == pytest.approx(3.0, abs=1e-4)
    assert merge_contact_floors([[6, 3, 2.5], [1, 1, 2.0]], [[3, 6, 2.2], [8, 8, 2.9]]) == [
        [1, 1, 2.0], [3, 6, 2.2], [8, 8, 2.9]]


def _guard_energy(positions_nm, residues, elements, floor, box_nm=None, **kw):
    import openmm
    from openmm import app, unit

    from cgaa.openmm.guards import CONTACT_GUARD_NAME, add_contact_guard

    top = app.Topology()
    chain = top.addChain()
    for members in residues:
        res = top.addResidue("R", chain)
        for i in members:
            top.addAtom(f"A{i}", app.Element.getByAtomicNumber(elements[i]), res)
    if box_nm is not None:
        top.setPeriodicBoxVectors(np.diag([box_nm] * 3) * unit.nanometer)
    system = openmm.System()
    if box_nm is not None:
        system.setDefaultPeriodicBoxVectors(*(np.diag([box_nm] * 3) * unit.nanometer))
    for z in elements:
        system.addParticle(12.0)
    n = add_contact_guard(system, top, floor, **kw)
    assert [f.getName() for f in system.getForces()] == ([CONTACT_GUARD_NAME] if n else [])
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(np.asarray(positions_nm) * unit.nanometer)
    st = ctx.getState(getEnergy=True, getForces=True)
    return (st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole),
            st.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer), n)


def test_contact_guard_is_zero_outside_the_wall_and_harmonic_inside():
    floor = [[3, 6, 2.5], [1, 3, 2.0]]  # Å; walls at 0.9 x: 0.225 and 0.18 nm
    k = 2.0e5
    elements = [3, 6, 1, 9]  # Li | C H | F (no floor: unguarded)
    residues = [[0], [1, 2], [3]]

    def conf(r_lic):
        return [[0.0, 0.0, 0.0], [r_lic, 0.0, 0.0], [r_lic + 0.01, 0.05, 0.0], [0.0, 0.1, 0.0]]

    # outside the walls (Li-C 0.23 nm, Li-H > 0.23 nm); the C-H pair (0.05 nm, same grain) and
    # the Li-F pair (0.1 nm, no floor) are not guarded
    e, f, n = _guard_energy(conf(0.23), residues, elements, floor, box_nm=3.0)
    assert n == 3 and e == 0.0 and np.abs(f).max() == 0.0
    r = 0.20
    e, f, _ = _guard_energy(conf(r), residues, elements, floor, box_nm=3.0)
    assert e == pytest.approx(0.5 * k * (0.225 - r) ** 2, rel=1e-6)
    assert f[0, 0] == pytest.approx(-k * (0.225 - r), rel=1e-6) and f[1, 0] == pytest.approx(k * (0.225 - r), rel=1e-6)
    # the same pair across a periodic boundary
    pos = np.asarray(conf(r)) + [2.95, 1.0, 1.0]
    pos[pos[:, 0] >= 3.0, 0] -= 3.0
    e2, _, _ = _guard_energy(pos, residues, elements, floor, box_nm=3.0)
    assert e2 == pytest.approx(e, rel=1e-6)
    # central-difference check of the force along x of the Li atom
    h = 1e-5
    ep, _, _ = _guard_energy(np.asarray(conf(r)) + [[h, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]], residues, elements, floor)
    em, _, _ = _guard_energy(np.asarray(conf(r)) - [[h, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]], residues, elements, floor)
    assert -(ep - em) / (2 * h) == pytest.approx(f[0, 0], rel=1e-4)
    # fraction and stiffness are parameters; an empty floor adds nothing
    e3, _, _ = _guard_energy(conf(r), residues, elements, floor, box_nm=3.0, fraction=1.0, k=1.0e3)
    assert e3 == pytest.approx(0.5 * 1.0e3 * (0.25 - r) ** 2, rel=1e-6)
    assert _guard_energy(conf(r), residues, elements, [], box_nm=3.0)[2] == 0
    with pytest.raises(ValueError, match="contact floor of elements 3-6 must be > 0"):
        _guard_energy(conf(r), residues, elements, [[3, 6, 0.0]])


def test_model_config_validates_contact_floor(electrolyte_box):
    from cgaa.core.model import ModelConfig

    atoms, _ = electrolyte_box
    model, _, _ = build(atoms)
    d = model.config.to_dict()
    assert d["contact_floor"] == []
    d["contact_floor"] = [[3, 8, 1.8], [1, 1, "1.9"]]
    assert ModelConfig.from_dict(d).contact_floor == [[3, 8, 1.8], [1, 1, 1.9]]
    d["contact_floor"] = [[3, 8]]
    with pytest.raises(ValueError, match=r"contact_floor entries must be \[Z1, Z2, d_min"):
        ModelConfig.from_dict(d)


def test_deploy_adds_a_contact_floor_and_simulate_uses_it(tmp_path, electrolyte_box):
    from cgaa.cli import main
    from cgaa.data.dataset import load_frames
    from cgaa.core.modelfile import load_model, save_model
    from cgaa.openmm import create_system, topology_from_atoms
    from cgaa.openmm.guards import CONTACT_GUARD_NAME
    from cgaa.md.settings import resolve_settings
    from toy_teacher import write_dataset

    atoms, gi = electrolyte_box
    model, _, kw = build(atoms)
    ref = run(model, kw)
    path = save_model(model, tmp_path / "model.pt")
    data = write_dataset(tmp_path / "frames.xyz", {"Li": 2, "PF6": 2, "EC": 4, "EMC": 3}, 3, seed=1)
    assert main(["deploy", str(path), "-o", str(tmp_path / "x.pt")]) == 2  # a deployed model needs the floor flag
    assert main(["deploy", str(path), "--contact-floor-from", str(data), "-o", str(tmp_path / "floored.pt")]) == 0
    floored = load_model(tmp_path / "floored.pt")
    expect = closest_contacts(load_frames([str(data)]), model.config.elements)
    assert floored.config.contact_floor == expect and len(expect) == len(model.config.elements) * (
        len(model.config.elements) + 1) // 2
    assert rel_err(floored(**kw)["forces"], ref["forces"]) <= 1e-12  # the network is unchanged
    top, _ = topology_from_atoms(atoms, gi)

    def force_names(system):  # keep the System alive while its forces are read
        return [system.getForce(i).getName() for i in range(system.getNumForces())]

    assert CONTACT_GUARD_NAME in force_names(create_system(top, floored, contact_guard=True))
    assert CONTACT_GUARD_NAME not in force_names(create_system(top, floored))
    assert CONTACT_GUARD_NAME not in force_names(create_system(top, path, contact_guard=True))  # no floor
    # simulate: on by default; a run from before the guard continues without it
    assert resolve_settings({})["contact_guard"] is True
    assert resolve_settings({}, {"ensemble": "nvt"})["contact_guard"] is False
    assert resolve_settings({}, {"contact_guard": True})["contact_guard"] is True
    with pytest.raises(ValueError, match="contact_guard must be True or False"):
        resolve_settings({"contact_guard": "auto"})
