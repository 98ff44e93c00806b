"""``cgaa deploy``: a training checkpoint as a deployed model file, and edits of deployed files.

The file format itself (TorchScript + ``cgaa_metadata.json``, save and load with checks) is
:mod:`cgaa.core.modelfile`; this module adds what needs the training stage: checkpoints
(:func:`deploy_checkpoint`) and the training data (:func:`set_contact_floor`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import torch

from cgaa.core.model import ModelConfig
from cgaa.core.modelfile import write_scripted, load_model, model_metadata, read_metadata, save_model
from cgaa.data.contacts import closest_contacts
from cgaa.data.dataset import load_frames
from cgaa.train.trainer import load_checkpoint, model_from_checkpoint


def data_contact_floor(data: Sequence[Union[str, Path]], config: ModelConfig) -> List[List[float]]:
    """``ModelConfig.contact_floor`` of the frames in the extxyz files ``data`` (the model's
    training data) for the elements of ``config``; ValueError for an all-atom model (its
    "grains" are bonded atoms: no floor)."""
    if config.all_atom:
        raise ValueError("an all-atom model has no contact floor (every atom is a grain)")
    return closest_contacts(load_frames([str(p) for p in data]), config.elements)


def set_contact_floor(model_path: Union[str, Path], output: Union[str, Path],
                      data: Sequence[Union[str, Path]]) -> "tuple[Path, Dict[str, Any]]":
    """Copy a deployed model to ``output`` with ``config.contact_floor`` computed from its
    training data ``data`` (extxyz files); the TorchScript module is saved unchanged."""
    deployed = load_model(model_path)
    meta = dict(deployed.metadata, contact_floor_data=[str(p) for p in data])
    meta["config"] = dict(meta["config"], contact_floor=data_contact_floor(data, deployed.config))
    write_scripted(deployed.module, output, meta)
    return Path(output), read_metadata(output)


def rescript_model(model_path: Union[str, Path], output: Union[str, Path]) -> "tuple[Path, Dict[str, Any]]":
    """Copy a deployed model to ``output`` scripted again by this version of cgaa: a TorchScript
    file carries the code of the cgaa that wrote it, so improvements to the model code (speed,
    say) reach an older model only this way. Same weights, buffers and config; the metadata keeps
    its training record and gains ``rescripted`` (when, by which versions, from what)."""
    deployed = load_model(model_path)
    eager = deployed.to_eager().eval()
    fresh = model_metadata(eager)
    meta = dict(deployed.metadata)
    history = list(meta.get("rescripted") or [])
    history.append({"date": fresh["created"], "cgaa_version": fresh["cgaa_version"],
                    "torch_version": fresh["torch_version"], "from_created": meta.get("created"),
                    "from_torch_version": meta.get("torch_version")})
    meta.update(cgaa_version=fresh["cgaa_version"], torch_version=fresh["torch_version"], rescripted=history)
    write_scripted(torch.jit.script(eager), output, meta)
    return Path(output), read_metadata(output)


def deploy_checkpoint(checkpoint: Union[str, Path], output: Union[str, Path], weights: str = "ema",
                      dtype: Optional[str] = None, contact_floor_from: Optional[Sequence[Union[str, Path]]] = None,
                      ) -> "tuple[Path, Dict[str, Any]]":
    """``cgaa deploy``: TorchScript model of a training checkpoint, with training info in its
    metadata. contact_floor_from: extxyz files to (re)compute ``config.contact_floor`` from
    (for checkpoints trained before training recorded it)."""
    state = load_checkpoint(Path(checkpoint))
    model = model_from_checkpoint(state, weights)
    if contact_floor_from:
        model.config.contact_floor = data_contact_floor(contact_floor_from, model.config)
    if dtype is not None:
        model = model.to(torch.float64 if dtype == "float64" else torch.float32)
    hist = state.get("history") or []
    best = min(hist, key=lambda h: h["val_loss"]) if hist else {}
    extra = {"training": {"checkpoint": str(checkpoint), "epochs": state.get("epoch"),
                          "best_epoch": state.get("best_epoch"),
                          "val_forces_rmse_eV_per_A": best.get("val_forces_rmse_eV_per_A"),
                          "val_energy_rmse_meV_per_atom": best.get("val_energy_rmse_meV_per_atom"),
                          "data": state.get("train_config", {}).get("data"),
                          "data_files": state.get("data_files") or []}}
    path = save_model(model, output, extra=extra)
    return path, read_metadata(path)
