"""RDF, coordination numbers, first minimum, shell composition, species and oxygen classes."""
from __future__ import annotations

import mdtraj as md
import numpy as np
import pytest

from cgaa.analysis import classify_oxygens, first_peak_and_minimum, identify_species, rdf, shell_composition


def _traj(xyz, names, box, resnames=None, elements=None, residues=None):
    """mdtraj trajectory; one residue per atom unless ``residues`` gives the atom→residue map."""
    top = md.Topology()
    ch = top.add_chain()
    residues = residues if residues is not None else list(range(len(names)))
    res_objs = {}
    for i, name in enumerate(names):
        r = residues[i]
        if r not in res_objs:
            res_objs[r] = top.add_residue((resnames or names)[i], ch)
        el = md.element.get_by_symbol((elements or names)[i])
        top.add_atom(name, el, res_objs[r])
    xyz = np.asarray(xyz, np.float32)
    if xyz.ndim == 2:
        xyz = xyz[None]
    T = xyz.shape[0]
    return md.Trajectory(xyz, top, unitcell_lengths=np.full((T, 3), box), unitcell_angles=np.full((T, 3), 90.0))


def test_ideal_gas_rdf_tends_to_one():
    rng = np.random.default_rng(0)
    L, n, T = 3.0, 200, 60
    xyz = rng.uniform(0, L, size=(T, n, 3))
    traj = _traj(xyz, ["Ar"] * n, L)
    res = rdf(traj, np.arange(100), np.arange(100, 200), r_max_nm=1.4, bin_width_nm=0.02)
    far = res.r_nm > 0.4
    assert abs(np.mean(res.g[far]) - 1.0) < 0.02
    assert np.all(np.abs(res.g[far] - 1.0) < 0.2)
    # n(r) = rho 4/3 pi r³ for an ideal gas
    rho = 100 / L ** 3
    assert res.cn_at(1.0) == pytest.approx(rho * 4 / 3 * np.pi, rel=0.03)
    assert res.density_nm3 == pytest.approx(rho, rel=1e-5)


def test_rdf_range_is_clipped_to_half_box():
    rng = np.random.default_rng(1)
    traj = _traj(rng.uniform(0, 2.0, size=(3, 20, 3)), ["Ar"] * 20, 2.0)
    res = rdf(traj, np.arange(10), np.arange(10, 20), r_max_nm=5.0)
    assert res.r_edges_nm[-1] <= 1.0 + 1e-9


def test_coordination_number_on_simple_cubic_lattice():
    a, m = 0.3, 6
    g = np.stack(np.meshgrid(*[np.arange(m)] * 3, indexing="ij"), -1).reshape(-1, 3) * a
    traj = _traj(g, ["Ar"] * len(g), m * a)
    allat = np.arange(len(g))
    res = rdf(traj, allat, allat, r_max_nm=0.85, bin_width_nm=0.01)  # same group: i != j pairs
    assert res.cn_at(1.2 * a) == pytest.approx(6.0)  # 6 neighbours at a
    assert res.cn_at(1.5 * a) == pytest.approx(18.0)  # + 12 at a·√2
    assert res.cn_at(1.8 * a) == pytest.approx(26.0)  # + 8 at a·√3
    assert res.first_peak_nm == pytest.approx(a, abs=0.01)
    assert a < res.first_min_nm < np.sqrt(2) * a
    assert res.cn_first_shell == pytest.approx(6.0)


def test_coordination_on_rock_salt_between_two_groups():
    a, m = 0.5, 4  # cubic cell edge; Li at fcc sites, F at the shifted fcc sites
    fcc = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    cells = np.stack(np.meshgrid(*[np.arange(m)] * 3, indexing="ij"), -1).reshape(-1, 3)
    li = (cells[:, None, :] + fcc[None]).reshape(-1, 3) * a
    f = li + np.array([0.5 * a, 0, 0])
    xyz = np.concatenate([li, f])
    names = ["Li"] * len(li) + ["F"] * len(f)
    traj = _traj(xyz, names, m * a, resnames=["LI"] * len(li) + ["F"] * len(f))
    res = rdf(traj, np.arange(len(li)), np.arange(len(li), len(xyz)), r_max_nm=0.9, bin_width_nm=0.01)
    assert res.cn_at(0.3) == pytest.approx(6.0)  # 6 F at a/2 = 0.25 nm
    assert res.cn_at(0.45) == pytest.approx(14.0)  # + 8 at a√3/2 = 0.433 nm
    assert res.cn_first_shell == pytest.approx(6.0)


def test_first_minimum_of_a_smooth_rdf():
    r = np.linspace(0.005, 1.0, 200)
    g = 1 + 2.0 * np.exp(-((r - 0.2) / 0.03) ** 2) - 0.6 * np.exp(-((r - 0.3) / 0.04) ** 2)
    pk, h, mn = first_peak_and_minimum(r, g)
    assert pk == pytest.approx(0.2, abs=0.01)
    assert mn == pytest.approx(0.305, abs=0.015)


def _ec_like(offset):
    """Positions (nm) of a carbonate-like fragment: O=C(-O-C)(-O-C); 6 heavy atoms."""
    c = np.array([0.0, 0.0, 0.0])
    return offset + np.array([
        c + [0.0, 0.121, 0.0],  # O carbonyl
        c,  # C carbonyl
        c + [0.118, -0.068, 0.0],  # O ether 1
        c + [-0.118, -0.068, 0.0],  # O ether 2
        c + [0.24, 0.0, 0.0],  # C
        c + [-0.24, 0.0, 0.0],  # C
    ])


def test_oxygen_classes_from_bonds_and_from_distances():
    xyz = np.concatenate([_ec_like(np.array([1.0, 1.0, 1.0])), _ec_like(np.array([2.0, 2.0, 2.0]))])
    names = ["O1", "C1", "O2", "O3", "C2", "C3"] * 2
    elements = ["O", "C", "O", "O", "C", "C"] * 2
    residues = [0] * 6 + [1] * 6
    traj = _traj(xyz, names, 4.0, resnames=["EC"] * 12, elements=elements, residues=residues)
    # no bonds in the topology: inferred from distances
    oxy = classify_oxygens(traj.topology, traj.xyz[0], traj.unitcell_vectors[0])
    assert sorted(oxy["O_carbonyl"]) == [0, 6]
    assert sorted(oxy["O_ether"]) == [2, 3, 8, 9]
    # with explicit bonds (names are deliberately unhelpful)
    top = traj.topology
    atoms = list(top.atoms)
    for base in (0, 6):
        for i, j in [(0, 1), (1, 2), (1, 3), (2, 4), (3, 5)]:
            top.add_bond(atoms[base + i], atoms[base + j])
    oxy = classify_oxygens(top)
    assert sorted(oxy["O_carbonyl"]) == [0, 6]
    assert sorted(oxy["O_ether"]) == [2, 3, 8, 9]


def test_shell_composition_counts_molecules_not_atoms():
    # one Li at the centre; EC #1 with its carbonyl O at 0.20 nm, EC #2 with both ether
    # O within the cutoff (counts once), a PF6-like anion with one F at 0.19 nm,
    # and a far EC that must not count.
    li = np.array([[2.0, 2.0, 2.0]])
    ec1 = _ec_like(np.array([2.0, 2.0 - 0.20 - 0.121, 2.0]))  # O carbonyl at y = 2 - 0.2
    ec2 = _ec_like(np.array([2.0, 2.0 + 0.068 + 0.12, 2.0]))  # ether O at ~0.21 nm from Li
    far = _ec_like(np.array([0.5, 0.5, 0.5]))
    pf = np.array([[2.0 + 0.35, 2.0, 2.0], [2.0 + 0.19, 2.0, 2.0]])  # P, F
    xyz = np.concatenate([li, ec1, ec2, far, pf])
    elements = ["Li"] + ["O", "C", "O", "O", "C", "C"] * 3 + ["P", "F"]
    resnames = ["LI"] + ["EC"] * 18 + ["PF6"] * 2
    residues = [0] + [1] * 6 + [2] * 6 + [3] * 6 + [4, 4]
    traj = _traj(xyz, elements, 4.0, resnames=resnames, elements=elements, residues=residues)
    species = identify_species(traj.topology)
    assert [s.name for s in species] == ["Li", "PF6", "EC"]
    mol_species = {r.index: ("Li" if r.name == "LI" else r.name) for r in traj.topology.residues}
    o_idx = np.array([a.index for a in traj.topology.atoms if a.element.symbol == "O"])
    sh = shell_composition(traj, np.array([0]), {"O": o_idx, "F": np.array([20])},
                           {"O": 0.25, "F": 0.25}, mol_species, ["EC", "PF6"])
    assert sh.mean_counts == {"EC": 2.0, "PF6": 1.0}
    assert sh.mean_coordination == pytest.approx(4.0)  # 1 carbonyl O + 2 ether O + 1 F
    assert sh.compositions[0][0] == "2 EC + 1 PF6"


def test_species_identification_and_overrides():
    names = ["Li", "Li", "P", "F", "C", "O", "Na"]
    resnames = ["Li", "LI", "PF6", "PF6", "EMC", "EMC", "XX"]
    residues = [0, 1, 2, 2, 3, 3, 4]
    traj = _traj(np.zeros((7, 3)), names, 3.0, resnames=resnames, residues=residues)
    sp = {s.name: s for s in identify_species(traj.topology)}
    assert sp["Li"].kind == "cation" and sp["Li"].n_molecules == 2 and sp["Li"].charge == 1
    assert sp["PF6"].kind == "anion" and sp["PF6"].charge == -1 and not sp["PF6"].monatomic
    assert sp["EMC"].kind == "solvent" and sp["EMC"].charge == 0
    assert sp["Na"].kind == "cation"  # unknown residue name, single Na atom
    sp = {s.name: s for s in identify_species(traj.topology, charges={"PF6": -2})}
    assert sp["PF6"].charge == -2
    sp = identify_species(traj.topology, selections={"cat": "resname LI Li", "an": "resname PF6"},
                          charges={"cat": 1, "an": -1})
    assert [(s.name, s.kind, s.n_molecules) for s in sp] == [("cat", "cation", 2), ("an", "anion", 1)]
    with pytest.raises(ValueError, match="matches no atom.*resname FOO"):
        identify_species(traj.topology, selections={"x": "resname FOO"})


@pytest.mark.parametrize("height", [15.0, 30.0, 60.0])
def test_first_minimum_is_robust_to_noise_and_tall_peaks(height):
    rng = np.random.default_rng(3)
    r = np.linspace(0.0025, 1.0, 400)
    # tall Li-O-like peak (Li-O(carbonyl) in LiPF6/EC/EMC reaches g ~ 30), deep minimum
    # near 0.30 nm, slow rise to 1
    g = height * np.exp(-((r - 0.2) / 0.02) ** 2) + np.clip((r - 0.3) / 0.3, 0, 1) * 1.0 + 0.02
    noisy = g + rng.normal(scale=0.03, size=r.size) * (r > 0.26)
    pk, h, mn = first_peak_and_minimum(r, noisy)
    assert pk == pytest.approx(0.2, abs=0.01)
    assert 0.26 < mn < 0.36
