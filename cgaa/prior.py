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

Priors known here (:data:`PRIORS`):

* ``none`` — no prior: the model predicts the full energy.
* ``teacher_bonded`` — the harmonic bond stretches and angle bends of the classical
  teacher force field (``forcefields/teacher/opls_electrolyte.xml``, see
  :mod:`cgaa.teacher`), for the species it parametrises. With a DFT teacher this is a
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
OpenMM forces; :class:`PriorEvaluator` returns eV and eV/Å through :mod:`cgaa.units`.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np


#: Pseudo force class of ``teacher_coulomb``: the teacher's Coulomb energy *between* molecules
#: (a charges-only ``NonbondedForce``, PME when periodic, every intramolecular pair excluded).
COULOMB = "Coulomb"
#: Largest real-space cutoff (nm) of the ``teacher_coulomb`` PME sum: the teacher's. Smaller
#: boxes get 0.45 × their shortest height; the PME energy does not depend on the cutoff
#: (within :data:`COULOMB_EWALD_TOLERANCE`), only the split between real and reciprocal space.
COULOMB_CUTOFF_NM = 1.0
#: OpenMM ``ewaldErrorTolerance`` of the ``teacher_coulomb`` PME sum (the teacher's default).
COULOMB_EWALD_TOLERANCE = 5e-4
#: Pseudo force class of ``teacher_dispersion``: damped London dispersion between molecules
#: (a ``CustomNonbondedForce``, the teacher's cutoff and long-range correction).
DISPERSION = "Dispersion"
#: Energy of ``teacher_dispersion`` per atom pair (kJ/mol, nm): −C6/(r⁶ + σ⁶), C6 = 4εσ⁶, with
#: the teacher's OPLS geometric mixing σ = sqrt(σ_i σ_j), ε = sqrt(ε_i ε_j).
DISPERSION_ENERGY = "-4*eps*s6/(r^6+s6); s6=(sig1*sig2)^3; eps=sqrt(eps1*eps2)"

#: Prior name → OpenMM force classes copied from the teacher force field.
PRIORS: Dict[str, Tuple[str, ...]] = {
    "none": (),
    "teacher_bonded": ("HarmonicBondForce", "HarmonicAngleForce"),
    "teacher_valence": ("HarmonicBondForce", "HarmonicAngleForce", "CustomAngleForce", "PeriodicTorsionForce"),
    "teacher_intra": ("HarmonicBondForce", "HarmonicAngleForce", "CustomAngleForce", "PeriodicTorsionForce",
                      "NonbondedForce"),
    "teacher_coulomb": ("HarmonicBondForce", "HarmonicAngleForce", "CustomAngleForce", "PeriodicTorsionForce",
                        "NonbondedForce", COULOMB),
    "teacher_dispersion": ("HarmonicBondForce", "HarmonicAngleForce", "CustomAngleForce", "PeriodicTorsionForce",
                           "NonbondedForce", COULOMB, DISPERSION),
}
#: Energy of the intramolecular non-bonded pairs of ``teacher_intra`` (kJ/mol, nm, e):
#: Coulomb with OpenMM's 1/(4π ε0) plus 12-6 Lennard-Jones with per-pair sigma and epsilon.
INTRA_NONBONDED_ENERGY = "138.935456*qq/r + 4*eps*((sig/r)^12 - (sig/r)^6)"

#: Name given to the OpenMM forces of a prior (``CGAAPrior:<class>``).
PRIOR_FORCE_PREFIX = "CGAAPrior:"


def check_prior(name: Optional[str]) -> str:
    """The canonical prior name (``None`` → ``"none"``); ValueError naming the known ones."""
    key = "none" if name is None else str(name).strip().lower()
    if key not in PRIORS:
        raise ValueError(f"unknown prior {name!r} (known: {', '.join(PRIORS)})")
    return key


def _subtopology(topology, atoms: Sequence[int]):
    """A Topology of the residues of ``atoms`` (each residue wholly inside) and the map from
    its atom order to the original indices."""
    from openmm.app import Topology

    sel = set(int(a) for a in atoms)
    sub = Topology()
    chain = sub.addChain()
    index: List[int] = []
    new = {}
    for res in topology.residues():
        ids = [a.index for a in res.atoms()]
        inside = [i in sel for i in ids]
        if not any(inside):
            continue
        if not all(inside):
            raise ValueError(f"residue {res.name} {res.id} is only partly in the selected atoms: "
                             "a prior needs whole molecules")
        r = sub.addResidue(res.name, chain, res.id)
        for a in res.atoms():
            new[a.index] = sub.addAtom(a.name, a.element, r)
            index.append(a.index)
    for a, b in topology.bonds():
        if a.index in new and b.index in new:
            sub.addBond(new[a.index], new[b.index])
    sub.setPeriodicBoxVectors(topology.getPeriodicBoxVectors())
    return sub, index


def prior_forces(topology, name: str, atoms: Optional[Sequence[int]] = None) -> List:
    """The OpenMM forces of prior ``name`` for ``topology`` (or the residues of ``atoms``),
    indexed by the atoms of ``topology``. Periodic (minimum-image) when the topology has a
    box, so wrapped molecules are handled. Empty for ``"none"``.

    ValueError (OpenMM's message names the residue) for molecules the teacher force field
    does not know.
    """
    import openmm
    from openmm import app

    from cgaa.teacher import load_forcefield

    classes = PRIORS[check_prior(name)]
    if not classes:
        return []
    if atoms is not None:
        sub, index = _subtopology(topology, atoms)
    else:
        sub, index = topology, list(range(topology.getNumAtoms()))
    ff = load_forcefield()
    try:  # templates are matched by element and bond graph, so residue names do not matter
        ref = ff.createSystem(sub, nonbondedMethod=app.NoCutoff, constraints=None, rigidWater=False)
    except ValueError as err:
        raise ValueError(f"prior {name!r}: the teacher force field cannot parametrise the topology: {err}") from None
    periodic = topology.getPeriodicBoxVectors() is not None
    out = []
    for f in ref.getForces():
        cls = type(f).__name__
        if cls not in classes:
            continue
        if cls == "HarmonicBondForce":
            g = openmm.HarmonicBondForce()
            for b in range(f.getNumBonds()):
                i, j, r0, k = f.getBondParameters(b)
                g.addBond(index[i], index[j], r0, k)
        elif cls == "HarmonicAngleForce":
            g = openmm.HarmonicAngleForce()
            for b in range(f.getNumAngles()):
                i, j, k_, th0, k = f.getAngleParameters(b)
                g.addAngle(index[i], index[j], index[k_], th0, k)
        elif cls == "CustomAngleForce":
            g = openmm.CustomAngleForce(f.getEnergyFunction())
            for p in range(f.getNumPerAngleParameters()):
                g.addPerAngleParameter(f.getPerAngleParameterName(p))
            for p in range(f.getNumGlobalParameters()):
                g.addGlobalParameter(f.getGlobalParameterName(p), f.getGlobalParameterDefaultValue(p))
            for b in range(f.getNumAngles()):
                i, j, k_, params = f.getAngleParameters(b)
                g.addAngle(index[i], index[j], index[k_], params)
        elif cls == "PeriodicTorsionForce":
            g = openmm.PeriodicTorsionForce()
            for b in range(f.getNumTorsions()):
                i, j, k_, l_, per, phase, k = f.getTorsionParameters(b)
                g.addTorsion(index[i], index[j], index[k_], index[l_], per, phase, k)
        elif cls == "NonbondedForce":
            g = _intramolecular_nonbonded(f, sub, index)
            if COULOMB in classes:
                coulomb = _intermolecular_coulomb(f, sub, index, topology.getNumAtoms(),
                                                  topology.getPeriodicBoxVectors())
                coulomb.setName(PRIOR_FORCE_PREFIX + COULOMB)
                out.append(coulomb)
            if DISPERSION in classes:
                disp = _intermolecular_dispersion(f, sub, index, topology.getNumAtoms(),
                                                  topology.getPeriodicBoxVectors())
                disp.setName(PRIOR_FORCE_PREFIX + DISPERSION)
                out.append(disp)
        else:  # pragma: no cover - PRIORS only names the classes above
            raise ValueError(f"prior {name!r}: unsupported force class {cls}")
        g.setName(PRIOR_FORCE_PREFIX + cls)
        g.setUsesPeriodicBoundaryConditions(periodic)
        out.append(g)
    return out


def coulomb_cutoff_nm(box) -> float:
    """Real-space cutoff (nm) of the ``teacher_coulomb`` PME sum for a box (OpenMM box
    vectors, nm): :data:`COULOMB_CUTOFF_NM`, or 0.45 × the shortest box height when that is
    smaller (NPT fluctuations keep the cutoff below half the height)."""
    from cgaa.openmm.system import box_heights_nm  # here: cgaa.openmm.system imports this module

    return min(COULOMB_CUTOFF_NM, 0.45 * float(box_heights_nm(box).min()))


def _intramolecular_pairs(sub, index: Sequence[int]):
    """Every pair of atoms inside one residue of ``sub``, as indices of the full topology."""
    for res in sub.residues():
        ids = [index[a.index] for a in res.atoms()]
        for a in range(len(ids)):
            for b in range(a + 1, len(ids)):
                yield ids[a], ids[b]


def _intermolecular_coulomb(nb, sub, index: Sequence[int], n_atoms: int, box):
    """Charges-only NonbondedForce over all ``n_atoms`` atoms: the teacher's charges (``nb``,
    built for ``sub``) on the atoms of ``sub`` (``index`` maps them), zero elsewhere; every
    pair inside a residue excluded (:func:`_intramolecular_nonbonded` holds those), so its
    energy is the Coulomb energy between molecules: PME when ``box`` is given (the teacher's
    tolerance, cutoff :func:`coulomb_cutoff_nm`), else no cutoff."""
    import openmm

    g = openmm.NonbondedForce()
    charges = [0.0] * int(n_atoms)
    for i in range(nb.getNumParticles()):
        charges[index[i]] = nb.getParticleParameters(i)[0]._value
    for q in charges:
        g.addParticle(q, 0.1, 0.0)
    for i, j in _intramolecular_pairs(sub, index):
        g.addException(i, j, 0.0, 0.1, 0.0)
    if box is None:
        g.setNonbondedMethod(openmm.NonbondedForce.NoCutoff)
    else:
        g.setNonbondedMethod(openmm.NonbondedForce.PME)
        g.setCutoffDistance(coulomb_cutoff_nm(box))
        g.setEwaldErrorTolerance(COULOMB_EWALD_TOLERANCE)
    g.setUseDispersionCorrection(False)
    return g


def _intermolecular_dispersion(nb, sub, index: Sequence[int], n_atoms: int, box):
    """CustomNonbondedForce of :data:`DISPERSION_ENERGY` over all ``n_atoms`` atoms: the teacher's
    Lennard-Jones sigma and epsilon (``nb``, built for ``sub``) on the atoms of ``sub`` (``index``
    maps them), epsilon 0 elsewhere; every pair inside a residue excluded. Periodic with cutoff
    :func:`coulomb_cutoff_nm` and the long-range correction when ``box`` is given, else no cutoff."""
    import openmm

    g = openmm.CustomNonbondedForce(DISPERSION_ENERGY)
    g.addPerParticleParameter("sig")
    g.addPerParticleParameter("eps")
    params = [[0.1, 0.0] for _ in range(int(n_atoms))]
    for i in range(nb.getNumParticles()):
        _q, sig, eps = nb.getParticleParameters(i)
        params[index[i]] = [sig._value, eps._value]
    for p in params:
        g.addParticle(p)
    for i, j in _intramolecular_pairs(sub, index):
        g.addExclusion(i, j)
    if box is None:
        g.setNonbondedMethod(openmm.CustomNonbondedForce.NoCutoff)
    else:
        g.setNonbondedMethod(openmm.CustomNonbondedForce.CutoffPeriodic)
        g.setCutoffDistance(coulomb_cutoff_nm(box))
        g.setUseLongRangeCorrection(True)
    return g


def _intramolecular_nonbonded(nb, sub, index: Sequence[int]):
    """CustomBondForce of the teacher's non-bonded energy between the atoms of each residue
    of ``sub`` (``nb``: its NonbondedForce built with NoCutoff, Lorentz-Berthelot LJ), with
    the teacher's OPLS geometric mixing (as :func:`cgaa.teacher.create_system`): plain pairs
    q_i q_j, sqrt(s_i s_j), sqrt(e_i e_j); 1-4 exceptions their scaled charge product and
    epsilon with sqrt(s_i s_j); pairs excluded by the force field are left out."""
    import math

    import openmm

    from cgaa.teacher import opls_sigma

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
    for res in sub.residues():
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
                    eps = eps14  # lj14scale · sqrt(e_i e_j), as in cgaa.teacher
                else:
                    qq = qi * qj
                if qq != 0.0 or eps != 0.0:
                    g.addBond(index[i], index[j], [qq, sig, eps])
    return g


def check_prior_fits(system, name: str) -> None:
    """ValueError if prior ``name`` cannot go into ``system``: ``teacher_coulomb`` into a System
    that already has a NonbondedForce (an MM force field's), whose charges it would count twice."""
    import openmm

    if COULOMB in PRIORS[check_prior(name)] and any(isinstance(f, openmm.NonbondedForce)
                                                    for f in system.getForces()):
        raise ValueError(f"prior {name!r} adds the Coulomb energy between molecules, but the System already "
                         "has a NonbondedForce (e.g. an MM force field's): its charges (and Lennard-Jones) "
                         "would be counted twice; use a model with an intramolecular prior (teacher_intra) there")


def add_prior(system, topology, name: str, atoms: Optional[Sequence[int]] = None,
              force_group: int = 0) -> int:
    """Add the forces of prior ``name`` to ``system`` in ``force_group``; returns the number
    of terms added (0 for ``"none"``)."""
    check_prior_fits(system, name)
    n = 0
    for f in prior_forces(topology, name, atoms):
        f.setForceGroup(int(force_group))
        system.addForce(f)
        for count in ("getNumBonds", "getNumAngles", "getNumTorsions"):
            if hasattr(f, count):
                n += getattr(f, count)()
    return n


class PriorEvaluator:
    """Energy (eV) and forces (eV/Å) of a prior for one topology, on OpenMM's Reference
    platform in double precision.

    >>> ev = PriorEvaluator(topology, "teacher_bonded")      # doctest: +SKIP
    >>> e_eV, f_eV_per_A = ev.compute(positions_A, cell_A)   # doctest: +SKIP
    """

    def __init__(self, topology, name: str):
        self.name = check_prior(name)
        self.topology = topology
        self.context = self._context(topology.getPeriodicBoxVectors())

    def _context(self, box):
        """A Reference-platform Context of the prior's forces, their cutoffs (if any) set for ``box``
        (OpenMM box vectors, nm; None: not periodic)."""
        import copy

        import openmm

        system = openmm.System()
        for _ in range(self.topology.getNumAtoms()):
            system.addParticle(1.0)
        top = self.topology
        if box is not None:
            system.setDefaultPeriodicBoxVectors(*box)
            top = copy.copy(self.topology)  # the same atoms and residues, the cutoffs chosen for this box
            top.setPeriodicBoxVectors(box)
        add_prior(system, top, self.name)
        self._cutoffs = [f.getCutoffDistance()._value for f in system.getForces()
                         if isinstance(f, (openmm.NonbondedForce, openmm.CustomNonbondedForce))
                         and f.usesPeriodicBoundaryConditions()]
        return openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))

    def _fit(self, cell: Optional[np.ndarray]) -> None:
        """Rebuild the Context for ``cell`` (Å) when it is too small for the current cutoffs
        (a compressed box: OpenMM needs each cutoff below half the shortest height); the
        new cutoffs, chosen for ``cell``, then serve every later call. The PME energy does
        not depend on the cutoff (to the Ewald tolerance); the dispersion's, with its
        long-range correction, depends on it only through the structure beyond it (0.7 % in
        a 6-molecule test box, less in a liquid)."""
        if cell is None or not self._cutoffs:
            return
        from cgaa.openmm.system import box_heights_nm
        from cgaa.units import angstrom_to_nm, box_vectors_nm

        if max(self._cutoffs) >= 0.5 * float(box_heights_nm(angstrom_to_nm(np.asarray(cell, dtype=float))).min()):
            self.context = self._context(box_vectors_nm(cell))

    def compute(self, positions: np.ndarray, cell: Optional[np.ndarray] = None) -> Tuple[float, np.ndarray]:
        """Prior energy (eV) and forces (N×3, eV/Å) at ``positions`` (Å) in ``cell`` (3×3 rows, Å)."""
        from cgaa.teacher import context_energy_forces

        self._fit(cell)
        return context_energy_forces(self.context, positions, cell, what="the prior's topology")

    def stress(self, positions: np.ndarray, cell: np.ndarray) -> np.ndarray:
        """Prior stress (3×3, eV/Å³, ASE sign) at ``positions`` (Å) in ``cell`` (3×3 rows, Å),
        by :func:`cgaa.teacher.context_stress`."""
        from cgaa.teacher import context_stress

        self._fit(cell)
        return context_stress(self.context, positions, cell, what="the prior's topology")


def topology_for_atoms(atoms, grain_index: Optional[Sequence[int]] = None):
    """OpenMM Topology of ASE ``Atoms`` for a prior: from the per-atom ``resname``/``grain``
    arrays when present (frames written by ``cgaa sample``), else perceived bonds and the
    grains' readable names as residue names."""
    cell = np.asarray(atoms.cell[:], dtype=float) if atoms.pbc.any() else None
    if "resname" in atoms.arrays and "grain" in atoms.arrays:
        from cgaa.teacher import topology_from_residues

        return topology_from_residues(atoms.arrays["resname"], atoms.arrays["grain"], cell)
    from cgaa.openmm.system import topology_from_atoms

    return topology_from_atoms(atoms, grain_index=grain_index)[0]


def subtract_prior(atoms_list: Iterable, name: str, *, source: str = "frames",
                   reference: Optional[object] = None, grain_index: Optional[Sequence[int]] = None) -> int:
    """Replace ``REF_energy``/``REF_forces`` (and ``REF_stress`` where present) of ASE frames of
    ONE system by their residual over prior ``name`` (in place); ``info['prior']`` records it.
    Returns the number of frames.

    reference: the frame whose bonds define the topology (default: the first), e.g. the most
    relaxed one. ValueError naming ``source`` if the prior cannot be built for the system.
    """
    from cgaa.data.extxyz import STRESS

    name = check_prior(name)
    frames = list(atoms_list)
    if name == "none" or not frames:
        return 0
    ref = reference if reference is not None else frames[0]
    try:
        evaluator = PriorEvaluator(topology_for_atoms(ref, grain_index), name)
    except ValueError as err:
        raise ValueError(f"{source}: {err}") from None
    for at in frames:
        if at.info.get("prior", "none") != "none":
            raise ValueError(f"{source}: frame already holds residual labels over prior {at.info['prior']!r}")
        cell = np.asarray(at.cell[:], dtype=float) if at.pbc.any() else None
        e, f = evaluator.compute(at.positions, cell)
        at.info["REF_energy"] = float(at.info["REF_energy"]) - e
        at.arrays["REF_forces"] = np.asarray(at.arrays["REF_forces"], dtype=float) - f
        if STRESS in at.info and cell is not None:
            at.info[STRESS] = np.asarray(at.info[STRESS], dtype=float) - evaluator.stress(at.positions, cell)
        at.info["prior"] = name
    return len(frames)


__all__ = ["COULOMB", "DISPERSION", "PRIORS", "PRIOR_FORCE_PREFIX", "PriorEvaluator", "add_prior", "check_prior",
           "check_prior_fits", "coulomb_cutoff_nm", "prior_forces",
           "subtract_prior", "topology_for_atoms"]
