"""Checkpoints are verified before a restart loads them (``cgaa simulate --restart``): each
record (checkpoint.json, checkpoint.prev.json) holds the file's size and SHA-256; a
truncated, random, empty or otherwise damaged last checkpoint is passed over for the previous
one with a warning naming the file and why, and a run without any usable checkpoint is
refused with a message that names each file (and does not blame the model)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil

import numpy as np
import pytest

openmm = pytest.importorskip("openmm")
pytest.importorskip("openmmtorch")

from cgaa.md.rundir import CheckpointError, Checkpointer, load_state_csv  # noqa: E402
from test_simulate import _run, system_parts  # noqa: E402,F401  (the module fixture)


def _final_positions(out):
    st = openmm.XmlSerializer.deserialize((out / "final_state.xml").read_text())
    return st.getPositions(asNumpy=True)._value


@pytest.fixture(scope="module")
def base_run(tmp_path_factory, system_parts):  # noqa: F811
    """A 40-step run with checkpoints at 20 (previous) and 40 (last), and the same run to 60."""
    root = tmp_path_factory.mktemp("ckpt")
    out = root / "run"
    _run(system_parts, out, steps=40, checkpoint_interval=20, seed=7)
    ref = root / "ref"
    shutil.copytree(out, ref)
    _run(system_parts, ref, steps=60, restart=True)
    return out, ref


def _copy(base, tmp_path, name="c1"):
    dst = tmp_path / name
    shutil.copytree(base, dst)
    return dst


def test_records_hold_size_and_sha256(base_run):
    out, _ = base_run
    for chk, meta in (("checkpoint.chk", "checkpoint.json"), ("checkpoint.prev.chk", "checkpoint.prev.json")):
        rec = json.loads((out / meta).read_text())
        data = (out / chk).read_bytes()
        assert rec["size_bytes"] == len(data) > 1000
        assert rec["sha256"] == hashlib.sha256(data).hexdigest()
    assert json.loads((out / "checkpoint.json").read_text())["step"] == 40
    assert json.loads((out / "checkpoint.prev.json").read_text())["step"] == 20
    found, problems = Checkpointer(out).usable()
    assert [c.path.name for c in found] == ["checkpoint.chk", "checkpoint.prev.chk"] and not problems
    assert all(c.verified for c in found)


@pytest.mark.parametrize("damage", ["truncated", "random", "empty", "legacy-truncated"])
def test_damaged_last_checkpoint_falls_back_loudly(tmp_path, base_run, system_parts, capsys, damage):  # noqa: F811
    """`head -c 1000 run/checkpoint.chk > c1/checkpoint.chk`, random bytes of the same size, an
    empty file, or a truncated file whose record predates checksums: the restart continues
    from checkpoint.prev.chk (step 20), says so on stderr and in run.json, and then follows the
    uninterrupted run."""
    out, ref = base_run
    c1 = _copy(out, tmp_path)
    data = (out / "checkpoint.chk").read_bytes()
    if damage in ("truncated", "legacy-truncated"):
        (c1 / "checkpoint.chk").write_bytes(data[:1000])
    elif damage == "random":
        (c1 / "checkpoint.chk").write_bytes(np.random.default_rng(0).bytes(len(data)))
    else:
        (c1 / "checkpoint.chk").write_bytes(b"")
    if damage == "legacy-truncated":  # a record of an older cgaa: no size, no checksum
        for meta in ("checkpoint.json", "checkpoint.prev.json"):
            rec = json.loads((c1 / meta).read_text())
            rec.pop("size_bytes"), rec.pop("sha256")
            (c1 / meta).write_text(json.dumps(rec))
    capsys.readouterr()
    res = _run(system_parts, c1, steps=60, restart=True)
    err = capsys.readouterr().err
    assert res.restarted_from == 20 and res.steps == 60
    assert "warning" in err and "checkpoint.chk" in err and "continuing from checkpoint.prev.chk (step 20" in err
    why = {"truncated": "1000 bytes where", "random": "SHA-256 differs", "empty": "empty file",
           "legacy-truncated": "checkpoint.chk: "}[damage]
    assert why in err, err
    if damage == "legacy-truncated":
        assert "does not load" in err or "loaded, but" in err, err
    info = json.loads((c1 / "run.json").read_text())
    assert info["history"][-1]["checkpoint"] == "checkpoint.prev.chk"
    assert any("checkpoint.chk" in w for w in info["history"][-1]["warnings"])
    # the state log was cut back to step 20 and continued: the same rows as the run that never broke
    a, b = load_state_csv(ref / "state.csv"), load_state_csv(c1 / "state.csv")
    assert list(b["step"]) == list(range(0, 61, 10))
    assert np.allclose(a["potential_energy_kJ_mol"], b["potential_energy_kJ_mol"], rtol=1e-9, atol=0)
    assert np.abs(_final_positions(ref) - _final_positions(c1)).max() < 1e-10


def test_no_usable_checkpoint_is_refused_naming_each_file(tmp_path, base_run, system_parts, capsys):  # noqa: F811
    from cgaa.cli import main

    out, _ = base_run
    c1 = _copy(out, tmp_path)
    size = (c1 / "checkpoint.chk").stat().st_size
    (c1 / "checkpoint.chk").write_bytes((out / "checkpoint.chk").read_bytes()[:1000])
    (c1 / "checkpoint.prev.chk").write_bytes(b"\0" * size)
    before = (c1 / "state.csv").read_bytes()
    with pytest.raises(CheckpointError) as info:
        _run(system_parts, c1, steps=60, restart=True)
    msg = str(info.value)
    assert "no usable checkpoint" in msg and "checkpoint.chk: 1000 bytes where" in msg
    assert "checkpoint.prev.chk: SHA-256 differs" in msg
    assert "model" not in msg.lower()  # a damaged file is not the model's fault
    assert (c1 / "state.csv").read_bytes() == before  # nothing was truncated
    # through the CLI: one line, exit code 2
    capsys.readouterr()
    assert main(["simulate", "--restart", "--out", str(c1), "--steps", "60", "--no-progress",
                 "--platform", "Reference"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cgaa simulate: error: restart: no usable checkpoint") and "\n" not in err
    # a record without its file, and a file without its record, are named too
    (c1 / "checkpoint.chk").unlink()
    (c1 / "checkpoint.prev.json").unlink()
    with pytest.raises(CheckpointError, match=r"checkpoint\.chk: missing.*checkpoint\.prev\.chk: no "
                                              r"checkpoint\.prev\.json beside it|checkpoint\.prev\.chk: no "
                                              r"checkpoint\.prev\.json beside it.*checkpoint\.chk: missing"):
        _run(system_parts, c1, steps=60, restart=True)


def test_kill_between_the_renames_of_a_save_still_restarts(tmp_path, base_run, system_parts, capsys):  # noqa: F811
    """A kill after checkpoint.chk became checkpoint.prev.chk but before the records moved:
    checkpoint.json (step 40) now matches checkpoint.prev.chk, which the restart finds by
    its checksum."""
    out, ref = base_run
    c1 = _copy(out, tmp_path)
    os.replace(c1 / "checkpoint.chk", c1 / "checkpoint.prev.chk")  # step 1 of a save done, step 2 not
    res = _run(system_parts, c1, steps=60, restart=True)
    assert res.restarted_from == 40
    assert "continuing from checkpoint.prev.chk (step 40, recorded in checkpoint.json)" in capsys.readouterr().err
    assert np.abs(_final_positions(ref) - _final_positions(c1)).max() < 1e-10
