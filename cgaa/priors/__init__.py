"""Physical priors: classical terms a CGAA model is trained on top of (Δ-learning).

A model whose ``ModelConfig.prior`` names a prior predicts the *residual*
E_teacher − E_prior; the prior is added back wherever the model is used — as ordinary
OpenMM forces in :func:`cgaa.openmm.create_system` and by :func:`subtract_prior` on the
labels of every dataset the model is trained or evaluated on. The model itself stays a
pure grain network.

Why: a learned potential is only as good as its data, and MD visits geometries no
training frame had. Without a prior the shipped model's C–H energy turned *downhill*
beyond ~1.4 Å (see docs/benchmarks.md), so hydrogens dissociated within a picosecond.
Harmonic bonds and angles grow without bound, so stretched bonds always pull back,
whatever the network does there; the network then learns the softer rest (torsions,
intramolecular non-bonded terms and all inter-grain interactions). Harmonic bonded
priors are the usual remedy in machine-learned coarse-grained force fields
(Wang et al., ACS Cent. Sci. 5, 755 (2019), "CGnet").

Presets known here (:data:`PRIORS`; each a list of terms, :mod:`cgaa.priors.terms`, which
a model may also name directly, joined by ``+``, e.g. ``"bonds+angles+coulomb"``):

* ``none`` — no prior: the model predicts the full energy.
* ``teacher_bonded`` — the harmonic bond stretches and angle bends of the classical
  teacher force field (``forcefields/teacher/opls_electrolyte.xml``, see
  :mod:`cgaa.teacher.forcefield`), for the species it parametrises. With a DFT teacher this is a
  classical bonded baseline; with the classical teacher it is exactly the teacher's own
  bonded terms.
* ``teacher_valence`` — all of the teacher's valence terms: ``teacher_bonded`` plus its
  proper and improper torsions (``PeriodicTorsionForce``) and the PF6⁻ F–P–F double-well
  angle (``CustomAngleForce``). The network is then left with the non-bonded interactions
  (intra- and inter-molecular). Why: a model over ``teacher_bonded`` got the torsional
  energy of conformers it had rarely seen too low, so its MD drifted into them — the
  teacher's torsion energy of its configurations was 2.6 eV per 1000-atom box above the
  teacher's own, and the liquid swelled under a barostat (docs/benchmarks.md).
* ``teacher_intra`` — the teacher's whole intramolecular energy: ``teacher_valence`` plus
  its non-bonded terms between atoms of the same molecule (Coulomb and OPLS Lennard-Jones
  with geometric mixing, 1-2 and 1-3 pairs excluded, 1-4 pairs scaled by the force field's
  ``coulomb14scale``/``lj14scale``), as a ``CustomBondForce`` over those pairs without a cutoff
  (every intramolecular pair of the shipped species is shorter than the teacher's 1 nm
  cutoff, so this is exactly the teacher's intramolecular energy). The network is left with
  the inter-grain interactions. Why: a model over ``teacher_valence`` let EMC fold so
  that a methyl H came within 2.0 Å of its own carbonyl O, where the teacher's
  intramolecular repulsion is ~3 eV/Å that the network had never been shown
  (docs/benchmarks.md).

* ``teacher_coulomb`` — ``teacher_intra`` plus the teacher's Coulomb energy *between*
  molecules: a charges-only ``NonbondedForce`` with the teacher's charges (ions scaled by
  0.8), PME with the teacher's Ewald tolerance in a periodic box (real-space cutoff
  :func:`coulomb_cutoff_nm`), no cutoff without one, every intramolecular pair excluded.
  The network is left with the short-ranged rest of the teacher (its Lennard-Jones between
  molecules, tests/test_prior.py). Why: on a teacher frame of the shipped data the
  Coulomb force between molecules farther apart than the 8 Å grain cutoff is 0.13 eV/Å (RMS
  net force on a Li⁺ or PF6⁻), which no local network can represent. A fixed-charge
  electrostatic baseline under a short-ranged learned potential is the usual remedy for
  ionic systems (Yue et al., J. Chem. Phys. 154, 034111 (2021); Deep Potential Long-Range,
  Zhang et al., J. Chem. Phys. 156, 124107 (2022)). With a DFT teacher the charges are the
  classical force field's, a baseline the network corrects at short range.
* ``teacher_dispersion`` — ``teacher_coulomb`` plus the London dispersion between molecules:
  −C6/(r⁶ + σ⁶) over atom pairs of different molecules, with the teacher's Lennard-Jones
  C6 = 4εσ⁶ (OPLS geometric mixing), the damping radius σ (Becke–Johnson-type rational damping,
  as in DFT-D3(BJ): Grimme et al., J. Comput. Chem. 32, 1456 (2011)), the teacher's 1 nm cutoff
  (:func:`coulomb_cutoff_nm`) and OpenMM's long-range correction beyond it, as the teacher has.
  The network is left with the exchange repulsion and the short-range difference between the
  damped and the true r⁻⁶ (for the classical teacher both decay as r⁻¹²). Why: the teacher's
  Lennard-Jones attraction between molecules whose centres are 8–10 Å apart (−3 to −7 meV/Å per
  pair at 8.25 Å) lies beyond the 8 Å grain cutoff; the Coulomb candidate lacked exactly that
  force there and pulled pairs 6–7.5 Å apart 1–3 meV/Å too hard instead (docs/benchmarks.md,
  *What the model gets wrong between molecules*). A fixed dispersion tail under a short-ranged
  learned potential is the usual remedy (MLP + D3, e.g. SevenNet-D3, MACE-MP+D3).

The terms of ``teacher_bonded`` to ``teacher_intra`` act inside a grain (molecule), so they
never change a grain's net force (inter-grain forces come from the network alone) nor the
molecular virial; ``teacher_coulomb`` adds net forces on grains and a molecular virial, which
labels and stresses account for like any other prior energy; so does ``teacher_dispersion``. Neither
can join a System that already has a NonbondedForce (:func:`check_prior_fits`). Units: OpenMM's (nm, kJ/mol) inside the
OpenMM forces; :class:`PriorEvaluator` returns eV and eV/Å through :mod:`cgaa.core.units`.

Layout: :mod:`cgaa.priors.base` (the :class:`PriorTerm` every term shares),
:mod:`cgaa.priors.terms` (one small class per term, :data:`TERMS`), :mod:`cgaa.priors.compose`
(a prior's OpenMM forces from its list of terms) and :mod:`cgaa.priors.evaluate` (energies,
forces and stresses of a prior, residual labels). May import :mod:`cgaa.core`,
:mod:`cgaa.systems` and :mod:`cgaa.teacher.forcefield`.
"""
from cgaa.core.priorspec import PRESETS, check_prior, prior_terms
from cgaa.priors.base import PRIOR_FORCE_PREFIX, PriorTerm
from cgaa.priors.compose import PRIORS, add_prior, check_prior_fits, prior_forces
from cgaa.priors.evaluate import PriorEvaluator, subtract_prior, topology_for_atoms
from cgaa.priors.terms import (COULOMB, COULOMB_CUTOFF_NM, COULOMB_EWALD_TOLERANCE, DISPERSION, DISPERSION_ENERGY,
                               INTRA_NONBONDED_ENERGY, TERMS, coulomb_cutoff_nm)

__all__ = ["COULOMB", "COULOMB_CUTOFF_NM", "COULOMB_EWALD_TOLERANCE", "DISPERSION", "DISPERSION_ENERGY",
           "INTRA_NONBONDED_ENERGY", "PRESETS", "PRIORS", "PRIOR_FORCE_PREFIX", "PriorEvaluator", "PriorTerm", "TERMS",
           "add_prior", "check_prior", "check_prior_fits", "coulomb_cutoff_nm", "prior_forces", "prior_terms",
           "subtract_prior", "topology_for_atoms"]
