"""Structure: radial distribution functions, running coordination numbers, first-shell
composition around a cation.

g_AB(r) comes from :func:`mdtraj.compute_rdf` (periodic, minimum image), accumulated over
frame chunks so memory stays bounded. The running coordination number

    n_AB(r) = 4π ρ_B ∫_0^r g_AB(r') r'² dr'

is evaluated on the histogram's shells, so it equals the average number of B atoms
within r of an A atom exactly (ρ_B = pairs per A atom / V, averaged as ⟨1/V⟩).
The first-shell cutoff is the first minimum of g after its first peak.

Reference: Allen & Tildesley, Computer Simulation of Liquids (2nd ed., 2017), §8.2.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np


@dataclass
class RDFResult:
    """An RDF between atom groups A and B with its running coordination number.

    Attributes:
        r_nm: bin centres, nm.
        g: g_AB(r) (dimensionless).
        r_edges_nm: upper bin edges, nm (where ``cn`` is evaluated).
        cn: running coordination number n_AB at ``r_edges_nm`` (B atoms per A atom).
        density_nm3: ρ_B, B atoms per nm³ (pairs per A atom × ⟨1/V⟩).
        n_a, n_b: atoms in each group.
        first_peak_nm, peak_height: position and height of the first peak (NaN if none).
        first_min_nm: first minimum after the first peak (NaN if not found).
        cn_first_shell: n_AB at the first minimum (NaN if not found).
    """

    r_nm: np.ndarray = field(repr=False)
    g: np.ndarray = field(repr=False)
    r_edges_nm: np.ndarray = field(repr=False)
    cn: np.ndarray = field(repr=False)
    density_nm3: float
    n_a: int
    n_b: int
    first_peak_nm: float = float("nan")
    peak_height: float = float("nan")
    first_min_nm: float = float("nan")
    cn_first_shell: float = float("nan")

    def cn_at(self, r_nm: float) -> float:
        """Running coordination number at distance r (nm), linear between bin edges."""
        return float(np.interp(r_nm, np.concatenate([[0.0], self.r_edges_nm]), np.concatenate([[0.0], self.cn])))


def _pairs(a: np.ndarray, b: np.ndarray, residue_of: Optional[np.ndarray]) -> np.ndarray:
    aa, bb = np.meshgrid(np.asarray(a, int), np.asarray(b, int), indexing="ij")
    aa, bb = aa.ravel(), bb.ravel()
    keep = aa != bb
    if residue_of is not None:
        keep &= residue_of[aa] != residue_of[bb]
    return np.stack([aa[keep], bb[keep]], axis=1)


def max_rdf_range(box_nm: np.ndarray) -> float:
    """Largest r (nm) for which the minimum image is unambiguous: half the shortest box
    height over all frames (box vectors as rows, (T, 3, 3) or (3, 3))."""
    b = np.asarray(box_nm, float).reshape(-1, 3, 3)
    vol = np.abs(np.linalg.det(b))
    heights = []
    for i, (j, k) in enumerate([(1, 2), (2, 0), (0, 1)]):
        heights.append(vol / np.linalg.norm(np.cross(b[:, j], b[:, k]), axis=1))
    return float(0.5 * np.min(heights))


def first_peak_and_minimum(r_nm: np.ndarray, g: np.ndarray, smooth: int = 3,
                           min_peak: float = 1.0) -> tuple:
    """First peak (position, height) and first minimum after it, nm.

    The peak is the first local maximum of the (``smooth``-bin moving-average) g that
    exceeds ``min_peak``, or the global maximum if none does. The minimum is the lowest
    point before g rises again significantly (by a quarter of the way back to 1, at
    least 5% of the peak depth, at most half the way back to 1; so noise does not end
    it, however tall the peak); on a flat plateau (e.g. g = 0 between lattice shells) the middle
    of the plateau. Returns (peak_r, peak_g, min_r), NaN when absent.
    """
    if len(g) < 3 or not np.any(g > 0):
        return float("nan"), float("nan"), float("nan")
    k = max(1, int(smooth))
    gs = np.convolve(g, np.ones(k) / k, mode="same") if k > 1 else np.asarray(g, float)
    n = len(gs)
    peak = None
    for i in range(1, n - 1):
        if gs[i] >= min_peak and gs[i] >= gs[i - 1] and gs[i] > gs[i + 1]:
            peak = i
            break
    if peak is None:
        peak = int(np.argmax(gs))
    # walk outwards keeping the running minimum; stop at a significant rise above it
    # (a quarter of the way back to g = 1, at least 5% of the peak-to-minimum depth and
    # 0.02, at most half that depth and, below g = 1, at most half the way back to 1),
    # so noise wiggles do not end the search but the second shell always does
    lo = hi = peak
    k = peak + 1
    while k < n:
        if gs[k] < gs[lo] - 1e-12:
            lo = hi = k
        elif abs(gs[k] - gs[lo]) <= 1e-9 + 1e-6 * abs(gs[lo]):
            hi = k  # flat minimum: remember its extent
        else:
            depth = gs[peak] - gs[lo]
            thr = min(max(0.25 * (1.0 - gs[lo]), 0.05 * depth, 0.02), 0.5 * depth)
            if gs[lo] < 1.0:  # a tall peak must not hide the rise back towards bulk
                thr = min(thr, max(0.5 * (1.0 - gs[lo]), 0.02))
            if gs[k] - gs[lo] > thr:
                break
        k += 1
    if k >= n or lo == peak:
        return float(r_nm[peak]), float(g[peak]), float("nan")
    r_min = 0.5 * (r_nm[lo] + r_nm[hi])
    return float(r_nm[peak]), float(g[peak]), float(r_min)


def rdf(
    trajs,
    group_a: np.ndarray,
    group_b: np.ndarray,
    r_max_nm: float = 1.0,
    bin_width_nm: float = 0.005,
    exclude_same_residue: bool = True,
    chunk_frames: int = 200,
    max_pairs_elements: int = 20_000_000,
) -> RDFResult:
    """g_AB(r) and the running coordination number n_AB(r), over one or more trajectories.

    Args:
        trajs: an mdtraj Trajectory or a list of them (same topology) with unit cells.
        group_a, group_b: atom indices of the two groups (may overlap; i = j pairs are
            skipped).
        r_max_nm: largest distance, nm (clipped to half the shortest box height).
        bin_width_nm: histogram bin width, nm.
        exclude_same_residue: skip pairs inside one molecule (residue).
        chunk_frames: frames per call of mdtraj.compute_rdf (memory bound).

    Returns:
        RDFResult (r in nm, g dimensionless, cn in B atoms per A atom).
    """
    import mdtraj as md

    trajs = [trajs] if isinstance(trajs, md.Trajectory) else list(trajs)
    a, b = np.asarray(group_a, int), np.asarray(group_b, int)
    if len(a) == 0 or len(b) == 0:
        raise ValueError(f"RDF needs atoms in both groups (got {len(a)} and {len(b)})")
    for t in trajs:
        if t.unitcell_vectors is None:
            raise ValueError("RDF needs a periodic box, but the trajectory has no unit cell")
    top = trajs[0].topology
    residue_of = np.array([at.residue.index for at in top.atoms]) if exclude_same_residue else None
    pairs = _pairs(a, b, residue_of)
    if len(pairs) == 0:
        raise ValueError("no atom pairs between the two groups (all in the same molecules?)")
    r_lim = min(max_rdf_range(t.unitcell_vectors) for t in trajs)
    r_max = min(float(r_max_nm), r_lim)
    n_bins = max(1, int(round(r_max / bin_width_nm)))
    r_max = n_bins * bin_width_nm
    if r_max > r_lim + 1e-12:
        n_bins -= 1
        r_max = n_bins * bin_width_nm
    edges = np.linspace(0.0, r_max, n_bins + 1)
    acc = np.zeros(n_bins)
    inv_v_sum = 0.0
    n_frames = 0
    step = max(1, min(chunk_frames, max_pairs_elements // max(1, len(pairs))))
    r = None
    for t in trajs:
        for s in range(0, t.n_frames, step):
            sub = t[s:s + step]
            r, g = md.compute_rdf(sub, pairs, r_range=(0.0, r_max), n_bins=n_bins, periodic=True)
            w = float(np.sum(1.0 / sub.unitcell_volumes))
            acc += g * w
            inv_v_sum += w
            n_frames += sub.n_frames
    g = acc / inv_v_sum
    density = len(pairs) / len(a) * inv_v_sum / n_frames  # B atoms per nm³ seen by an A atom
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    cn = np.cumsum(density * g * shell)
    res = RDFResult(r_nm=np.asarray(r), g=g, r_edges_nm=edges[1:], cn=cn, density_nm3=float(density),
                    n_a=len(a), n_b=len(np.unique(b)))
    pk, ph, mn = first_peak_and_minimum(res.r_nm, g)
    res.first_peak_nm, res.peak_height, res.first_min_nm = pk, ph, mn
    if np.isfinite(mn):
        res.cn_first_shell = res.cn_at(mn)
    return res


@dataclass
class ShellResult:
    """First-shell composition around the centre atoms (e.g. Li).

    Attributes:
        mean_counts: species name → average number of molecules of that species with at
            least one ligand atom within its cutoff of a centre atom (per centre atom).
        mean_coordination: average number of ligand atoms within their cutoffs.
        compositions: most frequent shell compositions, as (label like "2 EC + 1 PF6",
            fraction of (centre, frame) samples), most frequent first.
        cutoffs_nm: cutoff used for each ligand group, nm.
    """

    mean_counts: Dict[str, float]
    mean_coordination: float
    compositions: List[tuple]
    cutoffs_nm: Dict[str, float]


def shell_composition(
    trajs,
    centers: np.ndarray,
    ligand_groups: Mapping[str, np.ndarray],
    cutoffs_nm: Mapping[str, float],
    molecule_species: Mapping[int, str],
    species_order: Optional[Sequence[str]] = None,
    chunk_frames: int = 100,
    top_n: int = 10,
) -> ShellResult:
    """Average first-shell composition around ``centers`` (e.g. Li atoms).

    A molecule belongs to the shell of a centre atom when at least one of its ligand
    atoms (e.g. O or F) lies within the cutoff of its group (minimum image).

    Args:
        trajs: mdtraj Trajectory or list of them, with unit cells.
        centers: atom indices of the centres.
        ligand_groups: group name → ligand atom indices (e.g. {"O_carbonyl": ..., "F": ...}).
        cutoffs_nm: group name → cutoff distance, nm.
        molecule_species: residue index → species name, for every ligand atom's residue.
        species_order: order of species in the output (default: sorted names).
    """
    import mdtraj as md

    trajs = [trajs] if isinstance(trajs, md.Trajectory) else list(trajs)
    top = trajs[0].topology
    lig, cut = [], []
    for gname, idx in ligand_groups.items():
        idx = np.setdiff1d(np.asarray(idx, int), centers)
        if len(idx) == 0:
            continue
        if gname not in cutoffs_nm or not np.isfinite(cutoffs_nm[gname]):
            raise ValueError(f"no shell cutoff for ligand group {gname!r}")
        lig.append(idx)
        cut.append(np.full(len(idx), float(cutoffs_nm[gname])))
    if not lig:
        raise ValueError("no ligand atoms for the shell composition")
    lig_idx = np.concatenate(lig)
    lig_cut = np.concatenate(cut)
    res_of = np.array([top.atom(int(i)).residue.index for i in lig_idx])
    order = np.argsort(res_of, kind="stable")
    lig_idx, lig_cut, res_of = lig_idx[order], lig_cut[order], res_of[order]
    mols, starts = np.unique(res_of, return_index=True)
    names = species_order or sorted(set(molecule_species[int(m)] for m in mols))
    name_pos = {n: k for k, n in enumerate(names)}
    mol_sp = np.array([name_pos[molecule_species[int(m)]] for m in mols])
    centers = np.asarray(centers, int)
    pairs = np.stack(np.meshgrid(centers, lig_idx, indexing="ij"), axis=-1).reshape(-1, 2)
    totals = np.zeros(len(names))
    coord = 0.0
    samples = 0
    comp_counter: Counter = Counter()
    for t in trajs:
        for s in range(0, t.n_frames, chunk_frames):
            sub = t[s:s + chunk_frames]
            d = md.compute_distances(sub, pairs, periodic=True).reshape(sub.n_frames, len(centers), len(lig_idx))
            within = d < lig_cut[None, None, :]
            coord += float(within.sum())
            in_mol = np.logical_or.reduceat(within, starts, axis=2)  # (F, C, n_mols)
            counts = np.zeros((sub.n_frames, len(centers), len(names)), dtype=int)
            for k in range(len(names)):
                counts[..., k] = in_mol[..., mol_sp == k].sum(axis=2)
            totals += counts.sum(axis=(0, 1))
            samples += sub.n_frames * len(centers)
            comp_counter.update(map(tuple, counts.reshape(-1, len(names))))
    mean = {n: float(totals[k] / samples) for k, n in enumerate(names)}
    comps = []
    for combo, c in comp_counter.most_common(top_n):
        label = " + ".join(f"{v} {names[k]}" for k, v in enumerate(combo) if v) or "empty"
        comps.append((label, c / samples))
    return ShellResult(mean, coord / samples, comps, {k: float(v) for k, v in cutoffs_nm.items()})
