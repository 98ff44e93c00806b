"""The prior terms, one small class each (:data:`TERMS`: key → instance).

Each reads its parameters from the teacher force field's System (:class:`TeacherReference`)
and returns OpenMM forces in nm and kJ/mol, indexed by the atoms of the full topology.
Why each term exists is told in :mod:`cgaa.priors`.
"""
from __future__ import annotations

import math
from typing import Dict, Sequence

import openmm

from cgaa.core.priorspec import TERMS as TERM_KEYS
from cgaa.core.units import box_heights_nm
from cgaa.priors.base import PriorTerm, TeacherReference
from cgaa.teacher.forcefield import opls_sigma

#: Pseudo force class of the ``coulomb`` term: the teacher's Coulomb energy *between* molecules
#: (a charges-only ``NonbondedForce``, PME when periodic, every intramolecular pair excluded).
COULOMB = "Coulomb"
#: Largest real-space cutoff (nm) of the ``coulomb`` PME sum: the teacher's. Smaller boxes get
#: 0.45 × their shortest height; the PME energy does not depend on the cutoff (within
#: :data:`COULOMB_EWALD_TOLERANCE`), only the split between real and reciprocal space.
COULOMB_CUTOFF_NM = 1.0
#: OpenMM ``ewaldErrorTolerance`` of the ``coulomb`` PME sum (the teacher's default).
COULOMB_EWALD_TOLERANCE = 5e-4
#: Pseudo force class of the ``dispersion`` term: damped London dispersion between molecules
#: (a ``CustomNonbondedForce``, the teacher's cutoff and long-range correction).
DISPERSION = "Dispersion"
#: Energy of the ``dispersion`` term per atom pair (kJ/mol, nm): −C6/(r⁶ + σ⁶), C6 = 4εσ⁶, with
#: the teacher's OPLS geometric mixing σ = sqrt(σ_i σ_j), ε = sqrt(ε_i ε_j).
DISPERSION_ENERGY = "-4*eps*s6/(r^6+s6); s6=(sig1*sig2)^3; eps=sqrt(eps1*eps2)"
#: Energy of the intramolecular non-bonded pairs of ``intra_nonbonded`` (kJ/mol, nm, e):
#: Coulomb with OpenMM's 1/(4π ε0) plus 12-6 Lennard-Jones with per-pair sigma and epsilon.
INTRA_NONBONDED_ENERGY = "138.935456*qq/r + 4*eps*((sig/r)^12 - (sig/r)^6)"


def coulomb_cutoff_nm(box) -> float:
    """Real-space cutoff (nm) of the ``coulomb`` PME sum (and the ``dispersion`` cutoff) for a
    box (OpenMM box vectors, nm): :data:`COULOMB_CUTOFF_NM`, or 0.45 × the shortest box height
    when that is smaller (NPT fluctuations keep the cutoff below half the height)."""
    return min(COULOMB_CUTOFF_NM, 0.45 * float(box_heights_nm(box).min()))


def intramolecular_pairs(sub, index: Sequence[int]):
    """Every pair of atoms inside one residue of ``sub``, as indices of the full topology."""
    for res in sub.residues():
        ids = [index[a.index] for a in res.atoms()]
        for a in range(len(ids)):
            for b in range(a + 1, len(ids)):
                yield ids[a], ids[b]


class HarmonicBonds(PriorTerm):
    """The teacher's harmonic bond stretches."""

    key, source, force_name = "bonds", "HarmonicBondForce", "HarmonicBondForce"
    description = "harmonic bond stretches"

    def build(self, f, ref: TeacherReference):
        g = openmm.HarmonicBondForce()
        for b in range(f.getNumBonds()):
            i, j, r0, k = f.getBondParameters(b)
            g.addBond(ref.index[i], ref.index[j], r0, k)
        return g


class HarmonicAngles(PriorTerm):
    """The teacher's harmonic angle bends."""

    key, source, force_name = "angles", "HarmonicAngleForce", "HarmonicAngleForce"
    description = "harmonic angle bends"

    def build(self, f, ref: TeacherReference):
        g = openmm.HarmonicAngleForce()
        for b in range(f.getNumAngles()):
            i, j, k_, th0, k = f.getAngleParameters(b)
            g.addAngle(ref.index[i], ref.index[j], ref.index[k_], th0, k)
        return g


class CustomAngles(PriorTerm):
    """The teacher's custom angle terms (the PF6⁻ F–P–F double well), with its expression."""

    key, source, force_name = "custom_angles", "CustomAngleForce", "CustomAngleForce"
    description = "custom angle terms (PF6⁻ F–P–F double well)"

    def build(self, f, ref: TeacherReference):
        g = openmm.CustomAngleForce(f.getEnergyFunction())
        for p in range(f.getNumPerAngleParameters()):
            g.addPerAngleParameter(f.getPerAngleParameterName(p))
        for p in range(f.getNumGlobalParameters()):
            g.addGlobalParameter(f.getGlobalParameterName(p), f.getGlobalParameterDefaultValue(p))
        for b in range(f.getNumAngles()):
            i, j, k_, params = f.getAngleParameters(b)
            g.addAngle(ref.index[i], ref.index[j], ref.index[k_], params)
        return g


class Torsions(PriorTerm):
    """The teacher's proper and improper torsions."""

    key, source, force_name = "torsions", "PeriodicTorsionForce", "PeriodicTorsionForce"
    description = "proper and improper torsions"

    def build(self, f, ref: TeacherReference):
        g = openmm.PeriodicTorsionForce()
        for b in range(f.getNumTorsions()):
            i, j, k_, l_, per, phase, k = f.getTorsionParameters(b)
            g.addTorsion(ref.index[i], ref.index[j], ref.index[k_], ref.index[l_], per, phase, k)
        return g


class IntraNonbonded(PriorTerm):
    """CustomBondForce of the teacher's non-bonded energy between the atoms of each molecule,
    with the teacher's OPLS geometric mixing (as :func:`cgaa.teacher.forcefield.create_system`):
    plain pairs q_i q_j, sqrt(s_i s_j), sqrt(e_i e_j); 1-4 exceptions their scaled charge product
    and epsilon with sqrt(s_i s_j); pairs excluded by the force field (1-2, 1-3) left out. No
    cutoff: every intramolecular pair of the shipped species is shorter than the teacher's 1 nm."""

    key, source, force_name = "intra_nonbonded", "NonbondedForce", "NonbondedForce"
    description = "Coulomb and Lennard-Jones between atoms of the same molecule"

    def build(self, nb, ref: TeacherReference):
        g = openmm.CustomBondForce(INTRA_NONBONDED_ENERGY)
        for p in ("qq", "sig", "eps"):
            g.addPerBondParameter(p)
        params = []
        for i in range(nb.getNumParticles()):
            q, sig, eps = nb.getParticleParameters(i)
            params.append((q._value, sig._value, eps._value))
        exceptions = {}
        for k in range(nb.getNumExceptions()):
            i, j, qq, _sig, eps = nb.getExceptionParameters(k)
            exceptions[(min(i, j), max(i, j))] = (qq._value, eps._value)
        for res in ref.sub.residues():
            ids = [a.index for a in res.atoms()]
            for a in range(len(ids)):
                for b in range(a + 1, len(ids)):
                    i, j = ids[a], ids[b]
                    (qi, si, ei), (qj, sj, ej) = params[i], params[j]
                    sig, eps = opls_sigma(si, sj), math.sqrt(ei * ej)
                    if (i, j) in exceptions:
                        qq, eps14 = exceptions[(i, j)]
                        if qq == 0.0 and eps14 == 0.0:
                            continue  # excluded (1-2, 1-3)
                        eps = eps14  # lj14scale · sqrt(e_i e_j), as in cgaa.teacher.forcefield
                    else:
                        qq = qi * qj
                    if qq != 0.0 or eps != 0.0:
                        g.addBond(ref.index[i], ref.index[j], [qq, sig, eps])
        return g


class InterCoulomb(PriorTerm):
    """Charges-only NonbondedForce over all atoms: the teacher's charges on the prior's atoms,
    zero elsewhere; every pair inside a molecule excluded, so its energy is the Coulomb energy
    between molecules: PME when periodic (the teacher's tolerance, cutoff
    :func:`coulomb_cutoff_nm`), else no cutoff."""

    key, source, force_name = "coulomb", "NonbondedForce", COULOMB
    between_molecules = True
    description = "the teacher's PME Coulomb energy"

    def build(self, nb, ref: TeacherReference):
        g = openmm.NonbondedForce()
        charges = [0.0] * int(ref.n_atoms)
        for i in range(nb.getNumParticles()):
            charges[ref.index[i]] = nb.getParticleParameters(i)[0]._value
        for q in charges:
            g.addParticle(q, 0.1, 0.0)
        for i, j in intramolecular_pairs(ref.sub, ref.index):
            g.addException(i, j, 0.0, 0.1, 0.0)
        if ref.box is None:
            g.setNonbondedMethod(openmm.NonbondedForce.NoCutoff)
        else:
            g.setNonbondedMethod(openmm.NonbondedForce.PME)
            g.setCutoffDistance(coulomb_cutoff_nm(ref.box))
            g.setEwaldErrorTolerance(COULOMB_EWALD_TOLERANCE)
            g.setExceptionsUsePeriodicBoundaryConditions(True)  # the same energy for any image of each atom
        g.setUseDispersionCorrection(False)
        return g


class InterDispersion(PriorTerm):
    """CustomNonbondedForce of :data:`DISPERSION_ENERGY` over all atoms: the teacher's
    Lennard-Jones sigma and epsilon on the prior's atoms, epsilon 0 elsewhere; every pair inside
    a molecule excluded. Periodic with cutoff :func:`coulomb_cutoff_nm` and the long-range
    correction when periodic, else no cutoff."""

    key, source, force_name = "dispersion", "NonbondedForce", DISPERSION
    between_molecules = True
    description = "its damped r⁻⁶ dispersion"

    def build(self, nb, ref: TeacherReference):
        g = openmm.CustomNonbondedForce(DISPERSION_ENERGY)
        g.addPerParticleParameter("sig")
        g.addPerParticleParameter("eps")
        params = [[0.1, 0.0] for _ in range(int(ref.n_atoms))]
        for i in range(nb.getNumParticles()):
            _q, sig, eps = nb.getParticleParameters(i)
            params[ref.index[i]] = [sig._value, eps._value]
        for p in params:
            g.addParticle(p)
        for i, j in intramolecular_pairs(ref.sub, ref.index):
            g.addExclusion(i, j)
        if ref.box is None:
            g.setNonbondedMethod(openmm.CustomNonbondedForce.NoCutoff)
        else:
            g.setNonbondedMethod(openmm.CustomNonbondedForce.CutoffPeriodic)
            g.setCutoffDistance(coulomb_cutoff_nm(ref.box))
            g.setUseLongRangeCorrection(True)
        return g


#: Term key → term (every key of :data:`cgaa.core.priorspec.TERMS`, in that order).
TERMS: Dict[str, PriorTerm] = {t.key: t for t in (HarmonicBonds(), HarmonicAngles(), CustomAngles(), Torsions(),
                                                  IntraNonbonded(), InterCoulomb(), InterDispersion())}
assert tuple(TERMS) == TERM_KEYS, "cgaa.core.priorspec.TERMS and cgaa.priors.terms.TERMS differ"

__all__ = ["COULOMB", "COULOMB_CUTOFF_NM", "COULOMB_EWALD_TOLERANCE", "DISPERSION", "DISPERSION_ENERGY",
           "INTRA_NONBONDED_ENERGY", "TERMS", "coulomb_cutoff_nm", "intramolecular_pairs"]
