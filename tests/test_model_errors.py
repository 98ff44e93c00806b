"""Bad input gets a clear error naming the culprit."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cgaa.core.grains import grains_from_atoms
from cgaa.core.inputs import make_inputs
from cgaa.core.model import ModelConfig
from core_utils import build, run
from molecules import molecule_box


def test_unknown_element_and_grain_type(electrolyte_box):
    atoms, _ = electrolyte_box
    model, gm, kw = build(atoms)
    # a Na+ ion: unknown element
    other = atoms.copy()
    other.numbers[np.nonzero(other.numbers == 3)[0][0]] = 11
    with pytest.raises(ValueError, match=r"atom \d+: element Na \(Z=11\) is not known"):
        make_inputs(other.positions, other.numbers, grains_from_atoms(other), model.config, other.cell[:])
    # EC without one H: known elements, unknown grain type
    ec = [g for g in range(gm.n_grains) if gm.type_names[g] == "EC"][0]
    h = [a for a in np.nonzero(gm.grain_index == ec)[0] if atoms.numbers[a] == 1][0]
    del other
    broken = atoms.copy()
    del broken[int(h)]
    with pytest.raises(ValueError, match=r"grain \d+ \(C3H3O3.*does not know"):
        make_inputs(broken.positions, broken.numbers, grains_from_atoms(broken), model.config, broken.cell[:])


def test_cutoff_and_grain_width_against_box(electrolyte_box):
    atoms, _ = electrolyte_box
    model, gm, kw = build(atoms, cutoff=6.0)
    small = kw["cell"] * 0.55  # 11 Å box: half height 5.5 < cutoff 6
    with pytest.raises(RuntimeError, match="cutoff 6.0 A is not below half the shortest box height"):
        run(model, kw, cell=small)
    # a grain wider than half the box: spread one EMC along the box diagonal over 12 Å (every
    # Cartesian component < 10 Å, so minimum-image unwrapping keeps it whole, but it spans
    # more than half the 20 Å box)
    model2, gm2, kw2 = build(atoms, cutoff=4.0)
    g = [g for g in range(gm2.n_grains) if gm2.type_names[g] == "EMC"][0]
    idx = np.nonzero(gm2.grain_index == g)[0]
    pos = kw2["pos"].clone()
    diag = torch.ones(3, dtype=pos.dtype) / 3 ** 0.5
    pos[idx] = pos[idx[0]] + torch.linspace(0.0, 12.0, len(idx), dtype=pos.dtype)[:, None] * diag
    with pytest.raises(RuntimeError, match=rf"grain {g} \(atoms \d+ and \d+, 12.0\d* A apart\) is wider than half"):
        run(model2, kw2, pos=pos)
    # the same chain over 9 Å is narrower than half the box: accepted
    pos[idx] = pos[idx[0]] + torch.linspace(0.0, 9.0, len(idx), dtype=pos.dtype)[:, None] * diag
    run(model2, kw2, pos=pos)


def test_nan_and_empty(electrolyte_box):
    atoms, _ = electrolyte_box
    model, gm, kw = build(atoms)
    pos = kw["pos"].clone()
    pos[17, 1] = float("nan")
    with pytest.raises(RuntimeError, match="non-finite .* at atom 17"):
        run(model, kw, pos=pos)
    empty = dict(kw, pos=kw["pos"][:0], species=kw["species"][:0], grain_index=kw["grain_index"][:0])
    with pytest.raises(RuntimeError, match="empty system"):
        run(model, empty)
    with pytest.raises(RuntimeError, match="has grain index"):
        run(model, kw, grain_type=kw["grain_type"][:-1])


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="unknown model config key.*cutof"):
        ModelConfig.from_dict({"elements": [1], "grain_types": ["x"], "cutof": 5.0})
    with pytest.raises(ValueError, match="force_mode"):
        ModelConfig([1], ["x"], force_mode="magic")
    with pytest.raises(ValueError, match="cutoff must be > 0"):
        ModelConfig([1], ["x"], cutoff=0.0)
