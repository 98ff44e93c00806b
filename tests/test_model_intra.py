"""Invariant (distance-only) intra-grain layers, ModelConfig.intra_lmax = 0: exact
symmetries, finite-difference forces, TorchScript, and that -1 keeps the old architecture.
float64."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cgaa.core.model import CGAAModel, ModelConfig
from core_utils import build, finite_difference_check, rel_err, run
from molecules import random_rotation

TOL = 1e-8
# the shipped model's kind of intra-grain layer: scalars only, bonded neighbours only
INTRA = dict(intra_lmax=0, intra_cutoff=2.0, intra_num_basis=6, lmax=1, pair_cutoff=4.5)


@pytest.mark.parametrize("mode", ["conservative", "direct"])
@pytest.mark.parametrize("reflect", [False, True], ids=["rotation", "reflection"])
def test_rotation_reflection_translation(electrolyte_box, mode, reflect):
    atoms, _ = electrolyte_box
    model, _, kw = build(atoms, mode, **INTRA)
    assert model.intra_layers[0]["gate"].irreps_out.lmax == 0
    ref = run(model, kw)
    rng = np.random.default_rng(3)
    q = random_rotation(rng)
    if reflect:
        q = q @ np.diag([1.0, 1.0, -1.0])
    q = torch.tensor(q)
    t = torch.tensor(rng.normal(scale=7.0, size=3))
    out = run(model, kw, pos=kw["pos"] @ q.T + t, cell=kw["cell"] @ q.T)
    assert rel_err(out["energy"], ref["energy"]) <= TOL
    for key in ("forces", "forces_inter", "forces_intra"):
        assert rel_err(out[key], ref[key] @ q.T) <= TOL, key


def test_forces_match_finite_differences(triclinic_electrolyte_box):
    atoms, _ = triclinic_electrolyte_box
    model, _, kw = build(atoms, "conservative", **INTRA)
    rng = np.random.default_rng(1)
    picks = [int(rng.choice(np.nonzero(atoms.numbers == z)[0])) for z in np.unique(atoms.numbers)]
    err, scale = finite_difference_check(model, kw, picks)
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
