"""Does a topology describe the atoms of a trajectory, in their order?

The atom count is checked on loading (:func:`cgaa.analysis.io.read_trajectory`). This
module checks what else can be checked:

* :func:`check_elements` — a trajectory file that carries its own atoms (PDB frames, GRO,
  PDBx/mmCIF, HDF5, MOL2): its element sequence must equal the topology's.
* :func:`check_atom_order` — every format, on the first frame: each residue (one molecule
  in the cgaa convention) must be one connected molecule. A bond of the topology that is
  far longer than a covalent bond, or a residue whose atoms fall apart into pieces, means
  the topology's atom order is not the trajectory's (or a residue holds several molecules,
  which the analysis would average as one).

What no check can see: two orders that put atoms of the same elements in the same
places of every molecule (e.g. molecules of one species permuted among themselves — harmless
for the analysis), monatomic ions swapped between species (Li⁺ listed where the file has
Na⁺), and, without bonds in the topology, a wrong order inside a molecule that keeps it
connected.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from cgaa.analysis.species import COVALENT_RADIUS_NM

#: A residue with more atoms than this is not checked for connectivity by distances.
MAX_RESIDUE_ATOMS: int = 20_000
#: Radius (nm) for elements without a covalent radius in the table (metals, unknown).
DEFAULT_RADIUS_NM: float = 0.15
#: Two atoms of a residue are connected when closer than this × the sum of covalent radii.
CONNECT_FACTOR: float = 1.5
#: A bond of the topology is broken when longer than max(BOND_MIN_NM, this × the radii sum).
BOND_FACTOR: float = 1.6
BOND_MIN_NM: float = 0.3
#: Refuse when more than this fraction of the multi-atom residues is not one molecule.
MAX_BAD_FRACTION: float = 0.2


def _symbol(atom) -> Optional[str]:
    el = atom.element
    if el is None:
        return None
    s = getattr(el, "symbol", None)
    return None if not s or s.upper() in ("VS", "EP", "D") else s


def _radius(atom) -> float:
    s = _symbol(atom)
    return COVALENT_RADIUS_NM.get(s, DEFAULT_RADIUS_NM) if s else DEFAULT_RADIUS_NM


def check_elements(top, traj_path: Path, top_path: Path) -> List[str]:
    """Compare the element sequence of ``top`` with the atoms stored in ``traj_path``
    (where its format has them; unreadable: no check). Atoms of unknown element on either
    side are skipped.

    Returns notes; raises ValueError naming the first differing atom and both files.
    """
    import mdtraj as md

    try:
        own = md.load_topology(str(traj_path))
    except Exception:
        return []
    if own.n_atoms != top.n_atoms:
        raise ValueError(f"atom count mismatch: trajectory {traj_path} has {own.n_atoms} atoms but topology "
                         f"{top_path} has {top.n_atoms}")
    diff = []
    for a, b in zip(top.atoms, own.atoms):
        sa, sb = _symbol(a), _symbol(b)
        if sa and sb and sa != sb:
            diff.append((a, b))
    if diff:
        a, b = diff[0]
        raise ValueError(
            f"atom order mismatch: {len(diff)} of {top.n_atoms} atoms of topology {top_path} differ in element from "
            f"the atoms stored in trajectory {traj_path}; the first is atom {a.index} ({a.element.symbol} in residue "
            f"{a.residue.name} {a.residue.index} of the topology, {b.element.symbol} in residue {b.residue.name} "
            f"{b.residue.index} of the trajectory file): use the topology the trajectory was written with")
    return []


def _mic(d: np.ndarray, box: np.ndarray, inv: np.ndarray) -> np.ndarray:
    s = d @ inv
    return (s - np.round(s)) @ box


def _components(n: int, edges: np.ndarray) -> np.ndarray:
    """Connected-component label of each of n nodes given (k, 2) edges."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if len(edges) == 0:
        return np.arange(n)
    m = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    return connected_components(m, directed=False)[1]


def _geometric_edges(idx: np.ndarray, xyz: np.ndarray, rad: np.ndarray, box, inv) -> np.ndarray:
    """Pairs (positions in idx) closer than CONNECT_FACTOR × radii sum (minimum image)."""
    out = []
    n = len(idx)
    chunk = max(1, 2_000_000 // max(n, 1))
    for i0 in range(0, n, chunk):
        i1 = min(n, i0 + chunk)
        d = xyz[idx[i0:i1]][:, None, :] - xyz[idx][None, :, :]
        if box is not None:
            d = _mic(d, box, inv)
        dist = np.linalg.norm(d, axis=-1)
        lim = CONNECT_FACTOR * (rad[i0:i1, None] + rad[None, :])
        ii, jj = np.nonzero(dist < lim)
        keep = ii + i0 < jj
        out.append(np.stack([ii[keep] + i0, jj[keep]], axis=1))
    return np.concatenate(out) if out else np.zeros((0, 2), int)


def check_atom_order(top, xyz0_nm: np.ndarray, box0_nm: Optional[np.ndarray], traj_path, top_path) -> List[str]:
    """Check on one frame (nm) that every residue of ``top`` is one connected molecule.

    A residue with bonds in the topology is connected by those bonds, each of which must be
    shorter than max(BOND_MIN_NM, BOND_FACTOR × the covalent radii sum) in the frame; a
    residue without bonds must be connected by distances (< CONNECT_FACTOR × radii sum).

    Returns notes (a few residues not whole: molecules that dissociated, kept); raises
    ValueError when more than MAX_BAD_FRACTION of the multi-atom residues are not whole
    molecules (the atom order is not the trajectory's), or when a residue holds several
    molecules of two or more atoms each.
    """
    xyz = np.asarray(xyz0_nm, dtype=np.float64)
    box = None if box0_nm is None else np.asarray(box0_nm, dtype=np.float64)
    inv = None
    if box is not None:
        if abs(np.linalg.det(box)) > 0:
            inv = np.linalg.inv(box)
        else:
            box = None
    atom_res = np.array([a.residue.index for a in top.atoms], dtype=int)
    residues = list(top.residues)
    bonds = np.array([(a.index, b.index) for a, b in top.bonds], dtype=int).reshape(-1, 2)
    notes: List[str] = []
    problems: Dict[int, str] = {}
    multi: Dict[int, Tuple[int, bool]] = {}  # residue -> (pieces of >= 2 atoms, found by bonds)

    if len(bonds):
        cross = atom_res[bonds[:, 0]] != atom_res[bonds[:, 1]]
        if cross.any():
            i, j = bonds[np.argmax(cross)]
            notes.append(f"topology {top_path}: {int(cross.sum())} bonds join atoms of different residues (e.g. atoms "
                         f"{i} and {j}); cgaa takes one residue per molecule, so those molecules are analysed in pieces")
        d = xyz[bonds[:, 1]] - xyz[bonds[:, 0]]
        if box is not None:
            d = _mic(d, box, inv)
        length = np.linalg.norm(d, axis=1)
        rad = np.array([_radius(a) for a in top.atoms])
        lim = np.maximum(BOND_MIN_NM, BOND_FACTOR * (rad[bonds[:, 0]] + rad[bonds[:, 1]]))
        for k in np.nonzero(length > lim)[0]:
            i, j = int(bonds[k, 0]), int(bonds[k, 1])
            r = int(atom_res[i])
            problems.setdefault(r, f"atoms {i} and {j}, bonded in the topology, are {length[k]:.3g} nm apart")
        bonded_res = set(atom_res[bonds[~cross, 0]].tolist())
        labels = _components(top.n_atoms, bonds[~cross])
    else:
        bonded_res = set()
        labels = None
    n_multi = 0
    skipped = 0
    for res in residues:
        idx = np.array([a.index for a in res.atoms], dtype=int)
        if len(idx) < 2:
            continue
        n_multi += 1
        by_bonds = res.index in bonded_res
        if by_bonds:
            lab = labels[idx]
            how = "by its bonds"
        else:
            if len(idx) > MAX_RESIDUE_ATOMS:
                skipped += 1
                continue
            rad = np.array([_radius(a) for a in res.atoms])
            lab = _components(len(idx), _geometric_edges(idx, xyz, rad, box, inv))
            how = "by distances in the first frame"
        _, sizes = np.unique(lab, return_counts=True)
        if len(sizes) > 1:
            problems.setdefault(res.index, f"its {len(idx)} atoms form {len(sizes)} separate pieces ({how})")
            if np.sum(sizes >= 2) >= 2:
                multi[res.index] = (int(np.sum(sizes >= 2)), by_bonds)
    if skipped:
        notes.append(f"topology {top_path}: {skipped} residue(s) with more than {MAX_RESIDUE_ATOMS} atoms and no bonds "
                     f"were not checked for connectivity")
    if not problems:
        return notes

    def where(r: int) -> str:
        res = residues[r]
        return f"residue {res.name} {res.index}"

    def several(r: int) -> ValueError:
        return ValueError(
            f"{where(r)} of topology {top_path} holds {multi[r][0]} separate molecules ({problems[r]}); cgaa takes "
            f"one residue per molecule, so their centre of mass would be analysed as one molecule: give each "
            f"molecule its own residue")

    by_bonds = [r for r, (_, b) in multi.items() if b]
    if by_bonds:  # the topology itself says so, whatever the frame
        raise several(min(by_bonds))
    first = min(problems)
    frac = len(problems) / max(n_multi, 1)
    if frac > MAX_BAD_FRACTION:
        raise ValueError(
            f"atom order mismatch: in the first frame of {traj_path}, {len(problems)} of {n_multi} multi-atom residues "
            f"of topology {top_path} are not one molecule (e.g. {where(first)}: {problems[first]}): the topology's "
            f"atom order is not the trajectory's (another system, or atoms in another order?)")
    if multi:
        raise several(min(multi))
    notes.append(f"{traj_path}: {len(problems)} of {n_multi} molecules are not whole in the first frame (e.g. "
                 f"{where(first)}: {problems[first]}); dissociated molecules are analysed by their centre of mass")
    return notes
