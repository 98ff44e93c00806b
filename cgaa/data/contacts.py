"""Closest approach between grains in training data: where a model's knowledge ends.

A learned inter-grain potential is only constrained where its training frames put atoms.
:func:`closest_contacts` records, for every pair of elements, the shortest distance (Å)
between two atoms of *different* grains over a set of frames. Training stores it in the
model (``ModelConfig.contact_floor``), and :func:`cgaa.openmm.guards.add_contact_guard`
puts a repulsive wall a little inside it, so MD cannot fall into the region the model never
saw (e.g. a Li⁺ ion collapsing onto a carbon where the network's energy happens to be
attractive).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from cgaa.core.neighbors import neighbor_pairs

#: Distance (Å) up to which contacts are searched: element pairs of the model that never
#: came closer than this in the data get it as their floor.
CONTACT_SCAN_A = 4.0


def closest_contacts(frames: Sequence, elements: Optional[Sequence[int]] = None,
                     scan_A: float = CONTACT_SCAN_A) -> List[List[float]]:
    """``[[Z1, Z2, d_min Å], ...]`` (Z1 ≤ Z2): the closest approach of two atoms of
    different grains, per element pair, over ``frames``.

    frames: :class:`cgaa.data.dataset.Frame` objects (positions Å, cell, ``grain_map``).
    elements: atomic numbers whose pairs are reported (default: those in the frames);
        a pair seen in no frame closer than ``scan_A`` (Å) gets ``scan_A``: the data say
        only that it stays farther apart. Periodic images count (minimum image and beyond).
    Pairs of an element with itself are included (Z1 = Z2).
    """

    if not frames:
        raise ValueError("closest_contacts needs at least one frame")
    zs = sorted({int(z) for f in frames for z in f.numbers} if elements is None else {int(z) for z in elements})
    best: Dict[Tuple[int, int], float] = {(a, b): float(scan_A) for a in zs for b in zs if a <= b}
    for f in frames:
        pos = torch.as_tensor(np.asarray(f.positions), dtype=torch.float64)
        cell = None if f.cell is None else torch.as_tensor(np.asarray(f.cell), dtype=torch.float64)
        pairs, shifts = neighbor_pairs(pos, cell, float(scan_A), full=False)
        i, j = pairs[0].numpy(), pairs[1].numpy()
        gi = np.asarray(f.grain_map.grain_index)
        keep = gi[i] != gi[j]
        if not keep.any():
            continue
        i, j = i[keep], j[keep]
        vec = pos[j] - pos[i]
        if cell is not None:
            vec = vec + shifts[torch.as_tensor(keep)] @ cell
        d = torch.linalg.norm(vec, dim=1).numpy()
        za, zb = np.minimum(f.numbers[i], f.numbers[j]), np.maximum(f.numbers[i], f.numbers[j])
        for key in {(int(a), int(b)) for a, b in zip(za, zb)}:
            if key not in best:
                continue
            m = (za == key[0]) & (zb == key[1])
            best[key] = min(best[key], float(d[m].min()))
    return [[a, b, round(d, 4)] for (a, b), d in sorted(best.items())]


def merge_contact_floors(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]]) -> List[List[float]]:
    """The floor of the union of two data sets: per element pair the smaller d_min (a pair in
    only one of them keeps its value). Both as ``[[Z1, Z2, d Å], ...]``."""
    best: Dict[Tuple[int, int], float] = {}
    for z1, z2, d in list(a) + list(b):
        key = (min(int(z1), int(z2)), max(int(z1), int(z2)))
        best[key] = min(best.get(key, float("inf")), float(d))
    return [[k[0], k[1], d] for k, d in sorted(best.items())]


__all__ = ["closest_contacts", "merge_contact_floors", "CONTACT_SCAN_A"]
