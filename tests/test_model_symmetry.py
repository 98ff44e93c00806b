"""Exact symmetries of the CGAA model (and of its all-atom special case), float64."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from core_utils import build, rel_err, run
from molecules import random_rotation

MODES = [("conservative", False), ("direct", False), ("conservative", True), ("direct", True)]
IDS = ["cg-conservative", "cg-direct", "allatom-conservative", "allatom-direct"]

TOL = 1e-8


def _orthogonal(rng, reflect):
    q = random_rotation(rng)
    if reflect:
        q = q @ np.diag([1.0, 1.0, -1.0])
    return torch.tensor(q)


@pytest.mark.parametrize("mode,all_atom", MODES, ids=IDS)
@pytest.mark.parametrize("reflect", [False, True], ids=["rotation", "reflection"])
def test_rotation_reflection_translation(electrolyte_box, mode, all_atom, reflect):
    atoms, _ = electrolyte_box
    model, _, kw = build(atoms, mode, all_atom)
    ref = run(model, kw)
    rng = np.random.default_rng(11)
    for _ in range(2):
        q = _orthogonal(rng, reflect)
        t = torch.tensor(rng.normal(scale=7.0, size=3))
        out = run(model, kw, pos=kw["pos"] @ q.T + t, cell=kw["cell"] @ q.T)
        assert rel_err(out["energy"], ref["energy"]) <= TOL
        for key in ("forces", "forces_inter", "forces_intra"):
            assert rel_err(out[key], ref[key] @ q.T) <= TOL, key


@pytest.mark.parametrize("mode,all_atom", MODES[:2], ids=IDS[:2])
def test_rotation_without_box(electrolyte_box, mode, all_atom):
    atoms, _ = electrolyte_box
    atoms = atoms.copy()
    atoms.pbc = False
    model, _, kw = build(atoms, mode, all_atom)
    assert kw["cell"] is None
    ref = run(model, kw)
    q = _orthogonal(np.random.default_rng(5), True)
    out = run(model, kw, pos=kw["pos"] @ q.T + 3.0)
    assert rel_err(out["energy"], ref["energy"]) <= TOL
    assert rel_err(out["forces"], ref["forces"] @ q.T) <= TOL


def _permute_atoms(kw, perm):
    """Inputs with atoms reordered: new atom k is old atom perm[k]."""
    p = torch.as_tensor(perm)
    return dict(kw, pos=kw["pos"][p], species=kw["species"][p], grain_index=kw["grain_index"][p])


@pytest.mark.parametrize("mode", ["conservative", "direct"])
def test_permute_identical_atoms_inside_grains(electrolyte_box, mode):
    atoms, _ = electrolyte_box
    model, gm, kw = build(atoms, mode)
    ref = run(model, kw)
    numbers = atoms.numbers
    perm = np.arange(len(atoms))
    # shuffle every set of same-element atoms inside every grain (e.g. EC's 4 H, PF6's 6 F)
    rng = np.random.default_rng(2)
    for g in range(gm.n_grains):
        for z in np.unique(numbers[gm.grain_index == g]):
            idx = np.nonzero((gm.grain_index == g) & (numbers == z))[0]
            perm[idx] = rng.permutation(idx)
    assert (perm != np.arange(len(atoms))).sum() > 20
    out = run(model, _permute_atoms(kw, perm))
    assert rel_err(out["energy"], ref["energy"]) <= TOL
    for key in ("forces", "forces_inter", "forces_intra"):
        assert rel_err(out[key], ref[key][perm]) <= TOL


@pytest.mark.parametrize("mode", ["conservative", "direct"])
def test_permute_whole_grains(electrolyte_box, mode):
    atoms, _ = electrolyte_box
    model, gm, kw = build(atoms, mode)
    ref = run(model, kw)
    rng = np.random.default_rng(9)
    gperm = rng.permutation(gm.n_grains)          # new grain k is old grain gperm[k]
    inv = np.argsort(gperm)
    # atoms reordered grain by grain in the new order, and internally reversed
    perm = np.concatenate([np.nonzero(gm.grain_index == g)[0][::-1] for g in gperm])
    new = _permute_atoms(kw, perm)
    new["grain_index"] = torch.as_tensor(inv)[new["grain_index"]]
    new["grain_type"] = kw["grain_type"][torch.as_tensor(gperm)]
    out = run(model, new)
    assert rel_err(out["energy"], ref["energy"]) <= TOL
    assert rel_err(out["forces"], ref["forces"][perm]) <= TOL
    assert rel_err(out["grain_energies"], ref["grain_energies"][torch.as_tensor(gperm)]) <= TOL


@pytest.mark.parametrize("mode,all_atom", MODES, ids=IDS)
@pytest.mark.parametrize("boxname", ["electrolyte_box", "triclinic_electrolyte_box"])
def test_periodic_images_and_wrapping(request, boxname, mode, all_atom):
    atoms, _ = request.getfixturevalue(boxname)
    model, gm, kw = build(atoms, mode, all_atom)
    ref = run(model, kw)
    cell = kw["cell"]
    rng = np.random.default_rng(4)
    # shift random atoms by random lattice vectors (molecules get broken across the box)
    pos = kw["pos"].clone()
    idx = rng.choice(len(atoms), size=len(atoms) // 2, replace=False)
    n = torch.tensor(rng.integers(-2, 3, size=(len(idx), 3)), dtype=pos.dtype)
    pos[idx] += n @ cell
    out = run(model, kw, pos=pos)
    assert rel_err(out["energy"], ref["energy"]) <= TOL
    assert rel_err(out["forces"], ref["forces"]) <= TOL
    # unwrapped whole molecules far outside the box, then everything wrapped into it
    far = kw["pos"] + 3.0 * cell.sum(0)
    frac = far @ torch.linalg.inv(cell)
    wrapped = (frac - torch.floor(frac)) @ cell
    for p in (far, wrapped):
        out = run(model, kw, pos=p)
        assert rel_err(out["energy"], ref["energy"]) <= TOL
        assert rel_err(out["forces"], ref["forces"]) <= TOL
        assert rel_err(out["forces_intra"], ref["forces_intra"]) <= TOL


@pytest.mark.parametrize("mode,all_atom", MODES, ids=IDS)
def test_force_decomposition(triclinic_electrolyte_box, mode, all_atom):
    atoms, _ = triclinic_electrolyte_box
    model, gm, kw = build(atoms, mode, all_atom)
    out = {k: v.detach() if torch.is_tensor(v) else v for k, v in run(model, kw).items()}
    g = torch.as_tensor(gm.grain_index)
    intra_sum = torch.zeros(gm.n_grains, 3, dtype=torch.float64).index_add(0, g, out["forces_intra"])
    scale = float(out["forces"].abs().max())
    assert scale > 1e-6
    assert float(intra_sum.abs().max()) <= 1e-10 * scale
    assert rel_err(out["forces_inter"] + out["forces_intra"], out["forces"]) <= 1e-12
    inter_sum = torch.zeros(gm.n_grains, 3, dtype=torch.float64).index_add(0, g, out["forces_inter"])
    assert rel_err(inter_sum, out["grain_forces"]) <= 1e-10
    if all_atom:
        assert float(out["forces_intra"].abs().max()) <= 1e-12 * scale
    else:
        assert float(out["forces_intra"].abs().max()) > 1e-3 * scale
    # no net force on the whole system (translation invariance), conservative mode exactly
    if mode == "conservative":
        assert float(out["forces"].sum(0).abs().max()) <= 1e-9 * scale
