"""MSD, drift removal, wrapping and self-diffusion on synthetic Brownian motion with known D,
and on a ballistic → caged → diffusive MSD (the fit-window rules against the crossover)."""
from __future__ import annotations

import mdtraj as md
import numpy as np
import pytest

from cgaa.analysis import (WrappedTrajectoryError, analyze, detect_wrapping, diffusion_coefficient, fit_msd,
                           loglog_slope, molecule_centers, msd_direct, msd_fft, remove_com_drift, result_to_dict,
                           unwrap, write_report)
from cgaa.analysis.diffusion import (DEFAULT_MIN_FIT_START_PS, DEFAULT_MIN_RUN_PS, choose_fit_window,
                                     run_length_reason)

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
    assert res.window.diffusive and res.window.auto and res.window.reason == ""
    assert res.window.start_ps >= DEFAULT_MIN_FIT_START_PS
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


# --- ballistic → caged → diffusive ------------------------------------------------------------------
#
# Per Cartesian component the position is y(t) + x(t), independent Gaussian processes:
#  * y: a particle rattling in its cage, a Langevin harmonic oscillator (overdamped, velocity
#    relaxation TAU_V, position relaxation TAU_C, <y²> = CAGE_NM2), autocorrelation
#    C(t) = [TAU_C e^(-t/TAU_C) - TAU_V e^(-t/TAU_V)] / (TAU_C - TAU_V) (smooth at 0: ballistic);
#  * x: the slow escape from the cage, a free Langevin particle with velocity relaxation TAU_C
#    and long-time diffusion coefficient D_CAGE.
# 3D MSD(t) = 6 CAGE_NM2 [1 - C(t)] + 6 D_CAGE [t - TAU_C (1 - e^(-t/TAU_C))]: log-log slope ≈ 2
# below ~0.02 ps, through 1 near 0.1-0.2 ps (local motion inside the cage, 6 CAGE_NM2/TAU_C ≈ 18× the
# true D), < 0.3 at 3-10 ps (caged) and → 1 at long times, where MSD = 6 D_CAGE t + const exactly.
TAU_V, TAU_C = 0.01, 1.0  # ps
CAGE_NM2 = 0.01  # nm² per component
D_CAGE_NM2_PS = 5e-4  # nm²/ps
D_CAGE = D_CAGE_NM2_PS * 1e-6  # m²/s (5e-10, Li-like)
DT_FINE = 0.01  # ps


def cage_msd(t):
    """Exact 3D MSD (nm²) of the cage model at lag times t (ps)."""
    c = (TAU_C * np.exp(-t / TAU_C) - TAU_V * np.exp(-t / TAU_V)) / (TAU_C - TAU_V)
    return 6 * CAGE_NM2 * (1 - c) + 6 * D_CAGE_NM2_PS * (t - TAU_C * (1 - np.exp(-t / TAU_C)))


def cage_trajectory(n_frames: int, n_part: int, dt_ps: float, seed: int) -> np.ndarray:
    """(n_frames, n_part, 3) positions (nm) of the cage model, sampled exactly from its covariance."""
    t = np.arange(n_frames) * dt_ps
    lag = np.abs(t[:, None] - t[None, :])
    c = (TAU_C * np.exp(-lag / TAU_C) - TAU_V * np.exp(-lag / TAU_V)) / (TAU_C - TAU_V)

    def free(u):  # per-component MSD of the free Langevin part
        return 2 * D_CAGE_NM2_PS * (u - TAU_C * (1 - np.exp(-u / TAU_C)))

    cov = CAGE_NM2 * c + 0.5 * (free(t)[:, None] + free(t)[None, :] - free(lag))
    lam, vec = np.linalg.eigh(cov)
    root = vec * np.sqrt(np.clip(lam, 0.0, None))
    rng = np.random.default_rng(seed)
    x = (root @ rng.standard_normal((n_frames, 3 * n_part))).reshape(n_frames, n_part, 3)
    return x + rng.uniform(0, L, size=(1, n_part, 3))


def test_cage_msd_has_ballistic_caged_and_diffusive_regimes():
    # the synthetic curve really is the hard case: slope ~2, then through 1, then < 1, then → 1
    lag = np.arange(400_001) * DT_FINE  # 4 ns
    t_lo, _, s = loglog_slope(lag, cage_msd(lag))
    assert s[0] > 1.5
    assert np.any((t_lo < 1.0) & (np.abs(s - 1) < 0.05))  # the crossover
    assert np.all(s[(t_lo > 3) & (t_lo < 10)] < 0.5)  # caged
    assert abs(s[-1] - 1) < 0.02  # diffusive


def test_long_cage_msd_fit_recovers_D_from_the_diffusive_part():
    lag = np.arange(400_001) * DT_FINE  # a 4 ns run, window up to 400 ps
    msd = cage_msd(lag)
    window, msgs = choose_fit_window(lag, msd, run_ps=4000.0, max_lag_ps=400.0)
    assert window.diffusive and window.reason == "" and msgs == []
    assert window.start_ps > 100.0  # long after the crossover and the cage
    slope, _ = fit_msd(lag, msd, window)
    assert slope / 6 == pytest.approx(D_CAGE_NM2_PS, rel=1e-6)


def test_short_cage_msd_crossover_is_not_accepted():
    lag = np.arange(201) * DT_FINE  # a 2 ps run (the incident), 5 blocks: lags up to 0.2 ps
    msd = cage_msd(lag)
    # the trap: without the minimum start and run length the crossover passes as diffusion, 18× too fast
    trap, _ = choose_fit_window(lag, msd, run_ps=2.0, max_lag_ps=0.2, min_fit_start_ps=0.0, min_run_ps=0.0)
    assert trap.diffusive and trap.end_ps < 1.0
    assert fit_msd(lag, msd, trap)[0] / 6 > 10 * D_CAGE_NM2_PS
    # each rule alone refuses it, with its reason
    w, _ = choose_fit_window(lag, msd, run_ps=2.0, max_lag_ps=0.2, min_run_ps=0.0)
    assert not w.diffusive and "no diffusive regime" in w.reason and "5 ps" in w.reason
    w, msgs = choose_fit_window(lag, msd, run_ps=2.0, max_lag_ps=0.2, min_fit_start_ps=0.0)
    assert not w.diffusive and w.reason.startswith("run too short: 2 ps < 100 ps")
    assert msgs == [w.reason + ": D is NOT a measurement, run longer"]
    # and the defaults give both reasons, one warning
    w, msgs = choose_fit_window(lag, msd, run_ps=2.0, max_lag_ps=0.2)
    assert not w.diffusive and w.reason.startswith("run too short") and "no diffusive regime" in w.reason
    assert len(msgs) == 1 and "NOT a measurement" in msgs[0]
    # a run that sees only the cage (20 ps, one block: lags to 10 ps) is not diffusive either
    lag20 = np.arange(2001) * DT_FINE
    w, _ = choose_fit_window(lag20, cage_msd(lag20), run_ps=20.0, max_lag_ps=10.0, min_run_ps=0.0)
    assert not w.diffusive


def test_run_length_rule():
    assert DEFAULT_MIN_RUN_PS == 100.0 and DEFAULT_MIN_FIT_START_PS == 5.0
    assert run_length_reason(99.0) is not None and "99 ps < 100 ps" in run_length_reason(99.0)
    assert run_length_reason(100.0) is None
    assert run_length_reason(2.0, min_run_ps=0.0) is None
    assert run_length_reason(20.0, min_run_ps=10.0) is None


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_short_cage_run_is_flagged_not_diffusive():
    x = cage_trajectory(201, 400, DT_FINE, seed=20)  # 2 ps, a frame every 10 fs
    # the sampled data reproduce the incident when the two rules are switched off
    old = diffusion_coefficient(x, DT_FINE, min_fit_start_ps=0.0, min_run_ps=0.0)
    assert old.window.diffusive and old.window.end_ps < 1.0
    assert old.D_m2_s > 10 * D_CAGE
    res = diffusion_coefficient(x, DT_FINE)
    assert not res.window.diffusive and res.window.auto
    assert "run too short: 2 ps < 100 ps" in res.window.reason
    assert any("NOT a measurement" in w for w in res.warnings)
    # the minimum start alone already refuses the crossover
    res = diffusion_coefficient(x, DT_FINE, min_run_ps=0.0)
    assert not res.window.diffusive and "no diffusive regime" in res.window.reason
    assert any("no diffusive regime" in w for w in res.warnings)
    # a user window on a too short run is flagged too; min_run_ps=0 lets the user vouch for it
    res = diffusion_coefficient(x, DT_FINE, window_ps=(0.05, 0.2))
    assert not res.window.diffusive and not res.window.auto and "run too short" in res.window.reason
    res = diffusion_coefficient(x, DT_FINE, window_ps=(0.05, 0.2), min_run_ps=0.0)
    assert res.window.diffusive and res.window.reason == ""
    # a window handed over as a FitWindow keeps its own flag (e.g. another result's)
    res = diffusion_coefficient(x, DT_FINE, window=old.window)
    assert res.window.diffusive


@pytest.mark.filterwarnings("ignore::UserWarning")  # one block: no uncertainty
def test_long_cage_run_recovers_D_after_the_cage():
    x = cage_trajectory(2001, 300, 1.0, seed=21)  # 2 ns, a frame every ps
    res = diffusion_coefficient(x, 1.0, n_blocks=1)
    assert res.window.diffusive and res.window.auto and res.window.reason == ""
    assert res.window.start_ps > 50.0  # past the cage (slope < 0.5 up to ~10 ps)
    # sampling noise of 300 particles: a few %; the crossover would give ~18×
    assert abs(res.D_m2_s - D_CAGE) / D_CAGE < 0.15


def ion_trajectory(xyz: np.ndarray, dt_ps: float, box: float = L) -> md.Trajectory:
    """In-memory trajectory: first half of the particles Li⁺, second half Cl⁻ (one residue each)."""
    top = md.Topology()
    ch = top.add_chain()
    n = xyz.shape[1]
    for k in range(n):
        name, el = ("LI", md.element.lithium) if k < n // 2 else ("CL", md.element.chlorine)
        top.add_atom(name, el, top.add_residue(name, ch))
    T = xyz.shape[0]
    return md.Trajectory(xyz.astype(np.float32), top, time=np.arange(T) * dt_ps,
                         unitcell_lengths=np.full((T, 3), box), unitcell_angles=np.full((T, 3), 90.0))


def test_short_run_report_says_not_a_measurement(tmp_path, capsys):
    from cgaa.commands.analyze import _print_summary

    traj = ion_trajectory(cage_trajectory(201, 200, DT_FINE, seed=22), DT_FINE)
    res = analyze(traj, dt_ps=DT_FINE, structure=False)
    assert [s.kind for s in res.species] == ["cation", "anion"] and len(res.diffusion) == 2
    for d in res.diffusion.values():
        assert not d.window.diffusive and "run too short" in d.window.reason
    assert res.inputs["min_fit_start_ps"] == DEFAULT_MIN_FIT_START_PS
    assert res.inputs["min_run_ps"] == DEFAULT_MIN_RUN_PS
    assert any("conductivities" in w and "NOT measurements" in w for w in res.warnings)
    rep = result_to_dict(res)
    assert rep["inputs"]["min_run_ps"] == {"value": 100.0, "unit": "ps"}
    for sp in rep["species"].values():
        assert sp["fit_window"]["diffusive"] is False
        assert "run too short" in sp["fit_window"]["reason"]
        assert sp["D"]["note"].startswith("NOT a measurement")
    assert rep["conductivity"]["einstein_helfand_fit_window"]["diffusive"] is False
    files = write_report(res, tmp_path, plots=False)
    rows = files["diffusion.csv"].read_text().splitlines()
    assert rows[0].endswith(",not_diffusive_reason")
    assert all("run too short" in r for r in rows[1:])
    _print_summary(res, tmp_path, files)
    out = capsys.readouterr().out
    assert out.count("NOT diffusive, not a measurement: ") == len(res.diffusion)
    assert out.count("run too short: 2 ps < 100 ps") >= len(res.diffusion)
    # the same data with the rules relaxed by the caller: no flag, no note
    res = analyze(traj, dt_ps=DT_FINE, structure=False, min_fit_start_ps=0.0, min_run_ps=0.0)
    rep = result_to_dict(res)
    for sp in rep["species"].values():
        assert sp["fit_window"]["diffusive"] is True and "reason" not in sp["fit_window"] and "note" not in sp["D"]


def test_cli_help_states_the_library_defaults(capsys):
    from cgaa.cli import main

    with pytest.raises(SystemExit):
        main(["analyze", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    start = DEFAULT_MIN_FIT_START_PS
    assert f"--min-fit-start PS earliest start of the automatic fit window in ps (default {start:g}:" in out
    assert f"(default {DEFAULT_MIN_RUN_PS:g}; 0 disables)" in out
    assert f"--min-fit-start ({start:g} ps)" in out and f"--min-run ({DEFAULT_MIN_RUN_PS:g} ps)" in out


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_time_window_analyses_exactly_those_frames():
    x = brownian(900, 200, seed=11)
    traj = li_trajectory(x)
    kw = dict(dt_ps=DT, structure=False, fit_window_ps=(5.0, 50.0), min_run_ps=0.0)
    res = analyze(traj, start_ps=200.0, end_ps=700.0, **kw)
    cut = analyze(li_trajectory(x[200:700]), **kw)  # frames at 200, 201, ..., 699 ps
    assert res.inputs["n_frames"] == [500] and res.inputs["time_window_ps"] == [200.0, 700.0]
    assert res.diffusion["Li"].D_m2_s == cut.diffusion["Li"].D_m2_s
    assert res.diffusion["Li"].D_m2_s != analyze(traj, **kw).diffusion["Li"].D_m2_s
    assert analyze(traj, start_ps=800.0, **kw).inputs["n_frames"] == [100]  # to the end
    with pytest.raises(ValueError, match=r"1 frame\(s\) in the time window \[899, end\) ps; its 900 frames span 0-899"):
        analyze(traj, start_ps=899.0, **kw)
    with pytest.raises(ValueError, match="empty or negative"):
        analyze(traj, start_ps=10.0, end_ps=5.0, **kw)
