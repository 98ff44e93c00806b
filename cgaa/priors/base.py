"""The one base class of every prior term (:class:`PriorTerm`) and the names their forces carry."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

#: Name given to the OpenMM forces of a prior (``CGAAPrior:<force>``).
PRIOR_FORCE_PREFIX = "CGAAPrior:"


@dataclass
class TeacherReference:
    """What every term reads its parameters from: the teacher force field's System for the
    molecules the prior covers (``system``, built without cutoff for ``sub``), the map from
    ``sub``'s atom order to the full topology (``index``), the full topology's atom count and
    its box (OpenMM box vectors, nm; None when not periodic)."""

    system: object
    sub: object
    index: Sequence[int]
    n_atoms: int
    box: Optional[object]

    def force(self, cls: str):
        """The teacher System's force of OpenMM class ``cls`` (None when it has none)."""
        for f in self.system.getForces():
            if type(f).__name__ == cls:
                return f
        return None


class PriorTerm:
    """One classical term of a prior: builds OpenMM forces (nm, kJ/mol) from the teacher's.

    Subclasses set ``key`` (the name in :data:`cgaa.core.priorspec.TERMS`), ``source`` (the
    teacher's OpenMM force class it reads), ``force_name`` (its forces are named
    ``PRIOR_FORCE_PREFIX + force_name``) and ``between_molecules`` (True when it acts between
    grains: it then adds net forces on grains and cannot join a System that already holds an
    MM ``NonbondedForce``), and implement :meth:`build`.
    """

    key: str = ""
    source: str = ""
    force_name: str = ""
    between_molecules: bool = False
    #: One line for model cards and error messages.
    description: str = ""

    def build(self, source_force, ref: TeacherReference):
        """The OpenMM force of this term (indexed by the full topology's atoms), or None."""
        raise NotImplementedError

    def forces(self, ref: TeacherReference) -> List:
        """This term's forces, named and with periodicity set from ``ref.box``; [] when the
        teacher has no ``source`` force for these molecules."""
        src = ref.force(self.source)
        if src is None:
            return []
        g = self.build(src, ref)
        if g is None:
            return []
        g.setName(PRIOR_FORCE_PREFIX + self.force_name)
        if not self.between_molecules:  # inter-molecular terms choose their own periodic method
            g.setUsesPeriodicBoundaryConditions(ref.box is not None)
        return [g]


__all__ = ["PRIOR_FORCE_PREFIX", "PriorTerm", "TeacherReference"]
