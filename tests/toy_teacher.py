"""A cheap analytic 'teacher' for training tests: labelled frames without any MD.

E = Σ_intra-grain pairs k (r − r0)²  (an elastic network around each template geometry)
  + Σ_inter-grain atom pairs s(r)·(A e^(−2.5r) − B/r⁶)   (smooth cutoff s at 6 Å, minimum image)
Forces by autograd; the stress σ = (1/V) ∂E/∂ε (ASE sign) by autograd with respect to a
homogeneous strain ε of positions and box (template r0 held fixed). Units: Å, eV.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cgaa.core.extxyz import make_frame, write_frames
from molecules import molecule_box

K_INTRA, A, B, RC = 4.0, 60.0, 8.0, 6.0


def toy_energy_forces(atoms, grain, ref_positions, stress=False):
    """Energy (eV) and forces (eV/Å) of ``atoms`` (and the stress, 3×3 eV/Å³, with ``stress``);
    ``ref_positions`` give the template r0."""
    pos0 = torch.tensor(atoms.positions, requires_grad=True)
    cell0 = torch.tensor(atoms.cell[:])
    eps = torch.zeros((3, 3), dtype=pos0.dtype, requires_grad=True)
    pos = pos0 @ (torch.eye(3, dtype=pos0.dtype) + eps).T
    cell = cell0 @ (torch.eye(3, dtype=pos0.dtype) + eps).T
    inv = torch.linalg.inv(cell.detach())
    g = torch.tensor(grain)
    n = len(atoms)
    d = pos[None] - pos[:, None]
    d = d - torch.round(d.detach() @ inv) @ cell
    r = torch.sqrt((d * d).sum(-1) + torch.eye(n, dtype=pos.dtype))
    ref = torch.tensor(ref_positions)
    dr = ref[None] - ref[:, None]
    dr = dr - torch.round(dr @ inv) @ cell0
    r0 = torch.sqrt((dr * dr).sum(-1) + torch.eye(n, dtype=pos.dtype))
    same = (g[None] == g[:, None]) & ~torch.eye(n, dtype=torch.bool)
    e_intra = 0.5 * K_INTRA * ((r - r0) ** 2)[same].sum()
    other = g[None] != g[:, None]
    x = torch.clamp(r / RC, max=1.0)
    s = (1 - x) ** 3 * (1 + 3 * x + 6 * x * x)  # smooth: s(RC)=s'(RC)=s''(RC)=0
    e_inter = 0.5 * (s * (A * torch.exp(-2.5 * r) - B / r ** 6))[other].sum()
    e = e_intra + e_inter
    gpos, geps = torch.autograd.grad(e, (pos0, eps))
    if stress:
        vol = abs(float(torch.linalg.det(cell0)))
        return float(e.detach()), (-gpos).numpy(), geps.numpy() / vol
    return float(e.detach()), (-gpos).numpy()


def make_frames(counts, n_frames, seed=0, box=22.0, noise=0.04, stress=False):
    """Labelled frames of one composition: jittered molecules, thermal-like noise (with
    ``stress``: boxes of random size around ``box`` and REF_stress labels)."""
    frames = []
    rng = np.random.default_rng(seed)
    for k in range(n_frames):
        side = box * (1.0 + (rng.uniform(-0.06, 0.06) if stress else 0.0))
        atoms, grain = molecule_box(counts, np.diag([side] * 3), seed=seed * 1000 + k, jitter=0.5)
        ref = atoms.positions.copy()
        atoms.positions += rng.normal(scale=noise, size=atoms.positions.shape)
        info = {"teacher": "toy", "config_type": "equilibrium"}
        if stress:
            e, f, info["REF_stress"] = toy_energy_forces(atoms, grain, ref, stress=True)
        else:
            e, f = toy_energy_forces(atoms, grain, ref)
        frames.append(make_frame(atoms.get_chemical_symbols(), atoms.positions, atoms.cell[:], energy=e,
                                 forces=f, grain=grain, info=info))
    return frames


def write_dataset(path: Path, counts, n_frames, seed=0, **kw) -> Path:
    return write_frames(path, make_frames(counts, n_frames, seed, **kw))
