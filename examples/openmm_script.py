"""Run a CGAA model in a plain OpenMM script.

    python examples/openmm_script.py box.pdb model.pt          # box from `cgaa build`
    python examples/openmm_script.py box.pdb                   # the shipped default model
    python examples/openmm_script.py big.cif model.pt          # PDBx/mmCIF (boxes > 99,999 atoms)

Builds the System with cgaa.openmm.create_system (an openmmtorch.TorchForce wrapping the
deployed model, periodic, element masses, the PDB's box, the model's classical prior, bonds
to H constrained), minimises and runs 1 ps (or $STEPS steps) of NVT at the box's density with
an unwrapped DCD trajectory. (A MonteCarloBarostat may be added: under one the shipped model's
density is within 0.1 ± 0.2 % of the teacher's, docs/benchmarks.md.) The same System is available through
openmm-ml:  MLPotential("cgaa", model="model.pt").createSystem(pdb.topology).
"""
import os
import sys

import openmm
from openmm import unit
from openmm.app import DCDReporter, PDBFile, PDBxFile, Simulation, StateDataReporter

from cgaa.openmm import create_system

pdb = (PDBxFile if sys.argv[1].endswith((".cif", ".pdbx")) else PDBFile)(sys.argv[1])
model = sys.argv[2] if len(sys.argv) > 2 else None  # None: the shipped default model

# refuses unknown species or a box too small for the cutoff
system = create_system(pdb.topology, model, constraints="hbonds")
integrator = openmm.LangevinMiddleIntegrator(298.15 * unit.kelvin, 1 / unit.picosecond, 1 * unit.femtosecond)
platform = openmm.Platform.getPlatformByName("CUDA" if "--cuda" in sys.argv else "CPU")
simulation = Simulation(pdb.topology, system, integrator, platform)
simulation.context.setPositions(pdb.positions)
simulation.minimizeEnergy(maxIterations=500)
simulation.context.setVelocitiesToTemperature(298.15 * unit.kelvin)
simulation.reporters.append(DCDReporter("traj.dcd", 100, enforcePeriodicBox=False))  # unwrapped, for MSD
simulation.reporters.append(StateDataReporter(sys.stdout, 100, step=True, temperature=True, density=True,
                                              potentialEnergy=True, speed=True))
simulation.step(int(os.environ.get("STEPS", 1000)))
