"""cgaa on Dask (cgaa.distributed): labelling and replica sets on a 2-worker LocalCluster give the
serial results; a worker killed mid-task is recovered, each item done once; resumable sets.

Small on purpose (a 2-core CI machine): a few LJ frames, a 68-atom box for 60 MD steps. No
wall-clock assertions; generous timeouts only.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")

from ase.calculators.lj import LennardJones  # noqa: E402

from cgaa.core.extxyz import make_frame, write_frames  # noqa: E402
from cgaa.distributed.cluster import config_from_dict, load_config, open_client  # noqa: E402
from cgaa.distributed.label import label_file_distributed, parts_dir  # noqa: E402
from cgaa.teacher.label import LabelError, label_file  # noqa: E402

LJ = {"sigma": 2.0, "epsilon": 0.02, "rc": 5.0, "smooth": True}


@pytest.fixture(scope="module")
def client():
    """A 2-worker LocalCluster, processes, one thread each (the acceptance setting)."""
    cfg = config_from_dict({"local": {"n_workers": 2, "threads_per_worker": 1}, "timeout_s": 300,
                            "wait_for_workers": 2, "allowed_failures": 3})
    with open_client(cfg) as c:
        yield c


def _frames(n=7):
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        pos = np.array([[0, 0, 0], [2.1, 0, 0], [0, 2.3, 0.2], [4.0, 4.0, 4.0]]) + rng.normal(0, 0.05, (4, 3))
        out.append(make_frame(["Li", "F", "F", "Li"], pos, np.eye(3) * 12, energy=0.0, forces=np.zeros((4, 3)),
                              grain=[0, 1, 2, 3], resname=["LI", "X", "X", "LI"], info={"idx": i}))
    return out


class _Logged(LennardJones):
    """LJ that leaves one file per frame it labelled (in ``log``), and makes its worker process exit
    on frame ``die_at`` the first time it meets it (``died`` marks that it did)."""

    def __init__(self, log, die_at=-1, fail_at=-1, **kw):
        super().__init__(**kw)
        self.log, self.die_at, self.fail_at = Path(log), int(die_at), int(fail_at)

    def calculate(self, atoms=None, properties=("energy",), system_changes=None):
        idx = int(atoms.info["idx"])
        if idx == self.die_at and not (self.log / "died").exists():
            (self.log / "died").write_text(str(os.getpid()))
            os._exit(1)  # the worker process dies mid-task, as a node lost or a job killed
        if idx == self.fail_at and not (self.log / "failed").exists():
            (self.log / "failed").write_text("")
            raise RuntimeError("SCF did not converge")
        super().calculate(atoms, properties, system_changes or ["positions"])
        (self.log / f"frame-{idx}-{os.getpid()}-{os.urandom(4).hex()}").write_text("")


def logged_lj(log, die_at=-1, fail_at=-1):
    """Factory for the ``module:callable`` spec (the workers import this module)."""
    return _Logged(log, die_at, fail_at, **LJ)


def _counts(log: Path):
    out = {}
    for p in log.glob("frame-*"):
        i = int(p.name.split("-")[1])
        out[i] = out.get(i, 0) + 1
    return out


def test_config_keys_and_errors(tmp_path):
    cfg = config_from_dict({})
    assert cfg.cluster == "local" and cfg.address is None and cfg.task_threads == 1
    cfg = load_config(None, address="tcp://10.0.0.1:8786")
    assert cfg.address == "tcp://10.0.0.1:8786" and cfg.task_threads is None
    p = tmp_path / "slurm.yaml"
    p.write_text("cluster: slurm\njobqueue: {cores: 8, memory: 16GB, walltime: '01:00:00'}\njobs: 2\nretries: 1\n")
    cfg = load_config(p)
    assert cfg.cluster == "slurm" and cfg.jobqueue["cores"] == 8 and cfg.jobs == 2 and cfg.retries == 1
    # --scheduler replaces the file's cluster
    assert load_config(p, address="tcp://h:1").address == "tcp://h:1"
    for bad, match in (({"nodes": 3}, "unknown key"), ({"cluster": "lsf"}, "cluster must be one of"),
                       ({"cluster": "local", "jobs": 2}, "jobs/adapt are for"),
                       ({"address": "tcp://x:1", "cluster": "slurm"}, "not both"),
                       ({"retries": -1}, "retries must be"), ({"chunk_frames": 0}, "chunk_frames must be")):
        with pytest.raises(ValueError, match=match):
            config_from_dict(bad, "x.yaml")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_config(tmp_path / "none.yaml")


def test_slurm_job_script_from_the_config():
    pytest.importorskip("dask_jobqueue")
    from cgaa.distributed.cluster import make_cluster

    cfg = config_from_dict({"cluster": "slurm", "jobqueue": {"cores": 4, "memory": "8GB", "walltime": "00:10:00",
                                                             "account": "proj", "job_extra_directives": ["--gres=gpu:1"]},
                            "adapt": {"minimum_jobs": 0, "maximum_jobs": 2}})
    cluster = make_cluster(cfg)  # adaptive with minimum 0: no job is submitted
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#SBATCH -A proj" in script and "--gres=gpu:1" in script and "00:10:00" in script


def test_labelling_on_two_workers_gives_the_serial_bytes(tmp_path, client):
    write_frames(tmp_path / "in.xyz", _frames())
    n = label_file(tmp_path / "in.xyz", tmp_path / "serial.xyz", "lj", calculator_kwargs=LJ, progress=False)
    m = label_file_distributed(tmp_path / "in.xyz", tmp_path / "dask.xyz", "lj", calculator_kwargs=LJ,
                               client=client, chunk_frames=2, progress=False)
    assert n == m == 7
    assert (tmp_path / "dask.xyz").read_bytes() == (tmp_path / "serial.xyz").read_bytes()
    assert not parts_dir(tmp_path / "dask.xyz").exists()
    # a calculator object (pickled to the workers) instead of a spec: same bytes
    label_file_distributed(tmp_path / "in.xyz", tmp_path / "obj.xyz", LennardJones(**LJ), name="lj", client=client,
                           chunk_frames=3, progress=False)
    assert (tmp_path / "obj.xyz").read_bytes() == (tmp_path / "serial.xyz").read_bytes()


def test_a_worker_killed_mid_chunk_is_recovered_and_each_frame_labelled_once(tmp_path, client):
    write_frames(tmp_path / "in.xyz", _frames())
    label_file(tmp_path / "in.xyz", tmp_path / "serial.xyz", "lj", calculator_kwargs=LJ, progress=False)
    log = tmp_path / "log"
    log.mkdir()
    # frame 2 opens the second chunk of 2: its worker dies there once, the scheduler runs the chunk again
    label_file_distributed(tmp_path / "in.xyz", tmp_path / "dask.xyz", "test_distributed:logged_lj",
                           calculator_kwargs={"log": str(log), "die_at": 2}, name="lj", client=client,
                           chunk_frames=2, progress=False, retries=0)
    assert (log / "died").exists()  # a worker really died
    assert _counts(log) == {i: 1 for i in range(7)}  # every frame labelled, none twice
    assert (tmp_path / "dask.xyz").read_bytes() == (tmp_path / "serial.xyz").read_bytes()
    client.wait_for_workers(2, timeout=300)  # (the nanny restarted the dead worker)


def test_cgaa_label_on_a_scheduler_address(tmp_path, client, capsys):
    from cgaa.cli import main

    write_frames(tmp_path / "in.xyz", _frames(3))
    args = ["label", str(tmp_path / "in.xyz"), "-c", "lj"] + [f"--calc-arg={k}={v}" for k, v in LJ.items()]
    assert main(args + ["-o", str(tmp_path / "serial.xyz"), "--no-progress"]) == 0
    address = client.scheduler.address
    assert main(args + ["-o", str(tmp_path / "dask.xyz"), "--scheduler", address, "--chunk-frames", "1",
                        "--no-progress"]) == 0
    assert "on Dask" in capsys.readouterr().out
    assert (tmp_path / "dask.xyz").read_bytes() == (tmp_path / "serial.xyz").read_bytes()
    assert main(args + ["-o", str(tmp_path / "x.xyz"), "--chunk-frames", "2"]) == 2  # only with Dask


def test_labelling_resumes_from_its_chunks_and_names_a_failed_frame(tmp_path, client):
    write_frames(tmp_path / "in.xyz", _frames())
    label_file(tmp_path / "in.xyz", tmp_path / "serial.xyz", "lj", calculator_kwargs=LJ, progress=False)
    log = tmp_path / "log"
    log.mkdir()
    kw = dict(name="lj", chunk_frames=2, progress=False)
    spec = "test_distributed:logged_lj"
    # the calculator fails on frame 5, once (chunks run here, in order: chunks 0-1 and 2-3 finish first)
    with pytest.raises(LabelError, match=r"in.xyz frame 5: calculator 'lj' failed.*2 finished chunks are kept"):
        label_file_distributed(tmp_path / "in.xyz", tmp_path / "out.xyz", spec,
                               calculator_kwargs={"log": str(log), "fail_at": 5}, **kw)
    parts = parts_dir(tmp_path / "out.xyz")
    assert sorted(p.name for p in parts.glob("frames-*")) == ["frames-0000000-0000001.xyz",
                                                                "frames-0000002-0000003.xyz"]
    assert not (tmp_path / "out.xyz").exists()
    for p in log.glob("frame-*"):
        p.unlink()
    # the same command again, on the cluster: only the missing chunks are labelled
    label_file_distributed(tmp_path / "in.xyz", tmp_path / "out.xyz", spec, client=client,
                           calculator_kwargs={"log": str(log), "fail_at": 5}, **kw)
    assert _counts(log) == {4: 1, 5: 1, 6: 1}
    assert (tmp_path / "out.xyz").read_bytes() == (tmp_path / "serial.xyz").read_bytes()
    assert not parts.exists()
    # chunks of another input are refused, naming the folder
    parts.mkdir()
    (parts / "manifest.json").write_text(json.dumps({"n_frames": 3, "fingerprint": "x", "teacher": "lj",
                                                     "chunk_frames": 2, "stress": False, "keep_previous": True,
                                                     "max_force": 50.0}))
    with pytest.raises(ValueError, match=r"out.xyz.parts holds the chunks of another labelling \(n_frames"):
        label_file_distributed(tmp_path / "in.xyz", tmp_path / "out.xyz", "lj", calculator_kwargs=LJ, **kw)
    label_file_distributed(tmp_path / "in.xyz", tmp_path / "out.xyz", "lj", calculator_kwargs=LJ, resume=False, **kw)
    assert (tmp_path / "out.xyz").read_bytes() == (tmp_path / "serial.xyz").read_bytes()


# ----------------------------------------------------------------------------- replica sets
def test_cgaa_replicas_refuses_bad_flags(tmp_path, capsys):
    from cgaa.cli import main

    assert main(["replicas", "box.pdb", "--replicas", "0", "--out", str(tmp_path)]) == 2
    assert main(["replicas", "box.pdb", "--steps", "5", "--set", "steps=6", "--out", str(tmp_path)]) == 2
    assert main(["replicas", "box.pdb", "--set", "restart=true", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--replicas must be >= 1" in err and "given by its own flag" in err and "set by the replica set" in err


@pytest.fixture(scope="module")
def md_parts(tmp_path_factory):
    """A deployed random model (a file: what workers are given), the 68-atom box of test_openmm
    and short-run settings with its classical stabiliser."""
    pytest.importorskip("openmm")
    pytest.importorskip("openmmtorch")
    from cgaa.core.modelfile import save_model
    from test_openmm import small_system, stabilizer

    eager, top, pos, _ = small_system(rms_force=0.3)
    model = str(save_model(eager, tmp_path_factory.mktemp("model") / "model.pt"))
    simulate = dict(steps=60, report_interval=10, checkpoint_interval=20, platform="Reference",
                    minimize_iterations=10, thermalize_ps=0.01, customize_system=stabilizer(pos))
    return model, (top, pos), simulate


def _state(run_dir: Path):
    from cgaa.md.rundir import load_state_csv

    st = load_state_csv(run_dir / "state.csv")
    st.pop("speed_ns_day")
    return st


def _xyz(run_dir: Path):
    import mdtraj

    return mdtraj.load_dcd(str(run_dir / "traj.dcd"), top=str(run_dir / "topology.pdb")).xyz


def test_a_replica_set_on_two_workers_gives_the_serial_runs_and_analysis(tmp_path, client, md_parts):
    from cgaa.distributed.replicas import run_replicas

    model, system_input, simulate = md_parts
    kw = dict(replicas=2, seed=5, simulate=simulate, progress=False, analyze={"n_blocks": 1, "structure": False})
    serial = run_replicas(system_input, model, tmp_path / "serial", **kw)
    dask = run_replicas(system_input, model, tmp_path / "dask", client=client, **kw)
    for rec in (serial, dask):
        assert [r["status"] for r in rec["replicas"]] == ["finished", "finished"]
        assert [r["seed"] for r in rec["replicas"]] == [5, 6]
    for k in range(2):
        a, b = tmp_path / "serial" / f"rep{k}", tmp_path / "dask" / f"rep{k}"
        sa, sb = _state(a), _state(b)
        for col in sa:
            np.testing.assert_array_equal(sa[col], sb[col], err_msg=col)
        np.testing.assert_array_equal(_xyz(a), _xyz(b))
    np.testing.assert_raises(AssertionError, np.testing.assert_array_equal,
                             _xyz(tmp_path / "dask" / "rep0"), _xyz(tmp_path / "dask" / "rep1"))  # two seeds
    ra = json.loads((tmp_path / "serial" / "analysis" / "report.json").read_text())
    rb = json.loads((tmp_path / "dask" / "analysis" / "report.json").read_text())
    assert ra["species"] and ra["species"]["Li"]["D"]["method"] == "replicas(2)"  # pooled over the replicas
    assert ra["species"] == rb["species"] and ra["conductivity"] == rb["conductivity"]
    # a rerun finds the set finished and runs nothing
    again = run_replicas(system_input, model, tmp_path / "dask", client=client, **kw)
    assert [r["wall_s"] for r in again["replicas"]] == [0.0, 0.0]
    with pytest.raises(ValueError, match="other settings"):
        run_replicas(system_input, model, tmp_path / "dask", client=client, **dict(kw, seed=9))


def _die_once(kw):
    """A run function for map_runs: its worker dies at step 30, after the checkpoint of step 20, once."""
    from cgaa.md.run import run_simulation

    run_dir = Path(kw["run_dir"])
    marker = run_dir.with_name(run_dir.name + ".died")
    callback = None
    if not marker.exists():
        def callback(row):
            if row["step"] >= 30:
                marker.write_text("")
                os._exit(1)
    if kw.get("restart"):
        run_simulation(None, None, run_dir, restart=True, steps=kw["steps"], progress=False,
                       customize_system=kw["simulate"]["customize_system"])
    else:
        run_simulation(kw["system_input"], kw["model"], run_dir, seed=kw["seed"], overwrite=True, progress=False,
                       callback=callback, **kw["simulate"])
    hist = json.loads((run_dir / "run.json").read_text())["history"]
    return [h.get("from_step", 0) for h in hist]


def test_a_run_whose_worker_died_continues_from_its_checkpoint(tmp_path, client, md_parts):
    from cgaa.distributed.replicas import map_runs

    model, system_input, simulate = md_parts
    kws = [{"run_dir": str(tmp_path / f"rep{k}"), "restart": False, "steps": 60, "seed": k, "model": model,
            "system_input": system_input, "simulate": simulate} for k in range(2)]
    froms = map_runs(_die_once, kws, client=client, retries=0)
    for k in range(2):
        assert (tmp_path / f"rep{k}.died").exists()
        assert froms[k] == [0, 20]  # the second attempt continued from the checkpoint of step 20
        st = _state(tmp_path / f"rep{k}")
        assert list(st["step"]) == list(range(0, 61, 10))  # nothing lost, no step twice
    client.wait_for_workers(2, timeout=300)
