"""Evaluate a model on labelled frames: errors (total, inter-, intra-grain; per element and
grain type), parity plots (PNG) and a JSON summary."""
from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import torch

from cgaa.data.dataset import Frame, check_covered, frame_tensors, load_frames
from cgaa.core.fileio import atomic_path, write_text_atomic
from cgaa.core.model import ModelConfig
from cgaa.train.loss import ErrorAccumulator, predict
from cgaa.core.modelfile import load_model


def _element_names(config: ModelConfig):
    from ase.data import chemical_symbols

    return [chemical_symbols[z] for z in config.elements]


def errors(model, config: ModelConfig, frames: Sequence[Frame], keep_values: bool = False,
           dtype: Optional[torch.dtype] = None, device: Union[str, torch.device] = "cpu") -> ErrorAccumulator:
    """Accumulate the model's errors on ``frames`` (model: eager CGAAModel or TorchScript module)."""
    check_covered(frames, config)
    if dtype is None:
        dtype = next(iter(model.buffers())).dtype if hasattr(model, "buffers") else torch.float32
    acc = ErrorAccumulator(_element_names(config), list(config.grain_type_names), keep_values)
    for f in frames:
        ref = frame_tensors(f, config, dtype, device)
        out = predict(model, ref)
        acc.add(out, ref)
    return acc


def parity_plots(acc: ErrorAccumulator, path: Union[str, Path], title: str = "") -> Path:
    """Parity panels (energy/atom, forces, grain net forces, intra-grain forces and, for frames
    with a stress, the molecular virial pressure) as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = acc.summary()
    panels = [("energy", "energy (eV/atom)", f"RMSE {s['energy_rmse_meV_per_atom']:.2f} meV/atom"),
              ("forces", "force component (eV/Å)", f"RMSE {s['forces_rmse_eV_per_A']:.3f} eV/Å"),
              ("grain_forces", "grain net force (eV/Å)", f"RMSE {s['grain_net_forces_rmse_eV_per_A']:.3f} eV/Å"),
              ("forces_intra", "intra-grain force (eV/Å)", f"RMSE {s['forces_intra_rmse_eV_per_A']:.3f} eV/Å")]
    if acc.arrays("pressure")[0] is not None:
        panels.append(("pressure", "virial pressure tr W_mol/3V (bar)", f"RMSE {s['pressure_rmse_bar']:.0f} bar"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.25 * len(panels), 4.3))
    for ax, (key, label, text) in zip(axes, panels):
        ref, pred = acc.arrays(key)
        if ref is None:
            continue
        ref_plot = ref - ref.mean() if key == "energy" else ref
        pred_plot = pred - ref.mean() if key == "energy" else pred
        ax.scatter(ref_plot, pred_plot, s=3, alpha=0.4, rasterized=True)
        lo, hi = float(min(ref_plot.min(), pred_plot.min())), float(max(ref_plot.max(), pred_plot.max()))
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xlabel("reference " + label + (" − mean" if key == "energy" else ""))
        ax.set_ylabel("predicted")
        ax.set_title(text, fontsize=10)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(path)


def evaluate(model_path: Union[str, Path], data: Union[str, Path, Sequence[Union[str, Path]]],
             out_dir: Union[str, Path], device: str = "cpu") -> Dict[str, object]:
    """``cgaa evaluate``: errors of a deployed model on extxyz data; writes
    ``metrics.json`` and ``parity.png`` to ``out_dir`` and returns the metrics (an error leaves
    the files of an earlier evaluation there as they were)."""
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "the output folder (--out) is a file", str(out_dir))
    deployed = load_model(model_path, device)
    config = deployed.config
    frames = load_frames(data, all_atom=config.all_atom, prior=config.prior)
    dtype = deployed.module.masses.dtype
    acc = errors(deployed.module, config, frames, keep_values=True, dtype=dtype, device=device)
    summary = acc.summary()
    summary["model"] = str(model_path)
    summary["prior"] = config.prior  # errors of model + prior; R² and reference RMS are of the residual labels
    summary["data"] = [str(d) for d in ([data] if isinstance(data, (str, Path)) else data)]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / "metrics.json", json.dumps(summary, indent=2))
    parity_plots(acc, out_dir / "parity.png", title=Path(model_path).name)
    return summary
