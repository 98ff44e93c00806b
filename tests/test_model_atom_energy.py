"""The optional atom-centred energy term (ModelConfig.atom_energy): exact symmetries,
permutation of identical grains, finite-difference forces, TorchScript, that it starts at
zero (an untrained model equals one without it) and that old configs keep their state-dict
keys. float64."""
from __future__ import annotations

import pytest
import torch

from cgaa.core.model import CGAAModel, ModelConfig
from core_utils import assert_rotation_equivariant, build, fd_check_each_element, rel_err, run

TOL = 1e-8
ATOM = dict(atom_energy=True, intra_layers=2, intra_cutoff=3.0, intra_num_basis=6, lmax=1)


def _switch_on(model):
    """Give the zero-initialised last layer weights, so the term contributes."""
    torch.manual_seed(5)
    with torch.no_grad():
        model.atom_readout.net[-1].weight.normal_(0.0, 1.0)
    return model


def test_term_starts_at_zero_then_contributes(electrolyte_box):
    atoms, _ = electrolyte_box
    with_term, _, kw = build(atoms, "conservative", **ATOM)
    hyper = {k: v for k, v in ATOM.items() if k != "atom_energy"}
    without, _, _ = build(atoms, "conservative", **hyper)
    missing = set(with_term.state_dict()) - set(without.state_dict())
    assert missing and all(k.startswith("atom_readout.") for k in missing)
    without.load_state_dict({k: v for k, v in with_term.state_dict().items() if k in without.state_dict()})
    a, b = run(with_term, kw), run(without, kw)
    assert rel_err(a["energy"], b["energy"]) <= 1e-12 and rel_err(a["forces"], b["forces"]) <= 1e-12
    c = run(_switch_on(with_term), kw)
    assert rel_err(c["forces"], b["forces"]) > 1e-3
    # it acts inside grains: the intra-grain forces change, and they still sum to zero per grain
    gi = kw["grain_index"]
    net = torch.zeros(int(gi.max()) + 1, 3, dtype=torch.float64).index_add(0, gi, c["forces_intra"].detach())
    assert float(net.abs().max()) <= 1e-9 * float(c["forces"].abs().max())


@pytest.mark.parametrize("reflect", [False, True], ids=["rotation", "reflection"])
def test_rotation_reflection_translation(electrolyte_box, reflect):
    atoms, _ = electrolyte_box
    model, _, kw = build(atoms, "conservative", **ATOM)
    _switch_on(model)
    assert_rotation_equivariant(model, kw, seed=4, reflect=reflect, tol=TOL)


def test_periodic_image_and_atom_permutation_inside_a_grain(electrolyte_box):
    atoms, gm = electrolyte_box
    model, gm, kw = build(atoms, "conservative", **ATOM)
    _switch_on(model)
    ref = run(model, kw)
    # shift one whole grain by a lattice vector: same energy and forces
    pos = kw["pos"].clone()
    gi = kw["grain_index"]
    pos[gi == 2] += kw["cell"][1]
    out = run(model, kw, pos=pos)
    assert rel_err(out["energy"], ref["energy"]) <= TOL
    assert rel_err(out["forces"], ref["forces"]) <= TOL
    # reverse the atom order of the whole system (grains keep their atoms): forces permute
    perm = torch.arange(pos.shape[0] - 1, -1, -1)
    out = run(model, kw, pos=kw["pos"][perm], species=kw["species"][perm], grain_index=gi[perm])
    assert rel_err(out["energy"], ref["energy"]) <= TOL
    assert rel_err(out["forces"], ref["forces"][perm]) <= TOL


def test_forces_match_finite_differences(triclinic_electrolyte_box):
    atoms, _ = triclinic_electrolyte_box
    model, _, kw = build(atoms, "conservative", **ATOM)
    _switch_on(model)
    err, scale = fd_check_each_element(model, kw, atoms.numbers, seed=2)
    assert scale > 1e-4
    assert err <= 1e-6 * scale


def test_torchscript_matches_eager(electrolyte_box):
    atoms, _ = electrolyte_box
    model, _, kw = build(atoms, "conservative", **ATOM)
    _switch_on(model)
    ref = run(model, kw)
    out = run(torch.jit.script(model), kw)
    assert rel_err(out["energy"], ref["energy"]) <= 1e-12
    assert rel_err(out["forces"], ref["forces"]) <= 1e-12


def test_config_round_trip_and_default_off():
    cfg = ModelConfig([1, 6], ["a", "b"], lmax=1)
    assert cfg.atom_energy is False and not hasattr(CGAAModel(cfg), "atom_readout")
    on = ModelConfig.from_dict({**cfg.to_dict(), "atom_energy": True})
    assert on.atom_energy is True and hasattr(CGAAModel(on), "atom_readout")
