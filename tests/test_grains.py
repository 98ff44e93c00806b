"""Grain maps and chemistry-based grain types."""
from __future__ import annotations

import numpy as np
import pytest

from cgaa.core.grains import (atomic_grains, chemistry_key, grains_from_atoms, grains_from_index, grains_from_topology)
from molecules import EC, EMC, molecule_box


def test_types_independent_of_atom_order_and_wrapping(electrolyte_box):
    atoms, grain = electrolyte_box
    gm = grains_from_atoms(atoms)
    assert np.array_equal(gm.grain_index, grain)
    assert gm.counts_by_name() == {"Li": 3, "PF6": 3, "EC": 6, "EMC": 5}
    keys = {n: k for k, n in gm.unique_types().items()}
    assert len(keys) == 4
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(atoms))
    shuffled = atoms[perm]
    shuffled.positions += rng.integers(-1, 2, size=(len(atoms), 3)) @ atoms.cell[:]
    gm2 = grains_from_atoms(shuffled)
    assert {n: k for k, n in gm2.unique_types().items()} == keys
    # same partition of atoms into grains
    a = {frozenset(perm[np.nonzero(gm2.grain_index == g)[0]]) for g in range(gm2.n_grains)}
    b = {frozenset(np.nonzero(gm.grain_index == g)[0]) for g in range(gm.n_grains)}
    assert a == b


def test_chemistry_key_distinguishes_isomers_and_ignores_order():
    # propanol vs its isomer methoxyethane: same formula, different graphs
    z = [6, 6, 6, 8]
    k1 = chemistry_key(z, [(0, 1), (1, 2), (2, 3)])
    k2 = chemistry_key(z, [(0, 1), (1, 3), (3, 2)])
    k1b = chemistry_key([8, 6, 6, 6], [(0, 1), (1, 2), (2, 3)])
    assert k1 != k2 and k1 == k1b
    assert k1.startswith("C3O:")


def test_li_never_bonds_to_its_shell():
    from ase import Atoms

    sym, xyz = EC
    ec = Atoms(sym, positions=xyz)
    li = Atoms("Li", positions=[ec.positions[1] + [0, 1.9, 0]])  # 1.9 Å from carbonyl O
    gm = grains_from_atoms(ec + li)
    assert gm.n_grains == 2 and sorted(gm.type_names) == ["EC", "Li"]


def test_topology_residues_and_molecules(electrolyte_box):
    from openmm.app import Element, Topology

    atoms, grain = electrolyte_box
    from cgaa.core.grains import perceive_bonds

    top = Topology()
    chain = top.addChain()
    res = {}
    omm = []
    for a, g in enumerate(grain):
        if g not in res:
            res[g] = top.addResidue(f"R{g % 3}", chain)
        omm.append(top.addAtom(f"A{a}", Element.getByAtomicNumber(int(atoms.numbers[a])), res[g]))
    for i, j in perceive_bonds(atoms.numbers, atoms.positions, atoms.cell[:]):
        top.addBond(omm[i], omm[j])
    by_res = grains_from_topology(top)
    by_mol = grains_from_topology(top, by="molecule")
    ref = grains_from_atoms(atoms)
    assert by_res.type_keys == ref.type_keys == by_mol.type_keys
    assert np.array_equal(by_res.grain_index, ref.grain_index)
    # a multi-atom residue without bonds cannot be typed: clear error
    bare = Topology()
    r = bare.addResidue("EC", bare.addChain())
    for s in EC[0]:
        bare.addAtom(s, Element.getBySymbol(s), r)
    with pytest.raises(ValueError, match="has no bonds in the topology"):
        grains_from_topology(bare)


def test_atomic_grains_and_explicit_index():
    z = [3, 15, 9, 9]
    gm = atomic_grains(z)
    assert gm.n_grains == 4 and gm.type_names == ["Li", "P", "F", "F"]
    with pytest.raises(ValueError, match="grain 1 has no atoms"):
        from cgaa.core.grains import GrainMap

        GrainMap(np.array([0, 2]), ["a", "b", "c"], ["a", "b", "c"])
    with pytest.raises(ValueError, match="3 entries but there are 4 atoms"):
        grains_from_index([0, 1, 1], z)
