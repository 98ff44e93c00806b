"""Forgetting-aware fine-tuning: ``cgaa finetune config.yaml``.

Start from a trained model and train on new data with

* experience replay: a fraction of every batch is drawn from the old data;
* elastic weight consolidation (Kirkpatrick et al., PNAS 114, 3521 (2017)): a penalty
  λ/2·Σ_k F_k (θ_k − θ*_k)², with F the diagonal Fisher information of the old-data loss
  at the starting weights θ* (mean of squared per-frame gradients, normalised to mean 1
  so that λ does not depend on the loss scale).

New elements or grain types in the new data extend the model's vocabulary (new embedding
rows; reference energies of new grain types fitted on the new data, old ones kept).
The error on the old data before and after is written to ``finetune_report.json``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Sequence

import numpy as np
import torch

from cgaa.data.contacts import closest_contacts, merge_contact_floors
from cgaa.data.dataset import Frame, frame_tensors, load_frames, vocabulary_of
from cgaa.core.fileio import write_text_atomic
from cgaa.core.inputs import grain_type_indices
from cgaa.core.model import CGAAModel, ModelConfig
from cgaa.train.config import TrainConfig, check_files
from cgaa.train.loss import check_virial_labels, frame_loss, predict
from cgaa.train.trainer import (CheckpointError, TrainResult, _dtype, _set_seed, check_run_dir, dist_info,
                                load_checkpoint, load_splits, model_from_checkpoint, run_training)
from cgaa.core.modelfile import is_deployed_model, load_model
from cgaa.train.evaluate import errors


def load_start_model(path: Path) -> CGAAModel:
    """The eager model to start from: a deployed .pt (TorchScript) or a training checkpoint.
    FileNotFoundError / ValueError name ``finetune.start``, the file and what it is instead."""
    path = Path(path)
    if not path.is_file() and not path.is_dir():
        raise FileNotFoundError(f"finetune.start: no file {path}")
    try:
        if is_deployed_model(path):
            return load_model(path).to_eager()
        return model_from_checkpoint(load_checkpoint(path))
    except CheckpointError as err:  # a corrupt or foreign file: say which, never start from something else
        raise ValueError(f"finetune.start: {path} is neither a deployed cgaa model nor a training "
                         f"checkpoint: {err.reason}") from None


def extend_vocabulary(model: CGAAModel, frames: Sequence[Frame]) -> CGAAModel:
    """A copy of ``model`` that also knows the elements and grain types of ``frames``.

    Existing weights are kept; new embedding rows start at the mean of the old ones;
    reference energies of new grain types are fitted on ``frames`` by least squares with
    the old types' reference energies held fixed.
    """
    old = model.config
    elements, keys, names = vocabulary_of(frames)
    new_el = [z for z in elements if z not in old.elements]
    new_types = [(k, n) for k, n in zip(keys, names) if k not in old.grain_types]
    if not new_el and not new_types:
        return model
    from ase.data import atomic_masses

    d = old.to_dict()
    d["elements"] = old.elements + new_el
    d["masses"] = list(old.masses) + [float(atomic_masses[z]) for z in new_el]
    d["grain_types"] = old.grain_types + [k for k, _ in new_types]
    d["grain_type_names"] = old.grain_type_names + [n for _, n in new_types]
    bigger = CGAAModel(ModelConfig.from_dict(d)).to(model.masses.dtype)
    state = model.state_dict()
    target = bigger.state_dict()
    for name, value in state.items():
        if name in ("masses", "atomic_numbers") or target[name].shape == value.shape:
            if name not in ("masses", "atomic_numbers"):
                target[name] = value
            continue
        # a vocabulary-sized tensor (embedding rows, type energies): keep the old rows;
        # new embedding rows start at the mean of the old ones, new energies are fitted below
        grown = target[name].clone()
        grown[: value.shape[0]] = value
        grown[value.shape[0]:] = value.mean(0) if name.endswith("weight") else 0.0
        target[name] = grown
    bigger.load_state_dict(target)
    if new_types:
        n_old = len(old.grain_types)
        a = np.zeros((len(frames), len(d["grain_types"])))
        for r, f in enumerate(frames):
            a[r] = np.bincount(grain_type_indices(f.grain_map, d["grain_types"]), minlength=len(d["grain_types"]))
        e_old = bigger.type_energy[:n_old].detach().double().numpy()
        resid = np.array([f.energy for f in frames]) - a[:, :n_old] @ e_old
        sol, *_ = np.linalg.lstsq(a[:, n_old:], resid, rcond=None)
        with torch.no_grad():
            bigger.type_energy[n_old:] = torch.as_tensor(sol, dtype=bigger.type_energy.dtype)
    return bigger


def fisher_diagonal(model: CGAAModel, frames: Sequence[Frame], cfg: TrainConfig) -> Dict[str, torch.Tensor]:
    """Diagonal Fisher information of the old-data loss: mean of squared per-frame gradients, normalised to mean 1."""
    dtype = _dtype(cfg.training.dtype)
    fisher = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for f in frames:
        ref = frame_tensors(f, model.config, dtype)
        model.zero_grad()
        loss, _ = frame_loss(predict(model, ref, create_graph=True, virial=cfg.training.loss.virial > 0), ref,
                             cfg.training.loss)
        loss.backward()
        for n, p in model.named_parameters():
            if p.grad is not None:
                fisher[n] += p.grad.detach() ** 2 / len(frames)
    model.zero_grad()
    mean = torch.cat([v.ravel() for v in fisher.values()]).mean().clamp_min(1e-30)
    return {n: v / mean for n, v in fisher.items()}


class EWCPenalty:
    """λ/2·Σ_k F_k (θ_k − θ*_k)² (a callable for the training loop)."""

    def __init__(self, model: CGAAModel, fisher: Dict[str, torch.Tensor], lam: float):
        self.lam = lam
        self.fisher = fisher
        self.anchor = {n: p.detach().clone() for n, p in model.named_parameters()}

    def __call__(self, model: torch.nn.Module) -> torch.Tensor:
        total = None
        for n, p in model.named_parameters():
            term = (self.fisher[n] * (p - self.anchor[n]) ** 2).sum()
            total = term if total is None else total + term
        return 0.5 * self.lam * total


def _old_errors(model: CGAAModel, frames: Sequence[Frame], cfg: TrainConfig) -> Dict:

    return errors(model, model.config, frames, dtype=_dtype(cfg.training.dtype)).summary()


def finetune(cfg: TrainConfig, resume: bool = False, progress: bool = True, overwrite: bool = False) -> TrainResult:
    """Fine-tune ``cfg.finetune.start`` on ``cfg.data`` with replay and/or EWC (see module docs).
    resume / overwrite as for :func:`cgaa.train.trainer.train`; files and the run directory are
    checked before any work."""
    ft = cfg.finetune
    if ft is None:
        raise ValueError(f"{cfg.source or 'the config'} has no 'finetune' section (cgaa finetune needs one; "
                         "cgaa train trains from scratch)")
    check_files(cfg)
    check_run_dir(cfg, resume, overwrite)
    rank, _ = dist_info()
    _set_seed(cfg.training.seed)
    start = load_start_model(cfg.resolve(ft.start)).to(_dtype(cfg.training.dtype))
    all_atom = start.config.all_atom
    prior = start.config.prior  # a fine-tuned model keeps its start model's prior
    train_f, val_f, test_f = load_splits(cfg, all_atom, prior)
    check_virial_labels(list(train_f) + list(val_f), cfg.training.loss)
    old = load_frames([cfg.resolve(p) for p in ft.old_data], all_atom, prior=prior) if ft.old_data else []
    old_eval = (load_frames([cfg.resolve(p) for p in ft.old_eval_data], all_atom, prior=prior)
                if ft.old_eval_data else old)
    old_eval = old_eval if not ft.old_eval_frames else old_eval[: ft.old_eval_frames]
    before = _old_errors(start, old_eval, cfg) if old_eval else None
    model = extend_vocabulary(start, list(train_f) + list(val_f) + list(test_f))
    if start.config.contact_floor and not all_atom:  # the new data may come closer (unknown floor stays unknown)
        model.config.contact_floor = merge_contact_floors(start.config.contact_floor,
                                                          closest_contacts(train_f, model.config.elements))
    # the start model on the new test frames (new grain types at their starting embedding): the zero-shot error
    new_before = _old_errors(model, test_f, cfg) if test_f and rank == 0 else None
    penalty = None
    if ft.ewc_lambda > 0:
        fisher = fisher_diagonal(model, old[: ft.fisher_frames], cfg)
        penalty = EWCPenalty(model, fisher, ft.ewc_lambda)
    result = run_training(cfg, model, train_f, val_f, test_f, resume=resume, progress=progress,
                          penalty=penalty, replay=old if ft.replay_fraction > 0 else None,
                          replay_fraction=ft.replay_fraction, overwrite=overwrite)
    if rank == 0:
        best = model_from_checkpoint(load_checkpoint(result.best_checkpoint))
        report = {
            "start": str(ft.start), "replay_fraction": ft.replay_fraction, "ewc_lambda": ft.ewc_lambda,
            "old_data_before": before,
            "old_data_after": _old_errors(best, old_eval, cfg) if old_eval else None,
            "new_data_test_before": new_before,
            "new_data_test_after": result.test_metrics,
        }
        write_text_atomic(result.run_dir / "finetune_report.json", json.dumps(report, indent=2))
    return result


def _fmt(metrics: Dict, key: str, digits: int) -> str:
    v = (metrics or {}).get(key)
    return "—" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"


def finetune_table(run_dirs: Sequence[Path], names: Sequence[str] = ()) -> str:
    """Markdown table of fine-tuning runs from their ``finetune_report.json``: the old-data
    (forgetting) and new-data test errors before → after, force RMSE in eV/Å and energy RMSE
    in meV/atom. ``names``: the row labels (default: the run directories' names).
    FileNotFoundError names a run without a report (unfinished)."""
    rows = ["| run | replay fraction | EWC λ | old test force RMSE, before → after (eV/Å) | "
            "old test energy RMSE, before → after (meV/atom) | new test force RMSE, before → after (eV/Å) | "
            "new test energy RMSE, before → after (meV/atom) |",
            "|---|---|---|---|---|---|---|"]
    F, E = "forces_rmse_eV_per_A", "energy_rmse_meV_per_atom"
    for i, run in enumerate(run_dirs):
        path = Path(run) / "finetune_report.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no fine-tuning report (has the run in {run} finished?)")
        r = json.loads(path.read_text())
        name = names[i] if i < len(names) else Path(run).name
        ob, oa = r.get("old_data_before"), r.get("old_data_after")
        nb, na = r.get("new_data_test_before"), r.get("new_data_test_after")
        rows.append(f"| {name} | {r['replay_fraction']:g} | {r['ewc_lambda']:g} | "
                    f"{_fmt(ob, F, 3)} → {_fmt(oa, F, 3)} | {_fmt(ob, E, 2)} → {_fmt(oa, E, 2)} | "
                    f"{_fmt(nb, F, 3)} → {_fmt(na, F, 3)} | {_fmt(nb, E, 2)} → {_fmt(na, E, 2)} |")
    return "\n".join(rows) + "\n"
