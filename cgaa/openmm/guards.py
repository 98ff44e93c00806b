"""What keeps CGAA MD inside the region its model was trained on, and molecules whole under a barostat.

* :func:`add_hbond_constraints` — bonds to H at the teacher's equilibrium lengths (or typical X–H
  lengths for residues the teacher does not know);
* :func:`add_bond_guard` — a flat-bottom restraint, zero within ±0.1 Å of each bond's teacher length;
* :func:`add_contact_guard` — a repulsive wall between atoms of different grains closer than the
  model's training data came;
* :func:`add_molecule_bonds` — zero-strength bonds telling OpenMM which atoms form a molecule.

Units: OpenMM's (nm, kJ/mol); the contact floor comes in Å and converts through :mod:`cgaa.core.units`.
"""
from __future__ import annotations

import functools
from typing import Iterable, Optional, Sequence, Tuple

import openmm

from cgaa.core import units
from cgaa.priors import PRIOR_FORCE_PREFIX
from cgaa.teacher.forcefield import check_topology, create_system as teacher_system


#: Name of the zero-strength bond force that tells OpenMM which atoms form a molecule.
MOLECULE_BONDS_NAME = "CGAAMoleculeBonds"


def add_molecule_bonds(system, topology, atoms: Optional[Iterable[int]] = None):
    """Add a zero-strength ``HarmonicBondForce`` over ``topology``'s bonds (within ``atoms``).

    It adds no energy; it tells OpenMM which atoms form a molecule, so a
    ``MonteCarloBarostat`` scales molecule centres instead of pulling bonds apart.
    Returns the force (None if the topology has no bonds).
    """
    keep = None if atoms is None else set(int(a) for a in atoms)
    bonds = [(b[0].index, b[1].index) for b in topology.bonds()
             if keep is None or (b[0].index in keep and b[1].index in keep)]
    if not bonds:
        return None
    f = openmm.HarmonicBondForce()
    f.setName(MOLECULE_BONDS_NAME)
    for i, j in bonds:
        f.addBond(i, j, 0.1, 0.0)
    f.setUsesPeriodicBoundaryConditions(system.usesPeriodicBoundaryConditions())
    system.addForce(f)
    return f


#: Fallback X–H bond lengths (nm) for residues the teacher force field does not know.
XH_BOND_NM = {"C": 0.109, "N": 0.101, "O": 0.0945, "S": 0.134, "B": 0.119, "P": 0.142}


#: Cutoff (nm) of the teacher System :func:`teacher_bond_lengths` builds: only its bond
#: parameters are read, and a short cutoff lets small boxes through.
TEACHER_BONDS_CUTOFF_NM = 0.3


BondLengths = Tuple[Tuple[int, int, float], ...]


def bond_lengths(forces) -> BondLengths:
    """(i, j, r0 in nm) of every bond of the given ``HarmonicBondForce``s, in order."""
    out = []
    for f in forces:
        for b in range(f.getNumBonds()):
            i, j, r0, _ = f.getBondParameters(b)
            out.append((i, j, r0.value_in_unit(openmm.unit.nanometer)))
    return tuple(out)


@functools.lru_cache(maxsize=4)
def teacher_bond_lengths(topology) -> Optional[BondLengths]:
    """(i, j, r0 in nm) for every bond of ``topology`` per the teacher force field, or None
    when the teacher does not know its residues. One teacher System serves both the H-bond
    constraints and the bond guard of a simulation."""
    try:
        ref = teacher_system(topology, cutoff=TEACHER_BONDS_CUTOFF_NM)
    except ValueError:
        return None
    return bond_lengths(f for f in ref.getForces() if isinstance(f, openmm.HarmonicBondForce))


def _teacher_takes(topology) -> bool:
    """Whether :func:`teacher_bond_lengths` gets past the teacher's own checks
    (:func:`cgaa.teacher.forcefield.check_topology` at :data:`TEACHER_BONDS_CUTOFF_NM`) for
    ``topology``. (Its force-field parametrisation, which matches templates by bond graph,
    is what the prior already did.)"""

    try:
        check_topology(topology, TEACHER_BONDS_CUTOFF_NM)
    except ValueError:
        return False
    return True


def prior_bond_lengths(system, topology) -> Optional[BondLengths]:
    """:func:`teacher_bond_lengths` read off a teacher prior (every one in :data:`cgaa.priors.PRIORS` but ``none``) already in ``system``
    (its ``HarmonicBondForce``, added for every atom of ``topology`` by
    :func:`create_system`, holds the teacher's r0 of every bond, in the same order), so the
    topology is not parametrised a second time. None where that would not give the same
    answer: no such prior force in ``system`` (or one over some molecules only), or a
    topology ``teacher_bond_lengths`` refuses (no box, a box too small for its cutoff, residue names the teacher does not
    know: those get :data:`XH_BOND_NM` constraint lengths and no bond guard).
    """
    name = PRIOR_FORCE_PREFIX + "HarmonicBondForce"
    found = [f for f in system.getForces() if isinstance(f, openmm.HarmonicBondForce) and f.getName() == name]
    # one bond force over all of the topology's bonds (not a prior of some molecules only,
    # as add_cgaa_force(atoms=...) adds), and a topology the teacher route would take
    if len(found) != 1 or found[0].getNumBonds() != topology.getNumBonds() or not _teacher_takes(topology):
        return None
    return bond_lengths(found)


def add_hbond_constraints(system, topology, bonds: Optional[BondLengths] = None) -> int:
    """Constrain every bond to a hydrogen (OpenMM ``HBonds``); returns the number added.

    Lengths are the teacher force field's equilibrium bond lengths (``cgaa.teacher.forcefield``); for
    residues it does not know, typical X–H lengths (:data:`XH_BOND_NM`). Constraining
    X–H bonds keeps the fastest, stiffest motions out of the ML model's hands: a learned
    potential is least reliable for large bond stretches it never saw in training.
    bonds: the teacher's (i, j, r0 nm) when already known (default:
    :func:`teacher_bond_lengths`).
    """
    atoms = list(topology.atoms())
    is_h = [a.element is not None and a.element.symbol == "H" for a in atoms]
    if bonds is None:
        bonds = teacher_bond_lengths(topology)
    if bonds is not None:
        n = 0
        for i, j, r0 in bonds:
            if is_h[i] or is_h[j]:
                system.addConstraint(i, j, r0)
                n += 1
        return n
    n = 0
    for a, b in topology.bonds():
        if a.element is None or b.element is None:
            continue
        syms = {a.element.symbol, b.element.symbol}
        if "H" not in syms or syms == {"H"}:
            continue
        heavy = (syms - {"H"}).pop()
        system.addConstraint(a.index, b.index, XH_BOND_NM.get(heavy, 0.1))
        n += 1
    return n


#: Bond guard: half-width of the flat bottom (nm) and stiffness beyond it (kJ/mol/nm²).
BOND_GUARD_MARGIN_NM = 0.01


BOND_GUARD_K = 2.0e5


BOND_GUARD_NAME = "CGAABondGuard"


def add_bond_guard(system, topology, margin_nm: float = BOND_GUARD_MARGIN_NM, k: float = BOND_GUARD_K,
                   bonds: Optional[BondLengths] = None) -> int:
    """Flat-bottom restraint on every bond: zero while |r − r0| ≤ margin, k/2·(|r − r0| − margin)² beyond.

    r0 are the teacher force field's equilibrium lengths (nm). Inside the margin (0.1 Å by
    default, about twice the thermal amplitude of a bond at room temperature) it adds
    nothing to the ML potential; beyond it, it stops a bond from being pulled into the
    region the model never saw in training, where a learned energy can turn downhill.
    Returns the number of guarded bonds (0 when the teacher does not know the residues).
    bonds: the teacher's (i, j, r0 nm) when already known (default: :func:`teacher_bond_lengths`).
    """
    if bonds is None:
        bonds = teacher_bond_lengths(topology)
    if not bonds:
        return 0
    guard = openmm.CustomBondForce("0.5*kguard*step(dr - margin)*(dr - margin)^2; dr = abs(r - r0)")
    guard.setName(BOND_GUARD_NAME)
    guard.addGlobalParameter("kguard", float(k))
    guard.addGlobalParameter("margin", float(margin_nm))
    guard.addPerBondParameter("r0")
    guard.setUsesPeriodicBoundaryConditions(topology.getPeriodicBoxVectors() is not None)
    for i, j, r0 in bonds:
        guard.addBond(i, j, [r0])
    system.addForce(guard)
    return len(bonds)


#: Contact guard: the wall sits at this fraction of the closest inter-grain approach of each
#: element pair in the model's training data; stiffness inside it (kJ/mol/nm²).
CONTACT_GUARD_FRACTION = 0.9


CONTACT_GUARD_K = 2.0e5


CONTACT_GUARD_NAME = "CGAAContactGuard"


def add_contact_guard(system, topology, floor: Sequence[Sequence[float]],
                      fraction: float = CONTACT_GUARD_FRACTION, k: float = CONTACT_GUARD_K) -> int:
    """Repulsive wall between atoms of different grains (residues) that come closer than the
    model's training data ever did.

    floor: ``[[Z1, Z2, d_min Å], ...]``, the closest approach of each element pair between
        grains in the training frames (``ModelConfig.contact_floor``, from
        :func:`cgaa.data.contacts.closest_contacts`).
    For a pair at r (nm) with wall r_w = ``fraction`` · d_min (converted to nm):
    E = k/2 · (r_w − r)² for r < r_w, else 0 (k in kJ/mol/nm²). Outside the walls it adds
    nothing, so it leaves every training configuration's energy alone; inside, where a
    learned potential has no data and may turn attractive (a Li⁺ falling onto a carbon), it
    pushes the atoms apart, as the bond guard does for bonds. Pairs of elements not in
    ``floor`` are not guarded. Returns the number of guarded atoms (0: nothing added).
    """
    zs = [a.element.atomic_number if a.element is not None else 0 for a in topology.atoms()]
    wall = {}
    for z1, z2, d in floor:
        if not float(d) > 0:
            raise ValueError(f"contact floor of elements {int(z1)}-{int(z2)} must be > 0 Å, got {d}")
        r = float(units.angstrom_to_nm(float(fraction) * float(d)))
        wall[(int(z1), int(z2))] = wall[(int(z2), int(z1))] = r
    kinds = sorted(set(zs) & {a for a, _ in wall})
    if not kinds:
        return 0
    index = {z: i for i, z in enumerate(kinds)}
    n = len(kinds) + 1  # the last kind: atoms of elements without walls
    table = [wall.get((kinds[a], kinds[b]), 0.0) if a < n - 1 and b < n - 1 else 0.0
             for b in range(n) for a in range(n)]  # Discrete2DFunction: first index fastest
    force = openmm.CustomNonbondedForce("0.5*kcontact*step(rw - r)*(rw - r)^2; rw = cwall(kind1, kind2)")
    force.setName(CONTACT_GUARD_NAME)
    force.addGlobalParameter("kcontact", float(k))
    force.addTabulatedFunction("cwall", openmm.Discrete2DFunction(n, n, table))
    force.addPerParticleParameter("kind")
    for z in zs:
        force.addParticle([float(index.get(z, n - 1))])
    periodic = topology.getPeriodicBoxVectors() is not None
    force.setNonbondedMethod(openmm.CustomNonbondedForce.CutoffPeriodic if periodic
                             else openmm.CustomNonbondedForce.CutoffNonPeriodic)
    force.setCutoffDistance(max(wall.values()))
    force.setUseLongRangeCorrection(False)
    for res in topology.residues():  # no wall inside a grain: the model and its prior hold it
        idx = [a.index for a in res.atoms()]
        for a in range(len(idx)):
            for b in range(a + 1, len(idx)):
                force.addExclusion(idx[a], idx[b])
    system.addForce(force)
    return sum(z in index for z in zs)
