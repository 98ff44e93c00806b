"""`cgaa analyze` on a DCD + PDB written by a plain OpenMM script (no other cgaa module)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

openmm = pytest.importorskip("openmm")
from openmm import app, unit  # noqa: E402

from cgaa.cli import main  # noqa: E402

STEPS, INTERVAL, DT_PS = 3000, 10, 0.002


def toy_electrolyte(n_salt: int = 8, n_solv: int = 100, box_nm: float = 2.2, seed: int = 0):
    """Li+ / BF4- in a diatomic C=O 'solvent', as plain OpenMM Topology, System, positions (nm)."""
    rng = np.random.default_rng(seed)
    top = app.Topology()
    chain = top.addChain()
    system = openmm.System()
    nb = openmm.NonbondedForce()
    nb.setNonbondedMethod(openmm.NonbondedForce.PME)
    nb.setCutoffDistance(0.7)
    bonds = openmm.HarmonicBondForce()
    pos = []
    n_mol = 2 * n_salt + n_solv
    m = int(np.ceil(n_mol ** (1 / 3)))
    sites = (np.stack(np.meshgrid(*[np.arange(m)] * 3, indexing="ij"), -1).reshape(-1, 3) + 0.5) * (box_nm / m)
    sites = sites[rng.permutation(len(sites))[:n_mol]]
    tet = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]) / np.sqrt(3) * 0.14
    E = app.element

    def atom(res, name, el, mass, q, sig, eps, xyz):
        a = top.addAtom(name, el, res)
        system.addParticle(mass)
        nb.addParticle(q, sig, eps)
        pos.append(np.asarray(xyz, float))
        return a

    for kind, c in zip(["LI"] * n_salt + ["BF4"] * n_salt + ["CO"] * n_solv, sites):
        res = top.addResidue(kind, chain)
        i0 = len(pos)
        if kind == "LI":
            atom(res, "LI", E.lithium, 6.94, 1.0, 0.18, 0.1, c)
        elif kind == "BF4":
            b = atom(res, "B", E.boron, 10.81, 0.2, 0.36, 0.4, c)
            for k in range(4):
                top.addBond(b, atom(res, f"F{k + 1}", E.fluorine, 19.0, -0.3, 0.30, 0.3, c + tet[k]))
            for i in range(i0, i0 + 5):
                for j in range(i + 1, i0 + 5):
                    bonds.addBond(i, j, float(np.linalg.norm(pos[i] - pos[j])), 2e5)
        else:
            d = rng.normal(size=3)
            d /= np.linalg.norm(d)
            cc = atom(res, "C", E.carbon, 12.01, 0.4, 0.34, 0.4, c - 0.06 * d)
            top.addBond(cc, atom(res, "O", E.oxygen, 16.0, -0.4, 0.30, 0.6, c + 0.06 * d))
            bonds.addBond(i0, i0 + 1, 0.12, 2e5)
    # no intramolecular nonbonded interactions
    for res in top.residues():
        idx = [a.index for a in res.atoms()]
        for i in range(len(idx)):
            for j in range(i + 1, len(idx)):
                nb.addException(idx[i], idx[j], 0.0, 1.0, 0.0)
    system.addForce(nb)
    system.addForce(bonds)
    vecs = [openmm.Vec3(box_nm, 0, 0), openmm.Vec3(0, box_nm, 0), openmm.Vec3(0, 0, box_nm)]
    system.setDefaultPeriodicBoxVectors(*vecs)
    top.setPeriodicBoxVectors(vecs)
    return top, system, np.array(pos)


@pytest.fixture(scope="module")
def openmm_run(tmp_path_factory):
    """Simulate the toy box with plain OpenMM: traj.dcd (unwrapped), wrapped.dcd, topology.pdb, state.csv."""
    d = tmp_path_factory.mktemp("openmm_run")
    top, system, pos = toy_electrolyte()
    integ = openmm.LangevinMiddleIntegrator(400 * unit.kelvin, 5 / unit.picosecond, DT_PS * unit.picoseconds)
    integ.setRandomNumberSeed(1)
    sim = app.Simulation(top, system, integ, openmm.Platform.getPlatformByName("CPU"),
                         {"Threads": "2"})
    sim.context.setPositions(pos * unit.nanometer)
    sim.minimizeEnergy(maxIterations=200)
    sim.context.setVelocitiesToTemperature(400 * unit.kelvin, 2)
    sim.step(300)
    with open(d / "topology.pdb", "w") as f:
        app.PDBFile.writeFile(top, sim.context.getState(getPositions=True).getPositions(), f)
    sim.reporters.append(app.DCDReporter(str(d / "traj.dcd"), INTERVAL, enforcePeriodicBox=False))
    sim.reporters.append(app.DCDReporter(str(d / "wrapped.dcd"), INTERVAL, enforcePeriodicBox=True))
    sim.reporters.append(app.StateDataReporter(str(d / "state.csv"), INTERVAL, step=True, temperature=True))
    sim.step(STEPS)
    del sim
    (d / "other").mkdir()
    shutil.move(str(d / "wrapped.dcd"), str(d / "other" / "wrapped.dcd"))
    return d


def test_run_dir_end_to_end(openmm_run, capsys):
    rc = main(["analyze", str(openmm_run), "--viscosity", "1e-3"])
    out = capsys.readouterr().out
    assert rc == 0, out
    adir = openmm_run / "analysis"
    for name in ("report.json", "report.md", "diffusion.csv", "msd.csv", "conductivity.csv", "rdf.csv", "shell.csv",
                 "msd.png", "rdf.png", "shell.png"):
        assert (adir / name).is_file() and (adir / name).stat().st_size > 0, name
    rep = json.loads((adir / "report.json").read_text())
    inp = rep["inputs"]
    assert inp["dt_ps"] == {"value": pytest.approx(INTERVAL * DT_PS), "unit": "ps"}  # from the DCD header
    assert inp["dt_source"] == "DCD header (OpenMM)"  # DCDReporter stores the step size and interval
    assert "time between frames from: DCD header (OpenMM)" in (adir / "report.md").read_text()
    assert inp["n_frames"] == [STEPS // INTERVAL]
    assert inp["temperature_source"] == "state.csv (mean)"
    assert 300 < inp["temperature_K"]["value"] < 500
    sp = rep["species"]
    assert set(sp) == {"Li", "BF4", "CO"}
    assert sp["Li"]["kind"] == "cation" and sp["BF4"]["kind"] == "anion" and sp["CO"]["kind"] == "solvent"
    assert sp["BF4"]["msd_of"] == "centre of mass" and sp["Li"]["msd_of"] == "atom"
    for s in sp.values():
        assert s["D"]["unit"] == "m^2/s"
        assert 1e-11 < s["D"]["value"] < 1e-7  # a liquid-like D
        # but 6 ps is far too short to call it one
        assert s["fit_window"]["diffusive"] is False and "run too short" in s["fit_window"]["reason"]
        assert s["D"]["note"].startswith("NOT a measurement")
        assert s["fit_window"]["unit"] == "ps" and s["fit_window"]["end"] > s["fit_window"]["start"]
        assert s["D_infinite"]["value"] > s["D"]["value"]
    cond = rep["conductivity"]
    assert cond["nernst_einstein"]["unit"] == "S/m" and cond["nernst_einstein"]["value"] > 0
    assert cond["nernst_einstein_mS_cm"]["value"] == pytest.approx(10 * cond["nernst_einstein"]["value"])
    assert cond["einstein_helfand"]["unit"] == "S/m"
    assert cond["haven_ratio"]["unit"] == "1"
    # ideal transference numbers: each ion's share of the Nernst-Einstein sum (one Li and one BF4 per pair)
    tn = cond["transference_nernst_einstein"]
    d_li, d_bf4 = sp["Li"]["D"]["value"], sp["BF4"]["D"]["value"]
    assert tn["Li"]["value"] == pytest.approx(d_li / (d_li + d_bf4), rel=1e-9)
    assert tn["Li"]["value"] + tn["BF4"]["value"] == pytest.approx(1.0, rel=1e-12)
    # every frame checked: molecules whole (no floor given: no guard comparison)
    st = rep["stability"]
    assert len(st) == 1 and st[0]["n_frames"] == STEPS // INTERVAL and st[0]["broken_frames"] == 0
    assert st[0]["intact"] is True and 1.0 <= st[0]["max_bond_stretch"] < 1.3 and st[0]["below_floor"] == []
    assert "B-Li" in st[0]["closest_approach_A"] or "Li-F" in st[0]["closest_approach_A"]
    assert "## Stability (every frame)" in (adir / "report.md").read_text()
    assert tn["Li"]["unit"] == "1" and (tn["Li"]["uncertainty"] is None or tn["Li"]["uncertainty"] >= 0)
    rdfs = rep["structure"]["rdf"]
    assert set(rdfs) == {"Li-O_carbonyl", "Li-F"}  # O bonded to one C only: carbonyl; no ether O, no P
    for r in rdfs.values():
        assert 0.15 < r["first_peak"]["value"] < 0.3 and r["first_peak"]["unit"] == "nm"
        assert r["first_minimum"]["value"] > r["first_peak"]["value"]
        assert r["coordination_number_first_shell"]["value"] > 0
    shell = rep["structure"]["shell"]
    assert set(shell["mean_molecules"]) == {"BF4", "CO"}
    total = sum(v["value"] for v in shell["mean_molecules"].values())
    assert total > 1
    assert "D[    Li]" in out and "(time step from DCD header (OpenMM))" in out
    assert out.count("NOT diffusive, not a measurement: run too short") == 3


def test_cli_on_a_run_dir_writes_what_analyze_run_dir_returns(openmm_run, tmp_path):
    """`cgaa analyze RUN_DIR` is the library's analyze_run_dir (notebooks and the CLI get the same
    analysis): the same report, the temperature from state.csv, and --top replacing the run
    directory's topology (topology= in the library)."""
    from cgaa.analysis import analyze_run_dir

    d = tmp_path / "run"
    d.mkdir()
    for name in ("traj.dcd", "state.csv", "topology.pdb"):
        shutil.copy(openmm_run / name, d / name)
    top = tmp_path / "box.pdb"
    shutil.copy(openmm_run / "topology.pdb", top)
    assert main(["analyze", str(d), "--top", str(top), "--no-plots", "--no-structure", "--blocks", "3",
                 "--start-ps", "1"]) == 0
    cli = json.loads((d / "analysis" / "report.json").read_text())
    res = analyze_run_dir(d, topology=str(top), structure=False, n_blocks=3, start_ps=1.0)
    lib = json.loads(json.dumps(res.to_dict()))
    cli.pop("files")
    assert cli == lib
    assert lib["inputs"]["temperature_source"] == "state.csv (mean)"
    assert lib["inputs"]["trajectories"] == [str(d / "traj.dcd")] and lib["inputs"]["topology"] == str(top)
    # both files given: the directory is not searched (it may hold none)
    empty = tmp_path / "empty"
    empty.mkdir()
    res2 = analyze_run_dir(empty, trajectories=[d / "traj.dcd"], topology=top, structure=False, n_blocks=3,
                           start_ps=1.0, temperature_K=lib["inputs"]["temperature_K"]["value"])
    assert res2.inputs["temperature_source"] == "given"
    assert res2.diffusion["Li"].D_m2_s == res.diffusion["Li"].D_m2_s


def test_traj_top_form_and_replicas(openmm_run, tmp_path):
    out = tmp_path / "a"
    traj = str(openmm_run / "traj.dcd")
    rc = main(["analyze", "--traj", traj, traj, "--top", str(openmm_run / "topology.pdb"), "--out", str(out),
               "--temperature", "400", "--no-plots", "--no-structure", "--fit-window", "0.5", "2"])
    assert rc == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["inputs"]["n_replicas"] == 2
    win = rep["species"]["Li"]["fit_window"]
    # a 6 ps run is below the 100 ps minimum: even a user window is not a measurement
    assert win == {"start": 0.5, "end": 2.0, "unit": "ps", "automatic": False, "diffusive": False,
                   "mean_loglog_slope": win["mean_loglog_slope"], "reason": win["reason"]}
    assert win["reason"].startswith("run too short: 5.98 ps < 100 ps")
    assert rep["species"]["Li"]["D"]["method"] == "replicas(2)"
    assert not (out / "msd.png").exists()
    # --min-run 0: the user vouches for the window
    out2 = tmp_path / "b"
    assert main(["analyze", "--traj", traj, "--top", str(openmm_run / "topology.pdb"), "--out", str(out2),
                 "--temperature", "400", "--no-plots", "--no-structure", "--fit-window", "0.5", "2",
                 "--min-run", "0"]) == 0
    rep2 = json.loads((out2 / "report.json").read_text())
    assert rep2["inputs"]["min_run_ps"] == {"value": 0.0, "unit": "ps"}
    # --start-ps/--end-ps: a window of each replica's frames (times from its first saved frame)
    out3 = tmp_path / "c"
    assert main(["analyze", "--traj", traj, "--top", str(openmm_run / "topology.pdb"), "--out", str(out3),
                 "--no-plots", "--no-structure", "--start-ps", "1", "--end-ps", "4"]) == 0
    n_all, n_cut = rep["inputs"]["n_frames"], json.loads((out3 / "report.json").read_text())["inputs"]["n_frames"]
    dt = rep["inputs"]["dt_ps"]["value"] if isinstance(rep["inputs"]["dt_ps"], dict) else rep["inputs"]["dt_ps"]
    assert n_cut == [sum(1 <= k * dt < 4 - 1e-9 for k in range(n_all[0]))] and n_cut[0] < n_all[0]
    assert rep2["species"]["Li"]["fit_window"]["diffusive"] is True
    assert "reason" not in rep2["species"]["Li"]["fit_window"]


def test_wrapped_dcd_is_refused_then_unwrapped(openmm_run, tmp_path, capsys):
    args = ["analyze", "--traj", str(openmm_run / "other" / "wrapped.dcd"), "--top", str(openmm_run / "topology.pdb"),
            "--temperature", "400", "--no-structure", "--no-plots"]
    assert main(args + ["--out", str(tmp_path / "w1")]) == 2
    err = capsys.readouterr().err
    assert "wrapped" in err and "enforcePeriodicBox=False" in err and "wrapped.dcd" in err
    assert main(args + ["--out", str(tmp_path / "w2"), "--unwrap"]) == 0
    ref = main(["analyze", "--traj", str(openmm_run / "traj.dcd"), "--top", str(openmm_run / "topology.pdb"),
                "--temperature", "400", "--no-structure", "--no-plots", "--out", str(tmp_path / "w3")])
    assert ref == 0
    d_unwrapped = json.loads((tmp_path / "w2" / "report.json").read_text())["species"]["CO"]["D"]["value"]
    d_ref = json.loads((tmp_path / "w3" / "report.json").read_text())["species"]["CO"]["D"]["value"]
    assert d_unwrapped == pytest.approx(d_ref, rel=1e-3)


def test_bad_inputs_give_clear_errors(openmm_run, tmp_path, capsys):
    traj, top = str(openmm_run / "traj.dcd"), str(openmm_run / "topology.pdb")
    base = ["analyze", "--out", str(tmp_path / "x"), "--no-plots"]

    # topology missing atoms (a PDB of only the first residues)
    from openmm.app import PDBFile
    pdb = PDBFile(top)
    mod = app.Modeller(pdb.topology, pdb.positions)
    mod.delete(list(pdb.topology.residues())[:3])
    short = tmp_path / "short.pdb"
    with open(short, "w") as f:
        PDBFile.writeFile(mod.topology, mod.positions, f)
    assert main(base + ["--traj", traj, "--top", str(short)]) == 2
    err = capsys.readouterr().err
    assert "atom count mismatch" in err and "short.pdb" in err and "traj.dcd" in err

    assert main(base + ["--traj", traj, "--top", str(tmp_path / "nope.pdb")]) == 2
    assert "topology file not found" in capsys.readouterr().err

    assert main(base + ["--traj", traj, "--top", top, "--select", "Li=resname XYZ"]) == 2
    assert "matches no atom" in capsys.readouterr().err

    assert main(base + ["--traj", traj, "--top", top, "--fit-window", "1", "5000"]) == 2
    assert "too short for the requested fit window" in capsys.readouterr().err

    assert main(base + ["--traj", traj, "--top", top, "--min-run", "-1"]) == 2
    assert "--min-run must be >= 0" in capsys.readouterr().err
    assert main(base + ["--traj", traj, "--top", top, "--min-fit-start", "-1"]) == 2
    assert "--min-fit-start must be >= 0" in capsys.readouterr().err

    assert main(["analyze", str(tmp_path / "missing_dir")]) == 2
    assert "run directory not found" in capsys.readouterr().err

    assert main(["analyze"]) == 2
    assert "RUN_DIR" in capsys.readouterr().err


def test_run_dir_falls_back_to_single_pdb(openmm_run, tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    shutil.copy(openmm_run / "traj.dcd", d / "traj.dcd")
    shutil.copy(openmm_run / "topology.pdb", d / "box.pdb")
    assert main(["analyze", str(d), "--no-plots", "--no-structure", "--temperature", "400"]) == 0
    assert (d / "analysis" / "report.json").is_file()
