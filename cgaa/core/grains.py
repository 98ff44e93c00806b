"""Grain maps: which atoms form which grain, and what chemical type each grain is.

A *grain* is a molecule or an ion (or a residue of a larger molecule). A grain's *type*
is identified by its chemistry alone — elements and bond graph, hashed with a
Weisfeiler–Lehman refinement — so every EC gets the same type whatever the order of its
atoms, and the type key is the same whether the bonds came from PDB CONECT records or
were perceived from covalent radii. Types also carry a readable name (``EC``, ``PF6``,
``Li``) used in reports.

Three ways to get a :class:`GrainMap`:

* :func:`grains_from_topology` — an OpenMM ``Topology`` (default one residue = one grain,
  or ``by="molecule"`` for bonded connected components);
* :func:`grains_from_atoms` — ASE ``Atoms`` (bond perception from covalent radii, then
  connected components; alkali/alkaline-earth ions never bond);
* :func:`grains_from_index` — an explicit per-atom grain index plus atomic numbers.

:func:`atomic_grains` makes every atom its own grain: the all-atom baseline.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

#: Elements treated as free ions: never bonded by distance-based perception
#: (Li–O contacts at ~2 Å would otherwise glue Li+ to its solvation shell).
IONIC_ELEMENTS = frozenset({3, 11, 19, 37, 55, 4, 12, 20, 38, 56, 30})

#: Readable names for common electrolyte species, keyed by Hill formula.
KNOWN_NAMES: Dict[str, str] = {
    "Li": "Li", "Na": "Na", "K": "K", "Mg": "Mg",
    "F6P": "PF6", "BF4": "BF4", "F2NO4S2": "FSI", "C2F6NO4S2": "TFSI",
    "ClO4": "ClO4", "AsF6": "AsF6",
    "C3H4O3": "EC", "C4H8O3": "EMC", "C3H6O3": "DMC", "C5H10O3": "DEC",
    "C4H6O3": "PC", "C3H3FO3": "FEC", "C3H2O3": "VC",
}

_SYMBOLS = None


def _symbols() -> List[str]:
    global _SYMBOLS
    if _SYMBOLS is None:
        from ase.data import chemical_symbols

        _SYMBOLS = list(chemical_symbols)
    return _SYMBOLS


def hill_formula(numbers: Iterable[int]) -> str:
    """Hill-order formula (C first, then H, then alphabetical) of atomic numbers."""
    sym = _symbols()
    counts = Counter(sym[int(z)] for z in numbers)
    order: List[str] = []
    if "C" in counts:
        order += ["C"] + (["H"] if "H" in counts else [])
    order += sorted(s for s in counts if s not in order)
    return "".join(s + (str(counts[s]) if counts[s] > 1 else "") for s in order)


def chemistry_key(numbers: Sequence[int], bonds: Sequence[Tuple[int, int]]) -> str:
    """Order-independent identity of a molecular graph.

    Parameters
    ----------
    numbers: atomic numbers of the grain's atoms (local order arbitrary).
    bonds: pairs of local atom indices.

    Returns ``"<Hill formula>:<hash>"`` where the hash is a Weisfeiler–Lehman colour
    refinement of the element-labelled bond graph (n rounds for n atoms), so any
    permutation of the atoms gives the same key.
    """
    n = len(numbers)
    nbrs: List[List[int]] = [[] for _ in range(n)]
    for a, b in bonds:
        if a == b:
            continue
        nbrs[a].append(b)
        nbrs[b].append(a)
    colours = [str(int(z)) for z in numbers]
    history = [sorted(colours)]
    for _ in range(max(n, 1)):
        new = []
        for i in range(n):
            label = colours[i] + "(" + ",".join(sorted(colours[j] for j in nbrs[i])) + ")"
            new.append(hashlib.sha1(label.encode()).hexdigest()[:16])
        colours = new
        history.append(sorted(colours))
    digest = hashlib.sha1(repr(history).encode()).hexdigest()[:12]
    return f"{hill_formula(numbers)}:{digest}"


def readable_name(numbers: Sequence[int], hint: Optional[str] = None) -> str:
    """A readable grain-type name: a known species name, else ``hint`` (e.g. the residue name), else the formula."""
    formula = hill_formula(numbers)
    if formula in KNOWN_NAMES:
        return KNOWN_NAMES[formula]
    if hint:
        return hint
    return formula


@dataclass
class GrainMap:
    """Assignment of atoms to grains, with each grain's chemical type.

    Attributes
    ----------
    grain_index: (n_atoms,) int64, grain of each atom, 0..n_grains-1 (every grain non-empty).
    type_keys: per grain, the chemistry key (see :func:`chemistry_key`).
    type_names: per grain, a readable name.
    """

    grain_index: np.ndarray
    type_keys: List[str]
    type_names: List[str]

    def __post_init__(self) -> None:
        self.grain_index = np.asarray(self.grain_index, dtype=np.int64)
        g = self.n_grains
        if len(self.type_keys) != g or len(self.type_names) != g:
            raise ValueError(
                f"GrainMap: {g} grains but {len(self.type_keys)} type keys and "
                f"{len(self.type_names)} names"
            )
        if self.grain_index.size:
            counts = np.bincount(self.grain_index, minlength=g)
            if (counts == 0).any():
                raise ValueError(f"GrainMap: grain {int(np.argmin(counts))} has no atoms")

    @property
    def n_atoms(self) -> int:
        return int(self.grain_index.shape[0])

    @property
    def n_grains(self) -> int:
        return int(self.grain_index.max()) + 1 if self.grain_index.size else 0

    def unique_types(self) -> Dict[str, str]:
        """``{type_key: name}`` in order of first appearance."""
        out: Dict[str, str] = {}
        for k, n in zip(self.type_keys, self.type_names):
            out.setdefault(k, n)
        return out

    def counts_by_name(self) -> Dict[str, int]:
        """Number of grains of each readable type name."""
        return dict(Counter(self.type_names))


def _components(n: int, bonds: Iterable[Tuple[int, int]]) -> np.ndarray:
    """Connected-component label of each of n nodes, numbered by first atom."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    b = np.asarray(list(bonds), dtype=np.int64).reshape(-1, 2)
    m = coo_matrix((np.ones(len(b)), (b[:, 0], b[:, 1])), shape=(n, n))
    _, labels = connected_components(m, directed=False)
    # renumber by order of first appearance so grain 0 holds atom 0
    _, first = np.unique(labels, return_index=True)
    order = np.argsort(first)
    remap = np.empty_like(order)
    remap[order] = np.arange(len(order))
    return remap[labels]


def _types_for(
    grain_index: np.ndarray,
    numbers: np.ndarray,
    bonds: Sequence[Tuple[int, int]],
    hints: Optional[Sequence[Optional[str]]] = None,
) -> Tuple[List[str], List[str]]:
    g = int(grain_index.max()) + 1 if grain_index.size else 0
    members: List[List[int]] = [[] for _ in range(g)]
    for i, gi in enumerate(grain_index):
        members[gi].append(i)
    local = np.full(len(numbers), -1, dtype=np.int64)
    for atoms in members:
        local[atoms] = np.arange(len(atoms))
    grain_bonds: List[List[Tuple[int, int]]] = [[] for _ in range(g)]
    for a, b in bonds:
        if grain_index[a] == grain_index[b]:
            grain_bonds[grain_index[a]].append((int(local[a]), int(local[b])))
    keys, names = [], []
    cache: Dict[Tuple, Tuple[str, str]] = {}
    for gi, atoms in enumerate(members):
        z = [int(numbers[i]) for i in atoms]
        hint = hints[gi] if hints is not None else None
        sig = (tuple(z), tuple(sorted(grain_bonds[gi])), hint)
        if sig not in cache:
            key = chemistry_key(z, grain_bonds[gi])
            cache[sig] = (key, readable_name(z, hint))
        k, nm = cache[sig]
        keys.append(k)
        names.append(nm)
    return keys, names


def grains_from_index(
    grain_index: Sequence[int],
    numbers: Sequence[int],
    bonds: Optional[Sequence[Tuple[int, int]]] = None,
    positions: Optional[np.ndarray] = None,
    cell: Optional[np.ndarray] = None,
    names: Optional[Sequence[Optional[str]]] = None,
) -> GrainMap:
    """Grain map from an explicit per-atom grain index.

    Bonds (atom index pairs) define the chemistry keys; if none are given and
    ``positions`` (Å) are, bonds are perceived from covalent radii (see
    :func:`perceive_bonds`). ``names`` optionally gives a name hint per grain.
    """
    gidx = np.asarray(grain_index, dtype=np.int64)
    z = np.asarray(numbers, dtype=np.int64)
    if gidx.shape != z.shape:
        raise ValueError(f"grain index has {gidx.size} entries but there are {z.size} atoms")
    if gidx.size and gidx.min() < 0:
        raise ValueError(f"grain index of atom {int(np.argmin(gidx))} is negative")
    uniq, dense = np.unique(gidx, return_inverse=True)
    if bonds is None:
        bonds = perceive_bonds(z, positions, cell) if positions is not None else []
    hints = None
    if names is not None:
        if len(names) != len(uniq):
            raise ValueError(f"{len(names)} grain names given for {len(uniq)} grains")
        hints = list(names)
    keys, nm = _types_for(dense, z, bonds, hints)
    return GrainMap(dense, keys, nm)


def perceive_bonds(
    numbers: np.ndarray,
    positions: np.ndarray,
    cell: Optional[np.ndarray] = None,
    scale: float = 1.3,
) -> List[Tuple[int, int]]:
    """Bonds from covalent radii: d_ij < scale·(r_i + r_j), minimum image if a cell (Å, rows = vectors) is given.

    Atoms in :data:`IONIC_ELEMENTS` (Li, Na, ...) never bond.
    """
    from ase import Atoms
    from ase.data import covalent_radii
    from ase.neighborlist import neighbor_list

    numbers = np.asarray(numbers, dtype=np.int64)
    pbc = cell is not None
    atoms = Atoms(numbers=numbers, positions=np.asarray(positions, dtype=float),
                  cell=np.asarray(cell) if pbc else None, pbc=pbc)
    radii = np.array([covalent_radii[z] * scale for z in numbers])
    radii[np.isin(numbers, list(IONIC_ELEMENTS))] = 0.0
    i, j = neighbor_list("ij", atoms, radii, self_interaction=False)
    keep = (i < j) & (radii[i] > 0) & (radii[j] > 0)
    return list(zip(i[keep].tolist(), j[keep].tolist()))


def grains_from_atoms(atoms, bond_scale: float = 1.3) -> GrainMap:
    """Grain map of ASE ``Atoms``: molecules perceived from covalent radii.

    If the atoms carry a per-atom ``grain`` array (as cgaa's extxyz files do), it is used
    as the grain index and bonds are still perceived for the chemistry keys.
    """
    numbers = atoms.get_atomic_numbers()
    cell = np.asarray(atoms.cell[:]) if atoms.pbc.any() else None
    if cell is not None and not atoms.pbc.all():
        raise ValueError("cgaa needs pbc on all three axes or none (got pbc=%s)" % list(atoms.pbc))
    bonds = perceive_bonds(numbers, atoms.positions, cell, bond_scale)
    if "grain" in atoms.arrays:
        return grains_from_index(atoms.arrays["grain"], numbers, bonds)
    gidx = _components(len(numbers), bonds)
    return grains_from_index(gidx, numbers, bonds)


def grains_from_topology(topology, by: str = "residue") -> GrainMap:
    """Grain map of an OpenMM ``Topology``.

    ``by="residue"`` (default): one residue = one grain, names from residue names
    unless the formula is a known species. ``by="molecule"``: connected components of
    the topology's bonds. Chemistry keys use the topology's bonds, so a PDB without
    CONECT records for multi-atom residues gives formula-only keys that cannot tell
    isomers apart (and will not match keys from perceived bonds): a ValueError says so.
    """
    atoms = list(topology.atoms())
    if not atoms:
        raise ValueError("topology has no atoms")
    numbers = np.array([a.element.atomic_number if a.element is not None else 0 for a in atoms])
    if (numbers == 0).any():
        bad = atoms[int(np.argmin(numbers))]
        raise ValueError(f"topology atom {bad.index} ({bad.name} in residue {bad.residue.name}) has no element")
    bonds = [(b[0].index, b[1].index) for b in topology.bonds()]
    if by == "residue":
        gidx = np.array([a.residue.index for a in atoms])
        res_names = {a.residue.index: a.residue.name for a in atoms}
        uniq = np.unique(gidx)
        hints = [res_names[int(r)] for r in uniq]
    elif by == "molecule":
        gidx = _components(len(atoms), bonds)
        hints = None
    else:
        raise ValueError(f"grains_from_topology: by must be 'residue' or 'molecule', not {by!r}")
    gm = grains_from_index(gidx, numbers, bonds, names=hints)
    counts = np.bincount(gm.grain_index)
    bonded = np.zeros(gm.n_grains, dtype=bool)
    for a, _ in bonds:
        bonded[gm.grain_index[a]] = True
    lonely = np.nonzero((counts > 1) & ~bonded)[0]
    if len(lonely):
        g = int(lonely[0])
        raise ValueError(
            f"grain {g} ({gm.type_names[g]}, {counts[g]} atoms) has no bonds in the topology: "
            "give the PDB CONECT records (cgaa build writes them) so its chemistry can be identified"
        )
    return gm


def atomic_grains(numbers: Sequence[int]) -> GrainMap:
    """Every atom its own grain (the all-atom baseline); types are the elements."""
    z = np.asarray(numbers, dtype=np.int64)
    sym = _symbols()
    keys = [f"atom:{sym[int(a)]}" for a in z]
    return GrainMap(np.arange(len(z)), keys, [sym[int(a)] for a in z])
