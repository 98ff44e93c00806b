"""How often a cgaa simulate run touched its contact guard: the guard's energy on every
trajectory frame.

usage: python contact_guard_touches.py RUN_DIR
"""
import sys

import mdtraj as md
import numpy as np
import openmm
from openmm import app, unit

from cgaa.core.modelfile import load_model
from cgaa.openmm.guards import add_contact_guard


def main() -> None:
    run = sys.argv[1]
    pdb = app.PDBFile(f"{run}/topology.pdb")
    system = openmm.System()
    system.setDefaultPeriodicBoxVectors(*pdb.topology.getPeriodicBoxVectors())
    for atom in pdb.topology.atoms():
        system.addParticle(atom.element.mass)
    add_contact_guard(system, pdb.topology, load_model(f"{run}/model.pt").config.contact_floor)
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    traj = md.load(f"{run}/traj.dcd", top=f"{run}/topology.pdb")
    energy = []
    for k in range(traj.n_frames):
        ctx.setPeriodicBoxVectors(*traj.unitcell_vectors[k])
        ctx.setPositions(traj.xyz[k])
        energy.append(ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
    energy = np.array(energy)
    touched = np.nonzero(energy > 0)[0]
    print(f"{run}: {traj.n_frames} frames, guard energy > 0 in {len(touched)}: "
          + ", ".join(f"frame {k} ({energy[k]:.3g} kJ/mol)" for k in touched))


if __name__ == "__main__":
    main()
