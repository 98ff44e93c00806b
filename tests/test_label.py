"""cgaa label: relabel extxyz frames with ASE calculators (LJ, EMT, teacher, module:callable)."""
from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones

from cgaa.cli import main
from cgaa.core.extxyz import make_frame, read_frames, write_frames
from cgaa.teacher.label import get_calculator, label_file, label_frames


def cheap_lj(sigma=2.5, epsilon=0.02):
    """A factory for the module:callable test."""
    return LennardJones(sigma=sigma, epsilon=epsilon, rc=5.0, smooth=True)


def _cu_frames(n=3):
    out = []
    for i in range(n):
        at = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
        at.rattle(0.05, seed=i)
        at.info["energy"] = 123.0  # a stale label under a non-cgaa key
        out.append(at)
    return out


def test_label_with_emt_matches_ase(tmp_path):
    import ase.io

    frames = _cu_frames()
    ase.io.write(tmp_path / "in.xyz", frames, format="extxyz")
    rc = main(["label", str(tmp_path / "in.xyz"), "-o", str(tmp_path / "out.xyz"), "-c", "emt", "--no-progress"])
    assert rc == 0
    out = read_frames(tmp_path / "out.xyz")
    for a, b in zip(frames, out):
        ref = a.copy()
        ref.calc = EMT()
        assert b.info["REF_energy"] == pytest.approx(ref.get_potential_energy(), abs=1e-6)
        np.testing.assert_allclose(b.arrays["REF_forces"], ref.get_forces(), atol=1e-6)
        assert b.info["teacher"] == "emt" and b.info["prev_energy"] == 123.0


def test_label_with_lj_and_module_callable(tmp_path):
    frames = [make_frame(["Li", "F", "F"], np.array([[0, 0, 0], [2.0, 0, 0], [0, 2.2, 0.3]]), np.eye(3) * 12,
                         energy=0.0, forces=np.zeros((3, 3)), grain=[0, 1, 2], resname=["LI", "X", "X"])]
    write_frames(tmp_path / "in.xyz", frames)
    n = label_file(tmp_path / "in.xyz", tmp_path / "lj.xyz", "test_label:cheap_lj",
                   calculator_kwargs={"sigma": 2.0}, progress=False)
    assert n == 1
    got = read_frames(tmp_path / "lj.xyz")[0]
    ref = frames[0].copy()
    ref.calc = cheap_lj(sigma=2.0)
    assert got.info["REF_energy"] == pytest.approx(ref.get_potential_energy())
    np.testing.assert_allclose(got.arrays["REF_forces"], ref.get_forces(), atol=1e-7)
    assert list(got.arrays["grain"]) == [0, 1, 2] and list(got.arrays["resname"]) == ["LI", "X", "X"]
    rc = main(["label", str(tmp_path / "in.xyz"), "-o", str(tmp_path / "lj2.xyz"), "-c", "lj",
               "--calc-arg", "sigma=2.0", "--calc-arg", "epsilon=0.02", "--calc-arg", "rc=5.0", "--no-progress"])
    assert rc == 0
    assert read_frames(tmp_path / "lj2.xyz")[0].info["REF_energy"] == pytest.approx(got.info["REF_energy"])


def test_teacher_relabel_reproduces_sample(tmp_path):
    from cgaa.teacher.sample import sample_teacher

    sample_teacher("lipf6-ec-emc-1m", tmp_path / "s.xyz", n_atoms=600, n_frames=1, stride=5,
                   equilibration_steps=5, cutoff=0.8, platform="CPU", hot_fraction=0,
                   distorted_fraction=1.0, progress=False)
    frames = read_frames(tmp_path / "s.xyz")
    again = label_frames(frames, get_calculator("teacher", cutoff=0.8, platform="CPU"), name="teacher")
    for a, b in zip(frames, again):
        assert b.info["REF_energy"] == pytest.approx(a.info["REF_energy"], abs=1e-4)
        np.testing.assert_allclose(b.arrays["REF_forces"], a.arrays["REF_forces"], atol=2e-4)


def test_errors(tmp_path, capsys):
    write_frames(tmp_path / "in.xyz", [make_frame(["Li"], np.zeros((1, 3)), np.eye(3) * 9, energy=0.0,
                                                   forces=np.zeros((1, 3)))])
    # EMT has no Li: the error names the frame and the calculator; no output written
    rc = main(["label", str(tmp_path / "in.xyz"), "-o", str(tmp_path / "o.xyz"), "-c", "emt", "--no-progress"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "frame 0" in err and "emt" in err
    assert not (tmp_path / "o.xyz").exists()
    with pytest.raises(ValueError, match="unknown calculator 'dft9000'"):
        get_calculator("dft9000")
    with pytest.raises(ValueError, match="cannot import module 'no_such_mod'"):
        get_calculator("no_such_mod:make")
    with pytest.raises(ValueError, match="has no attribute 'nothing'"):
        get_calculator("test_label:nothing")


def test_label_frames_of_an_md_run(tmp_path):
    """`cgaa label RUN_DIR`: the configurations of an MD run (traj.dcd + topology.pdb, as
    `cgaa simulate` writes) go to the teacher; labels equal the teacher's at those positions."""
    import openmm
    from openmm import app, unit

    from cgaa.systems.build import build_box
    from cgaa.cli import main
    from cgaa.teacher.forcefield import Teacher, create_system

    res = build_box("lipf6-ec-emc-1m", 600, tmp_path / "box.pdb", seed=3)
    pdb = app.PDBFile(str(res.path))
    run = tmp_path / "run"
    run.mkdir()
    with open(run / "topology.pdb", "w") as fh:
        app.PDBFile.writeFile(pdb.topology, pdb.positions, fh, keepIds=True)
    system = create_system(pdb.topology, cutoff=0.8)
    sim = app.Simulation(pdb.topology, system, openmm.VerletIntegrator(0.0005),
                         openmm.Platform.getPlatformByName("Reference"))
    sim.context.setPositions(pdb.positions)
    openmm.LocalEnergyMinimizer.minimize(sim.context, 100.0, 50)
    sim.reporters.append(app.DCDReporter(str(run / "traj.dcd"), 2, enforcePeriodicBox=False))
    sim.step(8)  # 4 frames, 1 fs apart (times counted from the first saved frame: 0 ... 3 fs)
    out = tmp_path / "md.xyz"
    assert main(["label", str(run), "-o", str(out), "-c", "teacher", "--calc-arg", "cutoff=0.8",
                 "--start-ps", "0.0015", "--no-progress"]) == 0
    frames = read_frames(out)
    assert [f.info["time_ps"] for f in frames] == pytest.approx([0.002, 0.003])
    assert all(f.info["config_type"] == "md" for f in frames)
    t = Teacher(pdb.topology, cutoff=0.8)
    e, f = t.compute(frames[0].positions, frames[0].cell[:])
    assert frames[0].info["REF_energy"] == pytest.approx(e, rel=1e-9)
    np.testing.assert_allclose(frames[0].arrays["REF_forces"], f, atol=1e-5)  # extxyz keeps ~8 digits
    np.testing.assert_array_equal(frames[0].arrays["grain"], [a.residue.index for a in pdb.topology.atoms()])
    with pytest.raises(ValueError, match="no frames after 1000"):
        from cgaa.teacher.label import frames_from_run
        frames_from_run(run, start_ps=1000.0)
