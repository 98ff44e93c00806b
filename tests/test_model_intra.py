"""Invariant (distance-only) intra-grain layers, ModelConfig.intra_lmax = 0: exact
symmetries, finite-difference forces, TorchScript, and that -1 keeps the old architecture.
float64."""
from __future__ import annotations

import pytest
import torch

from cgaa.core.model import CGAAModel, ModelConfig
from core_utils import assert_rotation_equivariant, build, fd_check_each_element, rel_err, run

TOL = 1e-8
# the shipped model's kind of intra-grain layer: scalars only, bonded neighbours only
INTRA = dict(intra_lmax=0, intra_cutoff=2.0, intra_num_basis=6, lmax=1, pair_cutoff=4.5)


@pytest.mark.parametrize("mode", ["conservative", "direct"])
@pytest.mark.parametrize("reflect", [False, True], ids=["rotation", "reflection"])
def test_rotation_reflection_translation(electrolyte_box, mode, reflect):
    atoms, _ = electrolyte_box
    model, _, kw = build(atoms, mode, **INTRA)
    assert model.intra_layers[0]["gate"].irreps_out.lmax == 0
    assert_rotation_equivariant(model, kw, seed=3, reflect=reflect, tol=TOL)


def test_forces_match_finite_differences(triclinic_electrolyte_box):
    atoms, _ = triclinic_electrolyte_box
    model, _, kw = build(atoms, "conservative", **INTRA)
    err, scale = fd_check_each_element(model, kw, atoms.numbers, seed=1)
    assert scale > 1e-4
    assert err <= 1e-6 * scale


def test_torchscript_matches_eager(electrolyte_box):
    atoms, _ = electrolyte_box
    model, _, kw = build(atoms, "conservative", **INTRA)
    ref = run(model, kw)
    out = run(torch.jit.script(model), kw)
    assert rel_err(out["energy"], ref["energy"]) <= 1e-12
    assert rel_err(out["forces"], ref["forces"]) <= 1e-12


def test_default_keeps_equivariant_intra_layers_and_rejects_bad_values():
    old = CGAAModel(ModelConfig([1, 6], ["a", "b"], lmax=1))  # configs without the key: -1
    same = CGAAModel(ModelConfig([1, 6], ["a", "b"], lmax=1, intra_lmax=1))
    assert {k: v.shape for k, v in old.state_dict().items()} == {k: v.shape for k, v in same.state_dict().items()}
    scalar = CGAAModel(ModelConfig([1, 6], ["a", "b"], lmax=1, intra_lmax=0))
    assert sum(p.numel() for p in scalar.parameters()) < sum(p.numel() for p in old.parameters())
    with pytest.raises(ValueError, match="intra_lmax must be -1"):
        ModelConfig([1], ["x"], lmax=1, intra_lmax=2)
