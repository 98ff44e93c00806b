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


class _Counting(LennardJones):
    """LJ that counts its calls and, once, fails on the frame whose first x is ``fail_x`` (as an
    interrupted run would stop there) or returns absurd forces for it (``absurd``)."""

    def __init__(self, fail_at=None, absurd=None, **kw):
        super().__init__(sigma=2.5, epsilon=0.02, rc=5.0, smooth=True, **kw)
        self.calls, self.fail_at, self.absurd = [], fail_at, absurd

    def calculate(self, atoms=None, properties=("energy",), system_changes=None):
        super().calculate(atoms, properties, system_changes or ["positions"])
        key = round(float(atoms.positions[0, 0]), 6)
        self.calls.append(key)
        if self.fail_at is not None and key == self.fail_at:
            self.fail_at = None
            raise RuntimeError("node lost")
        if self.absurd is not None and key == self.absurd:
            self.results["forces"] = self.results["forces"].copy()
            self.results["forces"][3] = [900.0, 0.0, 0.0]


def _keys(frames):
    return [round(float(f.positions[0, 0]), 6) for f in frames]


def test_labelling_resumes_where_it_stopped_and_labels_nothing_twice(tmp_path):
    frames = _cu_frames(6)
    write_frames(tmp_path / "in.xyz", frames, validate=False)
    keys = _keys(read_frames(tmp_path / "in.xyz", require_energy=False, require_forces=False))
    ref = label_frames(read_frames(tmp_path / "in.xyz", require_energy=False, require_forces=False), _Counting(),
                       name="lj")
    first = _Counting(fail_at=keys[4])
    with pytest.raises(RuntimeError, match=r"in.xyz frame 4: calculator 'lj' failed.*node lost.*4 frames labelled "
                                           r"before it are kept in .*out.xyz.partial"):
        label_file(tmp_path / "in.xyz", tmp_path / "out.xyz", first, name="lj", progress=False)
    assert first.calls == keys[:5] and not (tmp_path / "out.xyz").exists()
    assert len(read_frames(tmp_path / "out.xyz.partial")) == 4
    again = _Counting()
    assert label_file(tmp_path / "in.xyz", tmp_path / "out.xyz", again, name="lj", progress=False) == 6
    assert again.calls == keys[4:]  # frames 0-3 came from the partial file
    out = read_frames(tmp_path / "out.xyz")
    assert _keys(out) == keys and not (tmp_path / "out.xyz.partial").exists()
    for a, b in zip(out, ref):
        assert a.info["REF_energy"] == pytest.approx(b.info["REF_energy"], rel=1e-10)
        np.testing.assert_allclose(a.arrays["REF_forces"], b.arrays["REF_forces"], atol=1e-7)  # extxyz: 8 decimals


def test_a_frame_cut_short_by_a_kill_is_labelled_again(tmp_path):
    frames = _cu_frames(3)
    write_frames(tmp_path / "in.xyz", frames, validate=False)
    done = label_frames(read_frames(tmp_path / "in.xyz", require_energy=False, require_forces=False)[:2],
                        _Counting(), name="lj")
    write_frames(tmp_path / "full.xyz", done)
    text = (tmp_path / "full.xyz").read_text()
    (tmp_path / "out.xyz.partial").write_text(text[: len(text) - 200])  # kill -9 in the middle of frame 1
    calc = _Counting()
    assert label_file(tmp_path / "in.xyz", tmp_path / "out.xyz", calc, name="lj", progress=False) == 3
    assert len(calc.calls) == 2 and len(read_frames(tmp_path / "out.xyz")) == 3


def test_a_partial_file_of_another_input_or_calculator_is_refused(tmp_path):
    frames = _cu_frames(3)
    write_frames(tmp_path / "in.xyz", frames, validate=False)
    with pytest.raises(RuntimeError):
        label_file(tmp_path / "in.xyz", tmp_path / "out.xyz", _Counting(fail_at=_keys(frames)[2]), name="lj",
                   progress=False)
    with pytest.raises(ValueError, match="out.xyz.partial frame 0 is not input frame 0 labelled by 'emt'"):
        label_file(tmp_path / "in.xyz", tmp_path / "out.xyz", EMT(), name="emt", progress=False)
    assert label_file(tmp_path / "in.xyz", tmp_path / "out.xyz", EMT(), name="emt", progress=False, resume=False) == 3


def test_nan_or_absurd_labels_are_refused_naming_the_frame_and_atom(tmp_path, capsys):
    frames = _cu_frames(3)
    write_frames(tmp_path / "in.xyz", frames, validate=False)
    keys = _keys(read_frames(tmp_path / "in.xyz", require_energy=False, require_forces=False))
    with pytest.raises(RuntimeError, match=r"in.xyz frame 1 labelled by 'lj': a force of 900.0 eV/A on atom 3 \(Cu\) "
                                           r"is absurd \(limit 50 eV/A"):
        label_file(tmp_path / "in.xyz", tmp_path / "out.xyz", _Counting(absurd=keys[1]), name="lj", progress=False)
    from cgaa.teacher.label import LabelError, check_labels

    at = frames[0].copy()
    at.info["REF_energy"] = float("nan")
    at.arrays["REF_forces"] = np.zeros((len(at), 3))
    with pytest.raises(LabelError, match="frame 7: energy is nan"):
        check_labels(at, "frame 7")
    at.info["REF_energy"] = 0.0
    at.arrays["REF_forces"][5, 1] = np.inf
    with pytest.raises(LabelError, match=r"frame 7: forces are NaN/inf on atom\(s\) \[5\] \(Cu\)"):
        check_labels(at, "frame 7")
    # through the CLI: one line, exit 2, and --max-force raises the limit
    rc = main(["label", str(tmp_path / "in.xyz"), "-o", str(tmp_path / "o2.xyz"), "-c", "test_label:absurd_lj",
               "--no-progress"])
    assert rc == 2 and "is absurd" in capsys.readouterr().err


def absurd_lj():
    """module:callable factory for the CLI test: absurd forces on every frame's atom 3."""
    calc = _Counting()
    calc.absurd = "always"
    original = calc.calculate

    def calculate(atoms=None, properties=("energy",), system_changes=None):
        original(atoms, properties, system_changes)
        calc.results["forces"] = calc.results["forces"].copy()
        calc.results["forces"][3] = [900.0, 0.0, 0.0]

    calc.calculate = calculate
    return calc


def _ec_in_a_box():
    """One EC molecule (template geometry) in a periodic 12 Å box (Å)."""
    from cgaa.systems.species import get_species

    sp = get_species("EC")
    return make_frame(sp.elements, sp.positions - sp.positions.mean(axis=0) + 6.0, np.eye(3) * 12.0)


@pytest.mark.parametrize("spec,package,kwargs", [("sevenn", "sevenn", {}), ("sevenn", "sevenn", {"d3": False}),
                                                 ("xtb", "tblite", {})])
def test_quantum_teachers_give_conservative_forces(spec, package, kwargs):
    """The quantum-level teachers label through the same path, in eV and eV/Å: their forces are
    the negative energy gradient (central differences) and the net force vanishes."""
    pytest.importorskip(package, reason=f'needs pip install "cgaa[{spec}]"')
    if spec == "sevenn":
        pytest.importorskip("dftd3")
    calc = get_calculator(spec, **kwargs)
    at = _ec_in_a_box()
    [lab] = label_frames([at], calc, name=spec)
    f = lab.arrays["REF_forces"]
    assert np.isfinite(lab.info["REF_energy"]) and np.abs(f.sum(axis=0)).max() < 1e-3
    h, i = 1e-3, int(np.argmax(np.linalg.norm(f, axis=1)))
    e = []
    for s in (+1, -1):
        moved = at.copy()
        moved.positions[i, 0] += s * h
        moved.calc = calc
        e.append(moved.get_potential_energy())
    assert f[i, 0] == pytest.approx(-(e[0] - e[1]) / (2 * h), rel=2e-3, abs=2e-3)


def test_a_missing_quantum_teacher_says_which_extra_installs_it(monkeypatch):
    import sys

    for mod in ("sevenn.calculator", "tblite.ase"):
        monkeypatch.setitem(sys.modules, mod, None)  # as if not installed: `import` raises ImportError
    with pytest.raises(ValueError, match=r'calculator .sevenn. needs .*pip install "cgaa\[sevenn\]"'):
        get_calculator("sevenn")
    with pytest.raises(ValueError, match=r'calculator .xtb. needs .*pip install "cgaa\[xtb\]"'):
        get_calculator("xtb")
