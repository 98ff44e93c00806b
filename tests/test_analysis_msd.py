"""MSD, drift removal, wrapping and self-diffusion on synthetic Brownian motion with known D."""
from __future__ import annotations

import mdtraj as md
import numpy as np
import pytest

from cgaa.analysis import (WrappedTrajectoryError, analyze, detect_wrapping, diffusion_coefficient, molecule_centers,
                           msd_direct, msd_fft, remove_com_drift, unwrap)

D_TRUE = 1.0e-9  # m²/s  (= 1e-3 nm²/ps)
DT = 1.0  # ps
L = 5.0  # nm


def brownian(n_frames: int, n_part: int, d_m2_s: float = D_TRUE, dt_ps: float = DT, seed: int = 0) -> np.ndarray:
    """Unwrapped 3D Brownian paths (nm): steps N(0, 2 D dt) per component."""
    rng = np.random.default_rng(seed)
    sigma = np.sqrt(2.0 * d_m2_s * 1e6 * dt_ps)  # nm
    x0 = rng.uniform(0, L, size=(1, n_part, 3))
    return x0 + np.concatenate([np.zeros((1, n_part, 3)), np.cumsum(rng.normal(scale=sigma, size=(n_frames - 1, n_part, 3)), axis=0)])


def li_trajectory(xyz: np.ndarray, box: float = L) -> md.Trajectory:
    """In-memory mdtraj trajectory of Li ions (one residue each) in a cubic box."""
    top = md.Topology()
    ch = top.add_chain()
    for _ in range(xyz.shape[1]):
        r = top.add_residue("LI", ch)
        top.add_atom("LI", md.element.lithium, r)
    T = xyz.shape[0]
    return md.Trajectory(xyz.astype(np.float32), top, time=np.arange(T) * DT,
                         unitcell_lengths=np.full((T, 3), box), unitcell_angles=np.full((T, 3), 90.0))


def test_fft_msd_equals_direct_average_over_all_origins():
    x = brownian(300, 5, seed=1)
    np.testing.assert_allclose(msd_fft(x), msd_direct(x), rtol=1e-9, atol=1e-9)
    per = msd_fft(x, per_particle=True)
    assert per.shape == (300, 5)
    np.testing.assert_allclose(per.mean(axis=1), msd_fft(x), rtol=1e-12)


def test_brownian_diffusion_within_5_percent():
    # 1000 particles x 2000 frames: statistical error well below 1%, so 5% is a real test.
    x = brownian(2000, 1000, seed=2)
    res = diffusion_coefficient(x, DT)
    assert res.window.diffusive and res.window.auto
    assert abs(res.D_m2_s - D_TRUE) / D_TRUE < 0.05
    assert np.isfinite(res.D_err_m2_s) and 0 < res.D_err_m2_s < 0.05 * D_TRUE
    assert res.error_method == "blocks(5)"
    assert abs(res.D_m2_s - D_TRUE) < 5 * res.D_err_m2_s + 0.01 * D_TRUE
    # a user window gives the same D
    res2 = diffusion_coefficient(x, DT, window_ps=(10.0, 100.0))
    assert abs(res2.D_m2_s - D_TRUE) / D_TRUE < 0.05
    assert not res2.window.auto


def test_replicas_give_replica_error():
    reps = [brownian(800, 300, seed=s) for s in (3, 4, 5)]
    res = diffusion_coefficient(reps, DT)
    assert res.error_method == "replicas(3)"
    assert len(res.D_replicas_m2_s) == 3
    assert abs(res.D_m2_s - D_TRUE) / D_TRUE < 0.05


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_drift_is_removed_in_analyze():
    x = brownian(1500, 800, seed=6)
    t = np.arange(1500)[:, None, None] * DT
    drifted = x + 0.02 * t * np.array([1.0, -0.5, 0.3])  # nm/ps system drift
    traj = li_trajectory(drifted)
    res = analyze(traj, dt_ps=DT, charges={"Li": 0}, structure=False)
    assert abs(res.diffusion["Li"].D_m2_s - D_TRUE) / D_TRUE < 0.05
    # without drift removal the same data would be far off
    raw = diffusion_coefficient(drifted, DT)
    assert raw.D_m2_s > 2 * D_TRUE
    # and remove_com_drift itself leaves the (mass-weighted) COM fixed
    fixed = remove_com_drift(drifted, np.full(800, 6.94))
    com = fixed.mean(axis=1)
    np.testing.assert_allclose(com, np.broadcast_to(com[0], com.shape), atol=1e-9)


def test_wrapped_copy_is_detected_and_unwrapped():
    x = brownian(600, 400, seed=7)
    wrapped = np.mod(x, L)
    assert not detect_wrapping(x, np.tile(np.eye(3) * L, (600, 1, 1))).wrapped
    chk = detect_wrapping(wrapped, np.tile(np.eye(3) * L, (600, 1, 1)))
    assert chk.wrapped and chk.n_jumps > 0 and chk.atom >= 0 and chk.max_fraction > 0.5
    np.testing.assert_allclose(unwrap(wrapped, np.tile(np.eye(3) * L, (600, 1, 1))), x, atol=1e-9)
    traj = li_trajectory(wrapped)
    with pytest.raises(WrappedTrajectoryError, match="wrapped"):
        analyze(traj, dt_ps=DT, structure=False)
    res = analyze(traj, dt_ps=DT, structure=False, unwrap_input=True)
    assert abs(res.diffusion["Li"].D_m2_s - D_TRUE) / D_TRUE < 0.05
    assert res.inputs["unwrapped_by_cgaa"]


def test_unwrap_triclinic_box():
    rng = np.random.default_rng(8)
    box = np.array([[4.0, 0, 0], [1.0, 4.0, 0], [0.5, 0.7, 4.0]])
    x = brownian(200, 50, seed=9)
    frac = x @ np.linalg.inv(box)
    wrapped = (frac - np.floor(frac)) @ box
    boxes = np.tile(box, (200, 1, 1))
    assert detect_wrapping(wrapped, boxes).wrapped
    u = unwrap(wrapped, boxes)
    np.testing.assert_allclose(u - u[0], x - x[0], atol=1e-9)
    assert rng is not None


def test_molecule_centres_whole_across_the_boundary():
    # a diatomic split over the box face: its centre must be next to the atoms, not mid-box
    box = np.tile(np.eye(3) * 3.0, (2, 1, 1))
    xyz = np.array([[[0.05, 1.0, 1.0], [2.95, 1.0, 1.0]], [[0.06, 1.0, 1.0], [2.96, 1.0, 1.0]]])
    c = molecule_centers(xyz, [np.array([0, 1])], np.array([1.0, 1.0]), box)
    np.testing.assert_allclose(c[:, 0, 0], [0.0, 0.01], atol=1e-12)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_no_diffusive_regime_is_flagged():
    # a particle in a harmonic trap (Ornstein-Uhlenbeck): MSD plateaus, never slope 1 at long times
    rng = np.random.default_rng(10)
    T, N = 2000, 200
    x = np.zeros((T, N, 3))
    for t in range(1, T):
        x[t] = 0.8 * x[t - 1] + rng.normal(scale=0.05, size=(N, 3))
    res = diffusion_coefficient(x, DT)
    assert not res.window.diffusive
    assert any("no diffusive regime" in w for w in res.warnings)


def test_window_too_long_is_a_clear_error():
    x = brownian(100, 10, seed=11)
    with pytest.raises(ValueError, match="too short for the requested fit window"):
        diffusion_coefficient(x, DT, window_ps=(10.0, 500.0))
    with pytest.raises(ValueError, match="start < end"):
        diffusion_coefficient(x, DT, window_ps=(50.0, 10.0))
