"""Helpers for the core-engine tests: build a float64 model and its inputs for a box."""
from __future__ import annotations

import numpy as np
import torch

from cgaa.core.grains import atomic_grains, grains_from_atoms
from cgaa.core.inputs import make_inputs, vocabulary
from cgaa.core.model import CGAAModel, ModelConfig


def build(atoms, force_mode="conservative", all_atom=False, cutoff=None, seed=0, **hyper):
    """(model in float64, grain map, inputs dict) for ASE atoms."""
    gm = atomic_grains(atoms.numbers) if all_atom else grains_from_atoms(atoms)
    el, keys, names = vocabulary([gm], [atoms.numbers])
    if cutoff is None:
        cutoff = 4.0 if all_atom else 6.0
    hyper.setdefault("channels", 8)
    hyper.setdefault("num_basis", 6)
    hyper.setdefault("radial_hidden", 16)
    cfg = ModelConfig(el, keys, names, cutoff=cutoff, force_mode=force_mode, all_atom=all_atom, **hyper)
    torch.manual_seed(seed)
    model = CGAAModel(cfg).double()
    # make the untrained model's output non-trivial so relative tolerances mean something
    with torch.no_grad():
        for p in model.readout.parameters():
            p.mul_(5.0)
        model.energy_scale.fill_(3.0)
    cell = atoms.cell[:] if atoms.pbc.any() else None
    kw = make_inputs(atoms.positions, atoms.numbers, gm, cfg, cell, dtype=torch.float64)
    return model, gm, kw


def run(model, kw, **over):
    args = dict(kw)
    args.update(over)
    return model(**args)


def rel_err(a, b):
    a = torch.as_tensor(a).detach()
    b = torch.as_tensor(b).detach()
    return float((a - b).abs().max() / max(float(b.abs().max()), 1e-30))


def fd_force(model, kw, sel, k, h=1e-4):
    """−(E(r + h e_k) − E(r − h e_k)) / 2h, moving the atom(s) ``sel`` (an index or a mask)
    along axis ``k`` (central difference; float64 inputs)."""
    p = kw["pos"].clone()
    p[sel, k] += h
    ep = float(run(model, kw, pos=p, compute_forces=False)["energy"].detach())
    p[sel, k] -= 2 * h
    em = float(run(model, kw, pos=p, compute_forces=False)["energy"].detach())
    return -(ep - em) / (2 * h)


def finite_difference_check(model, kw, atoms_to_move, h=1e-4):
    """(max |F_model − F_fd|, max |F_fd|) over the x, y, z of ``atoms_to_move`` (:func:`fd_force`)."""
    forces = run(model, kw)["forces"].detach()
    errs, fds = [], []
    for a in atoms_to_move:
        for k in range(3):
            fds.append(fd_force(model, kw, a, k, h))
            errs.append(abs(fds[-1] - float(forces[a, k])))
    return max(errs), max(abs(f) for f in fds)


def assert_rotation_equivariant(model, kw, seed, reflect=False, tol=1e-8):
    """A random rotation (times a reflection if ``reflect``) and translation of positions and box
    leave the energy unchanged and rotate the total, inter- and intra-grain forces."""
    from molecules import random_rotation

    ref = run(model, kw)
    rng = np.random.default_rng(seed)
    q = random_rotation(rng)
    if reflect:
        q = q @ np.diag([1.0, 1.0, -1.0])
    q = torch.tensor(q)
    t = torch.tensor(rng.normal(scale=7.0, size=3))
    out = run(model, kw, pos=kw["pos"] @ q.T + t, cell=kw["cell"] @ q.T)
    assert rel_err(out["energy"], ref["energy"]) <= tol
    for key in ("forces", "forces_inter", "forces_intra"):
        assert rel_err(out[key], ref[key] @ q.T) <= tol, key


def fd_check_each_element(model, kw, numbers, seed):
    """:func:`finite_difference_check` on one random atom of each element: (error, scale)."""
    rng = np.random.default_rng(seed)
    picks = [int(rng.choice(np.nonzero(numbers == z)[0])) for z in np.unique(numbers)]
    return finite_difference_check(model, kw, picks)
