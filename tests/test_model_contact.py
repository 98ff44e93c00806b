"""The optional atom-pair contact term between grains (ModelConfig.pair_cutoff): exact
symmetries, periodic images, finite-difference forces, smoothness at its cutoff, and that
it only couples atoms of *different* grains. float64."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from core_utils import build, finite_difference_check, rel_err, run
from molecules import random_rotation

TOL = 1e-8
PAIR = dict(pair_cutoff=4.5, pair_num_basis=6, pair_rank=3)


def _build(atoms, mode="conservative", **kw):
    model, gm, inputs = build(atoms, mode, **PAIR, **kw)
    with torch.no_grad():  # make the contact term a sizeable part of the energy
        model.pair_coeff.weight.mul_(3.0)
    return model, gm, inputs


def _contact_only(model, kw):
    """Contact energy of the whole system (before energy_scale) at the inputs."""
    pos = kw["pos"]
    r, u, _, _ = model.grain_geometry(pos, kw["species"], kw["grain_index"], kw["grain_type"].shape[0], kw["cell"])
    _, _, x = model.energy_from_geometry(r, u, kw["species"], kw["grain_index"], kw["grain_type"], kw["cell"])
    return model.contact_energies(r, u, x, kw["grain_index"], kw["grain_type"].shape[0], kw["cell"]).sum()


@pytest.mark.parametrize("mode", ["conservative", "direct"])
def test_rotation_translation_and_periodic_images(electrolyte_box, mode):
    atoms, _ = electrolyte_box
    model, _, kw = _build(atoms, mode)
    ref = run(model, kw)
    assert abs(float(_contact_only(model, kw).detach())) > 1e-3  # the term is really there
    rng = np.random.default_rng(2)
    q = torch.tensor(random_rotation(rng))
    t = torch.tensor(rng.normal(scale=5.0, size=3))
    out = run(model, kw, pos=kw["pos"] @ q.T + t, cell=kw["cell"] @ q.T)
    assert rel_err(out["energy"], ref["energy"]) <= TOL
    assert rel_err(out["forces"], ref["forces"] @ q.T) <= TOL
    pos = kw["pos"].clone()
    idx = rng.choice(len(atoms), size=len(atoms) // 2, replace=False)
    pos[idx] += torch.tensor(rng.integers(-2, 3, size=(len(idx), 3)), dtype=pos.dtype) @ kw["cell"]
    out = run(model, kw, pos=pos)
    assert rel_err(out["energy"], ref["energy"]) <= TOL
    assert rel_err(out["forces"], ref["forces"]) <= TOL


def test_permutations(electrolyte_box):
    atoms, _ = electrolyte_box
    model, gm, kw = _build(atoms)
    ref = run(model, kw)
    rng = np.random.default_rng(5)
    perm = torch.as_tensor(rng.permutation(len(atoms)))
    gperm = rng.permutation(gm.n_grains)
    inv = np.argsort(gperm)  # grain g becomes inv[g]
    new_gi = torch.as_tensor(inv[gm.grain_index])[perm]
    out = model(pos=kw["pos"][perm], species=kw["species"][perm], grain_index=new_gi,
                grain_type=kw["grain_type"][torch.as_tensor(gperm)], cell=kw["cell"])
    assert rel_err(out["energy"], ref["energy"]) <= TOL
    assert rel_err(out["forces"], ref["forces"][perm]) <= TOL


def test_forces_match_finite_differences(triclinic_electrolyte_box):
    atoms, _ = triclinic_electrolyte_box
    model, _, kw = _build(atoms)
    rng = np.random.default_rng(1)
    err, scale = finite_difference_check(model, kw, rng.choice(len(atoms), size=8, replace=False))
    assert scale > 1e-4
    assert err <= 1e-6 * scale


def test_only_different_grains_and_smooth_at_cutoff(electrolyte_box):
    """An isolated molecule has no contact energy whatever its shape; two Li+ ions give a
    contact energy that vanishes smoothly (value and force) at pair_cutoff."""
    atoms, _ = electrolyte_box
    model, gm, kw = _build(atoms)
    g = int(np.nonzero(np.array(gm.type_names) == "EMC")[0][0])
    sel = torch.as_tensor(gm.grain_index == g)
    one = {"pos": kw["pos"][sel], "species": kw["species"][sel], "cell": kw["cell"],
           "grain_index": torch.zeros(int(sel.sum()), dtype=torch.long), "grain_type": kw["grain_type"][g:g + 1]}
    assert float(_contact_only(model, one).detach()) == 0.0
    li = [k for k in range(gm.n_grains) if gm.type_names[k] == "Li"][:2]
    sel = torch.as_tensor(np.isin(gm.grain_index, li))
    two = {"pos": kw["pos"][sel].clone(), "species": kw["species"][sel], "cell": None,
           "grain_index": torch.tensor([0, 1]), "grain_type": kw["grain_type"][torch.tensor(li)]}
    rc = model.config.pair_cutoff
    e = {}
    for tag, r in (("near", rc - 0.3), ("in", rc - 1e-7), ("out", rc + 1e-7)):
        two["pos"] = torch.tensor([[0.0, 0.0, 0.0], [r, 0.0, 0.0]], dtype=torch.float64)
        e[tag] = float(_contact_only(model, two).detach())
    assert abs(e["near"]) > 1e-9 and e["out"] == 0.0 and abs(e["in"]) <= 1e-12


def test_scripted_model_and_state_dict_compatibility(electrolyte_box):
    atoms, _ = electrolyte_box
    model, _, kw = _build(atoms)
    scripted = torch.jit.script(model)
    a, b = run(model, kw), scripted(**kw)
    assert rel_err(b["energy"], a["energy"]) <= 1e-12 and rel_err(b["forces"], a["forces"]) <= 1e-12
    # a model without the term has exactly the state-dict keys of models saved before it existed
    plain, _, _ = build(atoms, "conservative")
    assert not [k for k in plain.state_dict() if k.startswith("pair_")]
    assert {"pair_coeff.weight", "pair_coeff.bias"} <= set(model.state_dict())


def test_edges_are_the_graph_the_network_runs_on(electrolyte_box):
    """CGAAModel.edges gives the three edge sets as documented (intra-grain pairs once within
    intra_cutoff, centre pairs both ways within cutoff, contact pairs once between different
    grains within pair_cutoff), and the network on them (energy_from_edges) is the model's
    energy; with the contact pairs permuted it is unchanged (a sum over pairs)."""
    atoms, _ = electrolyte_box
    model, _, kw = _build(atoms, intra_layers=1, intra_cutoff=2.0)
    gi, g, cell = kw["grain_index"], kw["grain_type"].shape[0], kw["cell"]
    r, u, _, _ = model.grain_geometry(kw["pos"], kw["species"], gi, g, cell)
    intra, inter, inter_shifts, contact, contact_shifts = model.edges(r, u, gi, g, cell)
    assert intra.shape[1] > 0 and bool((intra[0] < intra[1]).all()) and bool((gi[intra[0]] == gi[intra[1]]).all())
    assert float(torch.linalg.norm(u[intra[1]] - u[intra[0]], dim=1).max()) < 2.0
    d = torch.linalg.norm(r[inter[1]] - r[inter[0]] + inter_shifts @ cell, dim=1)
    assert float(d.max()) < model.cutoff and inter.shape[1] % 2 == 0
    p = r[gi] + u
    dc = torch.linalg.norm(p[contact[1]] - p[contact[0]] + contact_shifts @ cell, dim=1)
    assert contact.shape[1] > 0 and float(dc.max()) < model.pair_cutoff
    assert bool((gi[contact[0]] != gi[contact[1]]).all())
    e_ref = run(model, kw)["energy"]
    e, _, _ = model.energy_from_edges(r, u, kw["species"], gi, kw["grain_type"], cell, intra, inter, inter_shifts,
                                      contact, contact_shifts)
    assert rel_err(e.sum(), e_ref) < TOL
    perm = torch.randperm(contact.shape[1], generator=torch.Generator().manual_seed(0))
    e2, _, _ = model.energy_from_edges(r, u, kw["species"], gi, kw["grain_type"], cell, intra, inter, inter_shifts,
                                       contact[:, perm], contact_shifts[perm])
    assert rel_err(e2.sum(), e_ref) < TOL
