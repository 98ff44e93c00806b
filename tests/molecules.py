"""Small hand-built molecules and random periodic boxes for the core-engine tests.

Geometries are approximate (bond lengths within ~0.05 Å of typical values): good enough
for bond perception and for exercising the model, not for physics.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np
from ase import Atoms

# (symbols, positions Å) centred roughly at the origin
LI = (["Li"], [[0.0, 0.0, 0.0]])
PF6 = (["P", "F", "F", "F", "F", "F", "F"],
       [[0, 0, 0], [1.6, 0, 0], [-1.6, 0, 0], [0, 1.6, 0], [0, -1.6, 0], [0, 0, 1.6], [0, 0, -1.6]])
EC = (["C", "O", "O", "O", "C", "C", "H", "H", "H", "H"],
      [[0, 0.9, 0], [0, 2.1, 0], [-1.1, 0.2, 0], [1.1, 0.2, 0], [-0.75, -1.15, 0], [0.75, -1.15, 0],
       [-1.2, -1.6, 0.9], [-1.2, -1.6, -0.9], [1.2, -1.6, 0.9], [1.2, -1.6, -0.9]])
EMC = (["C", "O", "C", "O", "O", "C", "C", "H", "H", "H", "H", "H", "H", "H", "H"],
       [[-2.9, 0.3, 0], [-1.6, -0.3, 0], [-0.5, 0.45, 0], [-0.55, 1.67, 0], [0.65, -0.25, 0],
        [1.85, 0.5, 0], [3.05, -0.4, 0],
        [-3.7, -0.45, 0], [-2.95, 0.95, 0.89], [-2.95, 0.95, -0.89],
        [1.85, 1.15, 0.89], [1.85, 1.15, -0.89],
        [3.95, 0.2, 0], [3.05, -1.05, 0.89], [3.05, -1.05, -0.89]])

SPECIES = {"Li": LI, "PF6": PF6, "EC": EC, "EMC": EMC}


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def molecule_box(counts: dict, box: np.ndarray, seed: int = 0, spacing: float = 6.5,
                 jitter: float = 0.3) -> Tuple[Atoms, np.ndarray]:
    """Molecules on a jittered grid inside ``box`` (3×3 Å, rows = vectors), randomly rotated.

    Returns ASE Atoms (pbc on, positions wrapped into the box) and the per-atom grain index.
    """
    rng = np.random.default_rng(seed)
    names = [n for n, c in counts.items() for _ in range(c)]
    rng.shuffle(names)
    box = np.asarray(box, dtype=float)
    heights = 1.0 / np.linalg.norm(np.linalg.inv(box), axis=0)
    ngrid = np.maximum((heights // spacing).astype(int), 1)
    slots = [(i, j, k) for i in range(ngrid[0]) for j in range(ngrid[1]) for k in range(ngrid[2])]
    if len(slots) < len(names):
        raise ValueError(f"{len(names)} molecules do not fit on a {ngrid} grid")
    order = rng.permutation(len(slots))[: len(names)]
    symbols: List[str] = []
    pos: List[np.ndarray] = []
    grain: List[int] = []
    for g, (name, s) in enumerate(zip(names, order)):
        sym, xyz = SPECIES[name]
        frac = (np.array(slots[s]) + 0.5 + rng.uniform(-jitter, jitter, 3) / spacing) / ngrid
        centre = frac @ box
        xyz = np.asarray(xyz, dtype=float) @ random_rotation(rng).T + centre
        symbols += sym
        pos.append(xyz)
        grain += [g] * len(sym)
    atoms = Atoms(symbols=symbols, positions=np.concatenate(pos), cell=box, pbc=True)
    atoms.wrap()
    return atoms, np.array(grain)


def triclinic_box(lengths=(22.0, 21.0, 20.0), tilt=(4.0, -3.0, 2.5)) -> np.ndarray:
    """A reduced (OpenMM-style lower-triangular) triclinic box, rows are vectors (Å)."""
    a, b, c = lengths
    return np.array([[a, 0, 0], [tilt[0], b, 0], [tilt[1], tilt[2], c]], dtype=float)
