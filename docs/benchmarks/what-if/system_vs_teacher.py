"""Forces of the OpenMM System that `cgaa simulate` builds for a model (TorchForce + prior forces
+ contact guard, H-bond constraints) against the teacher's System, on frames of a run: RMS
difference, RMS teacher force, potential energies, and masses and constraints compared (CPU
platform). Checks that MD integrates the potential that `cgaa evaluate` scores.

Usage (from build/): python ../docs/benchmarks/what-if/system_vs_teacher.py RUN_DIR MODEL [--frames 100 400 700]
"""
from __future__ import annotations

import argparse

import mdtraj as md
import numpy as np
import openmm
from openmm import app, unit

from cgaa.core.modelfile import load_model
from cgaa.openmm import create_system
from cgaa.teacher.forcefield import create_system as teacher_system


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", help="a run directory (traj.dcd, topology.pdb)")
    ap.add_argument("model", help="the deployed model the run used")
    ap.add_argument("--frames", type=int, nargs="+", default=[100, 400, 700], help="frame indices of traj.dcd")
    args = ap.parse_args()
    top = app.PDBFile(f"{args.run_dir}/topology.pdb").topology
    systems = {"cgaa": create_system(top, load_model(args.model), constraints="hbonds", bond_guard=False,
                                     contact_guard=True),
               "teacher": teacher_system(top, cutoff=1.0, constraints="hbonds")}
    cpu = openmm.Platform.getPlatformByName("CPU")
    ctx = {k: openmm.Context(s, openmm.VerletIntegrator(0.001), cpu) for k, s in systems.items()}
    mass = {k: np.array([s.getParticleMass(i).value_in_unit(unit.dalton) for i in range(s.getNumParticles())])
            for k, s in systems.items()}
    print(f"largest mass difference {abs(mass['cgaa'] - mass['teacher']).max():.1e} Da; constraints "
          f"{systems['cgaa'].getNumConstraints()} vs {systems['teacher'].getNumConstraints()}")
    traj = md.load(f"{args.run_dir}/traj.dcd", top=f"{args.run_dir}/topology.pdb")
    for k in args.frames:
        f, e = {}, {}
        for name, c in ctx.items():
            c.setPeriodicBoxVectors(*traj.unitcell_vectors[k])
            c.setPositions(traj.xyz[k])
            st = c.getState(getForces=True, getEnergy=True)
            f[name] = st.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
            e[name] = st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        rms_t = np.sqrt((f["teacher"] ** 2).mean())
        rms_d = np.sqrt(((f["cgaa"] - f["teacher"]) ** 2).mean())
        print(f"frame {k}: RMS force difference {rms_d:.2f} kJ/mol/nm ({100 * rms_d / rms_t:.2f} % of the "
              f"teacher's RMS force {rms_t:.1f}); energy cgaa {e['cgaa']:.1f}, teacher {e['teacher']:.1f} kJ/mol")


if __name__ == "__main__":
    main()
