"""``run_simulation(system=...)``: a run of any given ``openmm.System`` (here the classical
teacher's, as ``cgaa bench observables`` runs it): the run directory, exact restarts in NVT
and NPT, safety checks, the refusals; and the observables teacher System equals the one the
old ``customize_system`` hook made of a CGAA System, force by force."""
from __future__ import annotations

import json

import numpy as np
import pytest

openmm = pytest.importorskip("openmm")
pytest.importorskip("openmmtorch")

from cgaa.bench.observables import teacher_customizer, teacher_run_kwargs, teacher_run_system  # noqa: E402
from cgaa.md.rundir import STATE_COLUMNS, load_state_csv  # noqa: E402
from cgaa.md.run import SimulationError, build_run_system, run_simulation  # noqa: E402
from cgaa.md.settings import resolve_settings  # noqa: E402
from cgaa.openmm.torchforce import resolve_model  # noqa: E402
from test_openmm import small_system, stabilizer  # noqa: E402
from test_prior import _box, _prior_model, _topology  # noqa: E402

CUTOFF_NM = 0.6  # the teacher's cutoff in the 1.4 nm box of small_system (below half of it)


def _teacher_names(topology):
    """The test boxes name the lithium residue ``Li``; the teacher force field (as boxes from
    ``cgaa build``) ``LI``."""
    for r in topology.residues():
        if r.name == "Li":
            r.name = "LI"
    return topology


@pytest.fixture(scope="module")
def teacher_parts():
    """(model, topology, positions nm, teacher System) of test_openmm's 68-atom box."""
    model, top, pos, _ = small_system(rms_force=0.3)
    _teacher_names(top)
    return model, top, pos, teacher_run_system(top, CUTOFF_NM)


def _teacher_run(parts, out, **kw):
    _, top, pos, system = parts
    args = dict(platform="Reference", report_interval=10, checkpoint_interval=10, minimize_iterations=20,
                temperature=300.0, progress=False, system=system)
    if not kw.get("restart"):
        args["thermalize_ps"] = 0.02  # (the default 1 ps would let this 1.4 nm box's barostat shrink it too far)
    args.update(kw)
    restart = args.get("restart", False)
    return run_simulation(None if restart else (top, pos), None, out, **args)


def _final(out):
    st = openmm.XmlSerializer.deserialize((out / "final_state.xml").read_text())
    return st.getPositions(asNumpy=True)._value, st.getVelocities(asNumpy=True)._value, st.getPeriodicBoxVectors(
        asNumpy=True)._value


def _dcd(out):
    import mdtraj

    return mdtraj.load_dcd(str(out / "traj.dcd"), top=str(out / "topology.pdb"))


@pytest.mark.parametrize("ensemble", ["nvt", "npt"])
def test_given_teacher_system_runs_writes_the_run_dir_and_restarts(tmp_path, teacher_parts, ensemble):
    system = teacher_parts[3]
    before = openmm.XmlSerializer.serialize(system)
    kw = dict(ensemble=ensemble, seed=3, barostat_interval=2)
    full = _teacher_run(teacher_parts, tmp_path / "full", steps=40, **kw)
    assert full.steps == 40 and full.restarted_from is None
    part = tmp_path / "part"
    _teacher_run(teacher_parts, part, steps=20, **kw)
    res = _teacher_run(teacher_parts, part, steps=40, restart=True)
    assert res.restarted_from == 20 and res.steps == 40
    # the run directory: everything but a model copy
    for name in ("traj.dcd", "topology.pdb", "state.csv", "checkpoint.chk", "checkpoint.json",
                 "checkpoint.prev.chk", "final_state.xml", "run.json"):
        assert (part / name).is_file(), name
    assert not (part / "model.pt").exists() and "model" not in res.files
    info = json.loads((part / "run.json").read_text())
    assert info["model"] is None and "model" not in info["files"]
    assert info["system"].startswith(f"given ({system.getNumForces()} forces: HarmonicBondForce, ")
    assert "LennardJonesOPLS" in info["system"] and f"{system.getNumConstraints()} constraints" in info["system"]
    assert {info["settings"][k] for k in ("constraints", "bond_guard", "contact_guard")} == {None}
    assert info["settings"]["ensemble"] == ensemble
    assert [(h["from_step"], h["to_step"], h["status"]) for h in info["history"]] == [(0, 20, "finished"),
                                                                                      (20, 40, "finished")]
    assert "minimization" in info["history"][0]
    # nvt: the restart reproduces the uninterrupted run exactly (Reference platform); npt up to
    # the checkpoint only: OpenMM's checkpoints do not hold the MonteCarloBarostat's random
    # numbers and step counter, which start again with the restarted Context (measured with
    # plain OpenMM: 8e-4 nm apart 20 steps after a checkpoint, 0 without the barostat)
    a, b = (load_state_csv(d / "state.csv") for d in (tmp_path / "full", part))
    assert list(a["step"]) == list(b["step"]) == [0, 10, 20, 30, 40]
    same = 5 if ensemble == "nvt" else 3
    for k in STATE_COLUMNS[:-1]:
        assert np.array_equal(a[k][:same], b[k][:same]), k
    assert np.array_equal(_dcd(tmp_path / "full").xyz[:same], _dcd(part).xyz[:same])
    if ensemble == "nvt":
        for x, y in zip(_final(tmp_path / "full"), _final(part)):
            assert np.array_equal(x, y)
    # the teacher's dynamics: constrained X-H bonds, the temperature counts them out
    assert np.all(np.isfinite(b["temperature_K"])) and 100.0 < b["temperature_K"][1:].mean() < 600.0
    if ensemble == "npt":
        assert len(set(a["volume_nm3"])) > 1  # the barostat moved the box
    # the caller's System is not touched (no barostat, no force groups changed)
    assert openmm.XmlSerializer.serialize(system) == before


def test_given_system_restart_rules(tmp_path, teacher_parts):
    model, top, pos, system = teacher_parts
    out = tmp_path / "run"
    _teacher_run(teacher_parts, out, steps=10)
    with pytest.raises(ValueError, match=r"ran a given openmm.System \(given \(.*pass the same System again"):
        run_simulation(None, None, out, steps=20, restart=True, progress=False, platform="Reference")
    from cgaa.teacher.forcefield import create_system as teacher_system

    other = teacher_system(top, cutoff=CUTOFF_NM)  # no constraints: not the System the run started with
    with pytest.raises(ValueError, match="not the one the run .* started with"):
        run_simulation(None, None, out, steps=20, restart=True, progress=False, platform="Reference", system=other)
    with pytest.raises(ValueError, match="constraints='hbonds'.*leave it unset"):
        _teacher_run(teacher_parts, out, steps=20, restart=True, constraints="hbonds")
    # a run from a model restarts without a System
    cg = tmp_path / "cgaa"
    run_simulation((top, pos), model, cg, steps=0, minimize=False, platform="Reference", progress=False,
                   customize_system=stabilizer(pos))
    assert "system" not in json.loads((cg / "run.json").read_text())
    with pytest.raises(ValueError, match="built its System from a model.*without system="):
        run_simulation(None, None, cg, steps=10, restart=True, progress=False, system=system)
    # a new run of a given System into a CGAA run's directory drops its model copy
    assert (cg / "model.pt").is_file()
    _teacher_run(teacher_parts, cg, steps=0, minimize=False, overwrite=True)
    assert not (cg / "model.pt").exists()


def test_given_system_refusals_and_safety_checks(tmp_path, teacher_parts):
    model, top, pos, system = teacher_parts
    with pytest.raises(ValueError, match="a model or a System"):
        run_simulation((top, pos), model, tmp_path / "a", system=system, progress=False)
    assert not (tmp_path / "a").exists()
    for k, v in (("constraints", "none"), ("bond_guard", False), ("contact_guard", True)):
        with pytest.raises(ValueError, match=f"{k}=.*shapes the CGAA System"):
            _teacher_run(teacher_parts, tmp_path / "b", steps=10, **{k: v})
    assert not (tmp_path / "b").exists()
    with pytest.raises(TypeError, match="openmm.System"):
        _teacher_run(teacher_parts, tmp_path / "c", steps=10, system="system.xml")
    baro = openmm.XmlSerializer.clone(system)
    baro.addForce(openmm.MonteCarloBarostat(1.0, 300.0))
    with pytest.raises(ValueError, match="has a barostat .*ensemble='npt'"):
        _teacher_run(teacher_parts, tmp_path / "d", steps=10, system=baro)
    small = openmm.System()
    small.addParticle(1.0)
    with pytest.raises(ValueError, match="1 particles, the input 68 atoms"):
        _teacher_run(teacher_parts, tmp_path / "e", steps=10, system=small)
    with pytest.raises(ValueError, match="no CGAA TorchForce"):  # r-RESPA splits the network off
        _teacher_run(teacher_parts, tmp_path / "f", steps=10, fast_substeps=2)
    # the safety checks stop a given System's run as any other
    with pytest.raises(SimulationError, match=r"step 0: force on atom \d+ .* above the limit 1 kJ/mol/nm") as e:
        _teacher_run(teacher_parts, tmp_path / "g", steps=10, max_force=1.0)
    assert e.value.quantity == "force"
    assert json.loads((tmp_path / "g" / "run.json").read_text())["history"][-1]["status"] == "failed"


def _systems_equal(old, new):
    """Force by force (class, name, group, parameter counts, serialised parameters), masses,
    constraints, box: ``new`` is ``old``."""
    def counts(f):
        return {name: getattr(f, name)() for name in ("getNumBonds", "getNumAngles", "getNumTorsions",
                                                      "getNumParticles", "getNumExceptions", "getNumExclusions")
                if hasattr(f, name)}

    assert [type(f).__name__ for f in old.getForces()] == [type(f).__name__ for f in new.getForces()]
    for fo, fn in zip(old.getForces(), new.getForces()):
        assert (fo.getName(), fo.getForceGroup(), counts(fo)) == (fn.getName(), fn.getForceGroup(), counts(fn))
        assert openmm.XmlSerializer.serialize(fo) == openmm.XmlSerializer.serialize(fn), fo.getName()
    assert any(isinstance(f, openmm.CMMotionRemover) for f in new.getForces())
    n = old.getNumParticles()
    assert n == new.getNumParticles()
    assert [old.getParticleMass(i) for i in range(n)] == [new.getParticleMass(i) for i in range(n)]
    assert old.getNumConstraints() == new.getNumConstraints() > 0
    assert [old.getConstraintParameters(k) for k in range(old.getNumConstraints())] == \
        [new.getConstraintParameters(k) for k in range(new.getNumConstraints())]
    assert old.getDefaultPeriodicBoxVectors() == new.getDefaultPeriodicBoxVectors()
    assert openmm.XmlSerializer.serialize(old) == openmm.XmlSerializer.serialize(new)


@pytest.mark.parametrize("prior", ["none", "teacher_bonded"])
@pytest.mark.parametrize("ensemble", ["nvt", "npt"])
def test_observables_teacher_system_equals_the_old_customized_one(prior, ensemble):
    """What a teacher replica integrates now (teacher_run_system as system=) is what it
    integrated before (the CGAA System of the default settings, its forces replaced by
    teacher_customizer): the same forces, masses, constraints, CMMotionRemover and barostat,
    for a model without a prior (constraint lengths from the teacher) and with one (from
    the prior's bond force)."""
    if prior == "none":
        model, top, _, _ = small_system(rms_force=0.3)
        _teacher_names(top)
        cutoff = CUTOFF_NM
    else:
        atoms, gidx = _box(8)  # 1.7 nm box
        top = _teacher_names(_topology(atoms, gidx))
        model, _ = _prior_model(atoms, gidx, prior)
        cutoff = 0.8
    deployed = resolve_model(model)
    assert deployed.config.prior == prior
    old = build_run_system(top, resolve_settings({"ensemble": ensemble}), deployed,
                           customize_system=teacher_customizer(cutoff))
    new = build_run_system(top, resolve_settings({"ensemble": ensemble}, given_system=True),
                           system=teacher_run_system(top, cutoff))
    _systems_equal(old, new)


def test_teacher_runs_old_and_new_are_the_same_dynamics(tmp_path, teacher_parts):
    """A teacher run as cgaa bench observables made it before (a CGAA System from a model, its
    forces swapped by teacher_customizer) and as it makes it now (teacher_run_system as
    system=) give the same trajectory; a restart of an old-style run (run.json names no
    given System) continues with the old hook (teacher_run_kwargs), of a new one with the System."""
    model, top, pos, _ = teacher_parts
    common = dict(platform="Reference", report_interval=10, checkpoint_interval=10, minimize_iterations=20,
                  temperature=300.0, progress=False, seed=2)
    run_simulation((top, pos), model, tmp_path / "old", steps=20, customize_system=teacher_customizer(CUTOFF_NM),
                   **common)
    run_simulation((top, pos), None, tmp_path / "new", steps=20, system=teacher_run_system(top, CUTOFF_NM),
                   **common)
    a, b = (load_state_csv(tmp_path / d / "state.csv") for d in ("old", "new"))
    for k in STATE_COLUMNS[:-1]:
        assert np.array_equal(a[k], b[k]), k
    for x, y in zip(_final(tmp_path / "old"), _final(tmp_path / "new")):
        assert np.array_equal(x, y)
    assert "customize_system" in teacher_run_kwargs(tmp_path / "old", CUTOFF_NM)
    assert "system" in teacher_run_kwargs(tmp_path / "new", CUTOFF_NM)
    for d in ("old", "new"):
        res = run_simulation(None, None, tmp_path / d, steps=30, restart=True, progress=False,
                             **teacher_run_kwargs(tmp_path / d, CUTOFF_NM))
        assert res.restarted_from == 20 and res.steps == 30
    for x, y in zip(_final(tmp_path / "old"), _final(tmp_path / "new")):
        assert np.array_equal(x, y)
