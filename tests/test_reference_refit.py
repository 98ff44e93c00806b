"""Refitting per-grain-type reference energies: known offsets recovered, forces untouched, files kept."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from cgaa.core.inputs import grain_type_indices, vocabulary
from cgaa.core.model import CGAAModel, ModelConfig
from cgaa.core.modelfile import load_model, read_metadata, save_model
from cgaa.data.dataset import frame_tensors, load_frames, model_inputs
from cgaa.train.reference import refit_model_file, refit_type_energies, shift_type_energies
from toy_teacher import write_dataset

COMPOSITIONS = [{"Li": 1, "PF6": 1, "EC": 3, "EMC": 2}, {"Li": 2, "PF6": 2, "EC": 2, "EMC": 2},
                {"Li": 1, "PF6": 1, "EC": 1, "EMC": 4}]


@pytest.fixture(scope="module")
def frames_and_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("refit")
    files = [write_dataset(d / f"c{k}.xyz", c, 3, seed=k) for k, c in enumerate(COMPOSITIONS)]
    frames = load_frames([str(f) for f in files])
    el, keys, names = vocabulary([f.grain_map for f in frames], [f.numbers for f in frames])
    cfg = ModelConfig(el, keys, names, cutoff=5.0, channels=8, num_layers=1, num_basis=6, radial_hidden=16)
    torch.manual_seed(0)
    model = CGAAModel(cfg).double().eval()
    return frames, model, files


def _relabelled(frames, model, offsets):
    """The frames with labels = the model's own energy + Σ_T n_T·offset_T (eV): a known answer."""
    out = []
    for fr in frames:
        with torch.no_grad():
            e = float(model(**model_inputs(frame_tensors(fr, model.config, torch.float64)), compute_forces=False)["energy"])
        n = np.bincount(grain_type_indices(fr.grain_map, model.config.grain_types), minlength=len(offsets))
        out.append(dataclasses.replace(fr, energy=e + float(n @ offsets)))
    return out


def test_known_offsets_are_recovered_and_forces_do_not_change(frames_and_model):
    frames, model, _ = frames_and_model
    offsets = np.array([0.7, -1.3, 2.0, 0.4])[: len(model.config.grain_types)]
    labelled = _relabelled(frames, model, offsets)
    res = refit_type_energies(model, labelled)
    assert res.rmse_before > 1.0 and res.rmse_after < 1e-6  # meV/atom: the offsets explain all of it
    assert len(res.compositions) == 3 and res.rank == 3  # Li and PF6 always paired: 3 of 4 types
    t = frame_tensors(frames[0], model.config, torch.float64)
    before = model(**model_inputs(t))
    shifted = shift_type_energies(CGAAModel(model.config).double().eval(), [0.0] * len(offsets))
    shifted.load_state_dict(model.state_dict())
    shift_type_energies(shifted, res.delta_eV)
    after = shifted(**model_inputs(t))
    assert torch.equal(before["forces"], after["forces"])  # bit for bit: only constants moved
    # every relabelled frame's energy is now the model's
    for fr in labelled:
        e = float(shifted(**model_inputs(frame_tensors(fr, model.config, torch.float64)), compute_forces=False)["energy"])
        assert e == pytest.approx(fr.energy, abs=1e-8 * len(fr.numbers))
    with pytest.raises(ValueError, match="one per grain type"):
        shift_type_energies(shifted, [1.0])
    with pytest.raises(ValueError, match="no frames"):
        refit_type_energies(model, [])


def test_one_composition_cannot_tell_the_types_apart(frames_and_model):
    frames, model, _ = frames_and_model
    labelled = _relabelled(frames[:3], model, np.array([0.7, -1.3, 2.0, 0.4]))
    res = refit_type_energies(model, labelled)
    assert len(res.compositions) == 1 and res.rank == 1 and res.rmse_after < 1e-6


def test_refit_model_file_keeps_metadata(frames_and_model, tmp_path):
    frames, model, files = frames_and_model
    src = save_model(model.float(), tmp_path / "m.pt", {"training": {"epochs": 7}})
    model.double()
    res = refit_model_file(src, files, tmp_path / "refit.pt")
    meta = read_metadata(tmp_path / "refit.pt")
    assert meta["training"] == {"epochs": 7} and meta["reference_refit"]["frames"] == res.n_frames == 9
    assert meta["reference_refit"]["delta_eV"] == pytest.approx(list(res.delta_eV))
    old, new = load_model(src), load_model(tmp_path / "refit.pt")
    d = torch.tensor(res.delta_eV, dtype=torch.float32)
    assert torch.allclose(new.module.type_energy, old.module.type_energy + d)
