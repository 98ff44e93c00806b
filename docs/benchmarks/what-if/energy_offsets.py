"""Signed mean energy and pressure errors (model − teacher) of a model, file by file, with each
file's mean density: which states does the model favour? (docs/benchmarks.md, *Would a third
active-learning round fix the density?*). Every k-th frame, k = len // 30.

Usage (from build/): python ../docs/benchmarks/what-if/energy_offsets.py MODEL.pt FRAMES.xyz [...] [--json OUT]"""
import argparse
import json

import numpy as np
import torch
from ase.data import atomic_masses

from cgaa.data.dataset import load_frames
from cgaa.core.modelfile import load_model
from cgaa.train.evaluate import errors
from cgaa.core.units import AVOGADRO


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("frames", nargs="+")
    ap.add_argument("--json", help="write the table here")
    args = ap.parse_args()
    deployed = load_model(args.model)
    config = deployed.config
    rows = []
    for path in args.frames:
        frames = load_frames(path, all_atom=False, prior=config.prior)
        step = max(1, len(frames) // 30)
        frames = frames[::step]
        s = errors(deployed.module, config, frames, dtype=deployed.module.masses.dtype).summary()
        rho = float(np.mean([atomic_masses[f.numbers].sum() / AVOGADRO / (abs(np.linalg.det(f.cell)) * 1e-24)
                             for f in frames]))  # g/cm³
        row = {"file": path, "frames": s["n_frames"], "density_g_cm3": rho,
               "energy_mean_error_meV_per_atom": s["energy_mean_error_meV_per_atom"],
               "energy_rmse_meV_per_atom": s["energy_rmse_meV_per_atom"],
               "pressure_mean_error_bar": s.get("pressure_mean_error_bar", float("nan"))}
        rows.append(row)
        print(f"{path}: {row['frames']} frames, {rho:.3f} g/cm³, energy error {row['energy_mean_error_meV_per_atom']:+.2f} "
              f"meV/atom (RMSE {row['energy_rmse_meV_per_atom']:.2f}), pressure error {row['pressure_mean_error_bar']:+.0f} bar",
              flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"model": args.model, "torch": torch.__version__, "files": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
