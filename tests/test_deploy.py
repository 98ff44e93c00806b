"""TorchScript export: eager and scripted outputs identical; metadata round-trips; clear load errors."""
from __future__ import annotations

import json

import pytest
import torch

from cgaa.core.modelfile import FORMAT_VERSION, METADATA_FILE, load_model, read_metadata, save_model
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
    # deployed modules are for inference: no weight gradients at each call; the rebuilt
    # eager model (fine-tuning) and the saved model are trainable
    assert not any(p.requires_grad for p in loaded.module.parameters())
    assert all(p.requires_grad for p in eager.parameters())
    assert all(p.requires_grad for p in model.parameters())


def test_rescript_keeps_weights_metadata_and_outputs(tmp_path, electrolyte_box, capsys):
    """cgaa deploy OLD.pt --rescript: the same function scripted by this cgaa's code, with the
    training record kept and the re-scripting recorded."""
    from cgaa.cli import main

    atoms, _ = electrolyte_box
    model, _, kw = build(atoms, "conservative")
    path = save_model(model, tmp_path / "old.pt", extra={"training": {"epochs": 3}})
    old = load_model(path)
    assert main(["deploy", str(path), "--rescript", "-o", str(tmp_path / "new.pt")]) == 0
    new = load_model(tmp_path / "new.pt")
    assert rel_err(new(**kw)["forces"], old(**kw)["forces"]) <= 1e-12
    e_new, e_old = float(new(**kw)["energy"].detach()), float(old(**kw)["energy"].detach())
    assert abs(e_new - e_old) <= 1e-12 * abs(e_old)
    for k, v in old.module.state_dict().items():
        assert torch.equal(new.module.state_dict()[k], v), k
    assert new.metadata["training"] == {"epochs": 3} and new.config == old.config
    (entry,) = new.metadata["rescripted"]
    assert entry["from_created"] == old.metadata["created"] and entry["cgaa_version"]
    junk = tmp_path / "ckpt.pt"
    junk.write_bytes(b"not a deployed model")
    assert main(["deploy", str(junk), "--rescript", "-o", str(tmp_path / "x.pt")]) == 2
    assert "--rescript takes a deployed model" in capsys.readouterr().err


def test_resolve_model_leaves_an_eager_model_trainable(electrolyte_box):
    from cgaa.openmm.torchforce import resolve_model

    atoms, _ = electrolyte_box
    model, _, kw = build(atoms, "conservative")
    deployed = resolve_model(model)
    assert not any(p.requires_grad for p in deployed.module.parameters())
    assert all(p.requires_grad for p in model.parameters())
    assert rel_err(deployed(**kw)["forces"], run(model, kw)["forces"]) <= 1e-12


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
    # read_metadata reads the archive directly, yet refuses the same files with the same reasons
    with pytest.raises(ValueError, match="junk.pt"):
        read_metadata(junk)
    with pytest.raises(ValueError, match="not a cgaa deployed model"):
        read_metadata(plain)
    with pytest.raises(FileNotFoundError, match="no model file"):
        read_metadata(tmp_path / "missing.pt")


def test_check_covers_names_unknown_species(tmp_path, electrolyte_box):
    atoms, _ = electrolyte_box
    model, gm, _ = build(atoms)
    loaded = load_model(save_model(model, tmp_path / "m.pt"))
    loaded.check_covers(atoms.numbers, gm)
    with pytest.raises(ValueError, match=r"element B \(Z=5\)"):
        loaded.check_covers(list(atoms.numbers) + [5])
