"""Conservative forces are −∂E/∂r: central finite differences on a periodic electrolyte box."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from core_utils import build, fd_force, finite_difference_check, run


@pytest.mark.parametrize("all_atom", [False, True], ids=["cg", "allatom"])
def test_forces_match_finite_differences(triclinic_electrolyte_box, all_atom):
    atoms, _ = triclinic_electrolyte_box
    model, gm, kw = build(atoms, "conservative", all_atom)
    rng = np.random.default_rng(0)
    # a spread of atoms: every grain type represented (Li, P, F, C, O, H)
    picks = []
    for z in np.unique(atoms.numbers):
        picks += list(rng.choice(np.nonzero(atoms.numbers == z)[0], size=2, replace=False))
    err, scale = finite_difference_check(model, kw, picks)
    assert scale > 1e-4
    assert err <= 1e-6 * scale


def test_direct_mode_net_grain_force_is_gradient_wrt_centre(electrolyte_box):
    """Direct mode: the inter-grain force is −∂E/∂R_G: rigidly translating one grain by δ changes E by −F_G·δ."""
    atoms, _ = electrolyte_box
    model, gm, kw = build(atoms, "direct")
    out = run(model, kw)
    for g in (0, 5, 11):
        sel = torch.as_tensor(gm.grain_index == g)
        for k in range(3):
            fd = fd_force(model, kw, sel, k)
            assert abs(fd - float(out["grain_forces"][g, k])) <= 1e-6 * float(out["grain_forces"].abs().max())


@pytest.mark.parametrize("mode", ["conservative", "direct"])
def test_energy_and_forces_continuous_at_cutoff(electrolyte_box, mode):
    """A grain crossing the inter-grain cutoff changes neither energy nor forces abruptly (smooth envelope)."""
    atoms, _ = electrolyte_box
    model, gm, kw = build(atoms, mode)
    rc = model.config.cutoff
    li, pf6 = (next(g for g in range(gm.n_grains) if gm.type_names[g] == n) for n in ("Li", "PF6"))
    sel = torch.as_tensor(np.isin(gm.grain_index, [li, pf6]))
    sub = {"pos": kw["pos"][sel], "species": kw["species"][sel], "cell": None,
           "grain_index": torch.as_tensor(np.unique(gm.grain_index[sel.numpy()], return_inverse=True)[1]),
           "grain_type": kw["grain_type"][torch.tensor(sorted([li, pf6]))]}
    g_li = int(sub["grain_index"][sub["species"] == int(model.config.elements.index(3))][0])
    is_li = sub["grain_index"] == g_li
    base = sub["pos"].clone()
    centre = base[~is_li][0]               # the P atom: PF6's centre
    out = {}
    for tag, r in (("in", rc - 1e-7), ("out", rc + 1e-7), ("near", rc - 0.3)):
        p = base.clone()
        p[is_li] = centre + torch.tensor([r, 0.0, 0.0], dtype=p.dtype)
        out[tag] = run(model, sub, pos=p)
    # pair inside the cutoff (0.3 Å in) interacts; at the cutoff the interaction has vanished smoothly
    e_far = float(out["out"]["energy"].detach())
    assert abs(float(out["near"]["energy"].detach()) - e_far) > 1e-9
    assert abs(float(out["in"]["energy"].detach()) - e_far) <= 1e-12
    assert float((out["in"]["forces"] - out["out"]["forces"]).detach().abs().max()) <= 1e-10
