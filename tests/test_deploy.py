"""TorchScript export: eager and scripted outputs identical; metadata round-trips; clear load errors."""
from __future__ import annotations

import json

import pytest
import torch

from cgaa.deploy import FORMAT_VERSION, METADATA_FILE, load_model, read_metadata, save_model
from core_utils import build, rel_err, run


@pytest.mark.parametrize("mode", ["conservative", "direct"])
def test_export_load_identical(tmp_path, electrolyte_box, mode):
    atoms, _ = electrolyte_box
    model, gm, kw = build(atoms, mode)
    with torch.no_grad():
        model.type_energy.copy_(torch.linspace(-3, 2, model.n_types))
    ref = run(model, kw)
    path = save_model(model, tmp_path / "model.pt", extra={"note": "test"})
    loaded = load_model(path)
    out = loaded(**kw)
    for key in ("energy", "forces", "forces_inter", "forces_intra", "grain_energies"):
        # identical to float64 round-off (scripted autograd may order sums differently)
        assert rel_err(out[key], ref[key]) <= 1e-12, key
    meta = loaded.metadata
    assert meta["format_version"] == FORMAT_VERSION
    assert meta["units"] == {"length": "angstrom", "energy": "eV", "forces": "eV/angstrom"}
    assert meta["cutoff"] == model.config.cutoff
    assert meta["force_mode"] == mode
    assert meta["elements"] == model.config.elements
    assert [t["key"] for t in meta["grain_types"]] == model.config.grain_types
    assert sorted(t["name"] for t in meta["grain_types"]) == ["EC", "EMC", "Li", "PF6"]
    assert meta["note"] == "test"
    assert loaded.config == model.config
    assert read_metadata(path) == meta
    # the eager model rebuilt from the deployed file is the same function
    eager = loaded.to_eager()
    assert rel_err(eager(**kw)["forces"], ref["forces"]) <= 1e-12


def test_load_rejects_bad_files(tmp_path, electrolyte_box):
    with pytest.raises(FileNotFoundError, match="no model file"):
        load_model(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_text("not a model")
    with pytest.raises(ValueError, match="junk.pt"):
        load_model(junk)
    atoms, _ = electrolyte_box
    model, _, _ = build(atoms)
    path = save_model(model, tmp_path / "m.pt")
    # a future format version and other units are refused with a reason
    module = torch.jit.load(str(path))
    for change, msg in (({"format_version": FORMAT_VERSION + 1}, "newer"),
                        ({"units": {"length": "nm", "energy": "kJ/mol", "forces": "kJ/mol/nm"}}, "units")):
        meta = read_metadata(path)
        meta.update(change)
        bad = tmp_path / "bad.pt"
        torch.jit.save(module, str(bad), _extra_files={METADATA_FILE: json.dumps(meta)})
        with pytest.raises(ValueError, match=msg):
            load_model(bad)
    plain = tmp_path / "plain.pt"
    torch.jit.save(module, str(plain))
    with pytest.raises(ValueError, match="not a cgaa deployed model"):
        load_model(plain)


def test_check_covers_names_unknown_species(tmp_path, electrolyte_box):
    atoms, _ = electrolyte_box
    model, gm, _ = build(atoms)
    loaded = load_model(save_model(model, tmp_path / "m.pt"))
    loaded.check_covers(atoms.numbers, gm)
    with pytest.raises(ValueError, match=r"element B \(Z=5\)"):
        loaded.check_covers(list(atoms.numbers) + [5])
