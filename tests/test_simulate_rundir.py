"""The run directory under failure: a bad --out is refused before anything runs, a failed
write mid-run (full disk) is one line and "failed" in run.json, --overwrite removes the old
analysis, Ctrl-C during minimisation leaves a directory the next run reuses, kill -9 leaves
readable outputs and a checkpoint from which --restart continues exactly (a real subprocess),
and a directory holding a run is never silently overwritten."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

openmm = pytest.importorskip("openmm")
pytest.importorskip("openmmtorch")
from openmm import unit  # noqa: E402

from cgaa.md.rundir import Checkpointer, RunWriteError, load_state_csv  # noqa: E402
from cgaa.md.run import BEFORE_FIRST_STEP, run_simulation  # noqa: E402
from test_openmm import small_system  # noqa: E402
from test_simulate import _run, system_parts  # noqa: E402,F401

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


@pytest.fixture(scope="module")
def cli_box(tmp_path_factory):
    from openmm.app import PDBFile

    from cgaa.core.modelfile import save_model

    root = tmp_path_factory.mktemp("rundir")
    weak, top, pos, _ = small_system(rms_force=0.02)
    pdb = root / "good.pdb"
    with open(pdb, "w") as fh:
        PDBFile.writeFile(top, pos * unit.nanometer, fh)
    return pdb, save_model(weak, root / "weak.pt")


def _cli(pdb, model, out, *extra):
    return ["simulate", str(pdb), "--model", str(model), "--out", str(out), "--platform", "Reference",
            "--no-progress", "--threads", "1", "--temperature", "50", "--minimize-iterations", "5",
            "--thermalize-ps", "0.02", *extra]


def test_bad_out_is_one_line_before_anything_runs(tmp_path, cli_box, capsys):
    from cgaa.cli import main

    pdb, model = cli_box
    afile = tmp_path / "afile"
    afile.write_text("")
    for out, why in ((afile, "is a file, not a directory"), (Path("/dev/null/run"), "/dev/null is not a directory")):
        capsys.readouterr()
        assert main(_cli(pdb, model, out, "--steps", "10")) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"cgaa simulate: error: --out {out}") and why in err and "\n" not in err, err
    assert afile.read_text() == ""
    if os.geteuid() != 0:  # root may write anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        assert main(_cli(pdb, model, ro / "run", "--steps", "10")) == 2
        assert "not writable" in capsys.readouterr().err


def test_failed_write_mid_run_is_recorded_and_one_line(tmp_path, cli_box, system_parts, monkeypatch, capsys):  # noqa: F811
    """A full disk at step 30: RunWriteError naming the file (an OSError), run.json says
    "failed" with the error, the checkpoint of step 20 is kept and --restart continues."""
    from cgaa.cli import main
    from cgaa.md import reporter as rep_mod

    original = rep_mod.Reporter.write

    def full_disk(self, state, row):
        if row["step"] >= 30:
            class Full:
                def write(self, *_):
                    raise OSError(errno.ENOSPC, "No space left on device")

                def flush(self):
                    pass

                def close(self):
                    pass
            self._csv.close()
            self._csv = Full()
            self._writer = rep_mod.csv.writer(self._csv)
        return original(self, state, row)

    monkeypatch.setattr(rep_mod.Reporter, "write", full_disk)
    out = tmp_path / "run"
    with pytest.raises(RunWriteError) as info:
        _run(system_parts, out, steps=60, checkpoint_interval=20)
    msg = str(info.value)
    assert isinstance(info.value, OSError) and info.value.errno == errno.ENOSPC
    assert msg.startswith(f"cannot write {out / 'state.csv'}: [Errno 28] No space left on device -- stopped at "
                          "step 30; the last good checkpoint (step 20) is kept")
    h = json.loads((out / "run.json").read_text())["history"][-1]
    assert h["status"] == "failed" and "No space left on device" in h["error"] and h["at_step"] == 30
    monkeypatch.setattr(rep_mod.Reporter, "write", original)
    res = _run(system_parts, out, steps=60, restart=True)
    assert res.restarted_from == 20 and list(load_state_csv(out / "state.csv")["step"]) == list(range(0, 61, 10))
    # through the CLI: one line, exit code 1
    monkeypatch.setattr(rep_mod.Reporter, "write", full_disk)
    pdb, model = cli_box
    capsys.readouterr()
    assert main(_cli(pdb, model, tmp_path / "cli", "--steps", "60", "--report-interval", "10",
                     "--checkpoint-interval", "20")) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("cgaa simulate: error: cannot write") and "No space left" in err and "\n" not in err
    assert "Traceback" not in err
    h = json.loads((tmp_path / "cli" / "run.json").read_text())["history"][-1]
    assert h["status"] == "failed"


def test_overwrite_removes_the_old_analysis_and_a_run_is_never_silently_replaced(tmp_path, cli_box, capsys):
    from cgaa.cli import main

    pdb, model = cli_box
    out = tmp_path / "run"
    assert main(_cli(pdb, model, out, "--steps", "10", "--report-interval", "5")) == 0
    (out / "analysis").mkdir()
    (out / "analysis" / "report.json").write_text('{"old": true}')
    digest = {f: hashlib.sha256((out / f).read_bytes()).hexdigest()
              for f in ("run.json", "state.csv", "traj.dcd", "checkpoint.chk", "checkpoint.json")}
    capsys.readouterr()
    # without --overwrite: refused, nothing touched (a new run, a continuation, the API)
    assert main(_cli(pdb, model, out, "--steps", "20")) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["simulate", "--continue-from", str(out), "--out", str(out), "--steps", "5", "--no-progress"]) == 2
    with pytest.raises(ValueError, match="already holds a run"):
        run_simulation(str(pdb), model, out, steps=5, progress=False)
    assert digest == {f: hashlib.sha256((out / f).read_bytes()).hexdigest() for f in digest}
    assert (out / "analysis" / "report.json").is_file()
    # with --overwrite: a new run, and the analysis of the old one is gone
    assert main(_cli(pdb, model, out, "--steps", "20", "--report-interval", "5", "--overwrite")) == 0
    assert not (out / "analysis").exists()
    assert list(load_state_csv(out / "state.csv")["step"]) == [0, 5, 10, 15, 20]


_SLOW_MINIMISATION = """
import sys
sys.path.insert(0, {tests!r})
import openmm
import cgaa.md.run as r
from cgaa.cli import main

build = r.build_run_system

def slow(topology, settings, deployed=None, system=None, customize_system=None):
    s = build(topology, settings, deployed, system, customize_system)
    pull = openmm.CustomExternalForce("-100*x")  # a constant pull: the descent never converges
    for i in range(s.getNumParticles()):
        pull.addParticle(i, [])
    s.addForce(pull)
    return s

r.build_run_system = slow
sys.exit(main(sys.argv[1:]))
"""


def _wait_for(pred, proc, timeout=180.0, what=""):
    t0 = time.time()
    while not pred():
        if proc.poll() is not None:
            raise AssertionError(f"{what}: the process ended early ({proc.returncode}): "
                                 f"{proc.stderr.read().decode()[-2000:]}")
        if time.time() - t0 > timeout:
            proc.kill()
            raise AssertionError(f"{what}: timed out")
        time.sleep(0.05)


def test_ctrl_c_during_minimisation_leaves_a_reusable_directory(tmp_path, cli_box, capsys):
    """SIGINT to `cgaa simulate` while it minimises (a box made never to converge): exit 130,
    run.json "interrupted before the first step", no checkpoint or trajectory; the same
    command then runs into the directory without --overwrite; --restart says why it cannot."""
    from cgaa.cli import main

    pdb, model = cli_box
    out = tmp_path / "run"
    script = tmp_path / "slow.py"
    script.write_text(_SLOW_MINIMISATION.format(tests=str(TESTS)))
    args = ["simulate", str(pdb), "--model", str(model), "--out", str(out), "--platform", "Reference",
            "--threads", "1", "--steps", "10", "--minimize-iterations", "10000000"]
    proc = subprocess.Popen([sys.executable, str(script)] + args, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=dict(os.environ, PYTHONUNBUFFERED="1"))

    def minimising():
        try:
            return json.loads((out / "run.json").read_text())["history"][-1]["status"] == "running"
        except (OSError, ValueError):
            return False

    _wait_for(minimising, proc, what="minimisation start")
    time.sleep(3.0)  # well inside the minimisation (it would run for hours)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    err = err.decode()
    assert proc.returncode == 130, err[-3000:]
    assert "interrupted before the first step" in err and "no --overwrite needed" in err
    assert "Traceback" not in err
    info = json.loads((out / "run.json").read_text())
    h = info["history"][-1]
    assert h["status"] == BEFORE_FIRST_STEP and h["minimization"]["stopped"] is True
    assert h["minimization"]["iterations"] > 1
    for f in ("checkpoint.chk", "checkpoint.json", "state.csv", "traj.dcd", "final_state.xml"):
        assert not (out / f).exists(), f
    capsys.readouterr()
    assert main(["simulate", "--restart", "--out", str(out), "--no-progress"]) == 2
    assert "interrupted before the first step" in capsys.readouterr().err
    assert main(_cli(pdb, model, out, "--steps", "10", "--report-interval", "5")) == 0  # no --overwrite
    assert json.loads((out / "run.json").read_text())["history"][-1]["status"] == "finished"
    assert len(json.loads((out / "run.json").read_text())["history"]) == 1


def test_sigint_handler_stops_the_minimiser_directly(system_parts):  # noqa: F811
    """The same path without a subprocess: the guard's handler sets the flag that both
    minimisers poll."""
    from cgaa.md.minimize import minimize_energy
    from cgaa.md.run import SigintGuard
    from cgaa.openmm import create_system

    model, top, pos = system_parts
    for constraints in ("hbonds", "none"):
        system = create_system(top, model, constraints=constraints)
        ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
        ctx.setPositions(pos)
        guard = SigintGuard()
        calls = []

        def stop():
            calls.append(1)
            if len(calls) == 3:
                guard.handle()
            return guard.requested

        res = minimize_energy(ctx, 1000, tolerance=1e-9, stop=stop)
        assert res["stopped"] is True and len(calls) == 3, (constraints, res)


_KILL_RUN = """
import sys
sys.path.insert(0, {tests!r})
import torch
torch.set_num_threads(1)
from test_openmm import small_system
from test_md_run import _teacher_names, teacher_run_system, CUTOFF_NM
from cgaa.md.run import run_simulation

model, top, pos, _ = small_system(rms_force=0.3)
_teacher_names(top)
run_simulation((top, pos), None, sys.argv[1], system=teacher_run_system(top, CUTOFF_NM), steps=int(sys.argv[2]),
               report_interval=10, checkpoint_interval=20, platform="Reference", temperature=300.0, seed=3,
               minimize_iterations=20, thermalize_ps=0.02, progress=False)
"""


def test_kill_9_then_restart_continues_exactly(tmp_path):
    """`kill -9` of a running simulation after its first checkpoints: run.json, state.csv and
    the checkpoint stay readable; --restart truncates traj.dcd and state.csv to the checkpoint
    and continues bit for bit like a run that was never killed (NVT, Reference, the teacher's
    classical System)."""
    import mdtraj

    from test_md_run import CUTOFF_NM, _teacher_names, teacher_run_system

    script = tmp_path / "kill.py"
    script.write_text(_KILL_RUN.format(tests=str(TESTS)))
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(script), str(out), "100000000"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def checkpointed():
        try:
            return json.loads((out / "checkpoint.json").read_text())["step"] >= 100
        except (OSError, ValueError, KeyError):
            return False

    _wait_for(checkpointed, proc, what="first checkpoints")
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    # every output readable as the kill left it
    info = json.loads((out / "run.json").read_text())
    assert info["history"][-1]["status"] == "running"
    found, problems = Checkpointer(out).usable()
    assert found and found[0].verified
    ck = found[0].meta["step"]
    rows = load_state_csv(out / "state.csv")
    assert rows["step"][-1] >= ck and list(rows["step"]) == list(range(0, int(rows["step"][-1]) + 1, 10))
    # --restart (in this process) to 60 steps past the checkpoint, and the run never killed
    target = ck + 60
    _, top, pos, _ = small_system(rms_force=0.3)
    _teacher_names(top)
    system = teacher_run_system(top, CUTOFF_NM)
    res = run_simulation(None, None, out, restart=True, steps=target, system=system, progress=False)
    assert res.restarted_from >= ck
    ref = tmp_path / "ref"
    run_simulation((top, pos), None, ref, system=system, steps=target, report_interval=10, checkpoint_interval=20,
                   platform="Reference", temperature=300.0, seed=3, minimize_iterations=20, thermalize_ps=0.02,
                   progress=False)
    a, b = load_state_csv(ref / "state.csv"), load_state_csv(out / "state.csv")
    assert list(b["step"]) == list(range(0, target + 1, 10)) == list(a["step"])
    for k in ("potential_energy_kJ_mol", "kinetic_energy_kJ_mol", "temperature_K"):
        assert np.array_equal(a[k], b[k]), k
    fa, fb = (openmm.XmlSerializer.deserialize((d / "final_state.xml").read_text()) for d in (ref, out))
    assert np.array_equal(fa.getPositions(asNumpy=True)._value, fb.getPositions(asNumpy=True)._value)
    assert np.array_equal(fa.getVelocities(asNumpy=True)._value, fb.getVelocities(asNumpy=True)._value)
    ta = mdtraj.load_dcd(str(ref / "traj.dcd"), top=str(ref / "topology.pdb"))
    tb = mdtraj.load_dcd(str(out / "traj.dcd"), top=str(out / "topology.pdb"))
    assert tb.n_frames == len(b["step"]) and np.array_equal(ta.xyz, tb.xyz)
    hist = json.loads((out / "run.json").read_text())["history"]
    assert hist[0]["status"] == "ended without a record (killed or crashed)" and hist[-1]["status"] == "finished"
