"""extxyz I/O: cgaa keys, key-convention mapping, validation, atomic writes."""
from __future__ import annotations

import os

import numpy as np
import pytest
from ase import Atoms
import ase.io

from cgaa.core.extxyz import FrameError, make_frame, read_frames, write_frames


def _frame(n=4, e=-1.5, seed=0):
    rng = np.random.default_rng(seed)
    return make_frame(["Li", "P", "F", "F"][:n], rng.uniform(0, 9, (n, 3)), np.eye(3) * 10.0,
                      energy=e, forces=rng.normal(size=(n, 3)), grain=[0, 1, 1, 1][:n],
                      resname=["LI", "PF6", "PF6", "PF6"][:n],
                      info={"teacher": "t", "temperature": 300.0, "recipe": "r", "config_type": "equilibrium"})


def test_roundtrip_keeps_keys(tmp_path):
    frames = [_frame(seed=i, e=-float(i)) for i in range(3)]
    path = write_frames(tmp_path / "a.xyz", frames)
    back = read_frames(path)
    assert len(back) == 3
    for a, b in zip(frames, back):
        assert b.info["REF_energy"] == pytest.approx(a.info["REF_energy"])
        np.testing.assert_allclose(b.arrays["REF_forces"], a.arrays["REF_forces"], atol=1e-7)
        np.testing.assert_allclose(b.positions, a.positions, atol=1e-7)
        assert list(b.arrays["grain"]) == [0, 1, 1, 1]
        assert list(b.arrays["resname"]) == ["LI", "PF6", "PF6", "PF6"]
        assert b.info["config_type"] == "equilibrium" and b.info["temperature"] == 300.0
        assert b.pbc.all() and np.allclose(b.cell.array, np.eye(3) * 10)


@pytest.mark.parametrize("ekey,fkey", [("energy", "forces"), ("total_energy", "forces"),
                                       ("REF_energy", "REF_forces"), ("energy", "force")])
def test_key_conventions_are_mapped(tmp_path, ekey, fkey):
    at = Atoms("H2O", positions=[[0, 0, 0], [0, 0, 1], [1, 0, 0]], cell=np.eye(3) * 5, pbc=True)
    at.info[ekey] = -3.25
    at.arrays[fkey] = np.arange(9.0).reshape(3, 3)
    ase.io.write(tmp_path / "in.xyz", [at], format="extxyz")  # ASE may move these into a calculator
    fr = read_frames(tmp_path / "in.xyz")[0]
    assert fr.info["REF_energy"] == pytest.approx(-3.25)
    np.testing.assert_allclose(fr.arrays["REF_forces"], np.arange(9.0).reshape(3, 3))
    assert fr.calc is None


def test_explicit_key(tmp_path):
    at = Atoms("H2", positions=[[0, 0, 0], [0, 0, 1]], cell=np.eye(3) * 5, pbc=True)
    at.info["dft_E"] = 1.0
    at.info["energy"] = 2.0
    at.arrays["dft_F"] = np.ones((2, 3))
    ase.io.write(tmp_path / "in.xyz", [at], format="extxyz")
    fr = read_frames(tmp_path / "in.xyz", energy_key="dft_E", forces_key="dft_F")[0]
    assert fr.info["REF_energy"] == 1.0


def test_missing_forces_named(tmp_path):
    ok = _frame()
    bad = _frame(seed=1)
    del bad.arrays["REF_forces"]
    ase.io.write(tmp_path / "m.xyz", [ok, bad], format="extxyz")
    with pytest.raises(FrameError, match=r"m\.xyz frame 1: no forces"):
        read_frames(tmp_path / "m.xyz")


def test_nan_named(tmp_path):
    bad = _frame()
    bad.arrays["REF_forces"][2, 1] = np.nan
    ase.io.write(tmp_path / "n.xyz", [bad], format="extxyz")
    with pytest.raises(FrameError, match=r"frame 0: forces are NaN/inf on atom\(s\) \[2\]"):
        read_frames(tmp_path / "n.xyz")
    bad2 = _frame()
    bad2.info["REF_energy"] = float("nan")
    ase.io.write(tmp_path / "n2.xyz", [bad2], format="extxyz")
    with pytest.raises(FrameError, match="energy is nan"):
        read_frames(tmp_path / "n2.xyz")


def test_atom_count_mismatch(tmp_path):
    write_frames(tmp_path / "c.xyz", [_frame()])
    lines = (tmp_path / "c.xyz").read_text().splitlines()
    (tmp_path / "broken.xyz").write_text("\n".join(["5"] + lines[1:]) + "\n")  # header says 5, 4 atom lines
    with pytest.raises(FrameError, match="broken.xyz"):
        read_frames(tmp_path / "broken.xyz")
    with pytest.raises(FrameError, match="has 4 atoms, expected 7"):
        read_frames(tmp_path / "c.xyz", n_atoms=7)


def test_forces_shape_mismatch_on_write_leaves_nothing(tmp_path):
    good = _frame()
    bad = _frame()
    bad.arrays["REF_forces"] = np.zeros((4, 3))
    bad.info.pop("REF_energy")
    with pytest.raises(FrameError, match="frame 1 .*no energy"):
        write_frames(tmp_path / "w.xyz", [good, bad])
    assert os.listdir(tmp_path) == []


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="nope.xyz"):
        read_frames("nope.xyz")
