"""Centre-of-mass kinetic temperature of each residue type (species) in NVT, plain Langevin
at 1 fs or r-RESPA with the network every K fs: an equipartition check of an integrator.

    python docs/benchmarks/what-if/com_temperatures.py START.pdb K EQUIL_PS SAMPLE_PS

K = 1: LangevinMiddleIntegrator at 1 fs; K > 1: cgaa.openmm.mts (MTSLangevinIntegrator, the
network every K fs, the intra-grain prior every 1 fs). The System is what `cgaa simulate`
builds (H-bond constraints, contact guard, shipped model), 298.15 K, friction 1/ps, seed 3;
after EQUIL_PS, velocities every 40 fs for SAMPLE_PS; T_COM = <M V²>/(3 k_B) per species.
"""
from __future__ import annotations

import json
import sys

import numpy as np


def main() -> None:
    import openmm
    import torch
    from openmm import app

    import cgaa.openmm as co
    from cgaa.openmm.mts import mts_integrator, split_force_groups

    torch.set_num_threads(1)
    pdb = app.PDBFile(sys.argv[1])
    k, eq_ps, ps = int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
    system = co.create_system(pdb.topology, constraints="hbonds", contact_guard=True)
    if k > 1:
        split_force_groups(system)
        integ = mts_integrator(float(k), k, temperature=298.15, friction_per_ps=1.0, seed=3)
    else:
        integ = openmm.LangevinMiddleIntegrator(298.15, 1.0, 0.001)
        integ.setRandomNumberSeed(3)
    ctx = openmm.Context(system, integ, openmm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
    ctx.setPositions(pdb.positions)
    ctx.setVelocitiesToTemperature(298.15, 3)
    integ.step(int(eq_ps * 1000 / k))
    masses = np.array([system.getParticleMass(i)._value for i in range(system.getNumParticles())])
    species = {}
    for r in pdb.topology.residues():
        species.setdefault(r.name, []).append([a.index for a in r.atoms()])
    kb = 0.00831446  # kJ/mol/K
    twice_ke = {n: [] for n in species}
    n_samples = int(ps * 1000 / 40)
    for _ in range(n_samples):
        integ.step(40 // k)
        v = ctx.getState(getVelocities=True).getVelocities(asNumpy=True)._value
        for n, groups in species.items():
            for g in groups:
                p = (masses[g][:, None] * v[g]).sum(0)
                twice_ke[n].append(float(p @ p / masses[g].sum()))
    print(json.dumps({"k": k, "com_T_K": {n: float(np.mean(x) / (3 * kb)) for n, x in twice_ke.items()},
                      "n_samples": n_samples}))


if __name__ == "__main__":
    main()
