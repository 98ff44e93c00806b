"""`cgaa simulate`: run directory, NVT/NPT behaviour, exact restart, safety stops, Ctrl-C, CLI.

Random test models have no bonding of their own, so the runs add the classical
``stabilizer`` of test_openmm (bonds + Lennard-Jones) through ``customize_system``.
"""
from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest

openmm = pytest.importorskip("openmm")
pytest.importorskip("openmmtorch")
from openmm import unit  # noqa: E402

from cgaa.md.rundir import STATE_COLUMNS, load_state_csv, truncate_dcd
from cgaa.md.run import SimulationError, run_simulation
from test_openmm import small_system, stabilizer  # noqa: E402



@pytest.fixture(scope="module")
def system_parts():
    model, top, pos, _ = small_system(rms_force=0.3)
    return model, top, pos


def _run(parts, out, **kw):
    model, top, pos = parts
    # a short thermalisation (20 steps instead of the default 1 ps) keeps these runs fast;
    # test_simulate_start.py tests the default one
    args = dict(platform="Reference", report_interval=10, checkpoint_interval=20, minimize_iterations=20,
                progress=False, customize_system=stabilizer(pos))
    if not args.get("restart") and not kw.get("restart"):
        args["thermalize_ps"] = 0.02
    args.update(kw)
    restart = args.get("restart", False)
    return run_simulation(None if restart else (top, pos), None if restart else model, out, **args)


def _dcd(path, top):
    import mdtraj

    return mdtraj.load_dcd(str(path), top=str(top))


def test_nvt_run_directory_and_temperature(tmp_path, system_parts):
    out = tmp_path / "run"
    res = _run(system_parts, out, steps=200, temperature=300.0, friction_per_ps=20.0, seed=1)
    assert res.steps == 200 and not res.interrupted
    for name in ("traj.dcd", "topology.pdb", "state.csv", "checkpoint.chk", "checkpoint.json",
                 "checkpoint.prev.chk", "final_state.xml", "run.json", "model.pt"):
        assert (out / name).is_file(), name
    st = load_state_csv(out / "state.csv")
    assert tuple(st) == STATE_COLUMNS
    assert list(st["step"]) == list(range(0, 201, 10))
    assert np.allclose(st["time_ps"], st["step"] * 1e-3)
    assert np.allclose(st["total_energy_kJ_mol"], st["potential_energy_kJ_mol"] + st["kinetic_energy_kJ_mol"])
    assert np.all(st["volume_nm3"] == pytest.approx(1.4 ** 3))
    # NVT holds the temperature (strong friction, short run; 68 atoms fluctuate ~±15%)
    t = st["temperature_K"][5:]
    assert abs(t.mean() - 300.0) < 45.0, t
    assert np.all(np.isfinite(st["speed_ns_day"][1:]))
    traj = _dcd(out / "traj.dcd", out / "topology.pdb")
    assert traj.n_frames == 21
    final = openmm.XmlSerializer.deserialize((out / "final_state.xml").read_text())
    assert final.getStepCount() == 200
    # unwrapped: the last frame equals the final state's positions as they are
    assert np.allclose(traj.xyz[-1], final.getPositions(asNumpy=True).value_in_unit(unit.nanometer), atol=1e-5)
    info = json.loads((out / "run.json").read_text())
    assert info["settings"]["ensemble"] == "nvt" and info["settings"]["steps"] == 200
    assert info["model"]["force_mode"] == "conservative" and info["model"]["cutoff"] == 5.0
    assert info["history"][-1]["status"] == "finished"
    assert json.loads((out / "checkpoint.json").read_text())["step"] == 200
    # a second run into the same directory is refused
    with pytest.raises(ValueError, match="already holds a run"):
        _run(system_parts, out, steps=10)


def test_npt_changes_volume_and_converges_density(tmp_path):
    """Start below the liquid density: the barostat compresses the box (measured: 0.55 ->
    ~0.67 g/cm3 by step ~600), then the density levels off."""
    from cgaa.openmm import topology_from_atoms
    from molecules import molecule_box
    from test_openmm import scaled_model

    atoms, gidx = molecule_box({"Li": 2, "PF6": 2, "EC": 12}, np.diag([16.0] * 3), seed=1, spacing=5.3)
    model = scaled_model(atoms, rms_force=0.1, cutoff=4.0)[0]
    top, pos = topology_from_atoms(atoms, gidx)
    out = tmp_path / "npt"
    res = run_simulation((top, pos), model, out, ensemble="npt", pressure=1000.0, temperature=300.0,
                         steps=1600, report_interval=50, checkpoint_interval=800, barostat_interval=2,
                         friction_per_ps=10.0, platform="Reference", minimize_iterations=50, progress=False,
                         thermalize_ps=0.05,
                         customize_system=stabilizer(pos, sigma=0.34, epsilon=0.5, cutoff=0.6))
    st = load_state_csv(out / "state.csv")
    rho = st["density_g_cm3"]
    assert st["volume_nm3"][-1] < 0.9 * st["volume_nm3"][0], rho  # the volume changed
    n = len(rho)
    q3, q4 = rho[n // 2: 3 * n // 4], rho[3 * n // 4:]
    assert q4.mean() > 1.12 * rho[0], rho
    # levelled off: the last two quarters agree to well within the compression
    assert abs(q4.mean() - q3.mean()) < 0.5 * (q4.mean() - rho[0]), rho
    assert res.last["density_g_cm3"] == pytest.approx(rho[-1])


def test_restart_reproduces_uninterrupted_run(tmp_path, system_parts):
    full = _run(system_parts, tmp_path / "full", steps=80, seed=5)
    part = tmp_path / "part"
    _run(system_parts, part, steps=40, seed=5)
    res = _run(system_parts, part, steps=80, restart=True)
    assert res.restarted_from == 40 and res.steps == 80
    a, b = (load_state_csv(d / "state.csv") for d in (tmp_path / "full", part))
    for k in STATE_COLUMNS[:-1]:
        assert np.allclose(a[k], b[k], rtol=1e-9, atol=0), k
    ta = _dcd(tmp_path / "full" / "traj.dcd", tmp_path / "full" / "topology.pdb")
    tb = _dcd(part / "traj.dcd", part / "topology.pdb")
    assert ta.n_frames == tb.n_frames == 9
    assert np.array_equal(ta.xyz, tb.xyz)
    fa, fb = (openmm.XmlSerializer.deserialize((d / "final_state.xml").read_text())
              for d in (tmp_path / "full", part))
    # identical up to float64 round-off (TorchScript re-optimises the graph after its first
    # calls, which may reorder sums): measured 1.6e-15 nm after 40 restarted steps
    assert np.abs(fa.getPositions(asNumpy=True)._value - fb.getPositions(asNumpy=True)._value).max() < 1e-10
    assert np.abs(fa.getVelocities(asNumpy=True)._value - fb.getVelocities(asNumpy=True)._value).max() < 1e-8
    assert full.steps == 80
    # a restart may not change the dynamics
    with pytest.raises(ValueError, match="cannot change"):
        _run(system_parts, part, steps=100, restart=True, temperature=350.0)


def test_exploding_run_stops_and_keeps_last_good_checkpoint(tmp_path, system_parts):
    """A 6 fs time step with stiff bonds blows up: the run stops naming the step and the
    quantity; the last good checkpoint is kept and loads."""
    out = tmp_path / "boom"
    with pytest.raises(SimulationError) as info:
        _run(system_parts, out, steps=2000, timestep_fs=4.0, report_interval=10, checkpoint_interval=10,
             minimize=False, thermalize_ps=0.0)
    err = info.value
    msg = str(err)
    assert f"step {err.step}" in msg and "last good checkpoint" in msg
    assert err.quantity in ("temperature", "force", "potential energy", "kinetic energy", "integration")
    meta = json.loads((out / "checkpoint.json").read_text())
    assert 0 <= meta["step"] < err.step
    assert err.checkpoint == out / "checkpoint.chk"
    info_json = json.loads((out / "run.json").read_text())
    assert info_json["history"][-1]["status"] == "failed"
    # the kept checkpoint is a sane state
    model, top, pos = system_parts
    from cgaa.openmm import create_system

    system = create_system(top, model)
    stabilizer(pos)(system, top)
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    ctx.loadCheckpoint((out / "checkpoint.chk").read_bytes())
    st = ctx.getState(getEnergy=True, getPositions=True)
    assert st.getStepCount() == meta["step"]
    assert np.isfinite(st.getPotentialEnergy()._value)
    # the trajectory and state log hold the frames up to the failure, all finite
    assert np.isfinite(load_state_csv(out / "state.csv")["potential_energy_kJ_mol"]).all()


def test_explosion_after_good_steps_keeps_checkpoint(tmp_path, system_parts):
    """A sane run to step 40, then a restart with a strong pull on one hydrogen: it stops,
    and the kept checkpoint is the last one that passed the checks (step >= 40)."""
    model, top, pos = system_parts
    out = tmp_path / "kick"
    _run(system_parts, out, steps=40)
    h = next(a.index for a in top.atoms() if a.element.symbol == "H")
    base = stabilizer(pos)

    def with_kick(system, topology):
        base(system, topology)
        pull = openmm.CustomExternalForce("-2e4*x")  # 2e4 kJ/mol/nm along +x: 20 eV/A
        pull.addParticle(h, [])
        system.addForce(pull)

    with pytest.raises(SimulationError, match="last good checkpoint") as info:
        _run(system_parts, out, steps=400, restart=True, customize_system=with_kick)
    meta = json.loads((out / "checkpoint.json").read_text())
    assert 40 <= meta["step"] < info.value.step
    assert load_state_csv(out / "state.csv")["step"][-1] <= info.value.step


def test_safety_limits_name_the_quantity(tmp_path, system_parts):
    with pytest.raises(SimulationError, match=r"step 0: force on atom \d+ is .* above the limit 1 kJ/mol/nm") as e:
        _run(system_parts, tmp_path / "f", steps=20, max_force=1.0)
    assert e.value.quantity == "force" and "before any checkpoint" in str(e.value)
    with pytest.raises(SimulationError, match=r"temperature .* above the limit 5 K") as e:
        _run(system_parts, tmp_path / "t", steps=20, max_temperature=5.0)
    assert e.value.quantity == "temperature"


def test_refuses_before_starting(tmp_path, system_parts, electrolyte_box):
    from cgaa.openmm import topology_from_atoms
    from core_utils import build

    model, top, pos = system_parts
    # cutoff 8 Å in a 14 Å box
    atoms, gidx = electrolyte_box
    big, _, _ = build(atoms, cutoff=8.0, channels=4, num_layers=1, lmax=1, intra_layers=0)
    with pytest.raises(ValueError, match="cutoff 8 A is not below half the shortest box height"):
        run_simulation((top, pos), big, tmp_path / "a", steps=10, platform="Reference", progress=False)
    # a model that does not know Li+ (it was made for another topology)
    t2, p2 = topology_from_atoms(atoms, gidx)
    from cgaa.core.model import CGAAModel, ModelConfig

    cfg = model.config
    keep = [(k, n) for k, n in zip(cfg.grain_types, cfg.grain_type_names) if n != "Li"]
    nol = CGAAModel(ModelConfig(cfg.elements, [k for k, _ in keep], [n for _, n in keep], cutoff=5.0,
                                channels=4, num_layers=1, lmax=1, intra_layers=0))
    with pytest.raises(ValueError, match=r"grain \d+ \(Li"):
        run_simulation((top, pos), nol, tmp_path / "b", steps=10, platform="Reference", progress=False)
    with pytest.raises(ValueError, match="ensemble must be one of"):
        run_simulation((top, pos), model, tmp_path / "c", ensemble="nph", progress=False)
    with pytest.raises(ValueError, match="platform 'Nope'|platform must be one of"):
        run_simulation((top, pos), model, tmp_path / "d", platform="Nope", progress=False)
    with pytest.raises(FileNotFoundError, match="holds no cgaa run"):
        run_simulation(None, None, tmp_path / "e", restart=True, progress=False)


def test_bond_guard_setting_is_validated(tmp_path, system_parts):
    from cgaa.md.settings import resolve_settings

    assert resolve_settings({})["bond_guard"] == "auto"
    for v in (True, False, "auto", np.bool_(True)):
        got = resolve_settings({"bond_guard": v})["bond_guard"]
        assert got == v and type(got) in (bool, str)
    # "off" used to be accepted and, being a non-empty string, switched the guard on
    for bad in ("off", "on", "yes", "Auto", 1, 0, 0.0):
        with pytest.raises(ValueError, match=r"bond_guard must be 'auto', True or False"):
            resolve_settings({"bond_guard": bad})
    with pytest.raises(ValueError, match=r"bond_guard must be 'auto', True or False, not 'off'"):
        resolve_settings({"bond_guard": "off"}, {"bond_guard": "auto"})
    with pytest.raises(ValueError, match=r"bond_guard must be"):
        resolve_settings({}, {"bond_guard": "none"})
    model, top, pos = system_parts
    with pytest.raises(ValueError, match=r"bond_guard must be"):
        run_simulation((top, pos), model, tmp_path / "g", bond_guard="off", progress=False)
    assert not (tmp_path / "g").exists()


def test_ctrl_c_saves_checkpoint_then_restart_finishes(tmp_path, system_parts):
    out = tmp_path / "int"

    def press_ctrl_c(row):
        if row["step"] == 30:
            os.kill(os.getpid(), signal.SIGINT)

    res = _run(system_parts, out, steps=100, callback=press_ctrl_c)
    assert res.interrupted and res.steps == 30
    assert json.loads((out / "checkpoint.json").read_text())["step"] == 30
    assert json.loads((out / "run.json").read_text())["history"][-1]["status"] == "interrupted"
    res = _run(system_parts, out, steps=50, restart=True)
    assert res.steps == 50 and not res.interrupted
    assert list(load_state_csv(out / "state.csv")["step"]) == list(range(0, 51, 10))


def test_restart_after_crash_truncates_dcd_and_csv(tmp_path, system_parts):
    """Frames written after the last checkpoint (a crash) are dropped on restart."""
    out = tmp_path / "crash"
    _run(system_parts, out, steps=40, checkpoint_interval=20)
    # simulate a crash after step 40: the checkpoint says step 20, the files go to 40
    prev = json.loads((out / "checkpoint.prev.json").read_text())
    assert prev["step"] == 20
    os.replace(out / "checkpoint.prev.chk", out / "checkpoint.chk")
    os.replace(out / "checkpoint.prev.json", out / "checkpoint.json")
    res = _run(system_parts, out, steps=60, restart=True)
    assert res.restarted_from == 20
    assert list(load_state_csv(out / "state.csv")["step"]) == list(range(0, 61, 10))
    assert _dcd(out / "traj.dcd", out / "topology.pdb").n_frames == 7
    assert truncate_dcd(out / "traj.dcd", 100) == 7


def test_cli_simulate(tmp_path, system_parts, capsys):
    """`cgaa simulate box.pdb --model m.pt ...` then `--restart`; errors exit 2."""
    from openmm.app import PDBFile

    from cgaa.cli import main
    from cgaa.core.modelfile import save_model

    model, top, pos = system_parts
    pdb = tmp_path / "box.pdb"
    with open(pdb, "w") as fh:
        PDBFile.writeFile(top, pos * unit.nanometer, fh)
    mpath = save_model(model, tmp_path / "m.pt")
    out = tmp_path / "cli"
    # no stabilizer through the CLI: a weak model, low temperature and few steps stay sane
    weak = small_system(rms_force=0.02)[0]
    mpath = save_model(weak, tmp_path / "weak.pt")
    base = ["simulate", str(pdb), "--model", str(mpath), "--out", str(out), "--platform", "Reference",
            "--report-interval", "5", "--checkpoint-interval", "10", "--temperature", "50",
            "--no-progress", "--minimize-iterations", "5", "--thermalize-ps", "0.02", "--threads", "1"]
    assert main(base + ["--steps", "10"]) == 0
    assert "10 steps" in capsys.readouterr().out
    assert main(["simulate", "--restart", "--out", str(out), "--steps", "20", "--no-progress",
                 "--platform", "Reference"]) == 0
    assert list(load_state_csv(out / "state.csv")["step"]) == [0, 5, 10, 15, 20]
    assert main(base + ["--steps", "10"]) == 2  # run exists
    assert "already holds a run" in capsys.readouterr().err
    assert main(["simulate", "--out", str(tmp_path / "x")]) == 2
    assert main(["simulate", str(tmp_path / "missing.pdb"), "--out", str(tmp_path / "y")]) == 2
    assert "no input file" in capsys.readouterr().err
    assert main(base[:-2] + ["--steps", "10", "--overwrite", "--max-force", "0.001"]) == 1
    assert "force on atom" in capsys.readouterr().err


@pytest.mark.cuda
def test_cuda_run(tmp_path, system_parts):
    res = _run(system_parts, tmp_path / "cuda", steps=40, platform="CUDA", precision="mixed")
    assert res.steps == 40
    assert json.loads((tmp_path / "cuda" / "run.json").read_text())["platform"] == "CUDA"


def test_recipe_input_built_on_the_fly(tmp_path):
    """INPUT may be a recipe name: the box is built with cgaa.systems.build into the run directory."""
    build_mod = pytest.importorskip("cgaa.systems.build", reason="cgaa.systems.build is not available yet")
    from openmm.app import PDBFile

    from cgaa.core.grains import grains_from_topology
    from cgaa.core.inputs import vocabulary
    from cgaa.core.model import CGAAModel, ModelConfig

    try:  # a model covering the recipe's species (same chemistry keys as any box of it)
        ref = build_mod.build_box("lipf6-ec-emc-1m", 650, tmp_path / "ref.pdb", seed=3)
    except FileNotFoundError as err:
        pytest.skip(f"cgaa build cannot run here: {err}")
    top = PDBFile(str(ref.path)).topology
    gm = grains_from_topology(top)
    el, keys, names = vocabulary([gm], [[a.element.atomic_number for a in top.atoms()]])
    model = CGAAModel(ModelConfig(el, keys, names, cutoff=4.0, num_layers=1, lmax=1, intra_layers=0,
                                  channels=4, num_basis=4, radial_hidden=8))
    out = tmp_path / "run"
    res = run_simulation("lipf6-ec-emc-1m", model, out, n_atoms=650, steps=0, minimize=False, thermalize_ps=0.0,
                         platform="Reference", progress=False)
    assert res.steps == 0 and (out / "input.pdb").is_file()
    info = json.loads((out / "run.json").read_text())
    assert "recipe lipf6-ec-emc-1m" in info["input"] and info["n_atoms"] > 600
    assert len(load_state_csv(out / "state.csv")["step"]) == 1


def test_run_directory_above_the_pdb_limit_uses_pdbx(tmp_path, system_parts, monkeypatch):
    """Above 99,999 atoms (here: the limit lowered to 50 atoms for a 68-atom box) the run's
    topology is PDBx/mmCIF, and restart, analysis and start structures all use it."""
    from cgaa.analysis.io import find_run_files, load_trajectory
    from cgaa.md.rundir import write_final_pdb

    monkeypatch.setattr("cgaa.systems.boxfile.PDB_MAX_ATOMS", 50)
    out = tmp_path / "run"
    _run(system_parts, out, steps=20, seed=2)
    assert (out / "topology.cif").is_file() and not (out / "topology.pdb").exists()
    assert json.loads((out / "run.json").read_text())["files"]["topology"] == "topology.cif"
    res = _run(system_parts, out, steps=40, restart=True)
    assert res.restarted_from == 20 and res.steps == 40
    trajs, top = find_run_files(out)
    assert top == out / "topology.cif"
    traj, dt = load_trajectory(trajs[0], top)
    assert traj.n_frames == 5 and dt == pytest.approx(0.01)
    assert traj.topology.n_bonds == system_parts[1].getNumBonds() > 0
    final = openmm.XmlSerializer.deserialize((out / "final_state.xml").read_text())
    assert np.abs(traj.xyz[-1] - final.getPositions(asNumpy=True).value_in_unit(unit.nanometer)).max() < 1e-5
    # a start structure for another run: PDBx works, PDB is refused with the way out named
    from cgaa.systems.boxfile import read_box

    start = read_box(write_final_pdb(out, tmp_path / "end.cif"))
    assert np.abs(start.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
                  - final.getPositions(asNumpy=True).value_in_unit(unit.nanometer)).max() < 1e-5
    with pytest.raises(ValueError, match=r"end\.pdb: 68 atoms do not fit the PDB format .*end\.cif"):
        write_final_pdb(out, tmp_path / "end.pdb")
