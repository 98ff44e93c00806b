"""Accuracy: CGAA and the all-atom baseline trained on the same teacher data with the same budget.

Both models use the same training settings (epochs, batch size, learning rate, loss
weights, seed) and the same frames; the model sections differ only in what defines the
method: the CGAA model passes messages between grains (molecules/ions) within its grain
cutoff, the baseline (``all_atom: true``) between atoms within a typical MLIP cutoff
(default 5 Å); width, depth, lmax and radial sizes are the same. The test frames are
evaluated with each model's best (EMA) checkpoint through :mod:`cgaa.train`.

Units: energy RMSE meV/atom, forces eV/Å, time s.
"""
from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from cgaa.bench.report import (available_cores, fmt, header, header_markdown, markdown_table, save_figure,
                               write_outputs)
from cgaa.bench.speed import SHIPPED_CONFIG
from cgaa.core.extxyz import read_frames, write_frames
from cgaa.core.model import count_parameters
from cgaa.core.resources import forcefields_dir
from cgaa.data.dataset import frame_tensors, load_frames, model_inputs
from cgaa.teacher.sample import sample_teacher
from cgaa.train.config import config_from_dict
from cgaa.train.trainer import load_checkpoint, model_from_checkpoint, train as train_model

PathLike = Union[str, Path]
KINDS = ("cgaa", "allatom")
#: Metrics compared side by side (keys of cgaa.train.loss.ErrorAccumulator.summary()).
METRICS = (("energy_rmse_meV_per_atom", "energy RMSE (meV/atom)"),
           ("forces_rmse_eV_per_A", "force RMSE (eV/Å)"),
           ("forces_mae_eV_per_A", "force MAE (eV/Å)"),
           ("molecule_net_force_rmse_eV_per_A", "molecule net-force RMSE (eV/Å)"),
           ("intra_molecular_force_rmse_eV_per_A", "intra-molecular force RMSE (eV/Å)"))


def _metric(entry: Dict[str, Any], key: str) -> Optional[float]:
    for part in ("test", "test_molecular"):
        if key in (entry.get(part) or {}):
            return entry[part][key]
    return None


def subset_frames(src: Sequence[PathLike], dst: PathLike, max_frames: int = 0) -> Tuple[Path, int]:
    """Write at most ``max_frames`` frames of ``src`` (evenly spaced; 0: all) to ``dst``."""

    frames: List = []
    for p in src:
        if not Path(p).is_file():
            raise FileNotFoundError(f"no data file {p}")
        frames += read_frames(p)
    if not frames:
        raise ValueError(f"no frames in {', '.join(map(str, src))}")
    if max_frames and len(frames) > max_frames:
        idx = np.unique(np.linspace(0, len(frames) - 1, max_frames).round().astype(int))
        frames = [frames[i] for i in idx]
    write_frames(dst, frames)
    return Path(dst), len(frames)


def molecular_force_errors(checkpoint: PathLike, test_file: PathLike) -> Dict[str, float]:
    """Errors of a trained model's forces measured on *molecules*, whatever its grains:
    RMSE of the net force per molecule and of the intra-molecular part
    F_i − (m_i/M)·F_net (eV/Å), so CGAA and the all-atom baseline are compared on the same
    decomposition (molecules perceived as in CGAA training; the model's own masses)."""

    model = model_from_checkpoint(load_checkpoint(Path(checkpoint))).eval()
    cfg = model.config
    own = load_frames(test_file, all_atom=cfg.all_atom, prior=cfg.prior)
    mol = load_frames(test_file, all_atom=False, prior=cfg.prior)
    dtype = model.masses.dtype
    sq_net = sq_intra = 0.0
    n_net = n_intra = 0
    for fo, fm in zip(own, mol):
        out = model(**model_inputs(frame_tensors(fo, cfg, dtype)))
        f_pred = out["forces"].detach().double().numpy()
        gi = fm.grain_map.grain_index
        m = np.asarray(cfg.masses)[[cfg.elements.index(int(z)) for z in fm.numbers]]
        g = int(gi.max()) + 1
        mg = np.bincount(gi, weights=m, minlength=g)
        d = f_pred - fm.forces
        net = np.zeros((g, 3))
        np.add.at(net, gi, d)
        intra = d - (m / mg[gi])[:, None] * net[gi]
        sq_net += float((net ** 2).sum())
        n_net += net.size
        sq_intra += float((intra ** 2).sum())
        n_intra += intra.size
    return {"molecule_net_force_rmse_eV_per_A": float(np.sqrt(sq_net / max(n_net, 1))),
            "intra_molecular_force_rmse_eV_per_A": float(np.sqrt(sq_intra / max(n_intra, 1)))}


def generate_data(out_dir: PathLike, n_atoms: int, n_frames: int, seed: int = 0,
                  recipe: str = "lipf6-ec-emc-1m", progress: bool = False) -> Tuple[Path, Path]:
    """Small teacher data set: ``n_frames`` training frames and ``max(4, n_frames // 4)``
    test frames from an independent trajectory (different seed), 298.15 K."""

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    common = dict(temperatures=[298.15], stride=100, equilibration_steps=500, n_atoms=n_atoms,
                  hot_fraction=0.1, distorted_fraction=0.1, progress=progress)
    train = out / "generated_train.xyz"
    test = out / "generated_test.xyz"
    if not train.is_file():
        sample_teacher(recipe, train, n_frames=n_frames, seed=seed + 1, workdir=out / "work_train", **common)
    if not test.is_file():
        sample_teacher(recipe, test, n_frames=max(4, n_frames // 4), seed=seed + 2, workdir=out / "work_test",
                       **common)
    return train, test


def base_config(config: Optional[PathLike] = None) -> Dict[str, Any]:
    """Training config dict (model + training sections) to start from: ``config`` or the shipped model's."""
    import yaml

    if config is None:

        config = forcefields_dir() / SHIPPED_CONFIG
    d = yaml.safe_load(Path(config).read_text())
    return {"model": dict(d.get("model") or {}), "training": dict(d.get("training") or {})}


def run_accuracy(
    out_dir: PathLike,
    *,
    train: Optional[Sequence[PathLike]] = None,
    test: Optional[Sequence[PathLike]] = None,
    max_train_frames: int = 0,
    max_test_frames: int = 0,
    epochs: int = 3,
    batch_size: int = 2,
    lr: float = 5e-3,
    config: Optional[PathLike] = None,
    cutoff: Optional[float] = None,
    allatom_cutoff: float = 5.0,
    model_overrides: Optional[Dict[str, Any]] = None,
    generate_atoms: int = 1000,
    generate_frames: int = 20,
    threads: Optional[int] = None,
    seed: int = 0,
    kinds: Sequence[str] = KINDS,
    command: Optional[str] = None,
    progress: bool = True,
) -> Tuple[Dict[str, Any], Dict[str, Path]]:
    """Train CGAA and the all-atom baseline with the same budget and compare test errors.

    train/test: extxyz files (default: generate ``generate_frames`` frames of a
        ``generate_atoms``-atom box with the teacher). max_*_frames: evenly spaced subsets.
    epochs, batch_size, lr: the shared budget (early stopping off, so both get every epoch).
    config: training YAML to start from (default: the shipped model's); cutoff: CGAA
        cutoff (Å) override; allatom_cutoff: the baseline's atom cutoff (Å);
        model_overrides: extra model keys applied to both (e.g. smaller widths in tests).
    Both are fitted to energies and forces with the config's loss weights (its virial weight is
    set to 0). Writes accuracy.json, accuracy.md and accuracy.png to ``out_dir``; returns (report, files).
    """
    import torch

    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(int(threads or available_cores()))
    if (train is None) != (test is None):
        raise ValueError("give both train and test files, or neither (then they are generated)")
    generated = train is None
    if generated:
        if progress:
            print(f"cgaa bench accuracy: generating teacher data ({generate_frames} frames, {generate_atoms} atoms)",
                  flush=True)
        tr, te = generate_data(out / "data", generate_atoms, generate_frames, seed)
        train, test = [tr], [te]
    train_file, n_train = subset_frames(list(train), out / "data" / "train_subset.xyz", max_train_frames)
    test_file, n_test = subset_frames(list(test), out / "data" / "test_subset.xyz", max_test_frames)

    base = base_config(config)
    model_base = dict(base["model"])
    model_base.update(model_overrides or {})
    if cutoff is not None:
        model_base["cutoff"] = float(cutoff)
    training = dict(base["training"])
    training.update(epochs=int(epochs), batch_size=int(batch_size), lr=float(lr), seed=int(seed),
                    early_stopping_patience=0)
    # energies and forces only: with every atom a grain the baseline's "molecular" virial is the
    # noisy atomic one, and user data need not carry stress labels
    training["loss"] = {**dict(training.get("loss") or {}), "virial": 0.0}
    rep = header("accuracy", command)
    rep.update({"data": {"train_files": [str(p) for p in train], "test_files": [str(p) for p in test],
                         "generated": generated, "train_frames_used": n_train, "test_frames": n_test,
                         "max_train_frames": max_train_frames, "max_test_frames": max_test_frames,
                         "validation": "10% of the training frames (same split for both)"},
                "budget": {"epochs": int(epochs), "batch_size": int(batch_size), "lr": float(lr),
                           "threads": torch.get_num_threads()},
                "models": {}})
    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"unknown model kind {kind!r} (known: {', '.join(KINDS)})")
        m = copy.deepcopy(model_base)
        if kind == "allatom":
            # an ordinary all-atom MLIP: every atom a grain, no extra contact term (it would double its edges)
            m.update(all_atom=True, cutoff=float(allatom_cutoff), pair_cutoff=0.0)
        d = {"data": {"train": [str(train_file)], "test": [str(test_file)], "val_fraction": 0.1,
                      "split_seed": int(seed)},
             "model": m, "training": training, "output": {"dir": str(out / kind / "run")}}
        cfg = config_from_dict(d, base_dir=out)
        if progress:
            print(f"cgaa bench accuracy: training {kind} ({epochs} epochs, {n_train} frames)", flush=True)
        t0 = time.perf_counter()
        res = train_model(cfg, progress=progress, overwrite=True)  # a rerun into the same --out trains again
        wall = time.perf_counter() - t0
        entry: Dict[str, Any] = {"model": m, "train_wall_s": wall, "epochs_run": res.epochs_run,
                                 "train_s_per_epoch": wall / max(res.epochs_run, 1),
                                 "best_val_loss": res.best_val_loss, "run_dir": str(res.run_dir),
                                 "test": res.test_metrics}
        entry["test_molecular"] = molecular_force_errors(res.best_checkpoint, test_file)
        try:

            entry["parameters"] = count_parameters(model_from_checkpoint(load_checkpoint(res.best_checkpoint)))
        except Exception:  # pragma: no cover - informational only
            pass
        rep["models"][kind] = entry
    if "cgaa" in rep["models"] and "allatom" in rep["models"]:
        a, c = rep["models"]["allatom"], rep["models"]["cgaa"]
        rep["ratios"] = {f"cgaa_over_allatom_{k}": (_metric(c, k) / _metric(a, k) if _metric(a, k) else None)
                         for k, _ in METRICS if _metric(a, k) is not None and _metric(c, k) is not None}
        rep["ratios"]["allatom_over_cgaa_train_time"] = (rep["models"]["allatom"]["train_wall_s"]
                                                         / rep["models"]["cgaa"]["train_wall_s"])
    files = write_accuracy_outputs(rep, out)
    return rep, files


def accuracy_markdown(rep: Dict[str, Any]) -> str:
    """Markdown table of an accuracy report."""

    d, b = rep["data"], rep["budget"]
    lines = ["## Accuracy: CGAA vs the all-atom baseline, same data and budget", "", header_markdown(rep), "",
             f"Training frames: {d['train_frames_used']} (of {', '.join(d['train_files'])}"
             f"{', generated with the teacher' if d['generated'] else ''}), test frames: {d['test_frames']} "
             f"({', '.join(d['test_files'])}); budget: {b['epochs']} epochs, batch {b['batch_size']}, "
             f"lr {b['lr']}, {b['threads']} threads. Molecule net-force and intra-molecular errors are "
             "measured on molecules for both models (the baseline's atom forces summed per molecule).", ""]
    kinds = list(rep["models"])
    rows = []
    for key, label in METRICS:
        rows.append([label] + [fmt(_metric(rep["models"][k], key)) for k in kinds])
    rows.append(["parameters"] + [str(rep["models"][k].get("parameters", "—")) for k in kinds])
    rows.append(["cutoff (Å)"] + [fmt(rep["models"][k]["model"].get("cutoff")) for k in kinds])
    rows.append(["training wall time (s)"] + [fmt(rep["models"][k]["train_wall_s"]) for k in kinds])
    rows.append(["epochs run"] + [str(rep["models"][k]["epochs_run"]) for k in kinds])
    names = {"cgaa": "CGAA", "allatom": "all-atom baseline"}
    lines.append(markdown_table(["test metric"] + [names[k] for k in kinds], rows))
    return "\n".join(lines) + "\n"


def accuracy_plot(rep: Dict[str, Any], path: PathLike) -> Optional[Path]:
    """Bar chart of the test force errors of both models."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [k for k in rep["models"] if rep["models"][k].get("test")]
    if not kinds:
        return None
    keys = [m for m in METRICS if m[0] != "energy_rmse_meV_per_atom"]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 1]})
    w = 0.8 / len(kinds)
    for i, k in enumerate(kinds):
        e = rep["models"][k]
        vals = [_metric(e, m) for m, _ in keys]
        ax.bar(np.arange(len(keys)) + i * w, [np.nan if v is None else v for v in vals], w, label=k)
        ax2.bar([i], [_metric(e, "energy_rmse_meV_per_atom") or np.nan], 0.6, label=k)
    ax.set_xticks(np.arange(len(keys)) + 0.4 - w / 2)
    ax.set_xticklabels([lab.replace(" (eV/Å)", "") for _, lab in keys], fontsize=8)
    ax.set_ylabel("eV/Å")
    ax.legend()
    ax2.set_xticks(range(len(kinds)))
    ax2.set_xticklabels(kinds)
    ax2.set_ylabel("energy RMSE (meV/atom)")
    b = rep["budget"]
    fig.suptitle(f"cgaa bench accuracy — {rep['data']['train_frames_used']} frames, {b['epochs']} epochs, "
                 f"{rep['date'][:10]}", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def write_accuracy_outputs(rep: Dict[str, Any], out_dir: PathLike) -> Dict[str, Path]:
    """accuracy.json, accuracy.md, accuracy.png in ``out_dir``."""

    return write_outputs(rep, out_dir, "accuracy", accuracy_markdown, accuracy_plot)
