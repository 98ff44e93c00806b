"""openmm-ml: ``MLPotential('cgaa', model=...)`` builds working Systems (full and mixed)
through the ``openmmml.potentials`` entry point, and the plugin module imports cheaply."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

openmm = pytest.importorskip("openmm")
pytest.importorskip("openmmtorch")
openmmml = pytest.importorskip("openmmml", reason="openmm-ml is not installed (the Makefile installs it)")
from openmm import unit  # noqa: E402

from cgaa.core import units  # noqa: E402
from cgaa.core.modelfile import save_model  # noqa: E402
from cgaa.openmm import create_system, topology_from_atoms  # noqa: E402
from core_utils import build, rel_err  # noqa: E402
from test_openmm import evaluate, reference  # noqa: E402



@pytest.fixture
def deployed(tmp_path, electrolyte_box):
    atoms, gidx = electrolyte_box
    model, _, kw = build(atoms)
    path = save_model(model, tmp_path / "model.pt")
    top, pos = topology_from_atoms(atoms, gidx)
    return path, model, kw, top, pos


def test_registered_and_create_system(deployed):
    from openmmml import MLPotential

    path, model, kw, top, pos = deployed
    assert "cgaa" in MLPotential._implFactories
    potential = MLPotential("cgaa", model=path)
    system = potential.createSystem(top)
    names = [f.getName() for f in system.getForces()]
    assert "CGAA" in names and "CMMotionRemover" in names
    assert system.getNumParticles() == top.getNumAtoms()
    e, f = evaluate(system, pos)
    e_ref, f_ref = reference(model, kw)
    assert abs(e - e_ref) <= 1e-9 * abs(e_ref)
    assert rel_err(f, f_ref) <= 1e-9
    # and it integrates
    integ = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.5 * unit.femtosecond)
    ctx = openmm.Context(system, integ, openmm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(pos)
    integ.step(3)
    assert np.isfinite(ctx.getState(getEnergy=True).getPotentialEnergy()._value)
    # options are checked by name
    with pytest.raises(ValueError, match="unknown option"):
        MLPotential("cgaa", model=path, colour="red")
    # createSystem may override the model; same System as cgaa.openmm.create_system
    e2, _ = evaluate(MLPotential("cgaa").createSystem(top, model=path), pos)
    e3, _ = evaluate(create_system(top, path), pos)
    assert e2 == pytest.approx(e_ref, rel=1e-9) and e3 == pytest.approx(e_ref, rel=1e-9)


@pytest.mark.parametrize("prior,long_range", [("none", False), ("teacher_intra", False),
                                              ("teacher_coulomb", True), ("teacher_dispersion", True),
                                              ("bonds+dispersion", True)])
def test_ml_long_range_follows_the_prior(tmp_path, electrolyte_box, prior, long_range):
    """openmm-ml's contract: getMLLongRange is True exactly when the model's prior carries
    interactions between molecules beyond the cutoff (PME Coulomb, the dispersion sum)."""
    from openmmml import MLPotential

    from cgaa.core.model import CGAAModel, ModelConfig

    atoms, _ = electrolyte_box
    model, _, _ = build(atoms)
    cfg = ModelConfig.from_dict({**model.config.to_dict(), "prior": prior})
    path = save_model(CGAAModel(cfg).to(torch.float64), tmp_path / "m.pt")
    impl = MLPotential("cgaa", model=path)._impl
    assert impl.getMLLongRange() is long_range


def test_shipped_model_is_long_ranged():
    from openmmml import MLPotential

    from cgaa.openmm import resolve_model

    assert resolve_model().config.prior == "teacher_dispersion"
    assert MLPotential("cgaa")._impl.getMLLongRange() is True


def test_create_mixed_system(deployed):
    """The CGAA potential on some residues, a classical force field on the rest (mechanical
    embedding): the ML part equals the model on the subset, the classical part is kept."""
    from openmmml import MLPotential

    from cgaa.core.grains import grains_from_index
    from cgaa.core.inputs import make_inputs

    path, model, _, top, pos = deployed
    n = top.getNumAtoms()
    mm = openmm.System()
    mm.setDefaultPeriodicBoxVectors(*top.getPeriodicBoxVectors())
    for a in top.atoms():
        mm.addParticle(a.element.mass)
    nb = openmm.NonbondedForce()
    nb.setNonbondedMethod(openmm.NonbondedForce.CutoffPeriodic)
    nb.setCutoffDistance(0.8)
    for _ in range(n):
        nb.addParticle(0.0, 0.3, 0.2)
    mm.addForce(nb)
    ml_atoms = [a.index for a in top.atoms() if a.residue.index < 6]
    mixed = MLPotential("cgaa", model=path).createMixedSystem(top, mm, ml_atoms, forceGroup=2)
    assert "CGAA" in [f.getName() for f in mixed.getForces()]
    e_ml, f_ml = evaluate(mixed, pos, groups={2})
    sub = np.array(ml_atoms)
    pos_a = units.nm_to_angstrom(np.asarray(pos)[sub])
    res = [a.residue.index for a in top.atoms() if a.index in set(ml_atoms)]
    numbers = [a.element.atomic_number for a in top.atoms() if a.index in set(ml_atoms)]
    cell = np.array(top.getPeriodicBoxVectors().value_in_unit(unit.angstrom))
    gm = grains_from_index(res, numbers, positions=pos_a, cell=cell)
    kw = make_inputs(pos_a, numbers, gm, model.config, cell, dtype=torch.float64)
    e_ref, f_ref = reference(model, kw)
    assert abs(e_ml - e_ref) <= 1e-9 * abs(e_ref)
    assert rel_err(f_ml[sub], f_ref) <= 1e-9
    assert np.all(f_ml[np.setdiff1d(np.arange(n), sub)] == 0)
    # the whole mixed system evaluates (ML + classical with ML-ML LJ excluded)
    e_all, _ = evaluate(mixed, pos)
    assert np.isfinite(e_all)


def test_plugin_module_is_cheap_to_import():
    code = ("import sys, cgaa.openmm.mlpotential as m; "
            "print('torch' in sys.modules, 'openmm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"], out.stdout + out.stderr
    # openmm-ml loads it through the entry point in either import order
    code = "import cgaa.openmm.mlpotential\nfrom openmmml import MLPotential\nprint('cgaa' in MLPotential._implFactories)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("True"), out.stdout + out.stderr
