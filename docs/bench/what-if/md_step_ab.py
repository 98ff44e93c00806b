"""CPU time per OpenMM MD step (CPU platform, 1 thread) of several model files on one box,
interleaved: each file's Simulation runs 3 x 60 steps in turn; prints the median.

usage: python md_step_ab.py BOX.pdb MODEL.pt [MODEL.pt ...]
"""
import sys
import time

import openmm
import torch
from openmm import app

from cgaa.openmm.system import create_system

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
times = {m: [] for m in models}
for _ in range(3):
    for m in models:
        t = time.process_time()
        sims[m].step(60)
        times[m].append((time.process_time() - t) / 60 * 1000)
for m, ts in times.items():
    print(f"{m}: {sorted(ts)[1]:.1f} ms/step CPU ({[round(x, 1) for x in ts]})")
