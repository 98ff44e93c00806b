"""Training: loss goes down, --resume is exact, bad configs and NaN losses stop clearly."""
from __future__ import annotations

import csv
import pathlib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from cgaa.train.config import config_from_dict, load_config
from cgaa.train.trainer import TrainingError, load_checkpoint, train
from toy_teacher import write_dataset

COUNTS = {"Li": 2, "PF6": 2, "EC": 4, "EMC": 3}
TINY_MODEL = {"cutoff": 5.0, "channels": 8, "num_layers": 1, "num_basis": 6, "radial_hidden": 16, "lmax": 1}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    return write_dataset(d / "frames.xyz", COUNTS, 14, seed=1)


def _config(tmp_path, dataset, **training):
    t = {"epochs": 4, "batch_size": 3, "lr": 0.01, "ema_decay": 0.5, "seed": 3, "early_stopping_patience": 0}
    t.update(training)
    data = {"data": {"train": [str(dataset)], "val_fraction": 0.2, "test_fraction": 0.15},
            "model": TINY_MODEL, "training": t, "output": {"dir": str(tmp_path / "run")}}
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _weights(path):
    return load_checkpoint(path)["model"]


def test_training_lowers_validation_loss_and_writes_outputs(tmp_path, dataset):
    cfg = load_config(_config(tmp_path, dataset, epochs=5))
    res = train(cfg, progress=False)
    rows = list(csv.DictReader(open(res.run_dir / "metrics.csv")))
    assert len(rows) == 5
    val = [float(r["val_loss"]) for r in rows]
    assert min(val[2:]) < 0.7 * val[0]
    for name in ("best.pt", "last.pt", "learning_curve.png", "test_metrics.json"):
        assert (res.run_dir / name).is_file(), name
    m = res.test_metrics
    assert m["n_frames"] == 2 and np.isfinite(m["forces_rmse_eV_per_A"])
    assert set(m["per_grain_type"]) == {"Li", "PF6", "EC", "EMC"}
    # net forces per grain type: a Li+ is one atom, so its net force error is its force error
    li = m["per_grain_type"]["Li"]
    assert li["net_force_rmse_eV_per_A"] == pytest.approx(li["forces_rmse_eV_per_A"], rel=1e-9)
    assert all(np.isfinite(v["net_force_rmse_eV_per_A"]) for v in m["per_grain_type"].values())
    # the model records where its training frames put atoms of different grains
    from cgaa.data.contacts import closest_contacts
    from cgaa.train.trainer import load_splits

    train_f = load_splits(cfg, False, None)[0]
    conf = load_checkpoint(res.run_dir / "best.pt")["model_config"]
    assert conf["contact_floor"] == closest_contacts(train_f, conf["elements"])
    assert len(conf["contact_floor"]) == len(conf["elements"]) * (len(conf["elements"]) + 1) // 2


def test_resume_reproduces_uninterrupted_run(tmp_path, dataset):
    full = train(load_config(_config(tmp_path / "a", dataset, epochs=4)), progress=False)
    half_cfg = _config(tmp_path / "b", dataset, epochs=2)
    train(load_config(half_cfg), progress=False)
    data = yaml.safe_load(half_cfg.read_text())
    data["training"]["epochs"] = 4
    half_cfg.write_text(yaml.safe_dump(data))
    resumed = train(load_config(half_cfg), resume=True, progress=False)
    wa, wb = _weights(full.last_checkpoint), _weights(resumed.last_checkpoint)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    assert load_checkpoint(resumed.last_checkpoint)["epoch"] == 4


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, dataset, monkeypatch):
    import cgaa.train.trainer as tr

    real = tr.frame_loss
    calls = {"n": 0}

    def poisoned(out, ref, w):
        calls["n"] += 1
        loss, parts = real(out, ref, w)
        return (loss * float("nan") if calls["n"] > 12 else loss), parts

    monkeypatch.setattr(tr, "frame_loss", poisoned)
    cfg = load_config(_config(tmp_path, dataset, epochs=5))
    with pytest.raises(TrainingError, match=r"loss is nan at epoch \d.*last good checkpoint is .*last.pt"):
        train(cfg, progress=False)
    st = load_checkpoint(cfg.resolve(cfg.output.dir) / "last.pt")
    assert st["epoch"] >= 1
    assert all(torch.isfinite(v).all() for v in st["model"].values() if v.is_floating_point())


def test_bad_configs_are_named(tmp_path, dataset):
    base = yaml.safe_load(_config(tmp_path, dataset).read_text())
    with pytest.raises(ValueError, match="unknown config key 'training.learning_rate'"):
        config_from_dict({**base, "training": {"learning_rate": 1e-3}})
    with pytest.raises(ValueError, match="unknown config key 'model.cutof'"):
        config_from_dict({**base, "model": {"cutof": 5.0}})
    with pytest.raises(ValueError, match="unknown config key 'dat'"):
        config_from_dict({**base, "dat": {}})
    with pytest.raises(FileNotFoundError, match="missing.xyz"):
        train(config_from_dict({**base, "data": {"train": [str(tmp_path / "missing.xyz")]}}), progress=False)
    with pytest.raises(ValueError, match="validation split is empty"):
        train(config_from_dict({**base, "data": {"train": [str(dataset)], "val_fraction": 0.0}}), progress=False)
    with pytest.raises(ValueError, match="not valid YAML"):
        bad = tmp_path / "bad.yaml"
        bad.write_text("data: [unclosed")
        load_config(bad)


def test_corrupt_dataset_never_trains_silently(tmp_path, dataset):
    from cgaa.core.extxyz import FrameError

    text = dataset.read_text().splitlines()
    # drop the forces of the second frame's first atom line: a NaN there
    lines = text[:]
    n = int(lines[0])
    parts = lines[n + 2 + 2].split()
    parts[-2] = "nan"  # a force component (the last column is the grain index)
    lines[n + 2 + 2] = " ".join(parts)
    bad = tmp_path / "bad.xyz"
    bad.write_text("\n".join(lines) + "\n")
    base = yaml.safe_load(_config(tmp_path, dataset).read_text())
    with pytest.raises(FrameError, match=r"bad.xyz frame 1: forces are NaN"):
        train(config_from_dict({**base, "data": {"train": [str(bad)]}}), progress=False)


def test_refit_reference_energies_removes_an_offset(dataset):
    from cgaa.data.dataset import load_frames
    from cgaa.core.model import CGAAModel
    from cgaa.train.trainer import new_model_config, refit_reference_energies

    frames = load_frames(dataset)[:6]
    cfg = config_from_dict({"data": {"train": [str(dataset)]}, "model": TINY_MODEL})
    torch.manual_seed(0)
    model = CGAAModel(new_model_config(cfg, frames)).double()
    first = refit_reference_energies(model, frames)
    with torch.no_grad():
        model.type_energy += 3.0          # a constant offset of 3 eV per grain
    again = refit_reference_energies(model, frames)
    assert again == pytest.approx(first, rel=1e-6, abs=1e-9)
    energies = np.array([f.energy for f in frames])
    from cgaa.data.dataset import frame_tensors, model_inputs

    pred = np.array([float(model(**model_inputs(frame_tensors(f, model.config, torch.float64)),
                                 compute_forces=False)["energy"].detach()) for f in frames])
    assert abs(np.mean(pred - energies)) < 1e-8 * np.abs(energies).max()


def test_model_card_states_prior_and_targets():
    """The model card names the prior, says what its R² refers to, and adapts its MD advice."""
    from cgaa.train.modelcard import model_card

    base = {"force_mode": "conservative", "grain_types": [{"name": "EC", "key": "k"}], "element_symbols": ["H"],
            "cgaa_version": "0", "torch_version": "2.9", "created": "now", "training": {"epochs": 1, "best_epoch": 0}}
    metrics = {"n_frames": 2, "forces_rmse_eV_per_A": 0.25, "energy_rmse_meV_per_atom": 1.0,
               "energy_mae_meV_per_atom": 0.5, "per_grain_type": {}, "per_element": {}}
    for key in ("forces", "forces_inter", "grain_net_forces", "forces_intra"):
        metrics[key + "_rmse_eV_per_A"] = metrics[key + "_mae_eV_per_A"] = 0.1
    metrics["forces_rmse_eV_per_A"] = 0.25
    cfg = {"cutoff": 8.0, "num_layers": 2, "channels": 4, "lmax": 1, "num_basis": 4, "radial_hidden": 8,
           "intra_layers": 1, "intra_cutoff": 4.0, "intra_num_basis": 8, "embed_radius": 5.0,
           "force_mode": "conservative"}
    plain = model_card(dict(base, config=dict(cfg, prior="none")), metrics, None, "make x", "m")
    prior = model_card(dict(base, config=dict(cfg, prior="teacher_bonded", pair_cutoff=5.0,
                                              contact_floor=[[1, 1, 1.81], [3, 8, 1.8023]])), metrics, None,
                       "make x", "m", notes="Measured: stable.")
    assert "contact_floor" not in plain and "H–H 1.81, Li–O 1.80 |" in prior
    assert "bond guard on" in plain and "teacher_bonded" not in plain
    assert "| prior | teacher_bonded |" in prior and "| pair_cutoff | 5.0 |" in prior
    assert "residual labels" in prior and "bond guard stays off" in prior and "Measured: stable." in prior
    assert "**not met**" in plain  # 0.25 eV/Å misses the 0.2 eV/Å target
    assert "inside grains only" in prior and "NonbondedForce" not in prior
    between = model_card(dict(base, config=dict(cfg, prior="teacher_dispersion")), metrics, None, "make x", "m")
    assert "inside grains only" not in between
    assert "PME Coulomb energy and its damped r⁻⁶ dispersion), so net grain forces are network + prior" in between
    assert "cannot join a System that already has a `NonbondedForce`" in between


def test_model_card_rows_for_further_held_out_sets():
    """Further held-out sets (e.g. the model's own MD) each get a row with their own errors, judged
    against the same targets: one set within both targets, one missing the energy target."""
    from cgaa.train.modelcard import further_sets_table

    targets = {"forces_rmse_eV_per_A": 0.10, "energy_rmse_meV_per_atom": 2.0}
    good = {"n_frames": 10, "forces_rmse_eV_per_A": 0.089, "energy_rmse_meV_per_atom": 1.44,
            "energy_mean_error_meV_per_atom": -1.34, "pressure_mean_error_bar": -534.2}
    bad = {"n_frames": 22, "forces_rmse_eV_per_A": 0.099, "energy_rmse_meV_per_atom": 2.54}
    rows = further_sets_table([("own MD, 1001 atoms", good), ("own MD, 449 atoms", bad)], targets)
    assert rows[2] == "| own MD, 1001 atoms | 10 | 0.089 | 1.44 (-1.34) | -534 | met |"
    assert rows[3] == "| own MD, 449 atoms | 22 | 0.099 | 2.54 |  | **not met** |"


def test_evaluate_reports_the_signed_mean_energy_error(tmp_path, dataset):
    """`cgaa evaluate`'s energy_mean_error_meV_per_atom is model − reference: raising every
    reference energy by δ per atom lowers it by exactly δ and leaves the force errors as they
    were (a known answer)."""
    from ase.io import read, write

    from cgaa.train.deploy import deploy_checkpoint
    from cgaa.train.evaluate import evaluate

    res = train(load_config(_config(tmp_path, dataset, epochs=1)), progress=False)
    model, _ = deploy_checkpoint(res.best_checkpoint, tmp_path / "m.pt")
    frames = read(dataset, index=":4")
    write(tmp_path / "a.xyz", frames, format="extxyz")
    delta = 0.002  # eV/atom
    for f in frames:
        f.info["REF_energy"] = float(f.info["REF_energy"]) + delta * len(f)
    write(tmp_path / "b.xyz", frames, format="extxyz")
    a = evaluate(model, tmp_path / "a.xyz", tmp_path / "ea")
    b = evaluate(model, tmp_path / "b.xyz", tmp_path / "eb")
    assert b["energy_mean_error_meV_per_atom"] == pytest.approx(a["energy_mean_error_meV_per_atom"] - 2.0, abs=1e-6)
    assert abs(a["energy_mean_error_meV_per_atom"]) <= a["energy_mae_meV_per_atom"] + 1e-9
    assert b["forces_rmse_eV_per_A"] == pytest.approx(a["forces_rmse_eV_per_A"], rel=1e-12)


def test_model_card_names_its_data_by_path_and_content(tmp_path, dataset):
    """A deployed model records each data file with its SHA-256, and the card names the file by
    a path that means the same on every clone (inside the repository: relative to it) and its hash."""
    from cgaa.core.fileio import file_sha256
    from cgaa.core.modelfile import read_metadata
    from cgaa.core.resources import repository_path
    from cgaa.train.deploy import deploy_checkpoint
    from cgaa.train.modelcard import data_sentence

    res = train(load_config(_config(tmp_path, dataset, epochs=1)), progress=False)
    path, _ = deploy_checkpoint(res.best_checkpoint, tmp_path / "m.pt")
    files = read_metadata(path)["training"]["data_files"]
    assert files == [{"role": "train", "path": str(dataset.resolve()), "sha256": file_sha256(dataset)}]
    sentence = data_sentence(files, {})
    assert f"`{dataset.resolve()}` (sha256 {file_sha256(dataset)[:12]})" in sentence
    assert "test: a split of the training files" in sentence
    repo = pathlib.Path(__file__).resolve().parent.parent
    assert repository_path(repo / "forcefields" / "x.xyz") == "forcefields/x.xyz"
    old = data_sentence(None, {"train": ["../a.xyz"], "test": []})
    assert "relative to the training config" in old and "../a.xyz" in old


def test_the_example_config_of_train_help_exists_and_is_valid(capsys):
    """`cgaa train --help` points to examples/train_config.yaml: it exists and every key is valid."""
    from cgaa.cli import main

    repo = pathlib.Path(__file__).resolve().parent.parent
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    helptext = capsys.readouterr().out
    assert "examples/train_config.yaml" in helptext
    cfg = load_config(repo / "examples" / "train_config.yaml")
    assert cfg.model["prior"] == "teacher_intra"
    assert cfg.resolve(cfg.data.train[0]) == repo / "examples" / "teacher.xyz"


def test_kill_9_then_resume_gives_the_uninterrupted_weights(tmp_path, dataset):
    """SIGKILL during `cgaa train` once the first epoch's last.pt exists: the run directory stays
    readable (last.pt loads, metrics.csv parses) and `cgaa train --resume` ends with the weights,
    the EMA weights, best.pt and the metrics of an uninterrupted run of the same epochs (CPU,
    float64, one thread in every process)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from cgaa.cli import main

    epochs = 12
    full = train(load_config(_config(tmp_path / "full", dataset, epochs=epochs, dtype="float64")), progress=False)
    cfg = _config(tmp_path / "killed", dataset, epochs=epochs, dtype="float64")
    run = tmp_path / "killed" / "run"
    code = ("import sys, torch; torch.set_num_threads(1); from cgaa.cli import main; "
            f"sys.exit(main(['train', '--no-progress', {str(cfg)!r}]))")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.time() + 300
        while not ((run / "last.pt").exists() and (run / "metrics.csv").exists()):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.time() < deadline, "no last.pt after 300 s"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # what the killed run left is readable
    done = load_checkpoint(run / "last.pt")["epoch"]
    assert 1 <= done < epochs
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert done - 1 <= len(rows) <= done
    # a plain rerun refuses to overwrite it; --resume continues it
    assert main(["train", "--no-progress", str(cfg)]) == 2
    assert main(["train", "--resume", "--no-progress", str(cfg)]) == 0
    assert not list(run.glob(".*.tmp"))
    a, b = load_checkpoint(full.last_checkpoint), load_checkpoint(run / "last.pt")
    assert a["epoch"] == b["epoch"] == epochs
    for key in ("model", "ema"):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{key}.{name}"
    best_a, best_b = load_checkpoint(full.best_checkpoint), load_checkpoint(run / "best.pt")
    assert best_a["epoch"] == best_b["epoch"]
    for name in best_a["ema"]:
        assert torch.equal(best_a["ema"][name], best_b["ema"][name]), f"best ema.{name}"
    ra = list(csv.DictReader(open(full.run_dir / "metrics.csv")))
    rb = list(csv.DictReader(open(run / "metrics.csv")))
    assert [r["val_loss"] for r in ra] == [r["val_loss"] for r in rb]
    assert [r["train_loss"] for r in ra] == [r["train_loss"] for r in rb]


class _Killed(BaseException):
    """Stands for SIGKILL at one exact point of a run (BaseException: nothing catches it)."""


#: where the run is stopped: (writer, predicate on its arguments and the names written before)
KILL_POINTS = {
    # between the two checkpoints (best.pt, last.pt, whichever comes first) of the last epoch, which improves
    "between-best-and-last": ("save_checkpoint", lambda a, before: a[1]["epoch"] == 3 and before[-1:] == [3]),
    "before-last.pt": ("save_checkpoint", lambda a, before: Path(a[0]).name == "last.pt" and a[1]["epoch"] == 2),
    "before-the-final-metrics": ("write_metrics_csv", lambda a, before: len(a[1]) == 3),
    "during-the-final-refit": ("save_checkpoint", lambda a, before: "energy_refit_rms_eV_per_atom" in a[1]),
    "after-the-final-refit": ("write_text_atomic", lambda a, before: Path(a[0]).name == "test_metrics.json"),
}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, dataset):
    """A 3-epoch float64 run, the reference of the interrupted ones."""
    d = tmp_path_factory.mktemp("uninterrupted")
    return train(load_config(_config(d, dataset, epochs=3, dtype="float64")), progress=False)


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_kill_at_any_write_resumes_to_the_uninterrupted_run(tmp_path, dataset, monkeypatch, point, uninterrupted):
    """The run stops just before one write (as a kill there would): between an epoch's best.pt and
    last.pt, before a last.pt, before the final metrics.csv, before or after the refitted best.pt
    at the end. --resume must then give the uninterrupted run's last.pt, best.pt (whose reference
    energies are refitted once, not twice) and metrics.csv."""
    import cgaa.train.trainer as tr

    epochs, full = 3, uninterrupted
    name, stop_here = KILL_POINTS[point]
    real = getattr(tr, name)
    written = []

    def writer(*args, **kw):
        if stop_here(args, written):
            raise _Killed()
        written.append(args[1]["epoch"] if name == "save_checkpoint" else Path(args[0]).name)
        return real(*args, **kw)

    cfg = load_config(_config(tmp_path / "killed", dataset, epochs=epochs, dtype="float64"))
    monkeypatch.setattr(tr, name, writer)
    with pytest.raises(_Killed):
        train(cfg, progress=False)
    monkeypatch.setattr(tr, name, real)
    resumed = train(cfg, resume=True, progress=False)
    for path_a, path_b in ((full.last_checkpoint, resumed.last_checkpoint), (full.best_checkpoint, resumed.best_checkpoint)):
        a, b = load_checkpoint(path_a), load_checkpoint(path_b)
        assert a["epoch"] == b["epoch"] and a["best_epoch"] == b["best_epoch"]
        for key in ("model", "ema"):
            for k in a[key]:
                assert torch.equal(a[key][k], b[key][k]), f"{path_b.name} {key}.{k}"
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(csv.DictReader(open(full.run_dir / "metrics.csv"))) == \
        strip(csv.DictReader(open(resumed.run_dir / "metrics.csv")))


def test_max_hours_stops_at_the_training_time_budget_across_resumes(tmp_path, dataset, monkeypatch):
    """training.max_hours: no epoch starts once the epochs so far took the budget, counted over
    resumed segments (a clock that makes every epoch last 1000 s: budget 0.5 h = 2 epochs)."""
    import time as real_time
    import types

    import cgaa.train.trainer as tr

    clock = {"t": 0.0}

    def tick():
        clock["t"] += 1000.0  # called at an epoch's start and end: 1000 s an epoch
        return clock["t"]

    monkeypatch.setattr(tr, "time", types.SimpleNamespace(time=tick, perf_counter=real_time.perf_counter,
                                                          sleep=real_time.sleep))
    path = _config(tmp_path, dataset, epochs=6, max_hours=0.5)
    res = train(load_config(path), progress=False)
    st = load_checkpoint(res.last_checkpoint)
    assert st["epoch"] == 2 and [h["seconds"] for h in st["history"]] == [1000.0, 1000.0]
    assert res.test_metrics is not None  # a budget stop still refits, tests and writes the outputs
    again = train(load_config(path), resume=True, progress=False)  # the budget is spent: nothing more
    assert load_checkpoint(again.last_checkpoint)["epoch"] == 2
    data = yaml.safe_load(path.read_text())
    data["training"]["max_hours"] = 1.0
    path.write_text(yaml.safe_dump(data))
    more = train(load_config(path), resume=True, progress=False)
    assert load_checkpoint(more.last_checkpoint)["epoch"] == 4
    with pytest.raises(ValueError, match="training.max_hours"):
        config_from_dict({**data, "training": {**data["training"], "max_hours": -1}}, base_dir=tmp_path)
