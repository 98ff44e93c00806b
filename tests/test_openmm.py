"""OpenMM integration: the TorchForce reproduces the model (energies, forces, both force
modes, Reference and CPU, periodic), refuses what it cannot simulate, and NVE conserves
energy tightly enough that a sign or unit error is caught.

Helpers here (``small_system``, ``stabilizer``, ``scaled_model``) are shared by the other
OpenMM tests (``from test_openmm import ...``).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

openmm = pytest.importorskip("openmm")
pytest.importorskip("openmmtorch")
from openmm import unit  # noqa: E402

from cgaa.core import units  # noqa: E402
from cgaa.openmm import add_cgaa_force, create_system, topology_from_atoms  # noqa: E402
from core_utils import build, rel_err  # noqa: E402
from molecules import molecule_box  # noqa: E402

KJ = unit.kilojoule_per_mole
KJNM = unit.kilojoule_per_mole / unit.nanometer

LIGHT = dict(cutoff=5.0, num_layers=1, lmax=1, intra_layers=0, channels=4, num_basis=4, radial_hidden=8)



# ---------------------------------------------------------------------------- helpers
def small_box(seed: int = 3):
    """Li+, PF6- and 6 EC on a 2x2x2 grid in a 14 Å cube (68 atoms, no overlaps)."""
    return molecule_box({"Li": 1, "PF6": 1, "EC": 6}, np.diag([14.0] * 3), seed=seed, spacing=7.0)


def scaled_model(atoms, mode="conservative", rms_force=0.3, **hyper):
    """A light float64 model whose rms force on ``atoms`` is ``rms_force`` eV/Å."""
    kw_h = dict(LIGHT)
    kw_h.update(hyper)
    model, gm, kw = build(atoms, mode, **kw_h)
    f = model(**kw)["forces"].detach()
    with torch.no_grad():
        model.energy_scale.mul_(rms_force / float(f.pow(2).sum(1).mean().sqrt()))
    return model.eval(), gm, kw


def small_system(seed: int = 3, mode: str = "conservative", rms_force: float = 0.3, **hyper):
    """(model, topology, positions nm, inputs) for :func:`small_box`."""
    atoms, gidx = small_box(seed)
    model, gm, kw = scaled_model(atoms, mode, rms_force, **hyper)
    top, pos = topology_from_atoms(atoms, gidx)
    return model, top, pos, kw


def stabilizer(positions_nm, k_bond=2.0e5, sigma=0.22, epsilon=0.2, cutoff=0.6):
    """A ``customize_system`` hook adding classical terms that keep a random model's
    molecules intact: harmonic 1-2 and 1-3 distances at their initial values and a
    Lennard-Jones liquid (no charges). Random CGAA models have no bonding of their own."""
    pos = np.asarray(positions_nm, dtype=float)

    def hook(system, topology):
        bonds = [(b[0].index, b[1].index) for b in topology.bonds()]
        nbr = {}
        for i, j in bonds:
            nbr.setdefault(i, set()).add(j)
            nbr.setdefault(j, set()).add(i)
        pairs = {tuple(sorted(b)) for b in bonds}
        for ns in nbr.values():
            ns = sorted(ns)
            pairs |= {(ns[a], ns[b]) for a in range(len(ns)) for b in range(a + 1, len(ns))}
        box = np.array(topology.getPeriodicBoxVectors().value_in_unit(unit.nanometer))
        inv = np.linalg.inv(box)
        hb = openmm.HarmonicBondForce()
        for i, j in sorted(pairs):
            d = pos[i] - pos[j]
            d -= np.round(d @ inv) @ box
            hb.addBond(i, j, float(np.linalg.norm(d)), k_bond)
        hb.setUsesPeriodicBoundaryConditions(True)
        system.addForce(hb)
        nb = openmm.NonbondedForce()
        nb.setNonbondedMethod(openmm.NonbondedForce.CutoffPeriodic)
        nb.setCutoffDistance(cutoff)
        nb.setUseDispersionCorrection(False)
        nb.setUseSwitchingFunction(True)  # smooth at the cutoff, or NVE drifts
        nb.setSwitchingDistance(0.8 * cutoff)
        for _ in range(system.getNumParticles()):
            nb.addParticle(0.0, sigma, epsilon)
        nb.createExceptionsFromBonds(bonds, 0.0, 0.0)
        system.addForce(nb)

    return hook


def evaluate(system, positions, platform="Reference", groups=None):
    """(energy kJ/mol, forces kJ/mol/nm) of ``system`` at ``positions`` (nm)."""
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName(platform))
    ctx.setPositions(positions)
    kw = {} if groups is None else {"groups": groups}
    st = ctx.getState(getEnergy=True, getForces=True, **kw)
    return st.getPotentialEnergy().value_in_unit(KJ), st.getForces(asNumpy=True).value_in_unit(KJNM)


def reference(model, kw):
    """The model's own (energy, forces) converted to kJ/mol and kJ/mol/nm."""
    out = model(**kw)
    return (units.ev_to_kjmol(float(out["energy"].detach())),
            units.forces_ev_ang_to_kjmol_nm(out["forces"].detach().numpy()))


# ---------------------------------------------------------------------------- equality
@pytest.mark.parametrize("platform", ["Reference", "CPU"])
@pytest.mark.parametrize("mode,outputs_forces", [("conservative", True), ("conservative", False),
                                                  ("direct", True)])
def test_openmm_matches_model(electrolyte_box, platform, mode, outputs_forces):
    atoms, gidx = electrolyte_box
    model, _, kw = build(atoms, mode)
    e_ref, f_ref = reference(model, kw)
    top, pos = topology_from_atoms(atoms, gidx)
    system = create_system(top, model, outputs_forces=outputs_forces)
    force = [f for f in system.getForces() if f.getName() == "CGAA"][0]
    assert force.usesPeriodicBoundaryConditions()
    assert system.usesPeriodicBoundaryConditions()
    e, f = evaluate(system, pos, platform)
    assert abs(e - e_ref) <= 1e-9 * abs(e_ref)
    assert rel_err(f, f_ref) <= 1e-9
    # positions shifted by whole box vectors (OpenMM does not wrap) give the same answer
    shifted = pos + np.array([1, -2, 0])[None, :] * np.diag(atoms.cell[:]) * units.NM_PER_ANGSTROM
    e2, f2 = evaluate(system, shifted, platform)
    assert abs(e2 - e_ref) <= 1e-9 * abs(e_ref)
    assert rel_err(f2, f_ref) <= 1e-9


def test_non_periodic_topology():
    """Without a box the force is not periodic and the model gets no cell."""
    atoms, gidx = small_box()
    atoms.pbc = False
    model, _, kw = scaled_model(atoms)
    assert kw["cell"] is None
    top, pos = topology_from_atoms(atoms, gidx)
    system = create_system(top, model)
    assert not system.usesPeriodicBoundaryConditions()
    e, f = evaluate(system, pos)
    e_ref, f_ref = reference(model, kw)
    assert abs(e - e_ref) <= 1e-9 * abs(e_ref)
    assert rel_err(f, f_ref) <= 1e-9


def test_box_from_cgaa_build(tmp_path):
    """Acceptance: a box from `cgaa build`, both modes, Reference and CPU."""
    build_mod = pytest.importorskip("cgaa.systems.build", reason="cgaa.systems.build is not available yet")
    from openmm.app import PDBFile

    from cgaa.core.grains import grains_from_topology
    from cgaa.core.inputs import make_inputs, vocabulary
    from cgaa.core.model import CGAAModel, ModelConfig

    try:
        res = build_mod.build_box("lipf6-ec-emc-1m", 650, tmp_path / "box.pdb", seed=2)
    except FileNotFoundError as err:  # packmol missing
        pytest.skip(f"cgaa build cannot run here: {err}")
    pdb = PDBFile(str(res.path))
    gm = grains_from_topology(pdb.topology)
    numbers = [a.element.atomic_number for a in pdb.topology.atoms()]
    el, keys, names = vocabulary([gm], [numbers])
    pos_nm = pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    cell_nm = np.array(pdb.topology.getPeriodicBoxVectors().value_in_unit(unit.nanometer))
    for mode in ("conservative", "direct"):
        cfg = ModelConfig(el, keys, names, force_mode=mode, **LIGHT)
        torch.manual_seed(1)
        model = CGAAModel(cfg).double().eval()
        kw = make_inputs(units.nm_to_angstrom(pos_nm), numbers, gm, cfg, units.nm_to_angstrom(cell_nm),
                         dtype=torch.float64)
        e_ref, f_ref = reference(model, kw)
        system = create_system(pdb.topology, model)
        for platform in ("Reference", "CPU"):
            e, f = evaluate(system, pdb.positions, platform)
            assert abs(e - e_ref) <= 1e-9 * abs(e_ref), (mode, platform)
            assert rel_err(f, f_ref) <= 1e-9, (mode, platform)


def test_model_from_file_and_float32(tmp_path, electrolyte_box):
    """A deployed float32 file works; results agree with the float64 model to float32 precision."""
    from cgaa.core.modelfile import load_model, save_model

    atoms, gidx = electrolyte_box
    model, _, kw = build(atoms)
    e_ref, f_ref = reference(model, kw)
    path = save_model(model.float(), tmp_path / "m32.pt")
    top, pos = topology_from_atoms(atoms, gidx)
    for m in (path, str(path), load_model(path)):
        e, f = evaluate(create_system(top, m), pos)
        assert abs(e - e_ref) <= 1e-4 * abs(e_ref)
        assert rel_err(f, f_ref) <= 1e-3


def test_add_cgaa_force_to_subset(electrolyte_box):
    """The CGAA force on some residues of a System, alongside another force: forces on the
    other atoms are zero and the subset's equal the model's on the subset alone."""
    from cgaa.core.inputs import make_inputs

    atoms, gidx = electrolyte_box
    model, gm, _ = build(atoms)
    top, pos = topology_from_atoms(atoms, gidx)
    sub = [i for i, g in enumerate(gidx) if g < 8]
    system = openmm.System()
    system.setDefaultPeriodicBoxVectors(*top.getPeriodicBoxVectors())
    for a in top.atoms():
        system.addParticle(a.element.mass)
    other = openmm.CustomExternalForce("0.5*x")  # a classical force on every atom
    for i in range(system.getNumParticles()):
        other.addParticle(i, [])
    system.addForce(other)
    force = add_cgaa_force(system, top, model, atoms=sub, force_group=3)
    assert force.getForceGroup() == 3
    e, f = evaluate(system, pos, groups={3})
    from cgaa.core.grains import grains_from_index

    gsub = grains_from_index(gidx[sub], atoms.numbers[sub], positions=atoms.positions[sub], cell=atoms.cell[:])
    kw = make_inputs(atoms.positions[sub], atoms.numbers[sub], gsub, model.config, atoms.cell[:],
                     dtype=torch.float64)
    e_ref, f_ref = reference(model, kw)
    assert abs(e - e_ref) <= 1e-9 * abs(e_ref)
    assert rel_err(f[sub], f_ref) <= 1e-9
    rest = np.setdiff1d(np.arange(len(atoms)), sub)
    assert np.all(f[rest] == 0)


def _constraints(system):
    return [(i, j, d.value_in_unit(unit.nanometer))
            for i, j, d in (system.getConstraintParameters(k) for k in range(system.getNumConstraints()))]


def _guard_bonds(system):
    from cgaa.openmm.guards import BOND_GUARD_NAME

    (g,) = [f for f in system.getForces() if f.getName() == BOND_GUARD_NAME]
    return [tuple(g.getBondParameters(b)[:2]) + tuple(g.getBondParameters(b)[2]) for b in range(g.getNumBonds())]


def test_prior_bonds_give_the_constraint_lengths(monkeypatch):
    """With a teacher_bonded prior, create_system takes the H-bond constraint and bond-guard
    lengths from the prior's bond force instead of parametrising the topology a second
    time, and they equal those of the teacher route (teacher_bond_lengths) exactly; where
    that route refuses the topology (residue names it does not know) nothing changes."""
    import cgaa.openmm.guards as oms

    atoms, gidx = small_box()
    model, _, _ = scaled_model(atoms, prior="teacher_bonded")
    plain, _, _ = scaled_model(atoms)
    top0, pos = topology_from_atoms(atoms, gidx)
    top, _ = topology_from_atoms(atoms, gidx, names=[r.name.upper() for r in top0.residues()])
    assert {r.name for r in top.residues()} == {"LI", "PF6", "EC"}  # the teacher's template names

    def teacher_route(topology):
        ref = openmm.System()
        for a in topology.atoms():
            ref.addParticle(a.element.mass)
        n = oms.add_hbond_constraints(ref, topology)
        oms.add_bond_guard(ref, topology)
        assert n == 24  # 6 EC x 4 C-H
        return ref

    want = teacher_route(top)
    want_fallback = teacher_route(top0)  # "Li" is no template name: XH_BOND_NM lengths, no guard
    assert oms.teacher_bond_lengths(top0) is None and not want_fallback.getNumForces()
    lengths = oms.teacher_bond_lengths(top)
    assert lengths and len(_guard_bonds(want)) == len(lengths)  # the guard tells the routes apart

    calls = []
    real = oms.teacher_bond_lengths
    monkeypatch.setattr(oms, "teacher_bond_lengths", lambda t: calls.append(t) or real(t))
    system = create_system(top, model, constraints="hbonds", bond_guard=True)
    assert not calls, "the topology was parametrised a second time"
    assert _constraints(system) == _constraints(want)  # exactly: same r0 doubles
    assert _guard_bonds(system) == _guard_bonds(want)
    assert oms.prior_bond_lengths(system, top) == lengths

    # the teacher refuses top0's residue names: the old route (XH lengths, no guard) stays
    system = create_system(top0, model, constraints="hbonds", bond_guard=True)
    assert calls and oms.prior_bond_lengths(system, top0) is None
    assert _constraints(system) == _constraints(want_fallback)
    assert not any(f.getName() == oms.BOND_GUARD_NAME for f in system.getForces())
    # no prior: the teacher route
    calls.clear()
    system = create_system(top, plain, constraints="hbonds", bond_guard=True)
    assert calls and oms.prior_bond_lengths(system, top) is None
    assert _constraints(system) == _constraints(want) and _guard_bonds(system) == _guard_bonds(want)


# ---------------------------------------------------------------------------- refusals
def test_refuses_uncovered_topology_and_small_box(electrolyte_box):
    from cgaa.core.model import CGAAModel, ModelConfig

    atoms, gidx = electrolyte_box
    model, gm, _ = build(atoms)
    top, _ = topology_from_atoms(atoms, gidx)
    # a model without PF6 (neither element F/P nor the grain type)
    cfg = model.config
    keep = [k for k, n in zip(cfg.grain_types, cfg.grain_type_names) if n != "PF6"]
    small = ModelConfig([1, 3, 6, 8, 9, 15], keep, [n for n in cfg.grain_type_names if n != "PF6"], **LIGHT)
    with pytest.raises(ValueError, match=r"grain \d+ \(PF6.*does not know"):
        create_system(top, CGAAModel(small))
    no_f = ModelConfig([1, 3, 6, 8, 15], cfg.grain_types, cfg.grain_type_names, **LIGHT)
    with pytest.raises(ValueError, match=r"element F \(Z=9\)"):
        create_system(top, CGAAModel(no_f))
    # cutoff 12 Å in a 20 Å box: refused, naming both numbers
    big = ModelConfig(cfg.elements, cfg.grain_types, cfg.grain_type_names, **dict(LIGHT, cutoff=12.0))
    with pytest.raises(ValueError, match=r"cutoff 12 A is not below half the shortest box height \(10\.000 A"):
        create_system(top, CGAAModel(big))


def test_default_model_and_bad_model_argument(monkeypatch, electrolyte_box):
    import cgaa.openmm.torchforce as oms

    atoms, gidx = electrolyte_box
    top, _ = topology_from_atoms(atoms, gidx)
    monkeypatch.setattr(oms, "DEFAULT_MODEL_NAME", "no-such-model.pt")
    with pytest.raises(FileNotFoundError, match="no default CGAA model is shipped yet.*model="):
        create_system(top)
    with pytest.raises(TypeError, match="model must be"):
        create_system(top, 42)
    with pytest.raises(FileNotFoundError, match="no model file"):
        create_system(top, "missing.pt")


def test_no_literal_unit_factors():
    """Units are converted through cgaa.core.units only (no literal 10 or 96.485 in the wrapper)."""
    src = (Path(__file__).parent.parent / "cgaa" / "openmm" / "wrapper.py").read_text()
    code = "\n".join(ln.split("#")[0] for ln in src.splitlines())
    assert not re.search(r"\b10(\.0*)?\b|96\.48|0\.1\b", code)


# ---------------------------------------------------------------------------- NVE
class _Broken(torch.nn.Module):
    """A wrapper with a deliberate error: forces scaled by ``factor`` (−1: sign, 10: unit)."""

    def __init__(self, inner, factor: float):
        super().__init__()
        self.inner = inner
        self.factor = factor

    def forward(self, positions, boxvectors: torch.Tensor):
        e, f = self.inner(positions, boxvectors)
        return e, f * self.factor


def _nve_drift(model, top, pos, factor=None, steps=400, dt_fs=0.5, temperature=150.0):
    """Run NVE (Verlet, Reference, double) and return (drift kJ/mol/ps per kJ/mol of mean
    kinetic energy, max |E − E0| / mean KE)."""
    import openmmtorch

    from cgaa.openmm.wrapper import CGAAForceModule

    system = create_system(top, model)
    if factor is not None:  # swap in a broken TorchForce
        idx = [i for i, f in enumerate(system.getForces()) if f.getName() == "CGAA"][0]
        system.removeForce(idx)
        from cgaa.core.grains import grains_from_topology
        from cgaa.core.inputs import grain_type_indices, species_indices

        gm = grains_from_topology(top)
        sp = species_indices([a.element.atomic_number for a in top.atoms()], model.config.elements)
        gt = grain_type_indices(gm, model.config.grain_types)
        inner = CGAAForceModule(torch.jit.script(model), sp, gm.grain_index, gt)
        tf = openmmtorch.TorchForce(torch.jit.script(_Broken(inner, factor)))
        tf.setOutputsForces(True)
        tf.setUsesPeriodicBoundaryConditions(True)
        system.addForce(tf)
    stabilizer(pos)(system, top)
    integ = openmm.VerletIntegrator(dt_fs * unit.femtosecond)
    ctx = openmm.Context(system, integ, openmm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(pos)
    ctx.setVelocitiesToTemperature(temperature * unit.kelvin, 7)
    integ.step(10)  # OpenMM's leapfrog kinetic energy at step 0 is not that of the trajectory
    t, etot, ke = [], [], []
    for _ in range(steps // 10 + 1):
        st = ctx.getState(getEnergy=True)
        k = st.getKineticEnergy().value_in_unit(KJ)
        etot.append(st.getPotentialEnergy().value_in_unit(KJ) + k)
        ke.append(k)
        t.append(st.getTime().value_in_unit(unit.picosecond))
        integ.step(10)
    t, etot, ke = map(np.asarray, (t, etot, ke))
    slope = np.polyfit(t, etot, 1)[0]
    return abs(slope) / ke.mean(), np.abs(etot - etot[0]).max() / ke.mean()


def test_nve_conserves_energy_and_catches_errors():
    """Conservative CGAA forces (rms 0.5 eV/Å, comparable to a trained model's) plus
    classical bonds: Verlet at 0.5 fs conserves the total energy; the same run with the
    force sign flipped or a factor-10 unit error violates the bound by orders of magnitude."""
    model, top, pos, _ = small_system(rms_force=0.5)
    drift, spread = _nve_drift(model, top, pos)
    # measured: |drift| ~3e-5 of <KE> per ps, max deviation ~0.5% of <KE> (docs/openmm.md)
    assert drift < 0.01 and spread < 0.02, (drift, spread)
    # measured: drift 6, 3.4 and 2.3 <KE>/ps for factors -1, 10 and 0.1
    for factor in (-1.0, 10.0, 0.1):
        d, s = _nve_drift(model, top, pos, factor=factor, steps=100)
        assert d > 0.5, (factor, d, s)


# ---------------------------------------------------------------------------- CUDA
@pytest.mark.cuda
@pytest.mark.parametrize("precision", ["mixed", "double"])
def test_cuda_platform_matches_reference(electrolyte_box, precision):
    atoms, gidx = electrolyte_box
    model, _, kw = build(atoms)
    e_ref, f_ref = reference(model, kw)
    top, pos = topology_from_atoms(atoms, gidx)
    system = create_system(top, model)
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("CUDA"),
                         {"Precision": precision})
    ctx.setPositions(pos)
    st = ctx.getState(getEnergy=True, getForces=True)
    tol = 1e-9 if precision == "double" else 1e-4
    assert abs(st.getPotentialEnergy().value_in_unit(KJ) - e_ref) <= tol * abs(e_ref)
    assert rel_err(st.getForces(asNumpy=True).value_in_unit(KJNM), f_ref) <= tol * 10


def test_works_when_openmm_is_imported_before_torch():
    """OpenMM-Torch's kernel plugins need torch's libraries; importing openmm first used to
    leave them unloaded ("does not support all required kernels")."""
    import subprocess
    import sys

    code = f"""
import openmm, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_openmm import small_system, evaluate
from cgaa.openmm import create_system
model, top, pos, _ = small_system()
print(evaluate(create_system(top, model), pos, "CPU")[0])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert float(out.stdout.split()[-1]) != 0.0


def test_openmmtorch_deprecation_notice_is_dropped():
    """Some openmmtorch builds (PyPI's openmmtorch 1.5) import ``simtk.openmm``, which logs "importing
    'simtk.openmm' is deprecated" on stderr of every `cgaa simulate`: cgaa's import drops that
    notice only, and bench reports find openmmtorch's version whichever distribution installed it."""
    import subprocess
    import sys

    code = ("import openmm, logging\n"
            "from cgaa.bench.report import versions\n"
            "assert versions()['openmmtorch'] != 'not importable'\n"     # bench reports import it first
            "from cgaa.openmm.torchforce import import_openmmtorch\n"
            "print(import_openmmtorch().TorchForce.__name__)\n"
            "logging.getLogger().warning('other notices still show')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "TorchForce", out.stderr[-2000:]
    assert "simtk" not in out.stderr and "other notices still show" in out.stderr, out.stderr


def test_a_shipped_model_is_taken_by_name(electrolyte_box):
    """create_system(model=NAME) and resolve_model take a shipped model by its name."""
    from cgaa.openmm import resolve_model
    from cgaa.openmm.torchforce import default_model_path, shipped_model_path, shipped_models

    assert "lipf6-ec-emc-1m" in shipped_models()
    assert shipped_model_path("lipf6-ec-emc-1m") == default_model_path()
    assert shipped_model_path("lipf6-ec-emc-1m.pt") == default_model_path()
    assert resolve_model("lipf6-ec-emc-1m").metadata == resolve_model().metadata
    with pytest.raises(FileNotFoundError, match="no model file no-such-model.*shipped: .*lipf6-ec-emc-1m"):
        resolve_model("no-such-model")
