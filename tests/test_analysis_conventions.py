"""Foreign trajectories never give silently wrong numbers (docs/analysis.md, *Conventions
accepted and refused*): the time between frames, length units, topology mismatches,
truncated files and run directories, each on a tiny random walk of known D."""
from __future__ import annotations

import json
import shutil

import mdtraj as md
import numpy as np
import pytest

from cgaa.analysis import analyze, analyze_run_dir
from cgaa.analysis.io import (AKMA_TIME_PS, dcd_frame_count,
                              read_dcd_header)
from cgaa.cli import main

D_TRUE = 1.0e-9  # m²/s
DT = 0.5  # ps between frames
T_FRAMES, N_ATOMS, L = 1200, 100, 3.0  # frames, atoms, box edge (nm)
# the system's centre-of-mass drift is removed: N equal masses keep (1 - 1/N) of D
D_EXPECTED = D_TRUE * (1 - 1 / N_ATOMS)
KW = dict(structure=False, temperature_K=300.0)


def walk(n_frames=T_FRAMES, n=N_ATOMS, seed=0) -> np.ndarray:
    """(T, n, 3) unwrapped positions (nm) of independent random walks with D = D_TRUE."""
    rng = np.random.default_rng(seed)
    sigma = np.sqrt(2 * D_TRUE * 1e6 * DT)  # nm per frame and axis (D in nm²/ps = 1e6 × m²/s)
    start = rng.uniform(0, L, size=(1, n, 3))
    return (start + np.cumsum(rng.normal(scale=sigma, size=(n_frames, n, 3)), axis=0)).astype(np.float32)


def argon_topology(n=N_ATOMS) -> md.Topology:
    top = md.Topology()
    ch = top.add_chain()
    for _ in range(n):
        top.add_atom("AR", md.element.argon, top.add_residue("AR", ch))
    return top


def mdtraj_traj(xyz, top, time=None) -> md.Trajectory:
    T = len(xyz)
    return md.Trajectory(xyz, top, time=time, unitcell_lengths=np.full((T, 3), L),
                         unitcell_angles=np.full((T, 3), 90.0))


@pytest.fixture(scope="module")
def rw(tmp_path_factory):
    """The random walk as an mdtraj Trajectory and its topology PDB (with CRYST1)."""
    d = tmp_path_factory.mktemp("rw")
    t = mdtraj_traj(walk(), argon_topology())
    t[0].save_pdb(str(d / "top.pdb"))
    return t, d


def write_openmm_dcd(path, traj: md.Trajectory, step_ps: float, interval: int):
    """A DCD written by OpenMM's DCDFile, as DCDReporter writes it (step size and interval)."""
    import openmm
    from openmm import app, unit

    top = traj.topology.to_openmm()
    top.setPeriodicBoxVectors([openmm.Vec3(L, 0, 0), openmm.Vec3(0, L, 0), openmm.Vec3(0, 0, L)] * unit.nanometer)
    with open(path, "wb") as f:
        dcd = app.DCDFile(f, top, step_ps * unit.picosecond, 0, interval)
        for x in traj.xyz:
            dcd.writeModel(x * unit.nanometer)
    return path


def d_of(res, name="AR"):
    return res.diffusion[name].D_m2_s


# ---------------------------------------------------------------------------- 1. time step
def test_mdtraj_dcd_is_refused_without_dt_and_right_with_it(rw, tmp_path, capsys):
    traj, d = rw
    dcd = tmp_path / "mdtraj.dcd"
    traj.save_dcd(str(dcd))
    h = read_dcd_header(dcd)
    # what mdtraj writes: the VMD plugin's default step, 1 AKMA × 1 — taken at face value it
    # made every D about 1/0.0489 = 20 times too large
    assert h.writer.startswith("VMD DCD plugin") and not h.trusted
    assert h.dt_ps == pytest.approx(AKMA_TIME_PS, rel=1e-5)
    with pytest.raises(ValueError, match=r"VMD DCD plugin.*default time step.*--dt-ps"):
        analyze(dcd, d / "top.pdb", **KW)
    assert main(["analyze", "--traj", str(dcd), "--top", str(d / "top.pdb"), "--out", str(tmp_path / "a"),
                 "--no-structure", "--no-plots"]) == 2
    assert "--dt-ps" in capsys.readouterr().err
    res = analyze(dcd, d / "top.pdb", dt_ps=DT, **KW)
    assert res.inputs["dt_ps"] == DT and res.inputs["dt_source"] == "--dt-ps"
    assert d_of(res) == pytest.approx(D_EXPECTED, rel=0.1)


def test_openmm_dcd_header_is_accepted_and_dt_ps_overrides_it_with_a_note(rw, tmp_path, capsys):
    traj, d = rw
    dcd = write_openmm_dcd(tmp_path / "omm.dcd", traj, 0.005, 100)  # 5 fs × 100 steps = 0.5 ps
    assert read_dcd_header(dcd).trusted
    res = analyze(dcd, d / "top.pdb", **KW)
    assert res.inputs["dt_ps"] == pytest.approx(DT) and res.inputs["dt_source"] == "DCD header (OpenMM)"
    assert d_of(res) == pytest.approx(D_EXPECTED, rel=0.1)
    over = analyze(dcd, d / "top.pdb", dt_ps=1.0, **KW)
    assert over.inputs["dt_source"] == "--dt-ps"
    assert any("--dt-ps 1 ps overrides DCD header (OpenMM) = 0.5 ps" in w for w in over.warnings)
    assert d_of(over) == pytest.approx(d_of(res) / 2, rel=1e-6)
    # the report says where the time step came from: report.json, report.md, the summary
    out = tmp_path / "rep"
    assert main(["analyze", "--traj", str(dcd), "--top", str(d / "top.pdb"), "--out", str(out),
                 "--no-structure", "--no-plots", "--temperature", "300"]) == 0
    printed = capsys.readouterr().out
    assert "x 0.5 ps (time step from DCD header (OpenMM))" in printed
    rep = json.loads((out / "report.json").read_text())
    assert rep["inputs"]["dt_source"] == "DCD header (OpenMM)" and "report.md" in rep["files"]
    assert "time between frames from: DCD header (OpenMM)" in (out / "report.md").read_text()


def test_other_dcd_writers_are_refused_naming_the_header_value(rw, tmp_path):
    traj, d = rw
    dcd = write_openmm_dcd(tmp_path / "x.dcd", traj, 0.005, 100)
    raw = bytearray(dcd.read_bytes())
    i = raw.index(b"Created by OpenMM")
    raw[i:i + 17] = b"Created by NAMD  "  # a header cgaa cannot vouch for
    dcd.write_bytes(bytes(raw))
    assert read_dcd_header(dcd).dt_ps == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"writer unknown .*says NSAVC 100 .*if 0\.5 ps is right, pass it.*--dt-ps"):
        analyze(dcd, d / "top.pdb", **KW)


def test_xtc_trr_netcdf_frame_times(rw, tmp_path):
    from mdtraj.formats import XTCTrajectoryFile

    traj, d = rw
    top = d / "top.pdb"
    # frame numbers (mdtraj's default times; also after a stride: 0, 5, 10, ...) are refused
    for ext in ("xtc", "trr", "nc"):
        p = tmp_path / f"numbers.{ext}"
        traj.save(str(p))
        with pytest.raises(ValueError, match=r"frame numbers.*--dt-ps"):
            analyze(p, top, **KW)
    strided = mdtraj_traj(traj.xyz, traj.topology, time=np.arange(T_FRAMES) * 5.0)
    strided.save_xtc(str(tmp_path / "strided.xtc"))
    with pytest.raises(ValueError, match="frame numbers"):
        analyze(tmp_path / "strided.xtc", top, **KW)
    # real times are accepted
    real = mdtraj_traj(traj.xyz, traj.topology, time=100.0 + np.arange(T_FRAMES) * DT)
    for ext in ("xtc", "trr", "nc"):
        p = tmp_path / f"real.{ext}"
        real.save(str(p))
        res = analyze(p, top, **KW)
        assert res.inputs["dt_ps"] == pytest.approx(DT) and "frame times" in res.inputs["dt_source"], ext
        assert d_of(res) == pytest.approx(D_EXPECTED, rel=0.1)
    # GROMACS: step numbers say the times are times, even when they are 0, 1, 2 ps
    p = tmp_path / "gmx.xtc"
    with XTCTrajectoryFile(str(p), "w") as f:
        f.write(traj.xyz, time=np.arange(T_FRAMES) * 1.0, step=np.arange(T_FRAMES) * 500,
                box=np.tile(np.eye(3, dtype=np.float32) * L, (T_FRAMES, 1, 1)))
    res = analyze(p, top, **KW)
    assert res.inputs["dt_ps"] == pytest.approx(1.0)
    assert res.inputs["dt_source"] == "XTC frame times (500 steps × 0.002 ps)"
    assert d_of(res) == pytest.approx(D_EXPECTED * DT / 1.0, rel=0.1)
    # a stride keeps the file's time step (0.5 ps frames read every 2nd: 0, 1, 2 ... are times)
    res = analyze(tmp_path / "real.xtc", top, stride=2, **KW)
    assert res.inputs["dt_ps"] == pytest.approx(2 * DT) and "frame times" in res.inputs["dt_source"]
    # an AMBER engine's NetCDF: its times are times, even when they are 0, 1, 2 ps
    from scipy.io import netcdf_file

    amber = tmp_path / "amber.nc"
    shutil.copy(tmp_path / "numbers.nc", amber)
    with netcdf_file(str(amber), "a", mmap=False) as f:
        f.program = b"pmemd.cuda"
    res = analyze(amber, top, **KW)
    assert res.inputs["dt_source"] == "NetCDF frame times (pmemd.cuda)" and res.inputs["dt_ps"] == 1.0
    # all-zero times are refused
    zero = mdtraj_traj(traj.xyz, traj.topology, time=np.zeros(T_FRAMES))
    zero.save_xtc(str(tmp_path / "zero.xtc"))
    with pytest.raises(ValueError, match="all zero"):
        analyze(tmp_path / "zero.xtc", top, **KW)


def test_in_memory_trajectory_with_default_times_needs_dt(rw):
    traj, _ = rw
    with pytest.raises(ValueError, match="frame numbers.*dt_ps"):
        analyze(mdtraj_traj(traj.xyz, traj.topology), **KW)
    res = analyze(mdtraj_traj(traj.xyz, traj.topology, time=np.arange(T_FRAMES) * DT), **KW)
    assert res.inputs["dt_source"] == "trajectory.time frame times" and res.inputs["dt_ps"] == pytest.approx(DT)


# ---------------------------------------------------------------------------- run directories
def fake_run(d, traj: md.Trajectory, *, timestep_fs=5.0, interval=100, header_step_ps=None, status="finished",
             state_dt=None, writer="openmm", top=True):
    """A `cgaa simulate` run directory: traj.dcd, topology.pdb, run.json, state.csv."""
    from cgaa.md.rundir import STATE_COLUMNS

    d.mkdir(parents=True, exist_ok=True)
    if writer == "openmm":
        write_openmm_dcd(d / "traj.dcd", traj, (header_step_ps or timestep_fs * 1e-3), interval)
    else:
        traj.save_dcd(str(d / "traj.dcd"))
    if top:
        traj[0].save_pdb(str(d / "topology.pdb"))
    settings = {"timestep_fs": timestep_fs, "report_interval": interval, "temperature": 300.0}
    (d / "run.json").write_text(json.dumps({"settings": settings, "history": [{"status": status}]}))
    dt = state_dt if state_dt is not None else timestep_fs * 1e-3 * interval
    rows = [",".join(STATE_COLUMNS)] + [
        ",".join([str(k * interval), f"{k * dt:.10g}"] + ["0"] * 3 + ["300"] + ["27", "1", "0"])
        for k in range(traj.n_frames)]
    (d / "state.csv").write_text("\n".join(rows) + "\n")
    return d


def test_state_table_starts_with_the_columns_analysis_reads():
    from cgaa.md import rundir

    assert rundir.STATE_COLUMNS[:2] == ("step", "time_ps")


def test_run_dir_time_step_from_run_json_cross_checked(rw, tmp_path, capsys):
    traj, _ = rw
    run = fake_run(tmp_path / "run", traj)
    res = analyze_run_dir(run, **KW)
    assert res.inputs["dt_source"] == "run.json: 5 fs × 100 steps" and res.inputs["dt_ps"] == pytest.approx(DT)
    assert res.inputs["dt_checks"] == ["state.csv time_ps agrees", "DCD header agrees"]
    assert d_of(res) == pytest.approx(D_EXPECTED, rel=0.1)
    assert main(["analyze", str(run), "--no-structure", "--no-plots"]) == 0
    assert "(time step from run.json: 5 fs × 100 steps)" in capsys.readouterr().out
    md_text = (run / "analysis" / "report.md").read_text()
    assert "time between frames from: run.json: 5 fs × 100 steps (checked: state.csv time_ps agrees, DCD " \
           "header agrees)" in md_text

    # run.json against the DCD header: both values and files named
    bad = fake_run(tmp_path / "bad", traj, header_step_ps=0.002)
    with pytest.raises(ValueError, match=r"run\.json: 5 fs × 100 steps = 0\.5 ps .*run\.json.* DCD header of "
                                         r".*traj\.dcd says 0\.2 ps"):
        analyze_run_dir(bad, **KW)
    # run.json against state.csv
    bad2 = fake_run(tmp_path / "bad2", traj, state_dt=0.25)
    with pytest.raises(ValueError, match=r"run\.json: 5 fs × 100 steps = 0\.5 ps .*state\.csv advances by 0\.25 ps"):
        analyze_run_dir(bad2, **KW)
    # --dt-ps overrides, with a note
    res2 = analyze_run_dir(bad2, dt_ps=DT, **KW)
    assert res2.inputs["dt_source"] == "--dt-ps" and any("state.csv" in w for w in res2.warnings)
    res3 = analyze_run_dir(bad, dt_ps=DT, **KW)
    assert res3.inputs["dt_source"] == "--dt-ps"
    assert any("disagrees" in w and "DCD header" in w for w in res3.warnings)
    assert main(["analyze", str(bad), "--dt-ps", "0", "--no-structure"]) == 2


def test_run_dir_records_replace_an_untrustworthy_header(rw, tmp_path):
    traj, _ = rw
    run = fake_run(tmp_path / "run", traj, writer="mdtraj")  # a traj.dcd rewritten by mdtraj
    res = analyze_run_dir(run, **KW)
    assert res.inputs["dt_source"] == "run.json: 5 fs × 100 steps"
    assert d_of(res) == pytest.approx(D_EXPECTED, rel=0.1)
    # --traj naming a run's traj.dcd gets that run's records too
    res2 = analyze(run / "traj.dcd", run / "topology.pdb", **KW)
    assert res2.inputs["dt_source"] == "run.json: 5 fs × 100 steps" and res2.inputs["run_dir"] == str(run)
    # the same file outside its run directory is refused
    shutil.copy(run / "traj.dcd", tmp_path / "loose.dcd")
    with pytest.raises(ValueError, match="--dt-ps"):
        analyze(tmp_path / "loose.dcd", run / "topology.pdb", **KW)


# ---------------------------------------------------------------------------- 5. --top for a run dir
def test_run_dir_without_topology_takes_top(rw, tmp_path, capsys):
    traj, d = rw
    run = fake_run(tmp_path / "run", traj, top=False)
    assert main(["analyze", str(run), "--no-structure", "--no-plots"]) == 2
    assert "give --top" in capsys.readouterr().err
    assert main(["analyze", str(run), "--top", str(d / "top.pdb"), "--no-structure", "--no-plots"]) == 0
    rep = json.loads((run / "analysis" / "report.json").read_text())
    assert rep["inputs"]["topology"] == str(d / "top.pdb")
    assert rep["inputs"]["dt_source"] == "run.json: 5 fs × 100 steps"


# ---------------------------------------------------------------------------- 2. length units
def test_same_walk_in_angstrom_and_nm_formats_gives_the_same_d(rw, tmp_path):
    traj, d = rw
    top = d / "top.pdb"
    traj.save_dcd(str(tmp_path / "w.dcd"))  # Å in the file
    timed = mdtraj_traj(traj.xyz, traj.topology, time=np.arange(T_FRAMES) * DT)
    timed.save_xtc(str(tmp_path / "w.xtc"))  # nm in the file
    timed.save_netcdf(str(tmp_path / "w.nc"))  # Å in the file
    traj[:300].save_lammpstrj(str(tmp_path / "w.lammpstrj"))  # Å (LAMMPS units real/metal)
    d_dcd = d_of(analyze(tmp_path / "w.dcd", top, dt_ps=DT, **KW))
    d_xtc = d_of(analyze(tmp_path / "w.xtc", top, **KW))
    d_nc = d_of(analyze(tmp_path / "w.nc", top, **KW))
    assert d_dcd == pytest.approx(D_EXPECTED, rel=0.1)
    assert d_xtc == pytest.approx(d_dcd, rel=2e-3) and d_nc == pytest.approx(d_dcd, rel=1e-4)
    short = dict(KW, min_run_ps=0.0)
    d_lmp = d_of(analyze(tmp_path / "w.lammpstrj", top, dt_ps=DT, **short))
    d_dcd300 = d_of(analyze(traj[:300], dt_ps=DT, **short))
    assert d_lmp == pytest.approx(d_dcd300, rel=2e-3)


def test_a_wrong_length_unit_is_refused(rw, tmp_path):
    traj, d = rw
    # a LAMMPS dump in nm (say, lj units scaled to nm) read as Å: the box is 10× too small
    nm_as_A = md.Trajectory(traj.xyz[:50] / 10, traj.topology, unitcell_lengths=np.full((50, 3), L / 10),
                            unitcell_angles=np.full((50, 3), 90.0))
    nm_as_A.save_lammpstrj(str(tmp_path / "nm.lammpstrj"))
    with pytest.raises(ValueError, match=r"length unit mismatch.*nm\.lammpstrj.*0\.1 times the box of the topology"):
        analyze(tmp_path / "nm.lammpstrj", d / "top.pdb", dt_ps=DT, **KW)
    # a LAMMPS dump cannot be checked against a topology without a box: refused
    nobox = tmp_path / "nobox.pdb"
    nobox.write_text("".join(ln for ln in (d / "top.pdb").read_text().splitlines(True) if not ln.startswith("CRYST1")))
    traj[:50].save_lammpstrj(str(tmp_path / "ok.lammpstrj"))
    with pytest.raises(ValueError, match=r"do not record their length unit.*has no box"):
        analyze(tmp_path / "ok.lammpstrj", nobox, dt_ps=DT, **KW)


# ---------------------------------------------------------------------------- 3. topology
def li_co_system(n_li=20, n_co=40, seed=1):
    """Li atoms and C=O molecules (random walks of rigid molecules): topology (bonds) and xyz."""
    rng = np.random.default_rng(seed)
    top = md.Topology()
    ch = top.add_chain()
    for _ in range(n_li):
        top.add_atom("LI", md.element.lithium, top.add_residue("LI", ch))
    for _ in range(n_co):
        r = top.add_residue("CO", ch)
        c = top.add_atom("C", md.element.carbon, r)
        top.add_bond(c, top.add_atom("O", md.element.oxygen, r))
    n = n_li + n_co
    centres = walk(300, n, seed=seed)
    xyz = np.repeat(centres, [1] * n_li + [2] * n_co, axis=1)
    u = rng.normal(size=(n_co, 3))
    u *= 0.06 / np.linalg.norm(u, axis=1, keepdims=True)
    xyz[:, n_li::2] -= u.astype(np.float32)
    xyz[:, n_li + 1::2] += u.astype(np.float32)
    return top, xyz


def test_atom_count_mismatch_names_both_counts_and_files(rw, tmp_path):
    traj, d = rw
    traj.save_dcd(str(tmp_path / "w.dcd"))
    traj.atom_slice(range(N_ATOMS - 3))[0].save_pdb(str(tmp_path / "short.pdb"))
    with pytest.raises(ValueError, match=rf"atom count mismatch: trajectory .*w\.dcd has {N_ATOMS} atoms per frame "
                                         rf"but topology .*short\.pdb has {N_ATOMS - 3}"):
        analyze(tmp_path / "w.dcd", tmp_path / "short.pdb", dt_ps=DT, **KW)


def test_atom_order_mismatch_is_refused(tmp_path):
    top, xyz = li_co_system()
    t = mdtraj_traj(xyz, top)
    t.save_dcd(str(tmp_path / "t.dcd"))
    t[0].save_pdb(str(tmp_path / "right.pdb"))
    res = analyze(tmp_path / "t.dcd", tmp_path / "right.pdb", dt_ps=DT, **KW, min_run_ps=0)
    assert set(res.diffusion) == {"Li", "CO"} and not any("whole" in w for w in res.warnings)
    # the same molecules, listed in another order (CO first, then Li): same atom count
    swapped = md.Topology()
    ch = swapped.add_chain()
    for _ in range(40):
        r = swapped.add_residue("CO", ch)
        c = swapped.add_atom("C", md.element.carbon, r)
        swapped.add_bond(c, swapped.add_atom("O", md.element.oxygen, r))
    for _ in range(20):
        swapped.add_atom("LI", md.element.lithium, swapped.add_residue("LI", ch))
    mdtraj_traj(xyz[:1], swapped).save_pdb(str(tmp_path / "swapped.pdb"))
    with pytest.raises(ValueError, match=r"atom order mismatch: in the first frame of .*t\.dcd, \d+ of 40 multi-atom "
                                         r"residues of topology .*swapped\.pdb are not one molecule"):
        analyze(tmp_path / "t.dcd", tmp_path / "swapped.pdb", dt_ps=DT, **KW)
    # without bonds (no CONECT records) the distances still show it
    nob = tmp_path / "swapped_nobonds.pdb"
    nob.write_text("".join(ln for ln in (tmp_path / "swapped.pdb").read_text().splitlines(True)
                           if not ln.startswith("CONECT")))
    with pytest.raises(ValueError, match="atom order mismatch.*by distances in the first frame"):
        analyze(tmp_path / "t.dcd", nob, dt_ps=DT, **KW)
    # a trajectory file with its own atoms (PDB frames): elements compared directly
    t[:20].save_pdb(str(tmp_path / "frames.pdb"))
    with pytest.raises(ValueError, match=r"atom order mismatch: \d+ of 100 atoms of topology .*swapped\.pdb differ "
                                         r"in element from the atoms stored in trajectory .*frames\.pdb"):
        analyze(tmp_path / "frames.pdb", tmp_path / "swapped.pdb", dt_ps=DT, **KW)


def test_residue_holding_several_molecules_is_refused_and_a_broken_molecule_noted(tmp_path):
    top, xyz = li_co_system()
    one = md.Topology()
    ch = one.add_chain()
    for _ in range(20):
        one.add_atom("LI", md.element.lithium, one.add_residue("LI", ch))
    sol = one.add_residue("MIX", ch)  # all 40 C=O molecules in one residue
    for _ in range(40):
        c = one.add_atom("C", md.element.carbon, sol)
        one.add_bond(c, one.add_atom("O", md.element.oxygen, sol))
    t = mdtraj_traj(xyz, top)
    t.save_dcd(str(tmp_path / "t.dcd"))
    mdtraj_traj(xyz[:1], one).save_pdb(str(tmp_path / "sol.pdb"))
    with pytest.raises(ValueError, match=r"residue MIX 20 of topology .*sol\.pdb holds 40 separate molecules"):
        analyze(tmp_path / "t.dcd", tmp_path / "sol.pdb", dt_ps=DT, **KW)
    # one molecule stretched apart in the first frame (dissociated): analysed, with a warning
    xyz2 = xyz.copy()
    xyz2[0, 21] += 0.5
    mdtraj_traj(xyz2, top).save_dcd(str(tmp_path / "t2.dcd"))
    t[0].save_pdb(str(tmp_path / "right.pdb"))
    res = analyze(tmp_path / "t2.dcd", tmp_path / "right.pdb", dt_ps=DT, **KW, min_run_ps=0)
    assert any("1 of 40 molecules are not whole in the first frame" in w and "residue CO 20" in w
               for w in res.warnings)


# ---------------------------------------------------------------------------- 4. truncated files
def test_dcd_cut_mid_frame_is_read_to_its_last_complete_frame_with_a_warning(rw, tmp_path, capsys):
    traj, d = rw
    dcd = write_openmm_dcd(tmp_path / "full.dcd", traj, 0.005, 100)
    cut = tmp_path / "cut.dcd"
    cut.write_bytes(dcd.read_bytes()[:-700])  # part of the last frame (1280 bytes) cut away
    complete, partial = dcd_frame_count(cut)
    assert complete == T_FRAMES - 1 and partial > 0
    res = analyze(cut, d / "top.pdb", **KW)
    assert res.inputs["n_frames"] == [T_FRAMES - 1]
    assert any(f"ends mid-frame ({partial} bytes of a partial frame after {complete} complete frames)" in w
               for w in res.warnings)
    assert d_of(res) == pytest.approx(d_of(analyze(traj[:-1], dt_ps=DT, **KW)), rel=1e-4)
    # a file cut at a frame boundary holds fewer frames than its header says
    cut2 = tmp_path / "cut2.dcd"
    cut2.write_bytes(dcd.read_bytes()[:-2 * read_dcd_header(dcd).frame_bytes])
    res2 = analyze(cut2, d / "top.pdb", **KW)
    assert any(f"holds {T_FRAMES - 2} frames but its header says {T_FRAMES}" in w for w in res2.warnings)
    assert main(["analyze", "--traj", str(cut), "--top", str(d / "top.pdb"), "--out", str(tmp_path / "o"),
                 "--no-structure", "--no-plots"]) == 0
    assert "warning: " in capsys.readouterr().out


def test_cut_xtc_is_refused(rw, tmp_path):
    traj, d = rw
    mdtraj_traj(traj.xyz, traj.topology, time=np.arange(T_FRAMES) * DT).save_xtc(str(tmp_path / "w.xtc"))
    (tmp_path / "cut.xtc").write_bytes((tmp_path / "w.xtc").read_bytes()[:-50])
    with pytest.raises(ValueError, match=r"cannot read trajectory .*cut\.xtc.*cut mid-frame, or still being written"):
        analyze(tmp_path / "cut.xtc", d / "top.pdb", **KW)


def test_run_being_written(rw, tmp_path):
    traj, _ = rw
    run = fake_run(tmp_path / "run", traj, status="running")
    raw = (run / "traj.dcd").read_bytes()
    frame = read_dcd_header(run / "traj.dcd").frame_bytes
    (run / "traj.dcd").write_bytes(raw[:-3 * frame - 100])  # 3 frames + part of one not yet on disk
    res = analyze_run_dir(run, **KW)
    n = T_FRAMES - 4
    assert res.inputs["n_frames"] == [n]
    w = " | ".join(res.warnings)
    assert "ends mid-frame" in w and "still being written: run.json says running" in w
    assert f"state.csv lists {T_FRAMES} frames but" in w and f"holds {n}" in w
