"""Fixed-shape evaluation of a CGAA model for MD: padded neighbour lists with a skin.

:class:`PaddedModel` wraps a :class:`cgaa.core.model.CGAAModel` with the same ``forward``
signature and results, but keeps its neighbour lists between calls (module buffers), padded
to a fixed *capacity* with a validity mask:

* grain-centre pairs within ``cutoff + skin`` (both orders), and, for a model with the
  contact term, atom pairs of different grains within ``pair_cutoff + skin`` (each once);
* intra-grain atom pairs: all pairs of the same grain (i < j), built once (the grains never
  change); the envelope zeroes those beyond ``intra_cutoff``;
* the lists are rebuilt only when an atom has moved more than ``skin/2`` (minimum image)
  since the last build, or the box changed. Between rebuilds every pair closer than the
  cutoff is in the list (Verlet's argument: two atoms approach by at most ``skin``).

Pairs in the list beyond the cutoff, and the padded entries (a self pair shifted by the first
box vector, longer than twice the cutoff), add exactly zero energy and zero, finite gradient
(every radial term is multiplied by an envelope that is exactly 0 beyond its cutoff), so the
results equal the exact path's (:meth:`CGAAModel.forward`) to float round-off. Lattice shifts
are recomputed at each call by minimum image (:func:`cgaa.core.model.masked_shifts`), so
positions that the MD engine wraps between rebuilds are harmless.

Two modes (``sync_free``):

* ``False`` (host rebuilds): the rebuild test is read back to the host once per call; a
  rebuild runs vesin's O(N) cell list (:func:`cgaa.core.neighbors.neighbor_pairs`) and the
  host input checks (the exact path's, and the grain-width check); when the pairs found
  exceed the capacity, the capacity grows (to ``capacity_factor`` × the count) at that
  rebuild. Never truncated.
* ``True`` (no host reads or synchronisations after the first call: what a CUDA graph can
  capture, e.g. OpenMM-Torch's ``useCUDAGraphs``): the first call sizes everything on the host
  (input checks, capacities, the cell grid) — OpenMM-Torch makes it during its uncaptured
  warm-up. Afterwards each call runs a fixed-shape cell-list search with tensor operations
  (:func:`fixed_cell_pairs`) and keeps its result only where a rebuild is due
  (``torch.where``: a CUDA graph cannot branch, so the search runs at every call and a
  non-zero skin only adds edges there; the default skin for this mode is 0). A capacity
  that a later rebuild would overflow (pairs, atoms per cell, or a box that shrank below the
  cell grid) cannot grow inside a captured graph: the energy and forces are then set to NaN
  (never silently truncated) and the sticky buffer ``overflow`` is set; OpenMM then stops
  with a NaN error; rerun with a larger ``capacity_factor`` (or without CUDA graphs).

Both modes need a periodic box. Units: Å, eV (the model's).
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from cgaa.core.model import CGAAModel, grain_centers, intra_pairs
from cgaa.core.neighbors import box_heights, neighbor_pairs


def _offsets(grid: List[int]) -> Tensor:
    """Neighbour-cell offsets (K, 3): −1, 0, +1 along a direction with ≥ 3 cells, the distinct
    ones (0, or 0 and 1) with fewer, so no cell is visited twice."""
    per: List[List[int]] = []
    for n in grid:
        if n >= 3:
            per.append([-1, 0, 1])
        else:
            per.append([k for k in range(n)])
    out: List[List[int]] = []
    for a in per[0]:
        for b in per[1]:
            for c in per[2]:
                out.append([a, b, c])
    return torch.tensor(out, dtype=torch.long)


def fixed_cell_pairs(points: Tensor, cell: Tensor, radius: float, grid: List[int], offsets: Tensor,
                     cell_cap: int, capacity: int, half: bool,
                     group: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Pairs within ``radius`` (minimum image) by a cell list of fixed shape: tensor operations
    only, no host reads, O(N · cells visited · ``cell_cap``).

    points: (n, 3) any wrapping; cell: (3, 3) rows are box vectors; grid: cells per box vector
    (each cell's height must be ≥ ``radius``); offsets: :func:`_offsets` of ``grid``;
    cell_cap: most points a cell holds; capacity: length of the result; half: each pair once
    (i < j) or both orders; group: (n,) pairs of the same group are left out.

    Returns (pairs (2, capacity) int64 with unused entries 0, mask (capacity,) of the valid
    entries, count: 0-d number of pairs found, bad: 0-d bool, True where the result is
    incomplete: more pairs than ``capacity``, a cell with more than ``cell_cap`` points, cells
    thinner than ``radius`` or ``radius`` not below half the shortest box height).
    """
    n = points.shape[0]
    dev = points.device
    p = points.detach()
    box = cell.detach().to(p.dtype)
    inv = torch.linalg.inv_ex(box)[0]
    gsz = torch.tensor(grid, dtype=torch.long, device=dev)
    ncell = grid[0] * grid[1] * grid[2]
    f = p @ inv
    f = f - torch.floor(f)
    c3 = torch.minimum((f * gsz.to(p.dtype)).long(), gsz - 1).clamp(min=0)
    cid = (c3[:, 0] * grid[1] + c3[:, 1]) * grid[2] + c3[:, 2]
    counts = torch.zeros(ncell, dtype=torch.long, device=dev).index_add(0, cid, torch.ones_like(cid))
    order = torch.argsort(cid)
    sc = cid[order]
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(n, device=dev) - starts[sc]
    dump = ncell * cell_cap
    slot = torch.where(rank < cell_cap, sc * cell_cap + rank, torch.full_like(rank, dump))
    table = torch.full((dump + 1,), -1, dtype=torch.long, device=dev).scatter(0, slot, order)
    table = table[:dump].view(ncell, cell_cap)
    nb = (c3.unsqueeze(1) + offsets.to(dev).unsqueeze(0)) % gsz  # (n, K, 3)
    nbid = (nb[..., 0] * grid[1] + nb[..., 1]) * grid[2] + nb[..., 2]
    cand = table[nbid].reshape(n, -1)  # (n, K·cap)
    i = torch.arange(n, device=dev).unsqueeze(1).expand_as(cand)
    j = cand.clamp(min=0)
    d = p[j] - p[i]
    d = d - torch.round(d @ inv) @ box
    ok = (cand >= 0) & (i != j) & ((d * d).sum(-1) < radius * radius)
    if half:
        ok = ok & (i < j)
    if group is not None:
        ok = ok & (group[i] != group[j])
    ok = ok.reshape(-1)
    pos = torch.cumsum(ok.long(), 0) - 1
    count = ok.long().sum()
    dest = torch.where(ok & (pos < capacity), pos, torch.full_like(pos, capacity))
    pi = torch.zeros(capacity + 1, dtype=torch.long, device=dev).scatter(0, dest, i.reshape(-1))[:capacity]
    pj = torch.zeros(capacity + 1, dtype=torch.long, device=dev).scatter(0, dest, j.reshape(-1))[:capacity]
    mask = torch.arange(capacity, device=dev) < count
    h = box_heights(box)
    bad = (count > capacity) | (counts.max() > cell_cap) | (h / gsz.to(h.dtype) < radius).any() \
        | (2.0 * radius >= h.min())
    return torch.stack([pi, pj]), mask, count, bad


def pad_pairs(pairs: Tensor, capacity: int) -> Tuple[Tensor, Tensor]:
    """``pairs`` (2, E), E ≤ capacity, padded with zeros to (2, capacity), and the mask of the
    first E entries."""
    e = pairs.shape[1]
    out = torch.zeros((2, capacity), dtype=torch.long, device=pairs.device)
    out[:, :e] = pairs
    return out, torch.arange(capacity, device=pairs.device) < e


def grid_for(cell: Tensor, radius: float, margin: float) -> List[int]:
    """Cells per box vector, each cell at least ``radius·(1 + margin)`` high (margin: room for a
    barostat to shrink the box before the grid is too fine)."""
    h = box_heights(cell.detach().double().cpu())
    return [max(1, int(math.floor(float(h[k]) / (radius * (1.0 + margin))))) for k in range(3)]


class PaddedModel(nn.Module):
    """A CGAA model evaluated on padded neighbour lists kept between calls (see the module
    docstring). ``forward`` has :meth:`CGAAModel.forward`'s signature and results.

    Parameters
    ----------
    model: the eager :class:`CGAAModel` (its weights are shared, not copied).
    skin: Verlet skin (Å); lists hold pairs within cutoff + skin, rebuilt after a move of skin/2.
    capacity_factor: capacities are this factor times the counts found at sizing (≥ 1).
    sync_free: no host reads after the first call (see the module docstring).
    grid_margin: sync-free mode: fraction by which the box may shrink before its cell grid is
        too fine (an overflow).
    cell_factor: sync-free mode: points a cell may hold, as a factor on the most found at sizing.

    Buffers worth reading after a run: ``n_rebuilds`` (rebuilds made, the first included),
    ``overflow`` (sync-free mode: 1 once a rebuild overflowed; results were NaN from then on),
    ``inter_pairs``/``inter_mask`` and ``contact_pairs``/``contact_mask`` (the lists).
    """

    def __init__(self, model: CGAAModel, skin: float = 1.0, capacity_factor: float = 1.5,
                 sync_free: bool = False, grid_margin: float = 0.05, cell_factor: float = 2.0):
        super().__init__()
        if not skin >= 0:
            raise ValueError(f"skin must be ≥ 0 Å, not {skin}")
        if not capacity_factor >= 1.0:
            raise ValueError(f"capacity_factor must be ≥ 1, not {capacity_factor}")
        self.model = model
        self.skin = float(skin)
        self.capacity_factor = float(capacity_factor)
        self.sync_free = bool(sync_free)
        self.grid_margin = float(grid_margin)
        self.cell_factor = float(cell_factor)
        self.cutoff = float(model.cutoff)
        self.pair_cutoff = float(model.pair_cutoff)
        self.contacts = self.pair_cutoff > 0.0
        self.sized = False
        self.inter_capacity = 0
        self.contact_capacity = 0
        self.inter_grid: List[int] = [1, 1, 1]
        self.contact_grid: List[int] = [1, 1, 1]
        self.inter_cell_cap = 1
        self.contact_cell_cap = 1
        self.n_grows = 0
        dt = model.masses.dtype
        for name, shape, dtype in (("intra", (2, 0), torch.long), ("inter_pairs", (2, 0), torch.long),
                                   ("inter_mask", (0,), torch.bool), ("contact_pairs", (2, 0), torch.long),
                                   ("contact_mask", (0,), torch.bool), ("ref_pos", (0, 3), dt),
                                   ("ref_cell", (3, 3), dt), ("n_rebuilds", (), torch.long),
                                   ("overflow", (), torch.long), ("inter_offsets", (0, 3), torch.long),
                                   ("contact_offsets", (0, 3), torch.long)):
            self.register_buffer(name, torch.zeros(shape, dtype=dtype), persistent=False)

    # ------------------------------------------------------------------ host steps
    def _points(self, pos: Tensor, species: Tensor, grain_index: Tensor, n_grains: int,
                cell: Tensor) -> Tuple[Tensor, Tensor]:
        """Grain centres (G, 3) and contact points r_G + u_i (N, 3), detached (Å)."""
        with torch.no_grad():
            r, u, _ = grain_centers(pos.detach(), self.model.masses[species], grain_index, n_grains, cell)
            return r, r[grain_index] + u

    def _host_rebuild(self, pos: Tensor, species: Tensor, grain_index: Tensor, grain_type: Tensor,
                      cell: Tensor) -> None:
        """Input checks, then the lists by vesin within cutoff + skin, padded (capacity grown if
        needed, never truncated). Host reads throughout."""
        self.model._check_inputs(pos, species, grain_index, grain_type, cell)
        g = grain_type.shape[0]
        h = float(box_heights(cell).min())
        if not self.cutoff + self.skin < 0.5 * h or (self.contacts and not self.pair_cutoff + self.skin < 0.5 * h):
            raise RuntimeError("cutoff + skin (" + str(self.cutoff) + " + " + str(self.skin) + " A) is not below "
                               + "half the shortest box height (" + str(0.5 * h) + " A): use a smaller skin "
                               + "or a larger box")
        x = pos.detach().to(self.ref_cell.dtype)
        box = cell.detach().to(x.dtype)
        pairs = intra_pairs(grain_index, g)
        self.model.grain_geometry(x, species, grain_index, g, box, pairs)  # the grain-width check
        r, p = self._points(x, species, grain_index, g, box)
        if not self.sized:
            self.intra = pairs[:, pairs[0] < pairs[1]] if self.model.n_intra > 0 else pairs[:, :0]
        volume = abs(float(torch.linalg.det(box)))
        found, _ = neighbor_pairs(r, box, self.cutoff + self.skin, True)
        if not self.sized or found.shape[1] > self.inter_capacity:
            if self.sized:
                self.n_grows += 1
            self.inter_capacity = self._capacity(found.shape[1], g, self.cutoff + self.skin, volume, True)
        self.inter_pairs, self.inter_mask = pad_pairs(found, self.inter_capacity)
        if self.contacts:
            cp, _ = neighbor_pairs(p, box, self.pair_cutoff + self.skin, False)
            cp = cp[:, grain_index[cp[0]] != grain_index[cp[1]]]
            if not self.sized or cp.shape[1] > self.contact_capacity:
                if self.sized:
                    self.n_grows += 1
                self.contact_capacity = self._capacity(cp.shape[1], p.shape[0], self.pair_cutoff + self.skin,
                                                       volume, False)
            self.contact_pairs, self.contact_mask = pad_pairs(cp, self.contact_capacity)
        else:
            self.contact_pairs = torch.zeros((2, 0), dtype=torch.long, device=x.device)
            self.contact_mask = torch.zeros((0,), dtype=torch.bool, device=x.device)
        self.ref_pos = x.clone()
        self.ref_cell = box.clone()
        if self.sync_free and not self.sized:
            self._size_grid(r, p, box)
        self.n_rebuilds = self.n_rebuilds + 1
        self.sized = True

    def _capacity(self, found: int, n: int, radius: float, volume: float, full: bool) -> int:
        """``capacity_factor`` × the larger of the pairs found and the count of a uniform
        density of ``n`` points (a packed start can have far fewer pairs than the liquid), + 8."""
        uniform = n * (n - 1) * (4.0 / 3.0 * math.pi * radius ** 3) / volume
        if not full:
            uniform = 0.5 * uniform
        return int(math.ceil(self.capacity_factor * max(float(found), uniform))) + 8

    def _size_grid(self, r: Tensor, p: Tensor, box: Tensor) -> None:
        """Sync-free mode, first call: cell grids and per-cell capacities of the fixed-shape search."""
        self.inter_grid = grid_for(box, self.cutoff + self.skin, self.grid_margin)
        self.inter_offsets = _offsets(self.inter_grid).to(r.device)
        self.inter_cell_cap = self._cell_cap(r, box, self.inter_grid)
        if self.contacts:
            self.contact_grid = grid_for(box, self.pair_cutoff + self.skin, self.grid_margin)
            self.contact_offsets = _offsets(self.contact_grid).to(r.device)
            self.contact_cell_cap = self._cell_cap(p, box, self.contact_grid)

    def _cell_cap(self, points: Tensor, box: Tensor, grid: List[int]) -> int:
        inv = torch.linalg.inv(box)
        f = points @ inv
        f = f - torch.floor(f)
        gsz = torch.tensor(grid, dtype=torch.long, device=points.device)
        c3 = torch.minimum((f * gsz.to(f.dtype)).long(), gsz - 1).clamp(min=0)
        cid = (c3[:, 0] * grid[1] + c3[:, 1]) * grid[2] + c3[:, 2]
        most = int(torch.bincount(cid, minlength=grid[0] * grid[1] * grid[2]).max())
        return int(math.ceil(most * self.cell_factor)) + 2

    # ------------------------------------------------------------------ device steps
    def _need_rebuild(self, x: Tensor, box: Tensor) -> Tensor:
        """0-d bool: an atom moved more than skin/2 (minimum image) or the box changed. NaN
        positions also answer True (so the host checks of a rebuild see them)."""
        d = x.detach() - self.ref_pos
        inv = torch.linalg.inv_ex(box.detach())[0]
        d = d - torch.round(d @ inv) @ box.detach()
        far = ~((d * d).sum(-1).max() <= 0.25 * self.skin * self.skin)
        if self.skin == 0.0:
            far = torch.ones_like(far)
        return far | (box.detach() != self.ref_cell).any()

    def _device_rebuild(self, need: Tensor, x: Tensor, species: Tensor, grain_index: Tensor, g: int,
                        box: Tensor) -> None:
        """Fixed-shape search, kept where ``need``; updates the buffers in place."""
        r, p = self._points(x, species, grain_index, g, box)
        pairs, mask, _, bad = fixed_cell_pairs(r, box, self.cutoff + self.skin, self.inter_grid,
                                               self.inter_offsets, self.inter_cell_cap, self.inter_capacity, False)
        keep = need.reshape(1)
        self.inter_pairs.copy_(torch.where(keep, pairs, self.inter_pairs))
        self.inter_mask.copy_(torch.where(keep, mask, self.inter_mask))
        if self.contacts:
            cp, cm, _, cbad = fixed_cell_pairs(p, box, self.pair_cutoff + self.skin, self.contact_grid,
                                               self.contact_offsets, self.contact_cell_cap, self.contact_capacity,
                                               True, grain_index)
            self.contact_pairs.copy_(torch.where(keep, cp, self.contact_pairs))
            self.contact_mask.copy_(torch.where(keep, cm, self.contact_mask))
            bad = bad | cbad
        self.ref_pos.copy_(torch.where(keep.unsqueeze(1), x.detach(), self.ref_pos))
        self.ref_cell.copy_(torch.where(keep.unsqueeze(1), box.detach(), self.ref_cell))
        self.n_rebuilds.add_(need.long())
        self.overflow.copy_(torch.maximum(self.overflow, (need & bad).long()))

    # ------------------------------------------------------------------ forward
    def forward(self, pos: Tensor, species: Tensor, grain_index: Tensor, grain_type: Tensor,
                cell: Optional[Tensor] = None, compute_forces: bool = True,
                create_graph: bool = False, compute_virial: bool = False) -> Dict[str, Tensor]:
        if cell is None:
            raise RuntimeError("the padded neighbour lists need a periodic box")
        dtype = self.ref_cell.dtype
        x = pos.detach().to(dtype)
        box = cell.detach().to(dtype)
        g = grain_type.shape[0]
        if not self.sized:
            self.ref_cell = self.ref_cell.to(x.device)
            self.n_rebuilds = self.n_rebuilds.to(x.device)
            self.overflow = self.overflow.to(x.device)
            self._host_rebuild(pos, species, grain_index, grain_type, cell)
        else:
            need = self._need_rebuild(x, box)
            if self.sync_free:
                self._device_rebuild(need, x, species, grain_index, g, box)
            elif bool(need):
                self._host_rebuild(pos, species, grain_index, grain_type, cell)
        out = self.model.evaluate(pos, species, grain_index, grain_type, cell, compute_forces, create_graph,
                                  compute_virial, [self.intra, self.inter_pairs, self.inter_mask,
                                                   self.contact_pairs, self.contact_mask])
        if self.sync_free:
            poison = torch.where(self.overflow > 0, torch.full_like(out["energy"], float("nan")),
                                 torch.zeros_like(out["energy"]))
            for k in out.keys():
                out[k] = out[k] + poison
        return out
