"""Box files (cgaa.systems.boxfile): PDB and PDBx/mmCIF hold the same topology, bonds, box and
positions; PDB's 99,999-atom limit is caught before any work, with the way out named."""
from __future__ import annotations

import numpy as np
import pytest
from openmm.unit import angstrom

from cgaa.systems.boxfile import (PDB_MAX_ATOMS, box_format, box_remarks, box_suffix, check_box_file, read_box, write_box)
from cgaa.systems.build import (atoms_in, box_suffix_for, build_box, composition_counts, load_recipe, make_topology)
from cgaa.cli import main


def _bonds(top):
    return sorted((a.index, b.index) if a.index < b.index else (b.index, a.index) for a, b in top.bonds())


@pytest.fixture(scope="module")
def cif_box(tmp_path_factory):
    path = tmp_path_factory.mktemp("boxfile") / "box.cif"
    res = build_box("lipf6-ec-emc-1m", 700, path, seed=2)
    return path, res


def test_pdbx_box_round_trips_through_openmm_and_mdtraj(cif_box, tmp_path):
    import mdtraj

    path, res = cif_box
    box = read_box(path)
    top = box.topology
    assert top.getNumAtoms() == res.n_atoms
    counts = {}
    for r in top.residues():
        counts[r.name] = counts.get(r.name, 0) + 1
    assert counts == {"LI": res.counts["Li"], "PF6": res.counts["PF6"], "EC": res.counts["EC"],
                      "EMC": res.counts["EMC"]}
    ref = make_topology(res.counts, res.box_length)
    assert _bonds(top) == _bonds(ref)                       # every bond, within its residue
    assert [a.name for a in top.atoms()] == [a.name for a in ref.atoms()]
    cell = np.array(top.getPeriodicBoxVectors().value_in_unit(angstrom))
    assert np.allclose(cell, np.eye(3) * res.box_length, atol=1e-4)
    assert box_remarks(path) == ["cgaa recipe lipf6-ec-emc-1m seed 2"]
    # the same box as PDB: same topology, positions within PDB's 0.001 Å
    pos = box.getPositions(asNumpy=True).value_in_unit(angstrom)
    pdb_path = write_box(tmp_path / "same.pdb", top, box.positions, remarks=["from cif"], keep_ids=True)
    pdb = read_box(pdb_path)
    assert _bonds(pdb.topology) == _bonds(top)
    assert np.abs(pdb.getPositions(asNumpy=True).value_in_unit(angstrom) - pos).max() <= 5.1e-4
    assert box_remarks(pdb_path)[0] == "from cif"            # (then OpenMM's own REMARK)
    # mdtraj (the analysis side) reads the bonds and the box of the PDBx file too
    mt = mdtraj.load(str(path))
    assert mt.topology.n_bonds == len(_bonds(ref)) and mt.topology.n_residues == top.getNumResidues()
    assert np.allclose(mt.unitcell_lengths[0] * 10.0, res.box_length, atol=1e-3)
    assert np.abs(mt.xyz[0] * 10.0 - pos).max() < 1e-3


def test_pdb_limit_is_checked_before_any_work(tmp_path):
    top = make_topology({"Li": PDB_MAX_ATOMS + 1}, 200.0)
    pos = np.zeros((PDB_MAX_ATOMS + 1, 3))
    with pytest.raises(ValueError, match=r"big\.pdb: 100000 atoms do not fit the PDB format .*big\.cif"):
        write_box(tmp_path / "big.pdb", top, pos)
    assert not list(tmp_path.iterdir())                      # nothing written, no temp file left
    # build_box refuses before packing (packmol would take minutes for this box)
    recipe = load_recipe("lipf6-ec-emc-1m")
    assert atoms_in(composition_counts(recipe, 150_000)) > PDB_MAX_ATOMS
    with pytest.raises(ValueError, match="do not fit the PDB format"):
        build_box(recipe, 150_000, tmp_path / "b.pdb", packmol="/nonexistent/packmol")
    assert box_suffix_for(recipe, 150_000) == ".cif" and box_suffix_for("lipf6-ec-emc-1m", 3000) == ".pdb"
    assert box_suffix(PDB_MAX_ATOMS) == ".pdb" and box_suffix(PDB_MAX_ATOMS + 1) == ".cif"
    check_box_file(tmp_path / "big.cif", 10 ** 7)           # PDBx has no limit


def test_bad_box_files_are_named(cif_box, tmp_path):
    with pytest.raises(ValueError, match=r"box\.gro: unknown box file type '\.gro'"):
        box_format(tmp_path / "box.gro")
    with pytest.raises(FileNotFoundError, match="missing.cif"):
        read_box(tmp_path / "missing.cif")
    text = cif_box[0].read_text()
    bad = tmp_path / "bad.cif"
    bad.write_text(text[: len(text) // 2])                   # an interrupted copy
    with pytest.raises(ValueError, match=r"bad\.cif: not a readable PDBx/mmCIF file"):
        read_box(bad)
    # the CLI turns the PDB limit into a one-line error naming the file
    rc = main(["build", "--recipe", "lipf6-ec-emc-1m", "--atoms", "150000", "-o", str(tmp_path / "x.pdb")])
    assert rc != 0
