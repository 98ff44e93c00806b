"""Stress labels and the molecular virial the model is trained on: extxyz keys and units,
the reference molecular virial against finite differences of an analytic teacher, the
teacher's and the prior's stress by strained energies, cgaa label --stress, and training
with loss.virial (and its refusal of frames without a stress)."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
import yaml

from cgaa.data.dataset import frame_tensors, load_frames
from cgaa.core.extxyz import STRESS, FrameError, make_frame, read_frames, write_frames
from cgaa.core.model import ModelConfig, grain_centers
from cgaa.train.config import load_config
from cgaa.train.trainer import train
from cgaa.core.units import ev_per_a3_to_bar
from molecules import molecule_box
from toy_teacher import make_frames, toy_energy_forces, write_dataset

COUNTS = {"Li": 2, "PF6": 2, "EC": 4, "EMC": 3}


def _frame(**info):
    return make_frame(["Li", "F"], np.array([[0.0, 0, 0], [2.0, 0, 0]]), np.eye(3) * 10, energy=0.0,
                      forces=np.zeros((2, 3)), info=info)


def test_stress_keys_voigt_and_virial_are_mapped(tmp_path):
    s = np.array([[1.0, 0.4, 0.5], [0.4, 2.0, 0.6], [0.5, 0.6, 3.0]]) * 1e-3
    voigt = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
    frames = [_frame(REF_stress=s), _frame(stress=voigt), _frame(virial=-s * 1000.0), _frame()]
    write_frames(tmp_path / "f.xyz", frames)
    back = read_frames(tmp_path / "f.xyz")
    for at in back[:3]:
        np.testing.assert_allclose(at.info[STRESS], s, rtol=1e-12)
        assert "stress" not in at.info and "virial" not in at.info
    assert STRESS not in back[3].info
    # one eV/Å³ is 1.602 176 634 MPa·1e5 = 1 602 176.634 bar
    assert ev_per_a3_to_bar(1.0) == pytest.approx(1602176.634, rel=1e-12)


def test_bad_stress_is_named(tmp_path):
    with pytest.raises(FrameError, match="frame 0 .*REF_stress has 4 values"):
        write_frames(tmp_path / "a.xyz", [_frame(REF_stress=np.ones(4))])
    with pytest.raises(FrameError, match="NaN"):
        write_frames(tmp_path / "b.xyz", [_frame(REF_stress=np.full((3, 3), np.nan))])
    at = _frame(REF_stress=np.eye(3))
    at.pbc = False
    with pytest.raises(FrameError, match="no periodic cell"):
        write_frames(tmp_path / "c.xyz", [at])


def test_reference_molecular_virial_is_rigid_grain_strain_derivative(tmp_path):
    """frame_tensors' virial_mol (from σ and F) equals −∂E/∂ε of the toy teacher for a strain
    of grain centres and box with the grains' internal geometry fixed."""
    path = write_dataset(tmp_path / "t.xyz", COUNTS, 1, seed=3, stress=True)
    frame = load_frames(path)[0]
    from cgaa.core.inputs import vocabulary

    el, keys, names = vocabulary([frame.grain_map], [frame.numbers])
    cfg = ModelConfig(el, keys, names)
    ref = frame_tensors(frame, cfg, torch.float64)
    atoms = read_frames(path)[0]
    template = atoms.positions.copy()  # r0 only enters through fixed constants: any fixed template will do
    gi = frame.grain_map.grain_index
    m = torch.tensor([dict(zip(cfg.elements, cfg.masses))[int(z)] for z in frame.numbers], dtype=torch.float64)
    r, u, _ = grain_centers(torch.tensor(frame.positions), m, torch.tensor(gi), frame.grain_map.n_grains,
                            torch.tensor(frame.cell))
    r, u = r.numpy(), u.numpy()
    e0, f0, s0 = toy_energy_forces(atoms, gi, template, stress=True)
    # the data's forces/stress were computed with the true template; recompute with this one for a consistent E
    tensors = frame_tensors(type(frame)(**{**frame.__dict__, "forces": f0, "stress": s0}), cfg, torch.float64)
    h = 1e-5
    fd = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            e = []
            for sgn in (1, -1):
                d = np.eye(3)
                d[a, b] += sgn * h
                at = atoms.copy()
                at.positions = (r @ d.T)[gi] + u
                at.cell = frame.cell @ d.T
                e.append(toy_energy_forces(at, gi, template)[0])
            fd[a, b] = -(e[0] - e[1]) / (2 * h)
    assert np.abs(fd).max() > 1e-2
    np.testing.assert_allclose(tensors["virial_mol"].numpy(), fd, atol=1e-6 * np.abs(fd).max())
    assert ref["volume"] == pytest.approx(abs(np.linalg.det(frame.cell)))


@pytest.mark.parametrize("prior", ["teacher_bonded", "teacher_valence", "teacher_intra"])
def test_prior_stress_is_minus_intramolecular_virial(prior):
    """The prior acts inside molecules: its molecular virial is zero, so its stress is exactly
    σ = −(1/V) Σ_i F_i ⊗ u_i. Checks the strained-energy stress (shear strains included) and its sign."""
    pytest.importorskip("openmm")
    from cgaa.systems.topology import topology_from_atoms
    from cgaa.priors import PriorEvaluator

    atoms, gidx = molecule_box({"Li": 1, "PF6": 1, "EC": 2, "EMC": 2}, np.diag([17.0] * 3), seed=5, spacing=8.5)
    atoms.positions += np.random.default_rng(0).normal(scale=0.05, size=atoms.positions.shape)
    ev = PriorEvaluator(topology_from_atoms(atoms, gidx)[0], prior)
    _, f = ev.compute(atoms.positions, atoms.cell[:])
    sigma = ev.stress(atoms.positions, atoms.cell[:])
    m = torch.tensor(atoms.get_masses())
    _, u, _ = grain_centers(torch.tensor(atoms.positions), m, torch.tensor(gidx), int(gidx.max()) + 1,
                            torch.tensor(atoms.cell[:]))
    expect = -(f.T @ u.numpy()) / atoms.get_volume()
    assert np.abs(expect).max() > 1e-5
    np.testing.assert_allclose(sigma, expect, atol=1e-5 * np.abs(expect).max())


def test_teacher_stress_labels_and_prior_residual(tmp_path):
    """cgaa label --stress with the teacher writes REF_stress; the teacher's pressure falls
    when the box is expanded; a prior subtracts its own stress from the label."""
    pytest.importorskip("openmm")
    from cgaa.cli import main
    from cgaa.priors import PriorEvaluator, topology_for_atoms
    from cgaa.teacher.sample import sample_teacher

    sample_teacher("lipf6-ec-emc-1m", tmp_path / "s.xyz", n_atoms=600, n_frames=1, stride=5,
                   equilibration_steps=5, cutoff=0.8, platform="CPU", hot_fraction=0, distorted_fraction=0,
                   progress=False, stress=False)
    at = read_frames(tmp_path / "s.xyz")[0]
    big = at.copy()
    big.set_cell(at.cell[:] * 1.05, scale_atoms=False)
    gi = at.arrays["grain"]
    for g in np.unique(gi):  # expand by moving molecules rigidly
        sel = gi == g
        c = at.positions[sel].mean(0)
        big.positions[sel] += 0.05 * c
    write_frames(tmp_path / "two.xyz", [at, big])
    assert main(["label", str(tmp_path / "two.xyz"), "-o", str(tmp_path / "l.xyz"), "-c", "teacher",
                 "--calc-arg", "cutoff=0.8", "--stress", "--no-progress"]) == 0
    lab = read_frames(tmp_path / "l.xyz")
    p = [-np.trace(x.info[STRESS]) / 3 for x in lab]
    assert np.isfinite(p).all() and p[1] < p[0]
    resid = load_frames(tmp_path / "l.xyz", prior="teacher_bonded")
    ev = PriorEvaluator(topology_for_atoms(lab[0]), "teacher_bonded")
    for x, r in zip(lab, resid):
        np.testing.assert_allclose(r.stress + ev.stress(x.positions, x.cell[:]), x.info[STRESS], atol=1e-12)


TINY_MODEL = {"cutoff": 7.0, "channels": 8, "num_layers": 1, "num_basis": 6, "radial_hidden": 16, "lmax": 1,
              "pair_cutoff": 4.0}


def _config(tmp_path, data, virial):
    cfg = {"data": {"train": [str(data)], "val_fraction": 0.25, "test_fraction": 0.15},
           "model": TINY_MODEL,
           "training": {"epochs": 3, "batch_size": 3, "lr": 0.01, "ema_decay": 0.5, "seed": 3,
                        "loss": {"energy": 10.0, "virial": virial}},
           "output": {"dir": str(tmp_path / "run")}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return load_config(path)


def test_training_with_virial_reports_pressure_errors(tmp_path):
    data = write_dataset(tmp_path / "frames.xyz", COUNTS, 10, seed=4, stress=True)
    res = train(_config(tmp_path, data, 50.0), progress=False)
    rows = list(csv.DictReader(open(res.run_dir / "metrics.csv")))
    v = [float(r["val_virial_rmse_meV_per_atom"]) for r in rows]
    assert np.isfinite(v).all() and v[-1] < v[0]
    m = res.test_metrics
    assert m["n_frames_with_stress"] == m["n_frames"] > 0
    assert np.isfinite(m["pressure_rmse_bar"]) and m["pressure_rmse_bar"] > 0


def test_virial_loss_refuses_frames_without_stress(tmp_path):
    frames = make_frames(COUNTS, 6, seed=4, stress=True)
    del frames[2].info["REF_stress"]
    data = write_frames(tmp_path / "frames.xyz", frames)
    with pytest.raises(ValueError, match=r"frames.xyz frame 2: no stress label .*loss.virial"):
        train(_config(tmp_path, data, 1.0), progress=False)
