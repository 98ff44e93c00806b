"""Neighbour pairs within a cutoff, periodic (orthorhombic or triclinic) or not.

Written in plain torch so it compiles with TorchScript and runs inside OpenMM. The
search itself is not differentiated: it returns index pairs and integer lattice shifts,
and the caller rebuilds the pair vectors ``pos[j] - pos[i] + shift @ cell`` with autograd.

Periodic boxes use a cell list in fractional coordinates: the box is cut into
``n_k = floor(h_k / cutoff)`` slabs along each reciprocal direction (h_k = box height), so
any pair closer than the cutoff sits in neighbouring cells, for triclinic boxes too.
Scaling is O(N). When a box is too small for 3 slabs in some direction (h_k < 3·cutoff)
an O(N²) minimum-image search is used instead. Both need cutoff < h_min/2, where the
minimum image of a pair closer than the cutoff is unique and found by rounding
fractional coordinates; :func:`check_cutoff` enforces it.

Units are whatever the inputs are in (cgaa uses Å).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor


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


def _pairs_brute(pos: Tensor, cell: Optional[Tensor], cutoff: float) -> Tuple[Tensor, Tensor]:
    n = pos.shape[0]
    d = pos.unsqueeze(0) - pos.unsqueeze(1)  # d[i, j] = pos[j] - pos[i]
    shift = torch.zeros_like(d)
    if cell is not None:
        inv = torch.linalg.inv(cell)
        shift = -torch.round(d @ inv)
        d = d + shift @ cell
    r2 = (d * d).sum(-1)
    eye = torch.eye(n, dtype=torch.bool, device=pos.device)
    mask = (r2 < cutoff * cutoff) & (~eye)
    idx = torch.nonzero(mask)
    i = idx[:, 0]
    j = idx[:, 1]
    return torch.stack([i, j]), shift[i, j]


def _pairs_cells(pos: Tensor, cell: Tensor, cutoff: float, ncell: Tensor) -> Tuple[Tensor, Tensor]:
    n = pos.shape[0]
    dev = pos.device
    inv = torch.linalg.inv(cell)
    frac = pos @ inv
    frac = frac - torch.floor(frac)
    c = torch.floor(frac * ncell.to(pos.dtype)).long()
    c = torch.minimum(torch.clamp(c, min=0), ncell - 1)
    n0 = int(ncell[0])
    n1 = int(ncell[1])
    n2 = int(ncell[2])
    cid = (c[:, 0] * n1 + c[:, 1]) * n2 + c[:, 2]
    order = torch.argsort(cid)
    counts = torch.bincount(cid, minlength=n0 * n1 * n2)
    starts = torch.cumsum(counts, 0) - counts
    maxc = int(counts.max())
    r = torch.arange(-1, 2, device=dev)
    offs = torch.stack(torch.meshgrid(r, r, r, indexing="ij"), dim=-1).reshape(27, 3)
    nc = torch.remainder(c.unsqueeze(1) + offs.unsqueeze(0), ncell)  # (n, 27, 3)
    ncid = (nc[..., 0] * n1 + nc[..., 1]) * n2 + nc[..., 2]
    st = starts[ncid]
    ct = counts[ncid]
    k = torch.arange(maxc, device=dev)
    slot = st.unsqueeze(-1) + k  # (n, 27, maxc)
    valid = k < ct.unsqueeze(-1)
    j = order[torch.clamp(slot, max=n - 1)]
    i = torch.arange(n, device=dev).view(n, 1, 1).expand_as(j)
    valid = valid & (i != j)
    i = i[valid]
    j = j[valid]
    d = pos[j] - pos[i]
    shift = -torch.round(d @ inv)
    d = d + shift @ cell
    keep = (d * d).sum(-1) < cutoff * cutoff
    return torch.stack([i[keep], j[keep]]), shift[keep]


def neighbor_pairs(pos: Tensor, cell: Optional[Tensor], cutoff: float) -> Tuple[Tensor, Tensor]:
    """All ordered pairs (i, j), i ≠ j, with |pos_j − pos_i + shift·cell| < cutoff.

    Parameters
    ----------
    pos: (n, 3) positions (any wrapping; any units consistent with ``cutoff``).
    cell: (3, 3) box, rows are box vectors, or None for no periodicity.
    cutoff: pair cutoff.

    Returns
    -------
    pairs: (2, E) int64 indices [i, j] (both orders present).
    shifts: (E, 3) integer-valued lattice shifts (zeros without a cell), same dtype as pos.
    """
    n = pos.shape[0]
    with torch.no_grad():
        p = pos.detach()
        if n < 2:
            return (torch.zeros((2, 0), dtype=torch.long, device=pos.device),
                    torch.zeros((0, 3), dtype=pos.dtype, device=pos.device))
        if cell is None:
            # A padded virtual box: pairs across its boundary are ≥ 2·cutoff apart.
            lo = p.min(0).values
            ext = p.max(0).values - lo
            box = torch.diag(ext + 2.0 * cutoff + 1.0)
            ncell = torch.floor(torch.diagonal(box) / cutoff).long()
            if bool((ncell < 3).any()):
                pairs, _ = _pairs_brute(p, None, cutoff)
            else:
                pairs, _ = _pairs_cells(p - lo + cutoff, box, cutoff, ncell)
            return pairs, torch.zeros((pairs.shape[1], 3), dtype=pos.dtype, device=pos.device)
        c = cell.detach()
        ncell = torch.floor(box_heights(c) / cutoff).long()
        if bool((ncell < 3).any()):
            return _pairs_brute(p, c, cutoff)
        return _pairs_cells(p, c, cutoff, ncell)
