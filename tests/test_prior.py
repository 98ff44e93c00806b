"""Classical priors (cgaa.priors): the teacher's harmonic bonds and angles as a Δ-learning
baseline. They must equal the teacher's own bonded terms, be conservative and periodic,
round-trip through dataset labels, and be added back wherever a model with a prior runs
(OpenMM create_system / add_cgaa_force, cgaa simulate)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

openmm = pytest.importorskip("openmm")
from openmm import unit  # noqa: E402

from cgaa.core import units  # noqa: E402
from cgaa.core.model import CGAAModel, ModelConfig  # noqa: E402
from cgaa.priors import PRIOR_FORCE_PREFIX, PriorEvaluator, check_prior, prior_forces, subtract_prior  # noqa: E402
from molecules import molecule_box  # noqa: E402


def _box(seed=5):
    atoms, gidx = molecule_box({"Li": 1, "PF6": 1, "EC": 2, "EMC": 2}, np.diag([17.0] * 3), seed=seed, spacing=8.5)
    return atoms, gidx


def _topology(atoms, gidx):
    from cgaa.systems.topology import topology_from_atoms

    return topology_from_atoms(atoms, gidx)[0]


def test_names_are_checked():
    assert check_prior(None) == "none"
    assert check_prior("Teacher_Bonded") == "teacher_bonded"
    with pytest.raises(ValueError, match="unknown prior 'harmonic'.*teacher_bonded"):
        check_prior("harmonic")
    with pytest.raises(ValueError, match="unknown prior"):
        ModelConfig(elements=[1, 6], grain_types=["x"], prior="harmonic")
    # models saved before priors existed load with prior "none"
    assert ModelConfig.from_dict({"elements": [1], "grain_types": ["x"]}).prior == "none"


@pytest.mark.parametrize("prior", ["teacher_bonded", "teacher_valence"])
def test_prior_is_the_teachers_bonded_energy(prior):
    """Same terms, same parameters: the prior's energy equals the teacher System's energy of
    the prior's force classes (bonds + angles; + the PF6 custom angle and torsions for
    teacher_valence), evaluated independently."""
    from openmm import app

    from cgaa.priors import PRIORS
    from cgaa.teacher.forcefield import load_forcefield

    atoms, gidx = _box()
    top = _topology(atoms, gidx)
    ref = load_forcefield().createSystem(top, nonbondedMethod=app.NoCutoff)
    keep = PRIORS[prior]
    assert {type(f).__name__ for f in ref.getForces()} >= set(keep)
    for i, f in enumerate(ref.getForces()):
        f.setForceGroup(1 if type(f).__name__ in keep else 0)
        if type(f).__name__ in keep:
            f.setUsesPeriodicBoundaryConditions(True)  # the box's molecules are wrapped atom by atom
    ref.setDefaultPeriodicBoxVectors(*top.getPeriodicBoxVectors())
    ctx = openmm.Context(ref, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(units.angstrom_to_nm(atoms.positions) * unit.nanometer)
    e_ref = ctx.getState(getEnergy=True, groups={1}).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    e, f = PriorEvaluator(top, prior).compute(atoms.positions, atoms.cell[:])
    assert e_ref > 0
    assert abs(units.ev_to_kjmol(e) - e_ref) <= 1e-9 * abs(e_ref)
    forces = prior_forces(top, prior)
    assert sorted(g.getName() for g in forces) == sorted(PRIOR_FORCE_PREFIX + k for k in keep)
    n_bonds = sum(1 for _ in top.bonds())
    assert forces[[g.getName() for g in forces].index(PRIOR_FORCE_PREFIX + "HarmonicBondForce")].getNumBonds() == n_bonds


@pytest.mark.parametrize("species", ["EC", "EMC"])
def test_teacher_intra_is_the_teachers_intramolecular_energy(species):
    """teacher_intra = everything the teacher puts inside one molecule: for a lone molecule in
    a big box (PME images 50 Å away) the teacher's forces equal the prior's, before and after
    distorting it, and so do energy differences; its non-bonded pairs add to teacher_valence."""
    from cgaa.teacher.forcefield import Teacher

    atoms, gidx = molecule_box({species: 1}, np.diag([50.0] * 3), seed=2, spacing=40.0)
    top = _topology(atoms, gidx)
    teacher = Teacher(top, cutoff=2.4)
    intra = PriorEvaluator(top, "teacher_intra")
    valence = PriorEvaluator(top, "teacher_valence")
    rng = np.random.default_rng(3)
    energies = []
    for scale in (0.0, 0.08):
        pos = atoms.positions + rng.normal(scale=scale, size=atoms.positions.shape)
        e_t, f_t = teacher.compute(pos, atoms.cell[:])
        e_p, f_p = intra.compute(pos, atoms.cell[:])
        _, f_v = valence.compute(pos, atoms.cell[:])
        assert np.abs(f_p - f_v).max() > 0.05  # eV/Å: the intramolecular non-bonded part is there
        np.testing.assert_allclose(f_p, f_t, atol=1e-3)  # eV/Å; PME error ~3e-4
        energies.append((e_t, e_p))
    (t0, p0), (t1, p1) = energies
    assert abs((t1 - t0) - (p1 - p0)) <= 1e-3 * abs(t1 - t0) + 1e-5


def _teacher_topology(atoms, gidx):
    """_topology with the teacher's residue names (Li -> LI), as a Teacher needs."""
    top = _topology(atoms, gidx)
    for res in top.residues():
        res.name = res.name.upper()
    return top


def _intermolecular_lj(pos, cell, grain, sig, eps, cutoff, minus_dispersion=False):
    """Reference: the teacher's OPLS Lennard-Jones (geometric mixing; sig, cutoff in Å, eps in
    eV) between atoms of different molecules, minimum image, plain cutoff; with
    ``minus_dispersion`` less the damped dispersion −4εσ⁶/(r⁶ + σ⁶) of teacher_dispersion.
    Energy (eV), forces (eV/Å)."""
    inv = np.linalg.inv(cell)
    e, f = 0.0, np.zeros_like(pos)
    for i in range(len(pos) - 1):
        d = pos[i + 1:] - pos[i]
        d -= np.round(d @ inv) @ cell
        r = np.linalg.norm(d, axis=1)
        m = (r < cutoff) & (grain[i + 1:] != grain[i])
        s, ep, rr = np.sqrt(sig[i] * sig[i + 1:][m]), np.sqrt(eps[i] * eps[i + 1:][m]), r[m]
        e += float((4 * ep * ((s / rr) ** 12 - (s / rr) ** 6)).sum())
        de_dr = 4 * ep * (-12 * s ** 12 / rr ** 13 + 6 * s ** 6 / rr ** 7)
        if minus_dispersion:
            s6 = s ** 6
            e += float((4 * ep * s6 / (rr ** 6 + s6)).sum())
            de_dr -= 24 * ep * s6 * rr ** 5 / (rr ** 6 + s6) ** 2
        fv = (de_dr / rr)[:, None] * d[m]
        f[i] += fv.sum(0)
        np.add.at(f, np.arange(i + 1, len(pos))[m], -fv)
    return e, f


def _teacher_lj_parameters(teacher):
    """Per-atom LJ sigma (Å) and epsilon (eV) of a Teacher's System."""
    lj = next(f for f in teacher.system.getForces() if f.getName() == "LennardJonesOPLS")
    par = np.array([lj.getParticleParameters(i) for i in range(lj.getNumParticles())])
    return units.nm_to_angstrom(par[:, 0]), units.kjmol_to_ev(par[:, 1])


@pytest.mark.parametrize("prior", ["teacher_coulomb", "teacher_dispersion"])
def test_prior_leaves_the_teachers_intermolecular_rest(prior):
    """On a periodic box of ions and solvent at contact distances, teacher forces − prior forces
    equal an independent numpy sum over atom pairs of different molecules (same cutoff) of
    teacher_coulomb: the teacher's Lennard-Jones; teacher_dispersion: that LJ plus
    4εσ⁶/(r⁶ + σ⁶), i.e. less the prior's damped dispersion. Energy differences between two
    configurations too (the LJ tail corrections are constants of the box)."""
    from cgaa.priors import coulomb_cutoff_nm
    from cgaa.teacher.forcefield import Teacher

    atoms, gidx = molecule_box({"Li": 2, "PF6": 2, "EC": 2, "EMC": 2}, np.diag([18.0] * 3), seed=4, spacing=6.0)
    top = _teacher_topology(atoms, gidx)
    rc = coulomb_cutoff_nm(top.getPeriodicBoxVectors())  # 0.81 nm: 0.45 × the box height
    teacher = Teacher(top, cutoff=rc)
    ev = PriorEvaluator(top, prior)
    intra = PriorEvaluator(top, "teacher_intra")
    sig, eps = _teacher_lj_parameters(teacher)
    cell = np.asarray(atoms.cell[:])
    rng = np.random.default_rng(1)
    energies = []
    for scale in (0.0, 0.1):
        pos = atoms.positions + rng.normal(scale=scale, size=atoms.positions.shape)
        e_t, f_t = teacher.compute(pos, cell)
        e_p, f_p = ev.compute(pos, cell)
        e_rest, f_rest = _intermolecular_lj(pos, cell, gidx, sig, eps, 10 * rc,
                                            minus_dispersion=prior == "teacher_dispersion")
        assert np.abs(f_rest).max() > 0.1  # eV/Å: molecules in contact
        np.testing.assert_allclose(f_t - f_p, f_rest, atol=2e-3)  # eV/Å; PME error of both sums ~5e-4
        # the Coulomb between molecules is really there: ions feel net forces teacher_intra has not
        f_c = f_p - intra.compute(pos, cell)[1]
        net = np.zeros((gidx.max() + 1, 3))
        np.add.at(net, gidx, f_c)
        assert np.abs(net).max() > 0.1
        energies.append(e_t - e_p - e_rest)
    assert abs(energies[1] - energies[0]) <= 2e-3  # eV


def test_teacher_dispersion_leaves_a_short_ranged_rest():
    """For two EC molecules 7 Å apart the teacher's LJ force between them is in the prior: what
    the network is left with is < 2 % of it, and the prior's net force is the difference."""
    from ase import Atoms

    from cgaa.teacher.forcefield import Teacher
    from molecules import SPECIES, random_rotation

    sym, xyz = SPECIES["EC"]
    xyz = np.asarray(xyz, dtype=float) - np.mean(xyz, axis=0)
    rot = np.random.default_rng(2)
    pos2 = np.vstack([xyz @ random_rotation(rot).T + 15.0, xyz @ random_rotation(rot).T + [22.0, 15.0, 15.0]])
    atoms2, g2 = Atoms(sym + sym, positions=pos2, cell=np.diag([30.0] * 3), pbc=True), np.repeat([0, 1], len(sym))
    assert np.linalg.norm(pos2[g2 == 0][:, None] - pos2[g2 == 1][None], axis=2).min() > 3.0
    top2 = _teacher_topology(atoms2, g2)
    t2 = Teacher(top2, cutoff=1.0)
    sig2, eps2 = _teacher_lj_parameters(t2)
    pos2, cell2 = atoms2.positions, np.asarray(atoms2.cell[:])
    _, f_lj = _intermolecular_lj(pos2, cell2, g2, sig2, eps2, 10.0)
    _, f_rest = _intermolecular_lj(pos2, cell2, g2, sig2, eps2, 10.0, minus_dispersion=True)
    net_lj, net_rest = f_lj[g2 == 0].sum(0), f_rest[g2 == 0].sum(0)
    assert np.linalg.norm(net_lj) > 1e-3  # eV/Å: the LJ attraction between them is there
    assert np.linalg.norm(net_rest) < 0.02 * np.linalg.norm(net_lj)
    f_d = PriorEvaluator(top2, "teacher_dispersion").compute(pos2, cell2)[1]
    f_c = PriorEvaluator(top2, "teacher_coulomb").compute(pos2, cell2)[1]
    np.testing.assert_allclose((f_d - f_c)[g2 == 0].sum(0), net_lj - net_rest, atol=1e-6)


def test_teacher_dispersion_carries_the_teachers_long_range_correction():
    """Beyond the cutoff the damped r⁻⁶ is the teacher's LJ to < 0.5 %, so the prior's long-range
    correction (OpenMM's, switched on as in the teacher) equals the teacher's."""
    from cgaa.priors import DISPERSION, coulomb_cutoff_nm
    from cgaa.teacher.forcefield import Teacher

    atoms, gidx = molecule_box({"Li": 1, "PF6": 1, "EC": 2, "EMC": 2}, np.diag([21.0] * 3), seed=2, spacing=7.0)
    top = _teacher_topology(atoms, gidx)

    def tail(force):
        out = []
        for on in (True, False):
            force.setUseLongRangeCorrection(on)
            system = openmm.System()
            for a in top.atoms():
                system.addParticle(a.element.mass)
            system.setDefaultPeriodicBoxVectors(*top.getPeriodicBoxVectors())
            system.addForce(openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(force)))
            ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
            ctx.setPositions(units.angstrom_to_nm(atoms.positions) * unit.nanometer)
            out.append(ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
        return out[0] - out[1]

    rc = coulomb_cutoff_nm(top.getPeriodicBoxVectors())  # 0.945 nm: 0.45 × the box height
    teacher = Teacher(top, cutoff=rc)  # alive while its forces are read
    teacher_lj = next(f for f in teacher.system.getForces() if f.getName() == "LennardJonesOPLS")
    disp = next(f for f in prior_forces(top, "teacher_dispersion") if f.getName() == PRIOR_FORCE_PREFIX + DISPERSION)
    assert disp.getUseLongRangeCorrection()
    assert disp.getCutoffDistance().value_in_unit(unit.nanometer) == pytest.approx(rc)
    want, got = tail(teacher_lj), tail(disp)
    assert want < -0.5  # kJ/mol
    assert got == pytest.approx(want, rel=5e-3)


def test_teacher_coulomb_without_a_box_is_the_plain_coulomb_sum():
    """Without a periodic box the Coulomb between molecules has no cutoff: teacher_coulomb −
    teacher_intra equals q_i q_j / (4π ε0 r) summed over atom pairs of different molecules."""
    from openmm import app

    from cgaa.teacher.forcefield import load_forcefield

    atoms, gidx = molecule_box({"Li": 1, "PF6": 1, "EC": 1}, np.diag([14.0] * 3), seed=3, spacing=6.0)
    top = _topology(atoms, gidx)
    top.setPeriodicBoxVectors(None)
    ref = load_forcefield().createSystem(top, nonbondedMethod=app.NoCutoff)  # alive while its forces are read
    nb = next(f for f in ref.getForces() if isinstance(f, openmm.NonbondedForce))
    q = np.array([nb.getParticleParameters(i)[0]._value for i in range(nb.getNumParticles())])
    pos = atoms.positions
    e_want = 0.0
    for i in range(len(pos)):
        for j in range(i + 1, len(pos)):
            if gidx[i] != gidx[j]:
                e_want += q[i] * q[j] / np.linalg.norm(pos[i] - pos[j])
    e_want *= units.kjmol_to_ev(138.935456) * 10.0  # e²/(4π ε0) in eV·Å
    e_c = PriorEvaluator(top, "teacher_coulomb").compute(pos)[0] - PriorEvaluator(top, "teacher_intra").compute(pos)[0]
    assert abs(e_want) > 0.1
    assert abs(e_c - e_want) <= 1e-7 * abs(e_want)  # OpenMM carries more digits of 1/(4π ε0)


def test_prior_forces_are_gradients_and_periodic():
    atoms, gidx = _box(6)
    top = _topology(atoms, gidx)
    ev = PriorEvaluator(top, "teacher_bonded")
    rng = np.random.default_rng(0)
    pos = atoms.positions + rng.normal(scale=0.05, size=atoms.positions.shape)
    cell = np.asarray(atoms.cell[:])
    e0, f0 = ev.compute(pos, cell)
    h = 1e-5
    for a in (0, 3, 12, 30):
        for k in range(3):
            p1, p2 = pos.copy(), pos.copy()
            p1[a, k] += h
            p2[a, k] -= h
            fd = -(ev.compute(p1, cell)[0] - ev.compute(p2, cell)[0]) / (2 * h)
            assert abs(fd - f0[a, k]) <= 1e-5 * max(1.0, abs(f0[a, k]))
    # an atom moved by a whole box vector: same energy and forces (minimum image)
    moved = pos.copy()
    moved[12] += cell[0] - 2 * cell[2]
    e1, f1 = ev.compute(moved, cell)
    assert abs(e1 - e0) <= 1e-9 * abs(e0)
    np.testing.assert_allclose(f1, f0, atol=1e-8)
    # intra-grain terms only: no net force on any grain
    for g in np.unique(gidx):
        np.testing.assert_allclose(f0[gidx == g].sum(0), 0.0, atol=1e-8)


def test_dataset_labels_round_trip(tmp_path):
    from ase.io import write

    from cgaa.data.dataset import load_frames

    atoms, gidx = _box(7)
    frames = []
    rng = np.random.default_rng(1)
    for i in range(3):
        a = atoms.copy()
        a.positions += rng.normal(scale=0.03, size=a.positions.shape)
        a.arrays["grain"] = gidx
        a.info["REF_energy"] = -10.0 - i
        a.arrays["REF_forces"] = rng.normal(size=a.positions.shape)
        frames.append(a)
    path = tmp_path / "frames.xyz"
    write(path, frames, format="extxyz")
    plain = load_frames(path)
    resid = load_frames(path, prior="teacher_bonded")
    ev = PriorEvaluator(_topology(atoms, gidx), "teacher_bonded")
    for p, r in zip(plain, resid):
        e, f = ev.compute(p.positions, p.cell)
        assert r.info["prior"] == "teacher_bonded"
        assert abs(r.energy + e - p.energy) <= 1e-9 * abs(p.energy)
        np.testing.assert_allclose(r.forces + f, p.forces, atol=1e-9)
    # labels that are already residuals are refused, not subtracted twice
    again = [a.copy() for a in frames]
    for a in again:
        a.info["prior"] = "teacher_bonded"
    with pytest.raises(ValueError, match="already holds residual labels"):
        subtract_prior(again, "teacher_bonded", source="x.xyz")


def _light_model(gm, numbers, prior):
    from cgaa.core.inputs import vocabulary

    el, keys, names = vocabulary([gm], [numbers])
    torch.manual_seed(0)
    cfg = ModelConfig(el, keys, names, cutoff=5.0, num_layers=1, lmax=1, intra_layers=0, channels=4,
                      num_basis=4, radial_hidden=8, prior=prior)
    return CGAAModel(cfg).double().eval()


def _prior_model(atoms, gidx, prior):
    from cgaa.core.grains import grains_from_index, perceive_bonds
    from cgaa.core.inputs import make_inputs

    gm = grains_from_index(gidx, atoms.numbers, perceive_bonds(atoms.numbers, atoms.positions, atoms.cell[:]))
    model = _light_model(gm, atoms.numbers, prior)
    return model, make_inputs(atoms.positions, atoms.numbers, gm, model.config, atoms.cell[:], dtype=torch.float64)


@pytest.mark.parametrize("prior", ["teacher_bonded", "teacher_intra", "teacher_coulomb", "teacher_dispersion"])
def test_openmm_adds_the_prior(tmp_path, prior):
    """create_system with a prior model = TorchForce + prior forces; add_cgaa_force on a
    subset adds the prior of those molecules only; no prior, no extra forces."""
    pytest.importorskip("openmmtorch")
    from cgaa.openmm import add_cgaa_force, create_system

    atoms, gidx = _box(8)
    top = _topology(atoms, gidx)
    pos_nm = units.angstrom_to_nm(atoms.positions)
    model, kw = _prior_model(atoms, gidx, prior)
    out = model(**kw)
    e_prior, f_prior = PriorEvaluator(top, prior).compute(atoms.positions, atoms.cell[:])
    system = create_system(top, model)
    names = [f.getName() for f in system.getForces()]
    assert PRIOR_FORCE_PREFIX + "HarmonicBondForce" in names
    assert (PRIOR_FORCE_PREFIX + "NonbondedForce" in names) == (prior != "teacher_bonded")
    assert (PRIOR_FORCE_PREFIX + "Coulomb" in names) == (prior in ("teacher_coulomb", "teacher_dispersion"))
    assert (PRIOR_FORCE_PREFIX + "Dispersion" in names) == (prior == "teacher_dispersion")
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(pos_nm * unit.nanometer)
    st = ctx.getState(getEnergy=True, getForces=True)
    e = st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    f = st.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    e_want = units.ev_to_kjmol(float(out["energy"].detach()) + e_prior)
    f_want = units.forces_ev_ang_to_kjmol_nm(out["forces"].detach().numpy() + f_prior)
    assert abs(e - e_want) <= 1e-8 * abs(e_want)
    np.testing.assert_allclose(f, f_want, rtol=1e-7, atol=1e-6)

    plain, _ = _prior_model(atoms, gidx, "none")
    plain_system = create_system(top, plain)  # keep a reference: forces belong to their System
    assert not any(f.getName().startswith(PRIOR_FORCE_PREFIX) for f in plain_system.getForces())

    # a subset: the first two grains' atoms (whole molecules) get the prior, nothing else
    sub = [i for i in range(len(atoms)) if gidx[i] in (0, 1, 2)]
    sys2 = openmm.System()
    for a in top.atoms():
        sys2.addParticle(a.element.mass)
    sys2.setDefaultPeriodicBoxVectors(*top.getPeriodicBoxVectors())
    sub_atoms = atoms[sub]
    sub_model, _ = _prior_model(sub_atoms, np.unique(gidx[sub], return_inverse=True)[1], prior)
    add_cgaa_force(sys2, top, sub_model, atoms=sub)
    bonds = [f for f in sys2.getForces() if f.getName() == PRIOR_FORCE_PREFIX + "HarmonicBondForce"][0]
    touched = {i for b in range(bonds.getNumBonds()) for i in bonds.getBondParameters(b)[:2]}
    assert touched and touched <= set(sub)
    if prior in ("teacher_coulomb", "teacher_dispersion"):  # charges on the subset only; an MM NonbondedForce would count them twice
        coul = [f for f in sys2.getForces() if f.getName() == PRIOR_FORCE_PREFIX + "Coulomb"][0]
        charged = {i for i in range(coul.getNumParticles()) if coul.getParticleParameters(i)[0]._value != 0}
        assert charged and charged <= set(sub)
        if prior == "teacher_dispersion":
            disp = [f for f in sys2.getForces() if f.getName() == PRIOR_FORCE_PREFIX + "Dispersion"][0]
            dispersive = {i for i in range(disp.getNumParticles()) if disp.getParticleParameters(i)[1] != 0}
            assert dispersive and dispersive <= set(sub)
        mm = openmm.System()
        for a in top.atoms():
            mm.addParticle(a.element.mass)
        mm.setDefaultPeriodicBoxVectors(*top.getPeriodicBoxVectors())
        mm.addForce(openmm.NonbondedForce())
        with pytest.raises(ValueError, match="already has a NonbondedForce"):
            add_cgaa_force(mm, top, sub_model, atoms=sub)
    with pytest.raises(ValueError, match="only partly"):
        prior_forces(top, prior, atoms=sub[:-1])


def test_simulate_bond_guard_follows_the_prior(tmp_path):
    """cgaa simulate's default bond guard ("auto") is on for a model without a prior and
    off for one with a bonded prior, whose forces are in the System instead."""
    pytest.importorskip("openmmtorch")
    from openmm.app import PDBFile

    from cgaa.systems.build import build_box
    from cgaa.core.grains import grains_from_topology
    from cgaa.openmm.guards import BOND_GUARD_NAME
    from cgaa.md.run import run_simulation

    build_box("lipf6-ec-emc-1m", 400, tmp_path / "box.pdb", seed=2)
    pdb = PDBFile(str(tmp_path / "box.pdb"))
    numbers = [a.element.atomic_number for a in pdb.topology.atoms()]
    gm = grains_from_topology(pdb.topology)
    seen = {}
    for prior in ("none", "teacher_bonded"):
        def hook(system, topology, prior=prior):
            seen[prior] = [f.getName() for f in system.getForces()]

        run_simulation((pdb.topology, pdb.positions), _light_model(gm, numbers, prior), tmp_path / prior,
                       steps=0, minimize=False, thermalize_ps=0.0, platform="Reference", progress=False,
                       customize_system=hook)
    assert BOND_GUARD_NAME in seen["none"]
    assert not any(n.startswith(PRIOR_FORCE_PREFIX) for n in seen["none"])
    assert BOND_GUARD_NAME not in seen["teacher_bonded"]
    assert PRIOR_FORCE_PREFIX + "HarmonicAngleForce" in seen["teacher_bonded"]


@pytest.mark.parametrize("prior", ["teacher_coulomb", "teacher_dispersion"])
def test_prior_evaluator_follows_a_compressed_box(prior):
    """Compressed below twice its cutoff (a density scan, a shrinking NPT box), the evaluator
    rebuilds its forces for the new box: it gives what an evaluator made for that box gives,
    where OpenMM alone refuses the box."""
    from openmm import Vec3

    atoms, gidx = _box()
    top = _topology(atoms, gidx)
    ev = PriorEvaluator(top, prior)
    cell = np.asarray(atoms.cell[:], dtype=float)
    s = 0.85  # heights 17 -> 14.45 Å: below twice the 7.65 Å cutoff chosen for 17 Å
    small_cell, small_pos = cell * s, atoms.positions * s
    e, f = ev.compute(small_pos, small_cell)
    small_top = _topology(atoms, gidx)
    small_top.setPeriodicBoxVectors([Vec3(*units.angstrom_to_nm(v)) for v in small_cell])
    e_ref, f_ref = PriorEvaluator(small_top, prior).compute(small_pos, small_cell)
    assert e == pytest.approx(e_ref, rel=1e-9, abs=1e-9)
    np.testing.assert_allclose(f, f_ref, rtol=1e-9, atol=1e-9)
    assert np.all(np.isfinite(ev.stress(small_pos, small_cell)))


def test_a_prior_is_a_list_of_terms():
    """Presets are term lists; any '+' list of terms is a prior whose energy and forces are the
    sums of its terms' (each term a PriorTerm class), and a list equal to a preset is recorded
    by the preset's name."""
    from cgaa.priors import PRESETS, TERMS, PriorTerm, prior_terms

    assert check_prior("angles + bonds") == "teacher_bonded"
    assert check_prior("coulomb+bonds") == "bonds+coulomb"
    assert prior_terms("teacher_intra") == ("bonds", "angles", "custom_angles", "torsions", "intra_nonbonded")
    assert set(PRESETS["teacher_dispersion"]) == set(TERMS) and all(isinstance(t, PriorTerm) for t in TERMS.values())
    with pytest.raises(ValueError, match="unknown prior 'bonds\\+springs'.*custom_angles"):
        check_prior("bonds+springs")
    with pytest.raises(ValueError, match="unknown prior"):
        ModelConfig(elements=[1, 6], grain_types=["x"], prior="bonds+springs")
    atoms, gidx = _box()
    top = _topology(atoms, gidx)
    cell = atoms.cell[:]
    e, f = PriorEvaluator(top, "bonds+coulomb").compute(atoms.positions, cell)
    parts = [PriorEvaluator(top, k).compute(atoms.positions, cell) for k in ("bonds", "coulomb")]
    assert e == pytest.approx(sum(p[0] for p in parts), rel=1e-9, abs=1e-9)
    np.testing.assert_allclose(f, parts[0][1] + parts[1][1], rtol=0, atol=1e-8)
    assert sorted(g.getName() for g in prior_forces(top, "bonds+coulomb")) == [PRIOR_FORCE_PREFIX + "Coulomb",
                                                                               PRIOR_FORCE_PREFIX + "HarmonicBondForce"]
