"""OpenMM topologies for cgaa's own records: from ASE ``Atoms`` (grains perceived or given, bonds
from covalent radii; :func:`topology_from_atoms`) and from the per-atom ``resname``/``grain`` arrays
of cgaa extxyz files (:func:`topology_from_residues`), and the mass density of a box.

Lengths: Å in, nm in the Topology (through :mod:`cgaa.core.units`).
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np

from cgaa.core import units
from cgaa.core.units import box_vectors_nm
from cgaa.core.grains import grains_from_atoms, grains_from_index, perceive_bonds
from cgaa.core.units import AVOGADRO
from cgaa.systems.species import species_by_resname


def topology_from_atoms(atoms, grain_index: Optional[Sequence[int]] = None,
                        names: Optional[Sequence[str]] = None) -> Tuple[object, np.ndarray]:
    """OpenMM Topology (one residue per grain, perceived bonds, the cell as box) and
    positions (nm, (N,3) array) from ASE ``Atoms`` (Å).

    grain_index: per-atom grain (default: molecules perceived from covalent radii).
    names: residue name per grain (default: the grain's readable type name).
    """
    from openmm.app import Element, Topology
    from openmm.unit import nanometer

    cell = np.asarray(atoms.cell[:]) if atoms.pbc.any() else None
    bonds = perceive_bonds(atoms.numbers, atoms.positions, cell)
    if grain_index is None:
        gm = grains_from_atoms(atoms)
    else:
        gm = grains_from_index(grain_index, atoms.numbers, bonds)
    top = Topology()
    chain = top.addChain()
    residues = [top.addResidue((names[g] if names is not None else gm.type_names[g])[:4], chain)
                for g in range(gm.n_grains)]
    symbols = atoms.get_chemical_symbols()
    out: List = []
    for i, (s, g) in enumerate(zip(symbols, gm.grain_index)):
        out.append(top.addAtom(f"{s}{i}"[:4], Element.getBySymbol(s), residues[int(g)]))
    for i, j in bonds:
        if gm.grain_index[i] == gm.grain_index[j]:
            top.addBond(out[i], out[j])
    if cell is not None:
        top.setPeriodicBoxVectors(units.box_vectors_nm(cell) * nanometer)
    return top, units.angstrom_to_nm(np.asarray(atoms.positions, dtype=float))


def topology_from_residues(resnames: Sequence[str], grain: Sequence[int], cell: Optional[np.ndarray] = None):
    """Rebuild an OpenMM Topology from per-atom residue names and grain indices (as stored
    in cgaa extxyz files). Atoms of each grain must be contiguous and in template order.
    cell: 3×3 box in Å. ValueError naming the grain that does not match its template."""
    from openmm import unit
    from openmm.app import Element, Topology

    lib = species_by_resname()
    grain = np.asarray(grain)
    top = Topology()
    chain = top.addChain()
    start = 0
    n = len(resnames)
    while start < n:
        g = grain[start]
        end = start
        while end < n and grain[end] == g:
            end += 1
        rn = str(resnames[start])
        if rn not in lib:
            raise ValueError(f"grain {g}: residue '{rn}' is not in the species library")
        sp = lib[rn]
        if end - start != sp.n_atoms:
            raise ValueError(f"grain {g} ({rn}) has {end - start} atoms, template has {sp.n_atoms}")
        res = top.addResidue(rn, chain)
        atoms = [top.addAtom(nm, Element.getBySymbol(el), res) for nm, el in zip(sp.atom_names, sp.elements)]
        for i, j in sp.bonds:
            top.addBond(atoms[i], atoms[j])
        start = end
    if cell is not None:
        top.setPeriodicBoxVectors(box_vectors_nm(cell) * unit.nanometer)
    return top


def box_density(topology, cell_A: np.ndarray) -> float:
    """Mass density (g/cm³) of the topology's atoms in the cell (3×3, Å)."""

    mass = sum(a.element.mass._value for a in topology.atoms())  # g/mol
    vol_A3 = abs(float(np.linalg.det(np.asarray(cell_A, dtype=float))))
    return mass / AVOGADRO / (vol_A3 * 1e-24)
