"""The species library: molecules and ions with 3D templates, residue names and charges.

Everything comes from ``systems/species.yaml`` (found through
:func:`cgaa.core.resources.systems_dir`). One species = one residue = one grain.

>>> from cgaa.systems.species import get_species
>>> ec = get_species("EC")
>>> ec.resname, ec.n_atoms, round(ec.molar_mass, 2)
('EC', 10, 88.06)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import yaml

from cgaa.core.resources import systems_dir

#: Standard atomic masses (g/mol) of the elements used by the library (IUPAC 2013, as OpenMM).
ATOMIC_MASS = {
    "H": 1.007947, "Li": 6.941, "B": 10.811, "C": 12.01078, "N": 14.00672, "O": 15.99943,
    "F": 18.9984032, "Na": 22.98976928, "P": 30.973762, "S": 32.065,
}


@dataclass(frozen=True)
class Species:
    """One molecule or ion of the library.

    Attributes: ``name`` (library key, e.g. 'EC'), ``resname`` (PDB residue name),
    ``charge`` (formal charge, e), ``role`` ('cation'|'anion'|'solvent'),
    ``formal_name``, ``template`` (path of the PDB template), ``atom_names``,
    ``elements``, ``positions`` (template coordinates, Å, centred at the geometric centre)
    and ``bonds`` (pairs of 0-based atom indices).
    """

    name: str
    resname: str
    charge: int
    role: str
    formal_name: str
    template: Path
    atom_names: Tuple[str, ...]
    elements: Tuple[str, ...]
    positions: np.ndarray = field(repr=False, compare=False)
    bonds: Tuple[Tuple[int, int], ...] = ()

    @property
    def n_atoms(self) -> int:
        """Number of atoms."""
        return len(self.atom_names)

    @property
    def molar_mass(self) -> float:
        """Molar mass in g/mol."""
        return float(sum(ATOMIC_MASS[e] for e in self.elements))


@dataclass(frozen=True)
class Salt:
    """A salt: ions and their stoichiometry per formula unit (e.g. LiPF6 = Li + PF6)."""

    name: str
    ions: Tuple[Tuple[str, int], ...]

    @property
    def molar_mass(self) -> float:
        """Molar mass of one formula unit, g/mol."""
        return sum(get_species(s).molar_mass * n for s, n in self.ions)


def _parse_template(path: Path, key: str) -> Tuple[List[str], List[str], np.ndarray, List[Tuple[int, int]]]:
    """Read a template PDB (HETATM/ATOM + CONECT). Returns names, elements, xyz (Å), bonds."""
    names, elements, xyz, serials = [], [], [], []
    bonds = set()
    for line in path.read_text().splitlines():
        rec = line[:6].strip()
        if rec in ("ATOM", "HETATM"):
            serials.append(int(line[6:11]))
            names.append(line[12:16].strip())
            el = line[76:78].strip()
            elements.append(el[0].upper() + el[1:].lower())
            xyz.append([float(line[30:38]), float(line[38:46]), float(line[46:54])])
        elif rec == "CONECT":
            fields = [int(line[i:i + 5]) for i in range(6, len(line.rstrip()), 5)]
            idx = {s: i for i, s in enumerate(serials)}
            a = idx[fields[0]]
            for s in fields[1:]:
                b = idx[s]
                bonds.add((min(a, b), max(a, b)))
    if not names:
        raise ValueError(f"species '{key}': template {path} has no atoms")
    if len(set(names)) != len(names):
        raise ValueError(f"species '{key}': template {path} has duplicate atom names")
    for e in elements:
        if e not in ATOMIC_MASS:
            raise ValueError(f"species '{key}': unknown element '{e}' in {path}")
    pos = np.asarray(xyz, dtype=float)
    pos -= pos.mean(axis=0)
    return names, elements, pos, sorted(bonds)


@lru_cache(maxsize=1)
def _library() -> Tuple[Dict[str, Species], Dict[str, Salt]]:
    root = systems_dir()
    index = root / "species.yaml"
    data = yaml.safe_load(index.read_text())
    species: Dict[str, Species] = {}
    for key, e in data["species"].items():
        path = root / e["template"]
        if not path.is_file():
            raise FileNotFoundError(f"species '{key}': template {path} listed in {index} does not exist")
        names, elements, pos, bonds = _parse_template(path, key)
        species[key] = Species(
            name=key, resname=str(e["resname"]), charge=int(e["charge"]), role=str(e["role"]),
            formal_name=str(e["formal_name"]), template=path, atom_names=tuple(names),
            elements=tuple(elements), positions=pos, bonds=tuple(bonds))
    salts = {k: Salt(k, tuple((str(s), int(n)) for s, n in v.items())) for k, v in data["salts"].items()}
    for s in salts.values():
        for ion, _ in s.ions:
            if ion not in species:
                raise ValueError(f"salt '{s.name}' in {index} uses unknown species '{ion}'")
    return species, salts


def list_species() -> List[str]:
    """Names (library keys) of all species."""
    return list(_library()[0])


def list_salts() -> List[str]:
    """Names of all salts."""
    return list(_library()[1])


def _lookup(table: dict, name: str, what: str) -> object:
    if name in table:
        return table[name]
    low = {k.lower(): k for k in table}
    if name.lower() in low:
        return table[low[name.lower()]]
    raise ValueError(f"unknown {what} '{name}'; known: {', '.join(table)}")


def get_species(name: str) -> Species:
    """The species called ``name`` (case-insensitive; also accepts its residue name).

    Raises ValueError naming the unknown species and listing the known ones.
    """
    species = _library()[0]
    by_res = {s.resname.lower(): s for s in species.values()}
    if name.lower() in by_res and name.lower() not in {k.lower() for k in species}:
        return by_res[name.lower()]
    return _lookup(species, name, "species")  # type: ignore[return-value]


def get_salt(name: str) -> Salt:
    """The salt called ``name`` (case-insensitive), e.g. 'LiPF6'. ValueError if unknown."""
    return _lookup(_library()[1], name, "salt")  # type: ignore[return-value]


def species_by_resname() -> Dict[str, Species]:
    """Map residue name -> species."""
    return {s.resname: s for s in _library()[0].values()}
