"""Neighbour pairs within a cutoff, periodic (orthorhombic or triclinic) or not.

The search is vesin's O(N) cell list (``vesin-torch``, C++, TorchScript-compatible, so it
runs inside OpenMM-Torch as part of a deployed model). It is not differentiated: it returns
index pairs and integer lattice shifts, and the caller rebuilds the pair vectors
``pos[j] - pos[i] + shift @ cell`` with autograd. Positions may be wrapped or not.
Callers must keep cutoff < h_min/2 (h = box heights), where every pair closer than the
cutoff has a unique minimum image; :func:`check_cutoff` enforces it.

Units are whatever the inputs are in (cgaa uses Å).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor
from vesin_torch import NeighborList


def box_heights(cell: Tensor) -> Tensor:
    """Heights of the box (distance between opposite faces), one per lattice direction.

    ``cell`` rows are the box vectors. Height k = 1/|b_k| with b_k the k-th reciprocal
    vector (column k of inv(cell)).
    """
    inv = torch.linalg.inv(cell)
    return 1.0 / torch.linalg.norm(inv, dim=0)


def check_cutoff(cell: Tensor, cutoff: float) -> None:
    """Raise if ``cutoff`` is not below half the shortest box height."""
    h = float(box_heights(cell).min())
    if not cutoff < 0.5 * h:
        raise RuntimeError(
            "cutoff " + str(cutoff) + " is not below half the shortest box height ("
            + str(0.5 * h) + "): the box is too small for this model; use a larger box"
        )


def neighbor_pairs(pos: Tensor, cell: Optional[Tensor], cutoff: float,
                   full: bool = True) -> Tuple[Tensor, Tensor]:
    """Pairs (i, j), i ≠ j, with |pos_j − pos_i + shift·cell| < cutoff.

    Parameters
    ----------
    pos: (n, 3) positions (any wrapping; any units consistent with ``cutoff``).
    cell: (3, 3) box, rows are box vectors, or None for no periodicity.
    cutoff: pair cutoff.
    full: both orders of every pair (True) or each pair once (False).

    Returns
    -------
    pairs: (2, E) int64 indices [i, j].
    shifts: (E, 3) integer-valued lattice shifts (zeros without a cell), same dtype as pos.
    """
    n = pos.shape[0]
    with torch.no_grad():
        p = pos.detach()
        if n < 2:
            return (torch.zeros((2, 0), dtype=torch.long, device=pos.device),
                    torch.zeros((0, 3), dtype=pos.dtype, device=pos.device))
        periodic = cell is not None
        box = torch.zeros((3, 3), dtype=p.dtype, device=p.device)
        if cell is not None:
            box = cell.detach().to(p.dtype)
        nl = NeighborList(cutoff=float(cutoff), full_list=full)
        out = nl.compute(p, box, periodic, "ijS", True)
        pairs = torch.stack([out[0].long(), out[1].long()])
        return pairs, out[2].to(p.dtype)
