"""Ionic conductivity: Nernst–Einstein (from self-diffusion), Einstein–Helfand
(collective), and the Haven ratio.

Nernst–Einstein (ideal, uncorrelated ions):
    σ_NE = e² / (V k_B T) · Σ_i N_i z_i² D_i
Einstein–Helfand (all correlations included), with M(t) = Σ_j z_j r_j(t):
    σ_EH = lim_{t→∞} e² ⟨|M(t) − M(0)|²⟩ / (6 V k_B T t)
Haven ratio H = σ_NE / σ_EH (H > 1: correlated ion motion, e.g. ion pairs, lowers σ).
Ideal (Nernst–Einstein) transference number of species i: t_i = N_i z_i² D_i / Σ_j N_j z_j² D_j,
its share of σ_NE (the "apparent" t₊ of NMR diffusometry; experiments by Bruce–Vincent or
Hittorf also see ion correlations, so they may differ).

Positions of molecular ions are their centres of mass; the system's centre-of-mass drift
must be removed first (for a neutral system a uniform drift cancels in M anyway).

References: Hansen & McDonald, Theory of Simple Liquids (4th ed., 2013), ch. 7 & 10;
Schröder, Haberler & Steinhauser, J. Chem. Phys. 128, 134501 (2008) (Einstein–Helfand
conductivity); France-Lanord & Grossman, Phys. Rev. Lett. 122, 136001 (2019) (electrolyte
transport from MD, Haven ratio).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from cgaa.core import units
from cgaa.analysis.diffusion import (DiffusionResult, FitWindow, M_PER_NM, diffusion_coefficient)

#: m³ per nm³.
M3_PER_NM3: float = M_PER_NM ** 3


def nernst_einstein_conductivity(
    counts: Sequence[int], charges_e: Sequence[float], D_m2_s: Sequence[float],
    volume_nm3: float, temperature_K: float, D_err_m2_s: Optional[Sequence[float]] = None,
) -> Tuple[float, float]:
    """σ_NE = e²/(V k_B T) Σ N_i z_i² D_i, in S/m, with its propagated standard error.

    Args:
        counts: number of ions N_i of each species.
        charges_e: formal charge z_i of each species, in e.
        D_m2_s: self-diffusion coefficient D_i of each species, m²/s.
        volume_nm3: box volume V, nm³.
        temperature_K: temperature T, K.
        D_err_m2_s: optional standard errors of D_i (m²/s); NaN entries propagate.

    Returns:
        (σ in S/m, its standard error in S/m; NaN if no errors given).
    """
    if volume_nm3 <= 0 or temperature_K <= 0:
        raise ValueError("volume and temperature must be > 0")
    pre = units.ELEMENTARY_CHARGE_C ** 2 / (volume_nm3 * M3_PER_NM3 * units.KB_J_PER_K * temperature_K)
    w = np.asarray(counts, float) * np.asarray(charges_e, float) ** 2
    sigma = pre * float(np.sum(w * np.asarray(D_m2_s, float)))
    if D_err_m2_s is None:
        return sigma, float("nan")
    err = pre * math.sqrt(float(np.sum((w * np.asarray(D_err_m2_s, float)) ** 2)))
    return sigma, err


def charge_displacement(positions_nm: Sequence[np.ndarray], charges_e: Sequence[float]) -> np.ndarray:
    """M(t) = Σ_j z_j r_j(t), (T, 1, 3) in e·nm, from per-species (T, N_s, 3) ion positions."""
    total = None
    for x, z in zip(positions_nm, charges_e):
        if z == 0:
            continue
        part = z * np.asarray(x, float).sum(axis=1)
        total = part if total is None else total + part
    if total is None:
        raise ValueError("no charged species: cannot compute a collective conductivity")
    return total[:, None, :]


@dataclass
class EinsteinHelfandResult:
    """Collective (Einstein–Helfand) conductivity.

    Attributes:
        sigma_S_m, sigma_err_S_m: conductivity and standard error, S/m.
        fit: the fit of ⟨|M(t)−M(0)|²⟩ (lag_ps, msd_nm2 in e²·nm², window, blocks).
    """

    sigma_S_m: float
    sigma_err_S_m: float
    fit: DiffusionResult


def einstein_helfand_conductivity(
    positions_nm: Union[Sequence[np.ndarray], Sequence[Sequence[np.ndarray]]],
    charges_e: Sequence[float],
    dt_ps: float,
    volume_nm3: float,
    temperature_K: float,
    window: Optional[FitWindow] = None,
    window_ps: Optional[Tuple[float, float]] = None,
    n_blocks: int = 5,
    slope_tol: float = 0.2,
    max_lag_fraction: float = 0.5,
) -> EinsteinHelfandResult:
    """σ_EH = e² d⟨|M(t)−M(0)|²⟩/dt / (6 V k_B T), in S/m.

    Args:
        positions_nm: per-species ion positions [(T, N_s, 3), ...] (unwrapped, drift
            removed; molecular ions as centres of mass), or a list of such lists, one per
            replica.
        charges_e: z of each species, e.
        dt_ps: time between frames, ps.
        volume_nm3: mean box volume, nm³.
        temperature_K: temperature, K.
        window / window_ps: fit window (default: automatic on the collective MSD; the
            collective MSD is noisy, so passing the cation's window is often better).
        n_blocks, slope_tol, max_lag_fraction: as in :func:`diffusion_coefficient`.
    """
    first = positions_nm[0]
    if isinstance(first, np.ndarray) and first.ndim == 3:
        reps = [charge_displacement(positions_nm, charges_e)]
    else:
        reps = [charge_displacement(p, charges_e) for p in positions_nm]
    res = diffusion_coefficient(reps, dt_ps, window_ps=window_ps, n_blocks=n_blocks,
                                slope_tol=slope_tol, max_lag_fraction=max_lag_fraction,
                                window=window)
    # res.D_m2_s = slope/6 in (e² m²/s): σ = e² · D_M / (V k_B T)
    pre = units.ELEMENTARY_CHARGE_C ** 2 / (volume_nm3 * M3_PER_NM3 * units.KB_J_PER_K * temperature_K)
    return EinsteinHelfandResult(pre * res.D_m2_s, pre * res.D_err_m2_s, res)


def haven_ratio(sigma_ne: float, sigma_eh: float, err_ne: float = float("nan"),
                err_eh: float = float("nan")) -> Tuple[float, float]:
    """H = σ_NE / σ_EH (dimensionless) and its propagated standard error."""
    if sigma_eh == 0 or not np.isfinite(sigma_eh):
        return float("nan"), float("nan")
    h = sigma_ne / sigma_eh
    rel = math.sqrt((err_ne / sigma_ne) ** 2 + (err_eh / sigma_eh) ** 2) if sigma_ne else float("nan")
    return h, abs(h) * rel


def transference_numbers(
    counts: Sequence[int], charges_e: Sequence[float], D_m2_s: Sequence[float],
    D_err_m2_s: Optional[Sequence[float]] = None,
) -> List[Tuple[float, float]]:
    """Ideal (Nernst–Einstein) transference numbers t_i = N_i z_i² D_i / Σ_j N_j z_j² D_j
    (dimensionless, summing to 1) of each species, with propagated standard errors.

    Args:
        counts: number of ions N_i of each species.
        charges_e: formal charge z_i of each species, in e.
        D_m2_s: self-diffusion coefficient D_i of each species, m²/s.
        D_err_m2_s: optional standard errors of D_i (m²/s), taken as independent.

    Returns:
        [(t_i, error of t_i), ...] in the order given (errors NaN if none given; every entry
        NaN if Σ N z² D is not positive).
    """
    w = np.asarray(counts, float) * np.asarray(charges_e, float) ** 2
    d = np.asarray(D_m2_s, float)
    total = float(np.sum(w * d))
    if not total > 0:
        return [(float("nan"), float("nan"))] * len(w)
    t = w * d / total
    if D_err_m2_s is None:
        return [(float(v), float("nan")) for v in t]
    derr = np.asarray(D_err_m2_s, float)
    out = []
    for i in range(len(w)):
        # dt_i/dD_j = w_j (δ_ij − t_i) / Σ
        grad = w * ((np.arange(len(w)) == i) - t[i]) / total
        out.append((float(t[i]), float(math.sqrt(float(np.sum((grad * derr) ** 2))))))
    return out


def siemens_per_m_to_mS_per_cm(sigma_S_m: float) -> float:
    """Conductivity S/m → mS/cm (1 S/m = 10 mS/cm)."""
    return sigma_S_m * 10.0
