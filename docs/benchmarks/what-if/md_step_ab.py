"""CPU time per OpenMM MD step (CPU platform, 1 thread) of several model files on one box,
interleaved: each file's Simulation runs 3 x 60 steps in turn; prints the median.

usage: python md_step_ab.py BOX.pdb MODEL.pt [MODEL.pt ...]
"""
import sys

import numpy as np
import openmm
import torch
from openmm import app

from cgaa.bench.speed import interleaved_cpu_times
from cgaa.openmm.system import create_system


def main() -> None:
    torch.set_num_threads(1)
    pdb = app.PDBFile(sys.argv[1])
    models = sys.argv[2:]
    sims = {}
    for m in models:
        sim = app.Simulation(pdb.topology, create_system(pdb.topology, m),
                             openmm.LangevinMiddleIntegrator(298.15, 1.0, 0.0005),
                             openmm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
        sim.context.setPositions(pdb.positions)
        sim.minimizeEnergy(maxIterations=30)
        sim.step(10)
        sims[m] = sim
    times = interleaved_cpu_times({m: (lambda s=s: s.step(60)) for m, s in sims.items()}, rounds=3, per_round=1,
                                  warmup=0)
    for m, ts in times.items():
        per_step = [t / 60 * 1000 for t in ts]
        print(f"{m}: {np.median(per_step):.1f} ms/step CPU ({[round(x, 1) for x in per_step]})")


if __name__ == "__main__":
    main()
