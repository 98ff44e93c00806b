"""What the dispersion prior costs per evaluation, and what it would cost as Lennard-Jones
terms of the Coulomb prior's NonbondedForce (a what-if; not used by cgaa).

``teacher_dispersion`` is a CustomNonbondedForce, −C6/(r⁶ + σ⁶) with C6 = c_i c_j,
c_i = 2 sqrt(ε_i) σ_i³ (the teacher's OPLS geometric mixing). OpenMM's NonbondedForce mixes
Lorentz–Berthelot, but with one common σ0 for every atom and ε'_i = ε_i σ_i⁶ / σ0⁶ its r⁻⁶
coefficient 4 sqrt(ε'_i ε'_j) σ0⁶ = c_i c_j is the teacher's C6 exactly, and its r⁻¹² term
c_i c_j σ0⁶ is small next to the teacher's for σ0 below every σ_i: the network would be left
the teacher's repulsion minus that, instead of the damped form's short-range difference. The
price: no damping (a well of depth ε'_ij at 2^(1/6) σ0 between molecules, far inside the
contact guard's wall); it needs retraining. A third variant keeps the damped form and precomputes
per-atom coefficients (no retraining; the report gives its energy difference from the prior's).

Usage (1 thread, CPU platform, interleaved repeats, ms per energy+force evaluation):
    python docs/benchmarks/what-if/dispersion_cost.py BOX.pdb [--sigma0-nm 0.15] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import openmm
from openmm import app

from cgaa.priors import DISPERSION, PRIOR_FORCE_PREFIX, prior_forces


def _copy(force):
    return openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(force))


def _context(topology, positions, forces):
    system = openmm.System()
    for atom in topology.atoms():
        system.addParticle(atom.element.mass)
    system.setDefaultPeriodicBoxVectors(*topology.getPeriodicBoxVectors())
    for f in forces:
        system.addForce(_copy(f))
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001),
                         openmm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
    ctx.setPositions(positions)
    return ctx


def _per_atom_dispersion(dispersion):
    """The same damped dispersion with per-atom coefficients precomputed: −c1 c2/(r⁶ + s1 s2),
    c_i = 2 √ε_i σ_i³, s_i = σ_i³ (equal to :data:`cgaa.priors.DISPERSION_ENERGY`; no square root
    or power per pair)."""
    g = openmm.CustomNonbondedForce("-c1*c2/(r^6+s1*s2)")
    g.addPerParticleParameter("c")
    g.addPerParticleParameter("s")
    for i in range(dispersion.getNumParticles()):
        sig, eps = dispersion.getParticleParameters(i)
        g.addParticle([2.0 * eps ** 0.5 * sig ** 3, sig ** 3])
    for k in range(dispersion.getNumExclusions()):
        g.addExclusion(*dispersion.getExclusionParticles(k))
    g.setNonbondedMethod(dispersion.getNonbondedMethod())
    g.setCutoffDistance(dispersion.getCutoffDistance())
    g.setUseLongRangeCorrection(dispersion.getUseLongRangeCorrection())
    return g


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("box", help="periodic PDB box")
    ap.add_argument("--sigma0-nm", type=float, default=0.15, help="common LJ sigma of the what-if (nm)")
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", help="write the timings here")
    args = ap.parse_args()
    pdb = app.PDBFile(args.box)
    forces = {f.getName(): f for f in prior_forces(pdb.topology, "teacher_dispersion")}
    coulomb = forces[PRIOR_FORCE_PREFIX + "Coulomb"]
    dispersion = forces[PRIOR_FORCE_PREFIX + DISPERSION]
    lj = _copy(coulomb)
    s0 = args.sigma0_nm
    for i in range(lj.getNumParticles()):
        q, _sig, _eps = lj.getParticleParameters(i)
        sig, eps = dispersion.getParticleParameters(i)
        lj.setParticleParameters(i, q, s0, eps * (sig / s0) ** 6)
    lj.setUseDispersionCorrection(True)
    variants = {"coulomb": [coulomb], "coulomb + dispersion (CustomNonbondedForce)": [coulomb, dispersion],
                "coulomb + dispersion, per-atom coefficients": [coulomb, _per_atom_dispersion(dispersion)],
                f"coulomb with LJ (sigma0 {s0} nm)": [lj]}
    contexts = {k: _context(pdb.topology, pdb.positions, v) for k, v in variants.items()}
    times = {k: [] for k in contexts}
    for _ in range(args.repeats):
        for k, ctx in contexts.items():
            t0 = time.process_time()
            for _ in range(args.calls):
                ctx.setPositions(pdb.positions)
                ctx.getState(getForces=True)
            times[k].append((time.process_time() - t0) / args.calls * 1e3)
    energy = {k: ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole)
              for k, ctx in contexts.items()}
    report = {k: {"cpu_ms_min": min(v), "cpu_ms_median": float(np.median(v)), "energy_kj_mol": energy[k]}
              for k, v in times.items()}
    for k, v in report.items():
        print(f"{k:48s} CPU ms per evaluation: min {v['cpu_ms_min']:.2f}, median {v['cpu_ms_median']:.2f}; "
              f"energy {v['energy_kj_mol']:.4f} kJ/mol")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"box": args.box, "atoms": pdb.topology.getNumAtoms(), "sigma0_nm": s0,
                       "calls": args.calls, "repeats": args.repeats, "threads": 1, "cpu_ms": report},
                      fh, indent=1)


if __name__ == "__main__":
    main()
