"""Refit a trained model's per-grain-type reference energies on frames of several compositions.

A model's energy is Σ_G (network energy of grain G + e_T(G)), with one reference energy e_T per
grain type (``CGAAModel.type_energy``, eV). Training fits them by least squares over the training
frames' compositions (:func:`cgaa.data.dataset.fit_reference_energies`); when every training box
holds the same molecules, only one combination of them is fixed, and a box of another composition
gets an energy offset (the quantum-level candidate: −5.7 meV/atom at 1001 atoms, tens to hundreds of
meV/atom at other salt contents). :func:`refit_type_energies` finds shifts Δ_T that minimise the
per-atom energy error on labelled frames of several compositions:

    min_Δ Σ_f ((E_f − E_model,f − Σ_T n_fT Δ_T) / N_f)²

(E_f the frame's label after the prior, as training sees it; n_fT grains of type T; N_f atoms).
Only constants per grain change, so forces, virials and every MD run are exactly as before.
Combinations the frames cannot tell apart (Li⁺ and PF6⁻ always come in pairs) get the
minimum-norm split. Units: eV, meV/atom in the report.

``python -m cgaa.train.reference MODEL.pt DATA.xyz [...] -o OUT.pt`` writes the refitted model.
"""
from __future__ import annotations

import argparse
import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch

from cgaa.core.inputs import grain_type_indices
from cgaa.core.model import CGAAModel
from cgaa.core.modelfile import load_model, model_metadata, read_metadata, save_model
from cgaa.data.dataset import Frame, frame_tensors, load_frames, model_inputs


@dataclass
class ReferenceRefit:
    """Result of :func:`refit_type_energies`.

    Attributes:
        delta_eV: shift of each grain type's reference energy (eV), in the model's type order.
        rank: rank of the frames' composition matrix (types it can tell apart).
        n_frames: frames used.
        rmse_before, rmse_after: per-atom energy RMSE on those frames (meV/atom).
        compositions: distinct grain counts per type seen in the frames.
    """

    delta_eV: np.ndarray
    rank: int
    n_frames: int
    rmse_before: float
    rmse_after: float
    compositions: List[List[int]]


def _energy_rows(model: CGAAModel, frames: Sequence[Frame]):
    """(grain counts per type (F, T), label − model energy (F,) eV, atoms (F,))."""
    cfg = model.config
    dtype = model.masses.dtype
    counts, resid, atoms = [], [], []
    for fr in frames:
        t = frame_tensors(fr, cfg, dtype)
        with torch.no_grad():
            e = float(model(**model_inputs(t), compute_forces=False)["energy"])
        counts.append(np.bincount(grain_type_indices(fr.grain_map, cfg.grain_types), minlength=len(cfg.grain_types)))
        resid.append(float(fr.energy) - e)
        atoms.append(len(fr.numbers))
    return np.array(counts, float), np.array(resid), np.array(atoms, float)


def refit_type_energies(model: CGAAModel, frames: Sequence[Frame]) -> ReferenceRefit:
    """Least-squares shifts of ``model``'s per-grain-type reference energies on ``frames``
    (loaded with the model's prior, :func:`cgaa.data.dataset.load_frames`); the model is not changed
    (:func:`shift_type_energies` applies them). ValueError without frames."""
    if not frames:
        raise ValueError("no frames to refit the reference energies on")
    a, r, n = _energy_rows(model.eval(), frames)
    w = 1.0 / n
    delta, _res, rank, _sv = np.linalg.lstsq(a * w[:, None], r * w, rcond=None)
    comps = sorted({tuple(int(v) for v in row) for row in a})
    return ReferenceRefit(delta_eV=delta, rank=int(rank), n_frames=len(frames),
                          rmse_before=1000.0 * float(np.sqrt(np.mean((r * w) ** 2))),
                          rmse_after=1000.0 * float(np.sqrt(np.mean(((r - a @ delta) * w) ** 2))),
                          compositions=[list(c) for c in comps])


def shift_type_energies(model: CGAAModel, delta_eV: Sequence[float]) -> CGAAModel:
    """Add ``delta_eV`` (one value per grain type, eV) to ``model.type_energy`` in place; returns it."""
    d = torch.as_tensor(np.asarray(delta_eV, float), dtype=model.type_energy.dtype)
    if d.shape != model.type_energy.shape:
        raise ValueError(f"need {model.type_energy.shape[0]} shifts (one per grain type), got {tuple(d.shape)}")
    with torch.no_grad():
        model.type_energy.add_(d)
    return model


def refit_model_file(model_path: Union[str, Path], data: Sequence[Union[str, Path]], out: Union[str, Path]
                     ) -> ReferenceRefit:
    """Refit the reference energies of the deployed model at ``model_path`` on the extxyz files
    ``data`` and write the result to ``out`` (its metadata kept, with a ``reference_refit`` entry)."""
    deployed = load_model(model_path)
    model = deployed.to_eager().eval()
    frames = load_frames([str(p) for p in data], prior=model.config.prior)
    res = refit_type_energies(model, frames)
    shift_type_energies(model, res.delta_eV)
    meta = read_metadata(model_path)
    fresh = set(model_metadata(model))
    extra: Dict = {k: v for k, v in meta.items() if k not in fresh}
    extra["reference_refit"] = {
        "data": [str(p) for p in data], "frames": res.n_frames, "compositions": res.compositions,
        "grain_types": [n for n in model.config.grain_type_names], "delta_eV": [float(v) for v in res.delta_eV],
        "rank": res.rank, "rmse_before_meV_per_atom": res.rmse_before, "rmse_after_meV_per_atom": res.rmse_after,
        "from": str(model_path), "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    save_model(model, out, extra)
    return res


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cgaa.train.reference",
                                description="Refit a deployed CGAA model's per-grain-type reference energies on "
                                            "labelled frames of several compositions (forces unchanged).")
    p.add_argument("model", help="deployed model (.pt)")
    p.add_argument("data", nargs="+", help="extxyz file(s) with reference energies (several compositions)")
    p.add_argument("-o", "--output", required=True, help="output model (.pt)")
    args = p.parse_args(argv)
    res = refit_model_file(args.model, args.data, args.output)
    print(f"{res.n_frames} frames, {len(res.compositions)} compositions (rank {res.rank}): energy RMSE "
          f"{res.rmse_before:.3g} -> {res.rmse_after:.3g} meV/atom; shifts (eV) "
          + ", ".join(f"{v:+.4g}" for v in res.delta_eV) + f"; wrote {args.output}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
