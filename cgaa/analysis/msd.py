"""Mean-squared displacement over all time origins (FFT), drift removal, (un)wrapping.

Positions are in nm, shaped (n_frames, n_particles, 3); boxes are (n_frames, 3, 3) with
the box vectors as rows (mdtraj ``unitcell_vectors``), so triclinic cells work too.

The MSD algorithm is the FFT one of Calandrini, Pellegrini, Calligari, Hinsen & Kneller,
"nMoldyn - Interfacing spectroscopic experiments, molecular dynamics simulations and
models for time correlation functions", JDN 12, 201 (2011), also used by MDAnalysis:
MSD(m) = S1(m) - 2 S2(m), where S2 is the position autocorrelation (by FFT) and S1 a
simple recursion; O(T log T) per particle and exact (same numbers as the direct
all-origins average).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np


class WrappedTrajectoryError(ValueError):
    """The trajectory looks wrapped into the box (an atom jumps over half a box)."""


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def msd_fft(positions_nm: np.ndarray, per_particle: bool = False,
            max_elements: int = 20_000_000) -> np.ndarray:
    """MSD of every lag m = 0..T-1, averaged over all time origins (FFT algorithm).

    Args:
        positions_nm: (T, N, D) unwrapped positions in nm (D is usually 3).
        per_particle: return (T, N) instead of the particle average (T,).
        max_elements: particles are processed in chunks of about this many numbers.

    Returns:
        MSD in nm² for lags 0..T-1 (lag m means m frames), averaged over particles unless
        ``per_particle``.
    """
    x = np.asarray(positions_nm, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"positions must be (n_frames, n_particles, dim), got shape {x.shape}")
    T, N, _ = x.shape
    if T < 2:
        raise ValueError(f"need at least 2 frames for an MSD, got {T}")
    if N == 0:
        raise ValueError("no particles to compute an MSD for")
    out = np.empty((T, N)) if per_particle else np.zeros(T)
    counts = (T - np.arange(T)).astype(float)
    nfft = 1 << int(np.ceil(np.log2(2 * T)))
    step = max(1, max_elements // (T * x.shape[2] * 4))
    for sl in _chunks(N, step):
        xc = x[:, sl, :]
        d = np.sum(xc * xc, axis=2)  # (T, n)
        # S1(m) = [sum_{k=0}^{T-1-m} (d[k] + d[k+m])] / (T-m)  via cumulative sums
        total = 2.0 * d.sum(axis=0)
        cs_fwd = np.concatenate([np.zeros((1, d.shape[1])), np.cumsum(d, axis=0)[:-1]])
        cs_bwd = np.concatenate([np.zeros((1, d.shape[1])), np.cumsum(d[::-1], axis=0)[:-1]])
        s1 = (total - cs_fwd - cs_bwd) / counts[:, None]
        f = np.fft.rfft(xc, n=nfft, axis=0)
        s2 = np.fft.irfft((f * f.conj()).real, n=nfft, axis=0)[:T].sum(axis=2) / counts[:, None]
        m = s1 - 2.0 * s2
        m[0] = 0.0
        if per_particle:
            out[:, sl] = m
        else:
            out += m.sum(axis=1)
    return out if per_particle else out / N


def msd_direct(positions_nm: np.ndarray, max_lag: Optional[int] = None) -> np.ndarray:
    """Reference O(T²) all-origins MSD (nm²), for checks; same output as :func:`msd_fft`."""
    x = np.asarray(positions_nm, dtype=np.float64)
    T = x.shape[0]
    max_lag = T - 1 if max_lag is None else max_lag
    out = np.zeros(max_lag + 1)
    for m in range(1, max_lag + 1):
        out[m] = np.mean(np.sum((x[m:] - x[:-m]) ** 2, axis=2))
    return out


def system_com(positions_nm: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Mass-weighted centre of mass of all atoms per frame, (T, 3) in nm."""
    m = np.asarray(masses, dtype=float)
    if m.sum() <= 0:
        m = np.ones_like(m)
    return np.einsum("tnd,n->td", positions_nm, m) / m.sum()


def remove_com_drift(positions_nm: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Subtract the motion of the system's centre of mass (mass-weighted, all atoms).

    Returns positions r_i(t) - [R_com(t) - R_com(0)] in nm (a new array).
    """
    com = system_com(positions_nm, masses)
    return positions_nm - (com - com[0])[:, None, :]


def _frac_diff(d: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Displacements (T, N, 3) → fractional coordinates with per-frame boxes (T, 3, 3)."""
    inv = np.linalg.inv(box)
    return np.einsum("tnd,tde->tne", d, inv)


@dataclass
class WrapCheck:
    """Result of :func:`detect_wrapping`.

    Attributes:
        wrapped: True if any atom moved more than half a box length between frames.
        n_jumps: number of (atom, frame) jumps found.
        atom: index of the first offending atom (or -1).
        frame: frame index (the later frame) of that jump (or -1).
        max_fraction: largest frame-to-frame displacement in units of the box length.
    """

    wrapped: bool
    n_jumps: int
    atom: int
    frame: int
    max_fraction: float


def detect_wrapping(positions_nm: np.ndarray, box_nm: np.ndarray,
                    threshold: float = 0.5) -> WrapCheck:
    """Detect a wrapped trajectory: a frame-to-frame jump over ``threshold`` box lengths.

    In an unwrapped trajectory (OpenMM ``DCDReporter(enforcePeriodicBox=False)``) atoms
    move a fraction of an nm between saved frames; in a wrapped one an atom crossing a
    face re-enters at the other side, a jump of about one box length.

    Args:
        positions_nm: (T, N, 3) positions, nm.
        box_nm: (T, 3, 3) box vectors, nm (rows).
        threshold: jump size in box fractions that counts as wrapping.
    """
    T = positions_nm.shape[0]
    worst, n_jumps, first = 0.0, 0, (-1, -1)
    step = max(1, 2_000_000 // max(1, positions_nm.shape[1] * 3))
    for start in range(0, T - 1, step):
        stop = min(T - 1, start + step)
        d = positions_nm[start + 1:stop + 1] - positions_nm[start:stop]
        s = np.abs(_frac_diff(d, box_nm[start + 1:stop + 1]))
        worst = max(worst, float(s.max()) if s.size else 0.0)
        jump = (s > threshold).any(axis=2)
        n = int(jump.sum())
        if n and first[0] < 0:
            f, a = np.argwhere(jump)[0]
            first = (int(a), int(f) + start + 1)
        n_jumps += n
    return WrapCheck(n_jumps > 0, n_jumps, first[0], first[1], worst)


def unwrap(positions_nm: np.ndarray, box_nm: np.ndarray) -> np.ndarray:
    """Unwrap a wrapped trajectory by accumulating minimum-image displacements.

    u(0) = w(0);  u(t+1) = u(t) + d - L(t+1)·round(d / L(t+1)),  d = w(t+1) - w(t),
    done in fractional coordinates of the box at t+1 (triclinic boxes work). This is the
    "toroidal view preserving" scheme of von Bülow, Bullerjahn & Hummer, J. Chem. Phys.
    153, 021101 (2020), correct also for NPT. It assumes no atom moves more than half a
    box between frames (save frames often enough).
    """
    w = np.asarray(positions_nm, dtype=np.float64)
    d = w[1:] - w[:-1]
    s = _frac_diff(d, box_nm[1:])
    s -= np.round(s)
    d = np.einsum("tne,ted->tnd", s, box_nm[1:])
    out = np.empty_like(w)
    out[0] = w[0]
    np.cumsum(d, axis=0, out=out[1:])
    out[1:] += w[0]
    return out


def molecule_centers(positions_nm: np.ndarray, molecules: Sequence[np.ndarray],
                     masses: np.ndarray, box_nm: Optional[np.ndarray] = None) -> np.ndarray:
    """Mass-weighted centre of each molecule per frame, (T, n_molecules, 3) in nm.

    Each molecule is first made whole by taking its atoms' minimum image relative to its
    first atom (frame by frame), so a molecule split over the box boundary still gets the
    right centre; the centre follows the first atom's (unwrapped) trajectory.
    """
    T = positions_nm.shape[0]
    out = np.empty((T, len(molecules), 3))
    inv = np.linalg.inv(box_nm) if box_nm is not None else None
    by_size: dict = {}
    for k, mol in enumerate(molecules):
        by_size.setdefault(len(mol), []).append(k)
    for size, ks in by_size.items():
        idx = np.array([molecules[k] for k in ks], dtype=int)  # (M, size)
        x = positions_nm[:, idx, :]  # (T, M, size, 3)
        m = np.asarray(masses, dtype=float)[idx]  # (M, size)
        m = np.where(m.sum(axis=1, keepdims=True) > 0, m, 1.0)
        if size > 1:
            rel = x - x[:, :, :1, :]
            if inv is not None:
                s = np.einsum("tmkd,tde->tmke", rel, inv)
                s -= np.round(s)
                rel = np.einsum("tmke,ted->tmkd", s, box_nm)
            c = x[:, :, 0, :] + np.einsum("tmkd,mk->tmd", rel, m) / m.sum(axis=1)[None, :, None]
        else:
            c = x[:, :, 0, :]
        out[:, ks, :] = c
    return out


def lag_times(n_frames: int, dt_ps: float) -> np.ndarray:
    """Lag times 0, dt, 2dt, ... (ps) for an MSD of ``n_frames`` frames."""
    return np.arange(n_frames) * float(dt_ps)


def average_msds(msds: List[np.ndarray]) -> np.ndarray:
    """Average replica MSDs (nm²), truncated to the shortest."""
    n = min(len(m) for m in msds)
    return np.mean([m[:n] for m in msds], axis=0)
