"""A prior's OpenMM forces, composed from its list of terms (:mod:`cgaa.priors.terms`)."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import openmm
from openmm import app

from cgaa.core.priorspec import PRESETS, check_prior, prior_terms
from cgaa.priors.base import TeacherReference
from cgaa.priors.terms import TERMS
from cgaa.teacher.forcefield import load_forcefield

#: Preset name → the names of its OpenMM forces (``PRIOR_FORCE_PREFIX`` + each of these).
PRIORS: Dict[str, Tuple[str, ...]] = {name: tuple(TERMS[k].force_name for k in keys) for name, keys in PRESETS.items()}


def subtopology(topology, atoms: Sequence[int]):
    """A Topology of the residues of ``atoms`` (each residue wholly inside) and the map from
    its atom order to the original indices. ValueError naming a residue only partly inside."""
    sel = set(int(a) for a in atoms)
    sub = app.Topology()
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


def teacher_reference(topology, name: str, atoms: Optional[Sequence[int]] = None) -> TeacherReference:
    """The teacher force field's System for ``topology`` (or the residues of ``atoms``), which
    every term of prior ``name`` reads. ValueError (OpenMM's message names the residue) for
    molecules the teacher force field does not know."""
    if atoms is not None:
        sub, index = subtopology(topology, atoms)
    else:
        sub, index = topology, list(range(topology.getNumAtoms()))
    try:  # templates are matched by element and bond graph, so residue names do not matter
        ref = load_forcefield().createSystem(sub, nonbondedMethod=app.NoCutoff, constraints=None, rigidWater=False)
    except ValueError as err:
        raise ValueError(f"prior {name!r}: the teacher force field cannot parametrise the topology: {err}") from None
    return TeacherReference(system=ref, sub=sub, index=index, n_atoms=topology.getNumAtoms(),
                            box=topology.getPeriodicBoxVectors())


def prior_forces(topology, name: str, atoms: Optional[Sequence[int]] = None) -> List:
    """The OpenMM forces of prior ``name`` (a preset or terms joined by ``+``) for ``topology``
    (or the residues of ``atoms``), indexed by the atoms of ``topology``, one or none per term in
    :data:`cgaa.core.priorspec.TERMS` order. Periodic (minimum-image) when the topology has a box,
    so wrapped molecules are handled. Empty for ``"none"``.

    ValueError (OpenMM's message names the residue) for molecules the teacher force field
    does not know.
    """
    terms = prior_terms(name)
    if not terms:
        return []
    ref = teacher_reference(topology, check_prior(name), atoms)
    out: List = []
    for key in terms:
        out.extend(TERMS[key].forces(ref))
    return out


def check_prior_fits(system, name: str) -> None:
    """ValueError if prior ``name`` cannot go into ``system``: a prior with terms between
    molecules (``coulomb``, ``dispersion``) into a System that already has a NonbondedForce (an
    MM force field's), whose charges and Lennard-Jones it would count twice."""
    between = [TERMS[k].description for k in prior_terms(name) if TERMS[k].between_molecules]
    if between and any(isinstance(f, openmm.NonbondedForce) for f in system.getForces()):
        raise ValueError(f"prior {name!r} adds {' and '.join(between)} between molecules, but the System already "
                         "has a NonbondedForce (e.g. an MM force field's): its charges (and Lennard-Jones) "
                         "would be counted twice; use a model with an intramolecular prior (teacher_intra) there")


def add_prior(system, topology, name: str, atoms: Optional[Sequence[int]] = None,
              force_group: int = 0) -> int:
    """Add the forces of prior ``name`` to ``system`` in ``force_group``; returns the number
    of bonded terms added (bonds, angles, torsions and intramolecular pairs; 0 for ``"none"``)."""
    check_prior_fits(system, name)
    n = 0
    for f in prior_forces(topology, name, atoms):
        f.setForceGroup(int(force_group))
        system.addForce(f)
        for count in ("getNumBonds", "getNumAngles", "getNumTorsions"):
            if hasattr(f, count):
                n += getattr(f, count)()
    return n


__all__ = ["PRIORS", "add_prior", "check_prior_fits", "prior_forces", "subtopology", "teacher_reference"]
