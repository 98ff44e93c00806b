"""Forgetting-aware fine-tuning: vocabulary extension, EWC penalty, and EWC+replay forgets less."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from cgaa.data.dataset import load_frames
from cgaa.train.config import load_config
from cgaa.train.finetune import EWCPenalty, extend_vocabulary, finetune
from cgaa.train.trainer import load_checkpoint, model_from_checkpoint, train
from toy_teacher import write_dataset

MODEL = {"cutoff": 5.0, "channels": 8, "num_layers": 1, "num_basis": 6, "radial_hidden": 16, "lmax": 1,
         "intra_num_basis": 12}
OLD = {"Li": 2, "PF6": 2, "EC": 5, "EMC": 2}
NEW = {"Li": 2, "PF6": 2, "EC": 1, "EMC": 6}


def _yaml(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    """A model trained on composition A (EC-rich) and data of composition B (EMC-rich)."""
    d = tmp_path_factory.mktemp("ft")
    old = write_dataset(d / "old.xyz", OLD, 12, seed=11)
    new = write_dataset(d / "new.xyz", NEW, 12, seed=12)
    cfg = {"data": {"train": [str(old)], "val_fraction": 0.2, "test_fraction": 0.0}, "model": MODEL,
           "training": {"epochs": 10, "batch_size": 2, "lr": 0.01, "seed": 0, "ema_decay": 0.0,
                        "early_stopping_patience": 0},
           "output": {"dir": str(d / "base")}}
    res = train(load_config(_yaml(d / "base.yaml", cfg)), progress=False)
    return d, old, new, res.best_checkpoint


def _finetune(d, old, new, start, name, replay, lam, test_fraction=0.0):
    cfg = {"data": {"train": [str(new)], "val_fraction": 0.2, "test_fraction": test_fraction}, "model": {},
           "training": {"epochs": 6, "batch_size": 2, "lr": 0.01, "seed": 0, "ema_decay": 0.0,
                        "early_stopping_patience": 0, "scheduler": "none"},
           "finetune": {"start": str(start), "old_data": [str(old)], "replay_fraction": replay,
                        "ewc_lambda": lam, "fisher_frames": 6},
           "output": {"dir": str(d / name)}}
    finetune(load_config(_yaml(d / f"{name}.yaml", cfg)), progress=False)
    return json.loads((d / name / "finetune_report.json").read_text())


@pytest.mark.slow
def test_ewc_and_replay_forget_less_than_plain_finetuning(scenario):
    d, old, new, start = scenario
    plain = _finetune(d, old, new, start, "plain", 0.0, 0.0)
    guarded = _finetune(d, old, new, start, "guarded", 0.5, 50.0)
    before = plain["old_data_before"]["forces_rmse_eV_per_A"]
    assert guarded["old_data_before"]["forces_rmse_eV_per_A"] == pytest.approx(before)
    up_plain = plain["old_data_after"]["forces_rmse_eV_per_A"] - before
    up_guarded = guarded["old_data_after"]["forces_rmse_eV_per_A"] - before
    assert up_plain > 0, "plain fine-tuning should forget something in this scenario"
    assert up_guarded < up_plain
    # the fine-tuned model's contact floor covers both data sets
    from cgaa.data.contacts import closest_contacts, merge_contact_floors
    from cgaa.train.trainer import load_splits

    base = load_checkpoint(start)["model_config"]
    tuned = load_checkpoint(d / "plain" / "best.pt")["model_config"]
    new_train = load_splits(load_config(d / "plain.yaml"), False, base["prior"])[0]
    assert base["contact_floor"]
    assert tuned["contact_floor"] == merge_contact_floors(base["contact_floor"],
                                                          closest_contacts(new_train, tuned["elements"]))


@pytest.mark.slow
def test_report_has_the_new_data_error_before_and_after_and_a_table(scenario):
    """finetune_report.json holds the start model's error on the new held-out frames (zero-shot) beside
    the fine-tuned one's; fine-tuning on composition B lowers it. finetune_table prints both runs."""
    from cgaa.train.evaluate import errors
    from cgaa.train.finetune import finetune_table, load_start_model
    from cgaa.train.trainer import load_splits

    d, old, new, start = scenario
    rep = _finetune(d, old, new, start, "withtest", 0.0, 0.0, test_fraction=0.25)
    before, after = rep["new_data_test_before"], rep["new_data_test_after"]
    test_f = load_splits(load_config(d / "withtest.yaml"), False, None)[2]
    assert before["n_frames"] == after["n_frames"] == len(test_f) == 3
    start_model = extend_vocabulary(load_start_model(start), test_f)
    direct = errors(start_model, start_model.config, test_f, dtype=torch.float32).summary()
    assert before["forces_rmse_eV_per_A"] == pytest.approx(direct["forces_rmse_eV_per_A"], rel=1e-6)
    assert after["forces_rmse_eV_per_A"] < before["forces_rmse_eV_per_A"]
    table = finetune_table([d / "withtest"], ["B only"]).splitlines()
    assert len(table) == 3 and table[2].startswith("| B only | 0 | 0 |")
    cells = [c.strip() for c in table[2].split("|")[1:-1]]
    assert cells[5] == f"{before['forces_rmse_eV_per_A']:.3f} → {after['forces_rmse_eV_per_A']:.3f}"
    assert cells[3] == (f"{rep['old_data_before']['forces_rmse_eV_per_A']:.3f} → "
                        f"{rep['old_data_after']['forces_rmse_eV_per_A']:.3f}")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        finetune_table([d / "nowhere"])


def test_extend_vocabulary_keeps_old_predictions(scenario, tmp_path):
    """New grain types (and elements) are added without changing predictions on old systems."""
    from ase import Atoms

    d, old, new, start = scenario
    model = model_from_checkpoint(load_checkpoint(start))
    old_frames = load_frames(old)[:2]
    # a frame containing a brand-new species: water (new grain type) and Na+ (new element)
    f = old_frames[0]
    w = Atoms("OH2Na", positions=[[1, 1, 1], [1.96, 1, 1], [0.76, 1.93, 1], [8, 8, 8]])
    from cgaa.core.extxyz import make_frame, write_frames

    frame = make_frame(w.get_chemical_symbols(), w.positions, np.diag([22.0] * 3), energy=-1.0,
                       forces=np.zeros((4, 3)), grain=[0, 0, 0, 1])
    extra = load_frames(write_frames(tmp_path / "w.xyz", [frame]))
    bigger = extend_vocabulary(model, extra)
    assert bigger.config.elements[-1] == 11 and "Na" in bigger.config.grain_type_names
    from cgaa.data.dataset import frame_tensors, model_inputs

    for fr in old_frames:
        a = model(**model_inputs(frame_tensors(fr, model.config)))
        b = bigger(**model_inputs(frame_tensors(fr, bigger.config)))
        assert torch.allclose(a["forces"], b["forces"], atol=1e-6)
        assert torch.allclose(a["energy"], b["energy"], atol=1e-5)
    bigger(**model_inputs(frame_tensors(extra[0], bigger.config)))  # runs on the new species


def test_ewc_penalty_is_quadratic_in_the_weight_change(scenario):
    d, old, new, start = scenario
    model = model_from_checkpoint(load_checkpoint(start))
    fisher = {n: torch.rand_like(p) for n, p in model.named_parameters()}
    pen = EWCPenalty(model, fisher, lam=3.0)
    assert float(pen(model).detach()) == 0.0
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)
    expected = 0.5 * 3.0 * sum(float((f * 0.01 ** 2).sum()) for f in fisher.values())
    assert float(pen(model).detach()) == pytest.approx(expected, rel=1e-4)


def test_start_model_from_checkpoint_or_deployed_model(scenario, tmp_path):
    """finetune.start takes a training checkpoint or a deployed model (same weights, no
    torch.load warning about TorchScript archives), and names a file that is neither."""
    import warnings

    from cgaa.train.deploy import deploy_checkpoint
    from cgaa.train.finetune import load_start_model

    d, old, _, ckpt = scenario
    deployed, _ = deploy_checkpoint(ckpt, tmp_path / "m.pt", weights="model")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from_deployed = load_start_model(deployed)
    assert not [w for w in caught if "TorchScript archive" in str(w.message)]
    from_ckpt = load_start_model(ckpt)
    frame = load_frames(old)[0]
    from cgaa.data.dataset import frame_tensors
    from cgaa.train.loss import predict

    outs = [predict(m, frame_tensors(frame, m.config, torch.float32)) for m in (from_ckpt, from_deployed)]
    assert torch.allclose(outs[0]["energy"], outs[1]["energy"], rtol=1e-6)
    assert torch.allclose(outs[0]["forces"], outs[1]["forces"], rtol=1e-5, atol=1e-6)
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="broken.pt is neither a deployed cgaa model nor a training checkpoint"):
        load_start_model(bad)
