"""A cheap analytic 'teacher' for training tests: labelled frames without any MD.

E = Σ_intra-grain pairs k (r − r0)²  (an elastic network around each template geometry)
  + Σ_inter-grain atom pairs s(r)·(A e^(−2.5r) − B/r⁶)   (smooth cutoff s at 6 Å, minimum image)
Forces by autograd. Units: Å, eV.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cgaa.data.extxyz import make_frame, write_frames
from molecules import molecule_box

K_INTRA, A, B, RC = 4.0, 60.0, 8.0, 6.0


def toy_energy_forces(atoms, grain, ref_positions):
    """Energy (eV) and forces (eV/Å) of ``atoms``; ``ref_positions`` give the template r0."""
    pos = torch.tensor(atoms.positions, requires_grad=True)
    cell = torch.tensor(atoms.cell[:])
    inv = torch.linalg.inv(cell)
    g = torch.tensor(grain)
    n = len(atoms)
    d = pos[None] - pos[:, None]
    d = d - torch.round(d.detach() @ inv) @ cell
    r = torch.sqrt((d * d).sum(-1) + torch.eye(n, dtype=pos.dtype))
    ref = torch.tensor(ref_positions)
    dr = ref[None] - ref[:, None]
    dr = dr - torch.round(dr @ inv) @ cell
    r0 = torch.sqrt((dr * dr).sum(-1) + torch.eye(n, dtype=pos.dtype))
    same = (g[None] == g[:, None]) & ~torch.eye(n, dtype=torch.bool)
    e_intra = 0.5 * K_INTRA * ((r - r0) ** 2)[same].sum()
    other = g[None] != g[:, None]
    x = torch.clamp(r / RC, max=1.0)
    s = (1 - x) ** 3 * (1 + 3 * x + 6 * x * x)  # smooth: s(RC)=s'(RC)=s''(RC)=0
    e_inter = 0.5 * (s * (A * torch.exp(-2.5 * r) - B / r ** 6))[other].sum()
    e = e_intra + e_inter
    (gpos,) = torch.autograd.grad(e, pos)
    return float(e.detach()), (-gpos).numpy()


def make_frames(counts, n_frames, seed=0, box=22.0, noise=0.04):
    """Labelled frames of one composition: jittered molecules, thermal-like noise."""
    frames = []
    rng = np.random.default_rng(seed)
    for k in range(n_frames):
        atoms, grain = molecule_box(counts, np.diag([box] * 3), seed=seed * 1000 + k, jitter=0.5)
        ref = atoms.positions.copy()
        atoms.positions += rng.normal(scale=noise, size=atoms.positions.shape)
        e, f = toy_energy_forces(atoms, grain, ref)
        frames.append(make_frame(atoms.get_chemical_symbols(), atoms.positions, atoms.cell[:], energy=e,
                                 forces=f, grain=grain, info={"teacher": "toy", "config_type": "equilibrium"}))
    return frames


def write_dataset(path: Path, counts, n_frames, seed=0, **kw) -> Path:
    return write_frames(path, make_frames(counts, n_frames, seed, **kw))
