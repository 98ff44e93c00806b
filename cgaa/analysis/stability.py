"""Was an MD run physically intact? Molecules whole, and no two molecules closer than a model knows.

An ML force field can be stable in the sense that nothing crashed and still wrong: a bond that
stretched to twice its length, or an ion that sat on a solvent atom closer than any training
frame came. :func:`stability_check` looks at every frame of a trajectory for both:

* **broken molecules**: a bond of the topology longer than :data:`BROKEN_FACTOR` × the sum of
  the two atoms' covalent radii (a C–H bond at 1.7 Å, a C–O bond at 2.3 Å), and the largest
  stretch of any bond relative to its own median length over the run;
* **closest approaches** between atoms of different residues (molecules), per element pair,
  compared with a model's contact floor (``ModelConfig.contact_floor``, Å: the closest approach in
  its training data) and with the wall of the contact guard at ``guard_fraction`` × that floor
  (:func:`cgaa.openmm.guards.add_contact_guard`, 0.9): a pair inside the wall means the guard was
  pushing, i.e. the run left the model's data.

Positions are nm (mdtraj), distances reported in Å (the model's unit; converted through
:mod:`cgaa.core.units`), minimum image in the trajectory's (triclinic allowed) box.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from cgaa.analysis.checks import DEFAULT_RADIUS_NM
from cgaa.analysis.species import COVALENT_RADIUS_NM
from cgaa.core import units

#: A bond is broken when longer than this × the sum of its atoms' covalent radii.
BROKEN_FACTOR: float = 1.6
#: The contact guard's wall sits at this fraction of the contact floor (cgaa.openmm.guards).
GUARD_FRACTION: float = 0.9


@dataclass
class StabilityResult:
    """What :func:`stability_check` found (distances Å, frames 0-based within the trajectory).

    Attributes:
        n_frames, n_bonds: frames and topology bonds looked at.
        broken_frames: frames with at least one broken bond.
        first_broken: (frame, atom i, atom j, length Å) of the first broken bond, or None.
        max_bond_stretch: largest bond length / that bond's median length over the run.
        closest: element pair "A-B" (sorted by atomic number) → (closest approach Å, frame, atom i, atom j)
            between atoms of different residues, within ``search_A``.
        floor: element pair → the model's contact floor (Å), where given.
        below_wall: element pairs that came closer than ``guard_fraction`` × floor (the guard pushed).
        below_floor: element pairs that came closer than the floor (outside the training data).
        frames_below_wall, frames_below_floor: element pair → frames in which it did so.
    """

    n_frames: int
    n_bonds: int
    broken_frames: int = 0
    first_broken: Optional[Tuple[int, int, int, float]] = None
    max_bond_stretch: float = float("nan")
    closest: Dict[str, Tuple[float, int, int, int]] = field(default_factory=dict)
    floor: Dict[str, float] = field(default_factory=dict)
    below_wall: List[str] = field(default_factory=list)
    below_floor: List[str] = field(default_factory=list)
    frames_below_wall: Dict[str, int] = field(default_factory=dict)
    frames_below_floor: Dict[str, int] = field(default_factory=dict)

    @property
    def intact(self) -> bool:
        """No broken bond and no contact inside the guard's wall."""
        return self.broken_frames == 0 and not self.below_wall

    def to_dict(self) -> dict:
        """JSON-ready summary (distances in Å)."""
        return {
            "n_frames": self.n_frames, "n_bonds": self.n_bonds, "intact": self.intact,
            "broken_frames": self.broken_frames,
            "first_broken": None if self.first_broken is None else dict(
                zip(("frame", "atom_i", "atom_j", "length_A"), self.first_broken)),
            "max_bond_stretch": self.max_bond_stretch,
            "closest_approach_A": {k: {"distance_A": v[0], "frame": v[1], "atom_i": v[2], "atom_j": v[3],
                                       **({"floor_A": self.floor[k]} if k in self.floor else {})}
                                   for k, v in sorted(self.closest.items())},
            "below_guard_wall": list(self.below_wall), "below_floor": list(self.below_floor),
            "frames_below_guard_wall": dict(self.frames_below_wall),
            "frames_below_floor": dict(self.frames_below_floor),
        }


def _pair_key(z1: int, z2: int, symbols: Dict[int, str]) -> str:
    a, b = sorted((int(z1), int(z2)))
    return f"{symbols[a]}-{symbols[b]}"


def _wrapped(traj):
    """A copy of ``traj`` with every atom put into the box (fractional coordinates in [0, 1)):
    distances under the minimum image are unchanged, and cell-list searches see atoms in the box."""
    out = traj[:]
    boxes = np.asarray(traj.unitcell_vectors, dtype=np.float64)
    frac = np.einsum("fnj,fjk->fnk", np.asarray(traj.xyz, np.float64), np.linalg.inv(boxes))
    frac -= np.floor(frac)
    out.xyz = np.einsum("fnj,fjk->fnk", frac, boxes).astype(np.float32)
    return out


#: Atom pairs up to which every pair is computed at once (about 2000 atoms); larger boxes use a
#: neighbour list per frame.
ALL_PAIRS_MAX = 2_000_000
#: Distances computed per chunk of frames on the all-pairs path (memory: 4 bytes each, twice).
DISTANCES_PER_CHUNK = 10_000_000


def stability_check(traj, contact_floor: Optional[Sequence[Sequence[float]]] = None,
                    guard_fraction: float = GUARD_FRACTION, search_A: float = 4.0) -> StabilityResult:
    """Check every frame of ``traj`` (mdtraj Trajectory with a box and topology bonds) for broken
    bonds and for the closest approaches between atoms of different residues.

    Args:
        traj: the trajectory (nm); wrapped or not.
        contact_floor: ``[[Z1, Z2, d_min Å], ...]`` (a model's ``ModelConfig.contact_floor``), or None.
        guard_fraction: the contact guard's wall as a fraction of the floor (0.9 in cgaa).
        search_A: closest approaches are looked for within this distance (Å); pairs never that
            close are not listed.

    Returns:
        StabilityResult. ValueError if the trajectory has no box.
    """
    import mdtraj as md

    if traj.unitcell_vectors is None:
        raise ValueError("stability_check needs a periodic box in the trajectory")
    top = traj.topology
    atoms = list(top.atoms)
    z = np.array([a.element.atomic_number if a.element is not None else 0 for a in atoms], dtype=int)
    symbols = {int(a.element.atomic_number): a.element.symbol for a in atoms if a.element is not None}
    symbols.setdefault(0, "X")
    res = np.array([a.residue.index for a in atoms], dtype=int)
    bonds = np.array([(a.index, b.index) for a, b in top.bonds], dtype=int).reshape(-1, 2)
    out = StabilityResult(n_frames=int(traj.n_frames), n_bonds=int(len(bonds)))
    if len(bonds):
        length = md.compute_distances(traj, bonds, periodic=True)  # (F, B) nm
        rad = np.array([COVALENT_RADIUS_NM.get(symbols.get(int(k), "X"), DEFAULT_RADIUS_NM) for k in z])
        lim = BROKEN_FACTOR * (rad[bonds[:, 0]] + rad[bonds[:, 1]])
        broken = length > lim[None, :]
        out.broken_frames = int(broken.any(axis=1).sum())
        if out.broken_frames:
            f, b = (int(v) for v in np.argwhere(broken)[0])
            out.first_broken = (f, int(bonds[b, 0]), int(bonds[b, 1]), units.nm_to_angstrom(float(length[f, b])))
        med = np.median(length, axis=0)
        out.max_bond_stretch = float(np.max(length / np.where(med > 0, med, np.inf)[None, :]))
    wrapped = _wrapped(traj)
    cut_nm = units.angstrom_to_nm(float(search_A))
    per_frame: Dict[str, np.ndarray] = {}  # element pair -> closest approach in each frame (Å; inf: none)

    def record(f: int, pairs: np.ndarray, d: np.ndarray) -> None:
        """Closest approach per element pair in frame f among ``pairs`` at distances ``d`` (Å)."""
        za, zb = np.minimum(z[pairs[:, 0]], z[pairs[:, 1]]), np.maximum(z[pairs[:, 0]], z[pairs[:, 1]])
        code = za * 1000 + zb
        for c in np.unique(code):
            sel = np.nonzero(code == c)[0]
            k = sel[np.argmin(d[sel])]
            key = _pair_key(int(za[k]), int(zb[k]), symbols)
            per_frame.setdefault(key, np.full(traj.n_frames, np.inf))[f] = d[k]
            if key not in out.closest or d[k] < out.closest[key][0]:
                out.closest[key] = (float(d[k]), f, int(pairs[k, 0]), int(pairs[k, 1]))

    n = traj.n_atoms
    if n * (n - 1) // 2 <= ALL_PAIRS_MAX:  # small boxes: every pair of every frame at once, in chunks
        ii, jj = np.triu_indices(n, 1)
        keep = res[ii] != res[jj]
        pairs = np.stack([ii[keep], jj[keep]], axis=1).astype(np.int32)
        chunk = max(1, DISTANCES_PER_CHUNK // max(len(pairs), 1))
        for f0 in range(0, traj.n_frames if len(pairs) else 0, chunk):
            d = units.nm_to_angstrom(md.compute_distances(wrapped[f0:f0 + chunk], pairs, periodic=True))
            for r, row in enumerate(d):
                near = row <= float(search_A)
                if near.any():
                    record(f0 + r, pairs[near], row[near])
    else:  # large boxes: a neighbour list per frame
        for f in range(traj.n_frames):
            nbrs = md.compute_neighborlist(wrapped, cut_nm, frame=f, periodic=True)
            ii = np.repeat(np.arange(len(nbrs)), [len(js) for js in nbrs])
            jj = np.concatenate([np.asarray(js, dtype=int) for js in nbrs]) if len(ii) else ii
            keep = (jj > ii) & (res[ii] != res[jj])
            pairs = np.stack([ii[keep], jj[keep]], axis=1).astype(np.int32)
            if len(pairs):
                record(f, pairs, units.nm_to_angstrom(md.compute_distances(wrapped[f], pairs, periodic=True)[0]))
    for z1, z2, dmin in contact_floor or []:
        if int(z1) in symbols and int(z2) in symbols:
            out.floor[_pair_key(int(z1), int(z2), symbols)] = float(dmin)
    for key, dmin in out.floor.items():
        if key in out.closest:
            n_wall = int(np.sum(per_frame[key] < guard_fraction * dmin))
            n_floor = int(np.sum(per_frame[key] < dmin))
            if n_wall:
                out.below_wall.append(key)
                out.frames_below_wall[key] = n_wall
            if n_floor:
                out.below_floor.append(key)
                out.frames_below_floor[key] = n_floor
    return out
