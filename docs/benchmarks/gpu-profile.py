"""Where a CGAA energy+force evaluation spends its time on a GPU (torch.profiler).

For each box: ATen ops and CUDA kernels per evaluation, GPU busy time (sum of kernel times)
against wall time, host synchronisations (cgaa.bench.speed.launch_profile, which `cgaa bench
speed` also records), and the ops with the largest CPU time. Run after docs/benchmarks/gpu-speed.sh packed/copied the boxes:

    python docs/benchmarks/gpu-profile.py BOX.pdb [BOX.pdb ...] [--model PATH] [--evals 5]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from openmm.app import PDBFile

from cgaa.bench.speed import launch_profile
from cgaa.core.modelfile import load_model
from cgaa.core.grains import grains_from_topology
from cgaa.core.inputs import make_inputs
from cgaa.core.resources import forcefields_dir
from cgaa.core.units import openmm_lengths_A


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("boxes", nargs="+")
    ap.add_argument("--model", default=str(forcefields_dir() / "models" / "lipf6-ec-emc-1m.pt"))
    ap.add_argument("--evals", type=int, default=5)
    ap.add_argument("--device", default="cuda")
    a = ap.parse_args()
    deployed = load_model(a.model, a.device)
    for box in a.boxes:
        pdb = PDBFile(box)
        numbers = np.array([at.element.atomic_number for at in pdb.topology.atoms()])
        gm = grains_from_topology(pdb.topology)
        kw = make_inputs(openmm_lengths_A(pdb.getPositions(asNumpy=True)), numbers, gm, deployed.config,
                         openmm_lengths_A(pdb.topology.getPeriodicBoxVectors()), device=a.device)

        def call():
            out = deployed.module(kw["pos"], kw["species"], kw["grain_index"], kw["grain_type"], kw["cell"], True, False)
            float(out["energy"].detach())

        for _ in range(10):
            call()
        t0 = time.perf_counter()
        nums, ev = launch_profile(call, a.evals, cuda=a.device.startswith("cuda"))
        wall = (time.perf_counter() - t0) / a.evals
        print(f"\n{box}: {len(numbers)} atoms, {int(gm.grain_index.max()) + 1} grains; wall {wall * 1e3:.1f} ms/eval "
              f"(profiled); per eval: " + ", ".join(f"{k.replace('_per_call', '')} {v:.2f}" for k, v in nums.items()))
        print(ev.table(sort_by="self_cpu_time_total", row_limit=15, max_name_column_width=45))


if __name__ == "__main__":
    main()
