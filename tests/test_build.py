"""cgaa build: counts from the composition, packing, PDB readable by OpenMM, clear errors."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
from openmm.app import PDBFile
from openmm.unit import angstrom

from cgaa.systems.build import build_box, composition_counts, list_recipes, load_recipe, make_recipe, pack
from cgaa.cli import main
from cgaa.systems.species import get_salt, get_species

AVOGADRO = 6.02214076e23


def _expected_counts(salt, molarity, solvents_w, density, n_atoms):
    """Independent re-derivation: per litre of solution, then scaled to n_atoms."""
    m_salt = get_salt(salt).molar_mass
    solvent_mass = density * 1000.0 - molarity * m_salt
    tot = sum(solvents_w.values())
    mol = {s: solvent_mass * w / tot / get_species(s).molar_mass for s, w in solvents_w.items()}
    ions = dict(get_salt(salt).ions)
    atoms = molarity * sum(get_species(i).n_atoms * n for i, n in ions.items()) + \
        sum(mol[s] * get_species(s).n_atoms for s in mol)
    f = n_atoms / atoms
    exact = {s: mol[s] * f for s in mol}
    exact.update({i: molarity * n * f for i, n in ions.items()})
    return exact


def _min_intermolecular(pos, mol, L):
    best = np.inf
    for i in range(len(pos)):
        d = pos[i + 1:] - pos[i]
        d -= L * np.round(d / L)
        r = np.sqrt((d * d).sum(1))
        other = mol[i + 1:] != mol[i]
        if other.any():
            best = min(best, r[other].min())
    return best


@pytest.fixture(scope="module")
def box3000(tmp_path_factory):
    out = tmp_path_factory.mktemp("build") / "box.pdb"
    rc = main(["build", "--recipe", "lipf6-ec-emc-1m", "--atoms", "3000", "-o", str(out)])
    assert rc == 0
    return out


def test_recipes_shipped():
    names = list_recipes()
    assert "lipf6-ec-emc-1m" in names and len(names) >= 3
    for n in names:
        r = load_recipe(n)
        assert r.density > 0 and r.temperature > 0 and r.density_reference


def test_counts_match_composition_to_rounding():
    r = load_recipe("lipf6-ec-emc-1m")
    counts = composition_counts(r, 3000)
    exact = _expected_counts("LiPF6", 1.0, {"EC": 3, "EMC": 7}, r.density, 3000)
    assert set(counts) == set(exact)
    for s, x in exact.items():
        assert abs(counts[s] - x) <= 0.5 + 1e-9, (s, counts[s], x)
    assert counts["Li"] == counts["PF6"]


def test_box3000_acceptance(box3000, capsys):
    pdb = PDBFile(str(box3000))
    top = pdb.topology
    counts = composition_counts(load_recipe("lipf6-ec-emc-1m"), 3000)
    resnames = [r.name for r in top.residues()]
    expect = {get_species(s).resname: n for s, n in counts.items()}
    assert {n: resnames.count(n) for n in set(resnames)} == expect
    # one residue per molecule, bonds from CONECT, each residue connected internally only
    n_bonds = sum(len(get_species(s).bonds) * n for s, n in counts.items())
    assert top.getNumBonds() == n_bonds
    for a, b in top.bonds():
        assert a.residue is b.residue
    for res in top.residues():
        sp = get_species(res.name)
        assert [a.name for a in res.atoms()] == list(sp.atom_names)
    # box: cubic, volume gives the recipe density
    box = np.array(top.getPeriodicBoxVectors().value_in_unit(angstrom))
    assert np.allclose(box, np.diag(np.diag(box)))
    mass = sum(a.element.mass._value for a in top.atoms())
    dens = mass / AVOGADRO / (np.prod(np.diag(box)) * 1e-24)
    assert dens == pytest.approx(1.20, rel=1e-3)
    # no two atoms of different molecules closer than 1.5 Å (minimum image)
    pos = np.asarray(pdb.getPositions(asNumpy=True).value_in_unit(angstrom))
    mol = np.array([a.residue.index for a in top.atoms()])
    assert _min_intermolecular(pos, mol, box[0, 0]) >= 1.5


def test_cli_flags_equal_recipe(tmp_path, capsys):
    out = tmp_path / "flags.pdb"
    rc = main(["build", "--salt", "LiPF6", "--molarity", "1.0", "--solvents", "EC:3,EMC:7",
               "--density", "1.2", "--atoms", "800", "-o", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "mol/L" in text and "g/cm3" in text
    counts = composition_counts(load_recipe("lipf6-ec-emc-1m"), 800)
    top = PDBFile(str(out)).topology
    names = [r.name for r in top.residues()]
    assert {get_species(s).resname: n for s, n in counts.items()} == {n: names.count(n) for n in set(names)}


def test_python_api_reports_composition(tmp_path):
    res = build_box("lipf6-ec-emc-1m", 700, tmp_path / "a.pdb", seed=4)
    assert res.n_atoms == sum(get_species(s).n_atoms * n for s, n in res.counts.items())
    n_salt = res.counts["Li"]
    molarity = n_salt / AVOGADRO / (res.box_length ** 3 * 1e-27)
    assert res.composition["molarity[LiPF6]"] == pytest.approx(molarity, rel=1e-9)
    assert res.min_distance >= 1.5
    assert "LiPF6" in res.summary()


def test_molality_and_mole_ratio(tmp_path):
    r = make_recipe({"LiBF4": 1.0}, {"PC": 1, "DMC": 1}, concentration_unit="mol/kg",
                    solvent_ratio="mole", density=1.2)
    c = composition_counts(r, 2000)
    assert abs(c["PC"] - c["DMC"]) <= 1
    # molality: salt per kg solvent
    solvent_kg = (c["PC"] * get_species("PC").molar_mass + c["DMC"] * get_species("DMC").molar_mass) / 1000
    assert c["Li"] / solvent_kg == pytest.approx(1.0, rel=0.15)


def test_unknown_species_clear_error(tmp_path, capsys):
    out = tmp_path / "x.pdb"
    rc = main(["build", "--salt", "LiPF6", "--molarity", "1", "--solvents", "EC:3,XYZ:7",
               "--density", "1.2", "--atoms", "500", "-o", str(out)])
    assert rc == 2
    assert "XYZ" in capsys.readouterr().err
    assert not out.exists()


def test_unknown_recipe(capsys, tmp_path):
    rc = main(["build", "--recipe", "no-such-recipe", "-o", str(tmp_path / "x.pdb")])
    assert rc == 2 and "no-such-recipe" in capsys.readouterr().err


def test_impossible_composition(tmp_path):
    with pytest.raises(ValueError, match="impossible"):
        r = make_recipe({"LiPF6": 9.0}, {"EC": 1}, density=1.2)
        composition_counts(r, 1000)
    with pytest.raises(ValueError, match="cannot fit"):
        build_box(make_recipe({"LiPF6": 1.0}, {"EC": 1}, density=4.0), 1000, tmp_path / "y.pdb")
    assert not (tmp_path / "y.pdb").exists()
    with pytest.raises(ValueError, match="too small"):
        composition_counts(make_recipe({"LiPF6": 0.01}, {"EC": 1}, density=1.3), 300)


def test_packmol_failure_shows_log(tmp_path):
    fake = tmp_path / "packmol"
    fake.write_text("#!/bin/sh\necho 'ERROR: something went wrong in the packing'\nexit 3\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    with pytest.raises(RuntimeError, match="something went wrong"):
        pack({"EC": 5}, 20.0, packmol=str(fake))
    out = tmp_path / "z.pdb"
    with pytest.raises(RuntimeError, match="exit code 3"):
        build_box("lipf6-ec-emc-1m", 500, out, packmol=str(fake))
    assert not out.exists()
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_a_box_too_small_for_the_default_model_is_flagged_at_build_time(tmp_path, capsys):
    """`cgaa build --atoms 300` packs a ~14.9 Å box, which the default model (8 Å cutoff) refuses:
    the build says so and names an atom count that fits; a box that fits gets no warning."""
    from cgaa.systems.build import small_box_note

    note = small_box_note(14.9, 300, 8.0)
    assert "14.9 A box is not above twice the 8 A cutoff" in note
    need = int(note.rsplit("--atoms ", 1)[1].split()[0])
    assert 300 * (16.0 / 14.9) ** 3 < need < 300 * (16.5 / 14.9) ** 3  # the volume ratio, a 2 % margin
    assert small_box_note(16.2, 400, 8.0) is None
    rc = main(["build", "--recipe", "lipf6-ec-emc-1m", "--atoms", "300", "-o", str(tmp_path / "b.pdb")])
    err = capsys.readouterr().err
    assert rc == 0 and "not above twice the 8 A cutoff of the default model" in err and "--atoms" in err
