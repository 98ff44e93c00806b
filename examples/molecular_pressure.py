"""The reference molecular pressure P = (N_grains k_B T + tr W_mol / 3) / V of labelled frames
(REF_stress + REF_forces, e.g. from `cgaa sample` or `cgaa label --stress`), mean and spread
per file, in bar (docs/benchmarks.md, Density). The model only supplies the grain vocabulary.
Usage: python examples/molecular_pressure.py MODEL.pt FRAMES.xyz [FRAMES.xyz ...] [--temperature K]"""
import argparse

import numpy as np
import torch

from cgaa.data.dataset import frame_tensors, load_frames
from cgaa.core.modelfile import load_model
from cgaa.core.units import KB_EV_PER_K, ev_per_a3_to_bar

ap = argparse.ArgumentParser(description=__doc__)
ap.add_argument("model")
ap.add_argument("frames", nargs="+")
ap.add_argument("--temperature", type=float, default=298.15, help="K (kinetic term of the grains)")
args = ap.parse_args()
config = load_model(args.model).config
kT = KB_EV_PER_K * args.temperature  # eV
for path in args.frames:
    p = []
    for frame in load_frames(path, all_atom=False, prior="none"):
        t = frame_tensors(frame, config, torch.float64)
        n_grains = int(t["grain_index"].max()) + 1
        p.append(ev_per_a3_to_bar((n_grains * kT + float(torch.trace(t["virial_mol"])) / 3) / float(t["volume"])))
    print(f"{path}: {len(p)} frames, molecular pressure {np.mean(p):.0f} ± {np.std(p):.0f} bar (mean ± sd)")
