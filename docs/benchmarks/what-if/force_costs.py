"""CPU time of each force of the System `cgaa simulate` builds, evaluated alone.

    python docs/benchmarks/what-if/force_costs.py BOX.pdb [--model M.pt] [--repeats 10]

Each force in its own group; per force the mean over --repeats calls of
setPositions + getState(forces, that group), one CPU thread, CPU time; the last line is
setPositions alone (subtract it from each row). H-bond constraints and the contact guard
as in `cgaa simulate`.
"""
from __future__ import annotations

import argparse
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("box")
    p.add_argument("--model", default=None)
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args()
    import openmm
    import torch
    from openmm import app

    import cgaa.openmm as co

    torch.set_num_threads(1)
    pdb = app.PDBFile(args.box)
    system = co.create_system(pdb.topology, args.model, constraints="hbonds", contact_guard=True)
    names = []
    for i, f in enumerate(system.getForces()):
        f.setForceGroup(i)
        names.append(f.getName() or type(f).__name__)
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("CPU"),
                         {"Threads": "1"})
    ctx.setPositions(pdb.positions)
    for i, name in enumerate(names):
        for _ in range(2):  # warm-up (TorchScript optimises its graph over the first calls)
            ctx.getState(getForces=True, groups={i})
        t0 = time.process_time()
        for _ in range(args.repeats):
            ctx.setPositions(pdb.positions)
            ctx.getState(getForces=True, groups={i})
        print(f"{name:32s} {1e3 * (time.process_time() - t0) / args.repeats:7.2f} ms", flush=True)
    t0 = time.process_time()
    for _ in range(args.repeats):
        ctx.setPositions(pdb.positions)
    print(f"{'setPositions alone':32s} {1e3 * (time.process_time() - t0) / args.repeats:7.2f} ms")


if __name__ == "__main__":
    main()
