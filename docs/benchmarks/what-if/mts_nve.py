"""Energy conservation of r-RESPA with a CGAA model: NVE from one state, plain Verlet at 1 fs
against MTSIntegrator with the network every K fs and the intra-grain prior every 1 fs.

    python docs/benchmarks/what-if/mts_nve.py START.pdb --substeps 0 3 4 --ps 10 [--model M.pt] --json OUT.json

START.pdb: an equilibrated box (e.g. a `cgaa bench observables --start warmup` start state).
The System is what `cgaa simulate` builds (H-bond constraints, contact guard), without the
CMMotionRemover (NVE); groups from cgaa.openmm.mts.split_force_groups; velocities at
298.15 K (seed 7), constraint tolerance 1e-8; CPU platform, one thread. --substeps 0 is the
plain VerletIntegrator at 1 fs. Per run: the linear drift of the total energy (kJ/mol/ps),
its standard deviation about that line (kJ/mol), E(end) - E(0) and the kinetic-energy
standard deviation, sampled every 12 fs.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np


def run(pdb_path: str, k: int, ps: float, model=None) -> dict:
    import openmm
    from openmm import app, unit

    import cgaa.openmm as co
    from cgaa.openmm.mts import mts_integrator, split_force_groups

    pdb = app.PDBFile(pdb_path)
    system = co.create_system(pdb.topology, model, constraints="hbonds", contact_guard=True, remove_cm_motion=False)
    split_force_groups(system)
    integ = openmm.VerletIntegrator(0.001) if k == 0 else mts_integrator(float(k), k)
    integ.setConstraintTolerance(1e-8)
    ctx = openmm.Context(system, integ, openmm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
    ctx.setPositions(pdb.positions)
    ctx.setVelocitiesToTemperature(298.15, 7)
    ctx.applyVelocityConstraints(1e-8)
    every = 12 // max(k, 1)  # steps between samples: 12 fs
    n_steps = int(round(ps * 1000 / max(k, 1)))
    rows = []
    t0 = time.process_time()

    def sample() -> None:
        st = ctx.getState(getEnergy=True)
        rows.append((st.getTime().value_in_unit(unit.picosecond),
                     st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole),
                     st.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole)))

    for _ in range(0, n_steps, every):
        sample()
        integ.step(every)
    sample()
    a = np.array(rows)
    e = a[:, 1] + a[:, 2]
    fit = np.polyfit(a[:, 0], e, 1)
    return {"substeps": k, "slow_step_fs": max(k, 1), "ps": ps, "cpu_s": time.process_time() - t0,
            "drift_kJ_mol_per_ps": float(fit[0]), "e_std_about_drift_kJ_mol": float(np.std(e - np.polyval(fit, a[:, 0]))),
            "e_end_minus_start_kJ_mol": float(e[-1] - e[0]), "ke_std_kJ_mol": float(np.std(a[:, 2])),
            "n_dof": 3 * system.getNumParticles() - system.getNumConstraints()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("start")
    p.add_argument("--substeps", type=int, nargs="+", default=[0, 3, 4])
    p.add_argument("--ps", type=float, default=10.0)
    p.add_argument("--model", default=None)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    import torch

    torch.set_num_threads(1)
    out = []
    for k in args.substeps:
        r = run(args.start, k, args.ps, args.model)
        print(json.dumps(r), flush=True)
        out.append(r)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"start": args.start, "model": args.model or "shipped", "runs": out}, fh, indent=1)


if __name__ == "__main__":
    main()
