"""Species library: templates, residue names, charges, and coverage by the teacher XML."""
from __future__ import annotations

import numpy as np
import pytest

from cgaa.systems.species import get_salt, get_species, list_salts, list_species, species_by_resname

REQUIRED = ["Li", "Na", "PF6", "BF4", "FSI", "TFSI", "EC", "EMC", "DMC", "DEC", "PC", "FEC"]
# Chemical formulas (independent of the templates) and formal charges.
FORMULA = {"Li": {"Li": 1}, "Na": {"Na": 1}, "PF6": {"P": 1, "F": 6}, "BF4": {"B": 1, "F": 4},
           "FSI": {"N": 1, "S": 2, "O": 4, "F": 2}, "TFSI": {"N": 1, "S": 2, "O": 4, "C": 2, "F": 6},
           "EC": {"C": 3, "H": 4, "O": 3}, "EMC": {"C": 4, "H": 8, "O": 3}, "DMC": {"C": 3, "H": 6, "O": 3},
           "DEC": {"C": 5, "H": 10, "O": 3}, "PC": {"C": 4, "H": 6, "O": 3}, "FEC": {"C": 3, "H": 3, "O": 3, "F": 1}}
CHARGE = {"Li": 1, "Na": 1, "PF6": -1, "BF4": -1, "FSI": -1, "TFSI": -1}
# Covalent radii (Å) for a bond sanity check.
COVALENT = {"H": 0.31, "B": 0.84, "C": 0.76, "N": 0.71, "O": 0.66, "F": 0.57, "P": 1.07, "S": 1.05}


def test_library_has_required_species():
    names = list_species()
    for s in REQUIRED:
        assert s in names


@pytest.mark.parametrize("name", REQUIRED)
def test_template_matches_formula_and_is_sane(name):
    sp = get_species(name)
    counts = {}
    for e in sp.elements:
        counts[e] = counts.get(e, 0) + 1
    assert counts == FORMULA[name]
    assert sp.charge == CHARGE.get(name, 0)
    assert len(set(sp.atom_names)) == sp.n_atoms
    assert 1 <= len(sp.resname) <= 4 and sp.resname.isalnum()
    # bonded atoms at covalent distance; a molecule is one connected piece
    for i, j in sp.bonds:
        d = np.linalg.norm(sp.positions[i] - sp.positions[j])
        ref = COVALENT[sp.elements[i]] + COVALENT[sp.elements[j]]
        assert 0.8 * ref < d < 1.25 * ref, (name, sp.atom_names[i], sp.atom_names[j], d)
    if sp.n_atoms > 1:
        seen, todo = {0}, [0]
        adj = {k: set() for k in range(sp.n_atoms)}
        for i, j in sp.bonds:
            adj[i].add(j)
            adj[j].add(i)
        while todo:
            for n in adj[todo.pop()] - seen:
                seen.add(n)
                todo.append(n)
        assert len(seen) == sp.n_atoms


def test_molar_masses_against_literature():
    # CRC Handbook values (g/mol)
    lit = {"EC": 88.06, "EMC": 104.10, "DMC": 90.08, "DEC": 118.13, "PC": 102.09, "FEC": 106.05}
    for s, m in lit.items():
        assert get_species(s).molar_mass == pytest.approx(m, abs=0.02)
    assert get_salt("LiPF6").molar_mass == pytest.approx(151.905, abs=0.02)


def test_salts_are_neutral():
    for name in list_salts():
        salt = get_salt(name)
        assert sum(get_species(s).charge * n for s, n in salt.ions) == 0


def test_lookup_is_case_insensitive_and_by_resname():
    assert get_species("ec").name == "EC"
    assert get_species("TFS").name == "TFSI"
    assert set(species_by_resname()) == {get_species(s).resname for s in list_species()}


def test_unknown_species_and_salt_are_named():
    with pytest.raises(ValueError, match="unknown species 'XYZ'"):
        get_species("XYZ")
    with pytest.raises(ValueError, match="unknown salt 'LiFOO'"):
        get_salt("LiFOO")


def test_teacher_parametrises_every_species_with_right_charges():
    import openmm
    from openmm import unit

    from cgaa.systems.build import make_topology
    from cgaa.teacher.forcefield import create_system

    counts = {s: 1 for s in REQUIRED}
    top = make_topology(counts, box_length=30.0)
    system = create_system(top, cutoff=1.0)
    nb = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
    q = np.array([nb.getParticleParameters(i)[0].value_in_unit(unit.elementary_charge)
                  for i in range(system.getNumParticles())])
    start = 0
    for s in REQUIRED:
        sp = get_species(s)
        total = q[start:start + sp.n_atoms].sum()
        scale = 0.8 if sp.charge else 1.0  # documented ionic charge scaling
        assert total == pytest.approx(sp.charge * scale, abs=1e-6), s
        start += sp.n_atoms


def test_every_angle_and_dihedral_has_parameters():
    """OpenMM silently skips unmatched angles/torsions: check each species is complete."""
    import itertools

    import openmm

    from cgaa.systems.build import make_topology
    from cgaa.teacher.forcefield import create_system

    for s in REQUIRED:
        sp = get_species(s)
        system = create_system(make_topology({s: 1}, box_length=30.0), cutoff=1.0)
        adj = {i: set() for i in range(sp.n_atoms)}
        for i, j in sp.bonds:
            adj[i].add(j)
            adj[j].add(i)
        n_angles = sum(len(list(itertools.combinations(adj[c], 2))) for c in adj)
        propers = set()
        for b, c in sp.bonds:
            for a in adj[b] - {c}:
                for d in adj[c] - {b}:
                    if a != d:
                        propers.add(min((a, b, c, d), (d, c, b, a)))
        got_angles, got_tors = 0, set()
        for f in system.getForces():
            if isinstance(f, (openmm.HarmonicAngleForce, openmm.CustomAngleForce)):
                got_angles += f.getNumAngles()
            if isinstance(f, openmm.PeriodicTorsionForce):
                for k in range(f.getNumTorsions()):
                    a, b, c, d = f.getTorsionParameters(k)[:4]
                    got_tors.add(min((a, b, c, d), (d, c, b, a)))
        assert got_angles == n_angles, s
        assert propers <= got_tors, (s, propers - got_tors)
