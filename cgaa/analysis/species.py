"""Identify the species of an electrolyte trajectory: cations, anions, solvents.

Convention of cgaa topologies (and of most hand-built OpenMM boxes): one residue per
molecule or ion. Species are found by residue name (case-insensitive) against small
tables of known ions; anything else is a solvent. The user can override both the
grouping (mdtraj selection strings) and the formal charges.

Oxygen atoms are classified *chemically* from the bond graph: an O bonded to exactly
one atom, a carbon, is a carbonyl O; an O bonded to exactly two carbons is an ether O;
any other O (sulfonyl, hydroxyl, ...) is "other". Without bonds in the topology they
are inferred from interatomic distances in the first frame (covalent radii).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

#: Known cations: upper-case residue name -> (species name, formal charge in e).
KNOWN_CATIONS: Dict[str, tuple] = {
    "LI": ("Li", 1.0), "LIT": ("Li", 1.0), "LI+": ("Li", 1.0), "LIP": ("Li", 1.0),
    "NA": ("Na", 1.0), "NA+": ("Na", 1.0), "SOD": ("Na", 1.0),
    "K": ("K", 1.0), "K+": ("K", 1.0), "POT": ("K", 1.0),
    "MG": ("Mg", 2.0), "MG2": ("Mg", 2.0), "CA": ("Ca", 2.0), "ZN": ("Zn", 2.0),
}

#: Known anions: upper-case residue name -> formal charge in e.
KNOWN_ANIONS: Dict[str, float] = {
    "PF6": -1.0, "BF4": -1.0, "FSI": -1.0, "TFS": -1.0, "TFSI": -1.0, "TFI": -1.0,
    "NTF": -1.0, "TFSA": -1.0, "FSA": -1.0, "CLO4": -1.0, "CLO": -1.0, "ASF6": -1.0,
    "BOB": -1.0, "BOBB": -1.0, "DFOB": -1.0, "DFB": -1.0, "OTF": -1.0, "TFO": -1.0,
    "TRF": -1.0, "NO3": -1.0, "DFP": -1.0, "PO2F2": -1.0, "BETI": -1.0, "TDI": -1.0,
    "CL": -1.0, "CLA": -1.0, "BR": -1.0, "I": -1.0, "F": -1.0,
}

#: Elements that make a one-atom residue a cation / anion when its name is unknown.
_MONATOMIC_CATION_CHARGE = {"Li": 1.0, "Na": 1.0, "K": 1.0, "Rb": 1.0, "Cs": 1.0,
                            "Mg": 2.0, "Ca": 2.0, "Zn": 2.0}
_MONATOMIC_ANION_CHARGE = {"F": -1.0, "Cl": -1.0, "Br": -1.0, "I": -1.0}

#: Covalent radii (nm) for bond inference when the topology has no bonds.
COVALENT_RADIUS_NM = {
    "H": 0.031, "B": 0.084, "C": 0.076, "N": 0.071, "O": 0.066, "F": 0.057,
    "P": 0.107, "S": 0.105, "Cl": 0.102, "As": 0.119, "Br": 0.120, "I": 0.139,
}


@dataclass
class Species:
    """One species (all molecules/ions of one kind) in a topology.

    Attributes:
        name: display name ("Li", "PF6", "EC", or the user's selection name).
        kind: "cation", "anion" or "solvent".
        charge: formal charge per molecule, in units of e.
        molecules: atom indices of each molecule (one array per molecule).
        resname: residue name of the first molecule (informational).
    """

    name: str
    kind: str
    charge: float
    molecules: List[np.ndarray] = field(repr=False)
    resname: str = ""

    @property
    def n_molecules(self) -> int:
        """Number of molecules (ions) of this species."""
        return len(self.molecules)

    @property
    def atom_indices(self) -> np.ndarray:
        """All atom indices of the species (sorted)."""
        return np.sort(np.concatenate(self.molecules)) if self.molecules else np.zeros(0, int)

    @property
    def monatomic(self) -> bool:
        """True if every molecule is a single atom (an ion like Li+)."""
        return all(len(m) == 1 for m in self.molecules)


def _to_mdtraj_topology(topology):
    """Accept an mdtraj or OpenMM topology; return an mdtraj one."""
    import mdtraj as md

    if isinstance(topology, md.Topology):
        return topology
    if hasattr(topology, "atoms") and hasattr(topology, "getNumAtoms"):
        return md.Topology.from_openmm(topology)
    raise TypeError(f"expected an mdtraj or OpenMM Topology, got {type(topology).__name__}")


def _lookup_charge(names: Sequence[str], charges: Optional[Mapping[str, float]]) -> Optional[float]:
    if not charges:
        return None
    upper = {str(k).upper(): float(v) for k, v in charges.items()}
    for n in names:
        if n.upper() in upper:
            return upper[n.upper()]
    return None


def _classify_residue(resname: str, n_atoms: int, element: Optional[str]) -> tuple:
    """Return (species name, kind, charge) from a residue name and, for ions, its element."""
    key = resname.strip().upper()
    if key in KNOWN_CATIONS:
        name, q = KNOWN_CATIONS[key]
        return name, "cation", q
    if key in KNOWN_ANIONS:
        return resname.strip(), "anion", KNOWN_ANIONS[key]
    if n_atoms == 1 and element in _MONATOMIC_CATION_CHARGE:
        return element, "cation", _MONATOMIC_CATION_CHARGE[element]
    if n_atoms == 1 and element in _MONATOMIC_ANION_CHARGE:
        return resname.strip() or element, "anion", _MONATOMIC_ANION_CHARGE[element]
    return resname.strip() or "MOL", "solvent", 0.0


def _kind_from_charge(q: float) -> str:
    return "cation" if q > 0 else ("anion" if q < 0 else "solvent")


def identify_species(
    topology,
    selections: Optional[Mapping[str, str]] = None,
    charges: Optional[Mapping[str, float]] = None,
) -> List[Species]:
    """Group the residues of a topology into species.

    Args:
        topology: mdtraj or OpenMM topology (one residue per molecule/ion).
        selections: optional {species name: mdtraj selection string}. When given, only
            these species are used; the selected atoms are grouped into molecules by
            residue. A selection that matches no atom raises ValueError.
        charges: optional {species name or residue name: formal charge in e}, overriding
            the built-in table (Li +1, known anions -1, solvents 0).

    Returns:
        Species ordered cations, anions, solvents (then by first appearance).
    """
    top = _to_mdtraj_topology(topology)
    if top.n_atoms == 0:
        raise ValueError("the topology has no atoms")
    species: Dict[str, Species] = {}
    if selections:
        for name, sel in selections.items():
            try:
                idx = top.select(sel)
            except Exception as err:  # mdtraj raises various parser errors
                raise ValueError(f"invalid selection for species {name!r}: {sel!r} ({err})") from None
            if len(idx) == 0:
                raise ValueError(f"selection for species {name!r} matches no atom: {sel!r}")
            by_res: Dict[int, List[int]] = {}
            for i in idx:
                by_res.setdefault(top.atom(int(i)).residue.index, []).append(int(i))
            mols = [np.array(v, dtype=int) for v in by_res.values()]
            res0 = top.atom(int(idx[0])).residue
            elem = res0.atom(0).element.symbol if res0.atom(0).element is not None else None
            _, kind, q = _classify_residue(res0.name, len(mols[0]), elem)
            q_user = _lookup_charge([name, res0.name], charges)
            if q_user is not None:
                q, kind = q_user, _kind_from_charge(q_user)
            species[name] = Species(name, kind, q, mols, res0.name)
    else:
        for res in top.residues:
            atoms = np.array([a.index for a in res.atoms], dtype=int)
            if len(atoms) == 0:
                continue
            elem = res.atom(0).element.symbol if res.atom(0).element is not None else None
            name, kind, q = _classify_residue(res.name, len(atoms), elem)
            q_user = _lookup_charge([name, res.name], charges)
            if q_user is not None:
                q, kind = q_user, _kind_from_charge(q_user)
            if name not in species:
                species[name] = Species(name, kind, q, [], res.name)
            species[name].molecules.append(atoms)
    order = {"cation": 0, "anion": 1, "solvent": 2}
    return sorted(species.values(), key=lambda s: order[s.kind])


def find_species(species: Sequence[Species], name: str) -> Species:
    """Return the species called ``name`` (case-insensitive) or raise ValueError listing them."""
    for s in species:
        if s.name.upper() == name.upper():
            return s
    raise ValueError(f"no species named {name!r}; found: {', '.join(s.name for s in species)}")


def infer_bonds(topology, xyz_nm: np.ndarray, box_nm: Optional[np.ndarray] = None,
                tolerance: float = 1.2) -> List[tuple]:
    """Infer intra-residue bonds from distances (nm) in one frame.

    Two atoms of the same residue are bonded when their (minimum-image) distance is below
    ``tolerance`` × the sum of their covalent radii.

    Args:
        topology: mdtraj topology.
        xyz_nm: (n_atoms, 3) positions in nm.
        box_nm: optional (3, 3) box vectors in nm (rows), for the minimum image.

    Returns:
        List of (i, j) atom index pairs.
    """
    top = _to_mdtraj_topology(topology)
    bonds = []
    inv = np.linalg.inv(box_nm) if box_nm is not None else None
    for res in top.residues:
        atoms = [a for a in res.atoms]
        if len(atoms) < 2:
            continue
        idx = np.array([a.index for a in atoms])
        rad = np.array([COVALENT_RADIUS_NM.get(a.element.symbol if a.element else "", 0.0) for a in atoms])
        d = xyz_nm[idx][:, None, :] - xyz_nm[idx][None, :, :]
        if inv is not None:
            s = d @ inv
            d = (s - np.round(s)) @ box_nm
        dist = np.linalg.norm(d, axis=-1)
        lim = tolerance * (rad[:, None] + rad[None, :])
        ii, jj = np.nonzero(np.triu((dist < lim) & (lim > 0), k=1))
        bonds.extend((int(idx[a]), int(idx[b])) for a, b in zip(ii, jj))
    return bonds


def classify_oxygens(topology, xyz_nm: Optional[np.ndarray] = None,
                     box_nm: Optional[np.ndarray] = None) -> Dict[str, np.ndarray]:
    """Split the oxygen atoms into carbonyl, ether and other, from the bond graph.

    Carbonyl: bonded to exactly one atom, a C. Ether: bonded to exactly two atoms, both C.
    Other: anything else (e.g. sulfonyl O of FSI/TFSI, hydroxyl O). If the topology has no
    bonds, they are inferred from ``xyz_nm`` (one frame, nm) with :func:`infer_bonds`; if
    neither is available the atom names are used (names starting with "OC"/"O=" →
    carbonyl, "OE"/"OS" → ether, others → other).

    Returns:
        {"O_carbonyl": indices, "O_ether": indices, "O_other": indices}.
    """
    top = _to_mdtraj_topology(topology)
    oxy = [a for a in top.atoms if a.element is not None and a.element.symbol == "O"]
    out: Dict[str, List[int]] = {"O_carbonyl": [], "O_ether": [], "O_other": []}
    bonds = [(b[0].index, b[1].index) for b in top.bonds]
    if not bonds and xyz_nm is not None:
        bonds = infer_bonds(top, xyz_nm, box_nm)
    if not bonds:
        for a in oxy:
            n = a.name.upper()
            if n.startswith(("OC", "O=")):
                out["O_carbonyl"].append(a.index)
            elif n.startswith(("OE", "OS")):
                out["O_ether"].append(a.index)
            else:
                out["O_other"].append(a.index)
        return {k: np.array(v, dtype=int) for k, v in out.items()}
    neigh: Dict[int, List[int]] = {}
    for i, j in bonds:
        neigh.setdefault(i, []).append(j)
        neigh.setdefault(j, []).append(i)
    elem = {a.index: (a.element.symbol if a.element else "") for a in top.atoms}
    for a in oxy:
        nb = [elem[j] for j in neigh.get(a.index, [])]
        if nb == ["C"]:
            out["O_carbonyl"].append(a.index)
        elif len(nb) == 2 and all(e == "C" for e in nb):
            out["O_ether"].append(a.index)
        else:
            out["O_other"].append(a.index)
    return {k: np.array(v, dtype=int) for k, v in out.items()}


def element_indices(topology, symbol: str, exclude: Optional[np.ndarray] = None) -> np.ndarray:
    """Indices of the atoms of element ``symbol`` (e.g. "F", "P"), minus ``exclude``."""
    top = _to_mdtraj_topology(topology)
    idx = np.array([a.index for a in top.atoms if a.element is not None and a.element.symbol == symbol],
                   dtype=int)
    if exclude is not None and len(idx):
        idx = np.setdiff1d(idx, exclude)
    return idx


def atom_masses(topology) -> np.ndarray:
    """Atomic masses in g/mol (Dalton); atoms without an element get 0 (virtual sites)."""
    top = _to_mdtraj_topology(topology)
    return np.array([a.element.mass if a.element is not None and a.element.mass else 0.0
                     for a in top.atoms], dtype=float)
