"""CPU time per OpenMM MD step of a box with and without the contact guard (1 thread).

usage: python contact_guard_cost.py MODEL.pt BOX.pdb
Prints the median of 3 x 100 steps each (H-bond constraints, the model's prior), as in
docs/benchmarks.md (*The contact guard*).
"""
import sys
import time

import openmm
import torch
from openmm import app

from cgaa.openmm.system import create_system


def main() -> None:
    torch.set_num_threads(1)
    model, box = sys.argv[1], sys.argv[2]
    pdb = app.PDBFile(box)
    times = {False: [], True: []}
    for _ in range(3):
        for guard in (False, True):
            system = create_system(pdb.topology, model, constraints="hbonds", contact_guard=guard)
            sim = app.Simulation(pdb.topology, system, openmm.LangevinMiddleIntegrator(298.15, 1.0, 0.001),
                                 openmm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
            sim.context.setPositions(pdb.positions)
            sim.minimizeEnergy(maxIterations=50)
            sim.step(10)
            t = time.process_time()
            sim.step(100)
            times[guard].append((time.process_time() - t) / 100 * 1000.0)
    for guard, ts in times.items():
        print(f"{'with' if guard else 'without'} contact guard: {sorted(ts)[1]:.2f} ms/step CPU "
              f"(median of {[round(x, 2) for x in ts]})")


if __name__ == "__main__":
    main()
