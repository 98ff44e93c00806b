"""Self-diffusion coefficients from MSDs: fit window, linear fit, block/replica errors,
Yeh–Hummer finite-size correction.

Einstein relation in 3D: MSD(t) → 6 D t for t → ∞. D is the slope/6 of a straight-line
fit (free intercept) over a *diffusive window*, where the local log-log slope
d ln MSD / d ln t is close to 1: after the ballistic (slope 2) and caged (slope < 1)
regimes, before the noisy tail (few independent time origins at long lags).

On its way from 2 down to < 1 the slope passes through 1 (inside the cage a molecule
first moves almost freely). A short run sees only that crossover, and a straight line
through it gives a D tens of times too large. Two rules keep it from being called
diffusion: the automatic window never starts before ``min_fit_start_ps``
(:data:`DEFAULT_MIN_FIT_START_PS`), and a run shorter than ``min_run_ps``
(:data:`DEFAULT_MIN_RUN_PS`) is always flagged ``diffusive=False`` with the reason.

Units: positions nm, times ps, MSD nm²; D is returned in m²/s (1 nm²/ps = 1e-6 m²/s).

References: Maginn, Messerly, Carlson, Roe & Elliott, "Best practices for computing
transport properties 1. Self-diffusivity and viscosity from equilibrium molecular
dynamics", LiveCoMS 1, 6324 (2019); Yeh & Hummer, J. Phys. Chem. B 108, 15873 (2004).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from cgaa.core import units
from cgaa.analysis.msd import average_msds, msd_fft
from cgaa.analysis.stats import mean_se

from cgaa.core.units import M2_PER_S_PER_NM2_PER_PS, M_PER_NM, S_PER_PS  # noqa: E402,F401  (re-exported)

#: Yeh–Hummer constant ξ for a cubic lattice (Ewald-like sum), dimensionless.
YEH_HUMMER_XI: float = 2.837297

#: Earliest lag time (ps) at which an automatic fit window may start. In molecular
#: liquids the ballistic regime (slope 2) ends within ~0.1–1 ps and molecules then rattle
#: in the cage of their neighbours (and Li⁺ in its solvation shell) for a few ps; the
#: local slope crosses 1 in between. 5 ps is past both in carbonate electrolytes
#: (EC/EMC/DMC + LiPF6 at room temperature), so a slope ≈ 1 found later is the long-time
#: regime, not the crossover. Lower it (``min_fit_start_ps``, ``--min-fit-start``) only
#: for systems that are known to diffuse sooner (simple or coarse-grained fluids).
DEFAULT_MIN_FIT_START_PS: float = 5.0

#: Shortest run (ps, (frames − 1) × time between frames, shortest replica) whose D is
#: reported as diffusive; shorter runs give ``diffusive=False`` with the reason, for an
#: automatic and a user-given window alike. 100 ps is (i) the shortest run in which the
#: default automatic window can exist at all: start ≥ 5 ps, spanning a factor 2 (to
#: ≥ 10 ps), ending within the first half of each of the 5 error blocks (blocks ≥ 20 ps,
#: 5 × 20 ps = 100 ps); and (ii) about the time ions in carbonate electrolytes need
#: before their MSD becomes linear (the Li⁺ solvation shell lives for tens to hundreds of
#: ps), so a shorter run cannot measure D whatever the window. Nanoseconds are needed for
#: publishable numbers. 0 disables the rule (``min_run_ps``, ``--min-run``).
DEFAULT_MIN_RUN_PS: float = 100.0


@dataclass
class FitWindow:
    """A lag-time window (ps) for the MSD fit.

    Attributes:
        start_ps, end_ps: window bounds in ps (inclusive).
        auto: chosen automatically (True) or given by the user.
        mean_loglog_slope: average d ln MSD / d ln t over the window (1 when diffusive).
        diffusive: False when no window with slope ≈ 1 was found after the minimum start
            time (fallback window used), or when the run is shorter than the minimum run
            length: D is then an estimate, not a measurement.
        reason: why ``diffusive`` is False ("" when it is True).
    """

    start_ps: float
    end_ps: float
    auto: bool
    mean_loglog_slope: float = float("nan")
    diffusive: bool = True
    reason: str = ""


@dataclass
class DiffusionResult:
    """Self-diffusion of one species (or a collective coordinate).

    Attributes:
        D_m2_s: diffusion coefficient, m²/s (from the fit of the mean MSD).
        D_err_m2_s: standard error, m²/s (replicas if ≥2, else blocks; NaN if neither).
        error_method: "replicas(n)", "blocks(n)" or "none".
        window: the fit window.
        lag_ps, msd_nm2: the (replica-averaged) MSD curve, up to half the trajectory.
        slope_nm2_ps, intercept_nm2: the straight-line fit MSD = slope·t + intercept.
        D_blocks_m2_s: D of each block (of each replica), m²/s.
        D_replicas_m2_s: D of each replica, m²/s.
        n_particles: particles averaged over.
        dim: dimensionality used in MSD = 2·dim·D·t.
    """

    D_m2_s: float
    D_err_m2_s: float
    error_method: str
    window: FitWindow
    lag_ps: np.ndarray = field(repr=False)
    msd_nm2: np.ndarray = field(repr=False)
    slope_nm2_ps: float = float("nan")
    intercept_nm2: float = float("nan")
    D_blocks_m2_s: List[float] = field(default_factory=list)
    D_replicas_m2_s: List[float] = field(default_factory=list)
    n_particles: int = 0
    dim: int = 3
    warnings: List[str] = field(default_factory=list)


def loglog_slope(lag_ps: np.ndarray, msd_nm2: np.ndarray, points_per_decade: int = 10
                 ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local slope d ln MSD / d ln t on a log-spaced grid of lags.

    Returns (t_lo, t_hi, slope): the slope between consecutive log-spaced lag indices
    (t_lo, t_hi in ps). Lag 0 is skipped; points with MSD ≤ 0 are dropped.
    """
    n = len(lag_ps)
    if n < 3:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    ndec = max(np.log10(n - 1), 1e-9)
    k = np.unique(np.round(np.geomspace(1, n - 1, max(3, int(ndec * points_per_decade) + 1))).astype(int))
    k = k[msd_nm2[k] > 0]
    if len(k) < 2:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    lt, lm = np.log(lag_ps[k]), np.log(msd_nm2[k])
    slope = np.diff(lm) / np.diff(lt)
    return lag_ps[k[:-1]], lag_ps[k[1:]], slope


def select_fit_window(lag_ps: np.ndarray, msd_nm2: np.ndarray, max_lag_ps: float,
                      slope_tol: float = 0.1, min_span: float = 2.0,
                      min_start_ps: float = DEFAULT_MIN_FIT_START_PS) -> FitWindow:
    """Choose the diffusive window automatically.

    On a log-spaced grid of lags ≤ ``max_lag_ps`` the local log-log slope is computed;
    the longest (in ln t) contiguous run of segments starting at or after
    ``min_start_ps`` with |slope − 1| ≤ ``slope_tol`` after which the slope stays ≈ 1 on
    average is the window. The minimum start (default :data:`DEFAULT_MIN_FIT_START_PS`,
    5 ps) keeps the passage of the slope through 1 between the ballistic (slope 2) and
    caged (slope < 1) regimes out of the window; the tail condition does the same when
    the run is long enough to see the cage. If no run spans a factor ``min_span`` in
    time, the window falls back to [max(max_lag/5, min_start_ps), max_lag] (the
    min_start_ps bound dropped if it leaves fewer than 2 lags) and is flagged
    ``diffusive=False`` with the reason (D is then only an estimate: run longer).
    """
    min_start_ps = max(0.0, float(min_start_ps))
    sel = lag_ps <= max_lag_ps + 1e-12
    t_lo, t_hi, s = loglog_slope(lag_ps[sel], msd_nm2[sel])
    ok = (np.abs(s - 1.0) <= slope_tol) & (t_lo >= min_start_ps - 1e-9)
    w = np.log(t_hi / t_lo) if len(s) else np.zeros(0)
    runs = []
    i = 0
    while i < len(ok):
        if ok[i]:
            j = i
            while j + 1 < len(ok) and ok[j + 1]:
                j += 1
            runs.append((i, j))
            i = j + 1
        else:
            i += 1
    best, best_span = None, 0.0
    for i, j in runs:
        span = math.log(t_hi[j] / t_lo[i])
        if span < math.log(min_span):
            continue
        # the diffusive regime is the last one: the slope must stay ≈ 1 after the window
        if j + 1 < len(s):
            tail = float(np.sum(s[j + 1:] * w[j + 1:]) / np.sum(w[j + 1:]))
            if abs(tail - 1.0) > slope_tol:
                continue
        if span > best_span:
            best, best_span = (i, j), span
    if best is not None:
        i, j = best
        mean_slope = float(np.sum(s[i:j + 1] * w[i:j + 1]) / np.sum(w[i:j + 1]))
        return FitWindow(float(t_lo[i]), float(t_hi[j]), True, mean_slope, True)
    start = max(lag_ps[1], max_lag_ps / 5.0)
    if min_start_ps > start and np.sum((lag_ps >= min_start_ps - 1e-9) & (lag_ps <= max_lag_ps + 1e-9)) >= 2:
        start = min_start_ps
    m = (lag_ps >= start - 1e-9) & (lag_ps <= max_lag_ps + 1e-9)
    lm = np.log(np.clip(msd_nm2[m], 1e-300, None))
    mean_slope = float(np.polyfit(np.log(lag_ps[m]), lm, 1)[0]) if m.sum() >= 2 else float("nan")
    if min_start_ps * min_span > max_lag_ps:
        reason = (f"no diffusive regime: the automatic window starts at ≥ {min_start_ps:g} ps (min_fit_start_ps) "
                  f"and spans a factor {min_span:g}, but the longest usable lag is {max_lag_ps:g} ps")
    else:
        after = f" from {min_start_ps:g} ps" if min_start_ps > 0 else ""
        reason = (f"no diffusive regime: log-log MSD slope not within 1±{slope_tol:g} over a factor "
                  f"{min_span:g} in time{after} up to {max_lag_ps:g} ps")
    return FitWindow(float(start), float(max_lag_ps), True, mean_slope, False, reason)


def run_length_reason(run_ps: float, min_run_ps: float = DEFAULT_MIN_RUN_PS) -> Optional[str]:
    """Why a run of ``run_ps`` (ps) is too short to measure D, or None if it is long enough.

    See :data:`DEFAULT_MIN_RUN_PS` for the default (100 ps); ``min_run_ps`` ≤ 0 disables it.
    """
    if min_run_ps > 0 and run_ps < min_run_ps - 1e-9:
        return (f"run too short: {run_ps:g} ps < {min_run_ps:g} ps minimum (min_run_ps), the MSD of a "
                f"molecular liquid is not linear yet")
    return None


def choose_fit_window(lag_ps: np.ndarray, msd_nm2: np.ndarray, run_ps: float, max_lag_ps: float,
                      slope_tol: float = 0.1, min_fit_start_ps: float = DEFAULT_MIN_FIT_START_PS,
                      min_run_ps: float = DEFAULT_MIN_RUN_PS) -> Tuple[FitWindow, List[str]]:
    """The automatic window of :func:`diffusion_coefficient`, with its warnings.

    :func:`select_fit_window` (window not before ``min_fit_start_ps``, within
    ``max_lag_ps``), then the run-length rule (:func:`run_length_reason`): a run shorter
    than ``min_run_ps`` is flagged ``diffusive=False`` even if a window was found.

    Args:
        lag_ps, msd_nm2: MSD curve (uniformly spaced lags from 0, ps; nm²).
        run_ps: length of the (shortest) trajectory, ps.
        max_lag_ps: latest lag the window may reach, ps.

    Returns:
        (window, warnings).
    """
    msgs: List[str] = []
    window = select_fit_window(lag_ps, msd_nm2, max_lag_ps, slope_tol, min_start_ps=min_fit_start_ps)
    no_regime = not window.diffusive
    _flag_short_run(window, run_ps, min_run_ps, msgs)
    if no_regime and not msgs:  # one warning per result: for a too short run that says it all
        msgs.append(f"{window.reason}; fit over [{window.start_ps:g}, {window.end_ps:g}] ps (slope "
                    f"{window.mean_loglog_slope:.2f}): D is approximate, run longer")
    return window, msgs


def _flag_short_run(window: FitWindow, run_ps: float, min_run_ps: float, msgs: List[str]) -> None:
    short = run_length_reason(run_ps, min_run_ps)
    if short is None:
        return
    window.diffusive = False
    window.reason = f"{short}; {window.reason}" if window.reason else short
    msgs.append(f"{short}: D is NOT a measurement, run longer")


def fit_msd(lag_ps: np.ndarray, msd_nm2: np.ndarray, window: FitWindow) -> Tuple[float, float]:
    """Least-squares straight line MSD = slope·t + intercept over the window.

    Returns (slope in nm²/ps, intercept in nm²). Raises ValueError if the window holds
    fewer than 2 lags.
    """
    m = (lag_ps >= window.start_ps - 1e-9) & (lag_ps <= window.end_ps + 1e-9)
    if m.sum() < 2:
        raise ValueError(
            f"fit window [{window.start_ps:g}, {window.end_ps:g}] ps holds {int(m.sum())} lag "
            f"time(s) (frame spacing {lag_ps[1] if len(lag_ps) > 1 else float('nan'):g} ps): widen it")
    slope, intercept = np.polyfit(lag_ps[m], msd_nm2[m], 1)
    return float(slope), float(intercept)


def _as_list(positions) -> List[np.ndarray]:
    if isinstance(positions, np.ndarray):
        return [positions]
    return [np.asarray(p) for p in positions]


def check_window(window_ps: Tuple[float, float], n_frames: int, dt_ps: float) -> None:
    """Raise ValueError if a user window does not fit a trajectory of n_frames × dt_ps."""
    start, end = float(window_ps[0]), float(window_ps[1])
    if not (0 <= start < end):
        raise ValueError(f"fit window must satisfy 0 <= start < end, got [{start:g}, {end:g}] ps")
    longest = (n_frames - 1) * dt_ps
    if end > longest + 1e-9:
        raise ValueError(
            f"trajectory too short for the requested fit window [{start:g}, {end:g}] ps: it has "
            f"{n_frames} frames × {dt_ps:g} ps, so the longest lag time is {longest:g} ps")


def diffusion_coefficient(
    positions_nm: Union[np.ndarray, Sequence[np.ndarray]],
    dt_ps: float,
    window_ps: Optional[Tuple[float, float]] = None,
    n_blocks: int = 5,
    slope_tol: float = 0.1,
    max_lag_fraction: float = 0.5,
    dim: int = 3,
    window: Optional[FitWindow] = None,
    min_fit_start_ps: float = DEFAULT_MIN_FIT_START_PS,
    min_run_ps: float = DEFAULT_MIN_RUN_PS,
) -> DiffusionResult:
    """Self-diffusion coefficient from unwrapped, drift-free positions.

    Args:
        positions_nm: (T, N, 3) positions in nm, or a list of them (independent replicas,
            same dt; lengths may differ).
        dt_ps: time between frames, ps.
        window_ps: optional (start, end) fit window in ps; automatic when None.
        n_blocks: blocks per replica for the error estimate (each block's MSD is fit over
            the same window); 1 disables blocks. When the window does not fit twice into a
            block, fewer blocks are used.
        slope_tol: tolerance on |d ln MSD/d ln t − 1| for the automatic window.
        max_lag_fraction: the automatic window ends at most at this fraction of the block
            length (of the trajectory if n_blocks == 1): long lags have few time origins.
        dim: dimensionality (MSD = 2·dim·D·t).
        window: an already chosen FitWindow (overrides window_ps / automatic choice); its
            ``diffusive`` flag and ``reason`` are kept as given (e.g. the window of another
            result), no run-length rule is applied.
        min_fit_start_ps: the automatic window starts at or after this lag, ps (default
            :data:`DEFAULT_MIN_FIT_START_PS` = 5 ps: past the ballistic-to-caged crossover
            of molecular liquids, where the log-log slope also passes through 1).
        min_run_ps: runs shorter than this (ps, shortest replica) are flagged
            ``diffusive=False`` with the reason, automatic or ``window_ps`` window alike
            (default :data:`DEFAULT_MIN_RUN_PS` = 100 ps; 0 disables).

    Returns:
        DiffusionResult with D in m²/s.
    """
    reps = _as_list(positions_nm)
    if dt_ps <= 0:
        raise ValueError(f"time step between frames must be > 0 ps, got {dt_ps}")
    n_frames = min(r.shape[0] for r in reps)
    if n_frames < 4:
        raise ValueError(f"trajectory too short for an MSD: {n_frames} frames")
    msg: List[str] = []
    full = [msd_fft(r) for r in reps]
    msd = average_msds(full)
    lag = np.arange(len(msd)) * dt_ps
    n_blocks = max(1, int(n_blocks))
    run_ps = (n_frames - 1) * dt_ps
    user_window = window is None and window_ps is not None
    if user_window:
        check_window(window_ps, n_frames, dt_ps)
        window = FitWindow(float(window_ps[0]), float(window_ps[1]), False)
    if window is None:
        block_len = n_frames // n_blocks if n_blocks > 1 else n_frames
        max_lag_ps = max(2, int(max_lag_fraction * block_len)) * dt_ps
        window, auto_msgs = choose_fit_window(lag, msd, run_ps, max_lag_ps, slope_tol,
                                              min_fit_start_ps=min_fit_start_ps, min_run_ps=min_run_ps)
        msg.extend(auto_msgs)
    else:
        check_window((window.start_ps, window.end_ps), n_frames, dt_ps)
        m = (lag >= window.start_ps) & (lag <= window.end_ps) & (lag > 0)
        if m.sum() >= 2 and np.all(msd[m] > 0):
            window.mean_loglog_slope = float(np.polyfit(np.log(lag[m]), np.log(msd[m]), 1)[0])
        if window.end_ps > 0.5 * (n_frames - 1) * dt_ps:
            msg.append(f"fit window ends at {window.end_ps:g} ps, beyond half the trajectory: few time origins")
        if user_window:
            _flag_short_run(window, run_ps, min_run_ps, msg)
    slope, intercept = fit_msd(lag, msd, window)
    D = slope / (2 * dim) * M2_PER_S_PER_NM2_PER_PS

    end_frames = int(math.ceil(window.end_ps / dt_ps - 1e-9))
    d_blocks: List[float] = []
    block_errs: List[float] = []
    d_reps: List[float] = []
    for r, msd_r in zip(reps, full):
        d_reps.append(fit_msd(np.arange(len(msd_r)) * dt_ps, msd_r, window)[0] / (2 * dim) * M2_PER_S_PER_NM2_PER_PS)
        nb = min(n_blocks, r.shape[0] // max(1, 2 * end_frames))
        if nb < n_blocks and n_blocks > 1:
            msg.append(f"fit window end {window.end_ps:g} ps needs blocks of ≥ {2 * end_frames} frames: "
                       f"using {nb} block(s) instead of {n_blocks}")
        if nb >= 2:
            bl = r.shape[0] // nb
            db = []
            for b in range(nb):
                mb = msd_fft(r[b * bl:(b + 1) * bl])
                db.append(fit_msd(np.arange(len(mb)) * dt_ps, mb, window)[0] / (2 * dim) * M2_PER_S_PER_NM2_PER_PS)
            d_blocks.extend(db)
            block_errs.append(mean_se(db)[1])
    if len(reps) >= 2:
        err = mean_se(d_reps)[1]
        method = f"replicas({len(reps)})"
    elif block_errs:
        err = block_errs[0]
        method = f"blocks({len(d_blocks)})"
    else:
        err, method = float("nan"), "none"
        msg.append("no uncertainty: trajectory too short for ≥ 2 blocks of twice the fit window; "
                   "run longer or give replicas")
    half = max(2, n_frames // 2)
    for w in msg:
        warnings.warn(w, stacklevel=2)
    return DiffusionResult(
        D_m2_s=D, D_err_m2_s=err, error_method=method, window=window,
        lag_ps=lag[:half + 1], msd_nm2=msd[:half + 1], slope_nm2_ps=slope, intercept_nm2=intercept,
        D_blocks_m2_s=d_blocks, D_replicas_m2_s=d_reps,
        n_particles=int(reps[0].shape[1]), dim=dim, warnings=msg,
    )


def yeh_hummer_correction(temperature_K: float, viscosity_Pa_s: float, box_length_nm: float) -> float:
    """Finite-size correction ΔD = ξ k_B T / (6 π η L), in m²/s (ξ = 2.837297).

    D∞ = D_PBC + ΔD for a cubic periodic box of edge L (Yeh & Hummer, J. Phys. Chem. B
    108, 15873 (2004)).

    Args:
        temperature_K: temperature, K.
        viscosity_Pa_s: shear viscosity η of the system, Pa·s (e.g. 2.5e-3 for EC/EMC).
        box_length_nm: box edge L, nm.
    """
    if viscosity_Pa_s <= 0:
        raise ValueError(f"viscosity must be > 0 Pa·s, got {viscosity_Pa_s}")
    if box_length_nm <= 0 or temperature_K <= 0:
        raise ValueError("box length and temperature must be > 0")
    return YEH_HUMMER_XI * units.KB_J_PER_K * temperature_K / (
        6.0 * math.pi * viscosity_Pa_s * box_length_nm * M_PER_NM)


def box_length_for_correction(box_vectors_nm: np.ndarray, rtol: float = 1e-3) -> Tuple[float, bool]:
    """Box edge for the Yeh–Hummer correction, nm, and whether the box is cubic.

    ``box_vectors_nm``: (3, 3) or (T, 3, 3) box vectors (rows), averaged over frames.
    For a cubic box, L is the edge; otherwise L = V^(1/3) (only an approximation: the
    constant ξ is for cubic lattices) and ``cubic`` is False.
    """
    b = np.asarray(box_vectors_nm, dtype=float)
    if b.ndim == 3:
        vol = np.abs(np.linalg.det(b)).mean()
        b = b.mean(axis=0)
    else:
        vol = abs(np.linalg.det(b))
    lengths = np.linalg.norm(b, axis=1)
    off = b - np.diag(np.diag(b))
    cubic = bool(np.allclose(lengths, lengths[0], rtol=rtol) and np.all(np.abs(off) < rtol * lengths[0]))
    return (float(lengths[0]) if cubic else float(vol ** (1.0 / 3.0))), cubic
