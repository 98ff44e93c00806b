"""Energies, forces and stresses of a prior on given coordinates (eV, eV/Å, eV/Å³ through
:mod:`cgaa.core.units`), and labels turned into residuals over a prior."""
from __future__ import annotations

import copy
from typing import Iterable, Optional, Sequence, Tuple

import numpy as np
import openmm

from cgaa.core.extxyz import STRESS
from cgaa.core.priorspec import check_prior
from cgaa.core.units import angstrom_to_nm, box_heights_nm, box_vectors_nm
from cgaa.priors.compose import add_prior
from cgaa.systems.topology import topology_from_atoms, topology_from_residues
from cgaa.teacher.forcefield import context_energy_forces, context_stress


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

        if max(self._cutoffs) >= 0.5 * float(box_heights_nm(angstrom_to_nm(np.asarray(cell, dtype=float))).min()):
            self.context = self._context(box_vectors_nm(cell))

    def compute(self, positions: np.ndarray, cell: Optional[np.ndarray] = None) -> Tuple[float, np.ndarray]:
        """Prior energy (eV) and forces (N×3, eV/Å) at ``positions`` (Å) in ``cell`` (3×3 rows, Å)."""

        self._fit(cell)
        return context_energy_forces(self.context, positions, cell, what="the prior's topology")

    def stress(self, positions: np.ndarray, cell: np.ndarray) -> np.ndarray:
        """Prior stress (3×3, eV/Å³, ASE sign) at ``positions`` (Å) in ``cell`` (3×3 rows, Å),
        by :func:`cgaa.teacher.forcefield.context_stress`."""

        self._fit(cell)
        return context_stress(self.context, positions, cell, what="the prior's topology")


def topology_for_atoms(atoms, grain_index: Optional[Sequence[int]] = None):
    """OpenMM Topology of ASE ``Atoms`` for a prior: from the per-atom ``resname``/``grain``
    arrays when present (frames written by ``cgaa sample``), else perceived bonds and the
    grains' readable names as residue names."""
    cell = np.asarray(atoms.cell[:], dtype=float) if atoms.pbc.any() else None
    if "resname" in atoms.arrays and "grain" in atoms.arrays:

        return topology_from_residues(atoms.arrays["resname"], atoms.arrays["grain"], cell)

    return topology_from_atoms(atoms, grain_index=grain_index)[0]


def subtract_prior(atoms_list: Iterable, name: str, *, source: str = "frames",
                   reference: Optional[object] = None, grain_index: Optional[Sequence[int]] = None) -> int:
    """Replace ``REF_energy``/``REF_forces`` (and ``REF_stress`` where present) of ASE frames of
    ONE system by their residual over prior ``name`` (in place); ``info['prior']`` records it.
    Returns the number of frames.

    reference: the frame whose bonds define the topology (default: the first), e.g. the most
    relaxed one. ValueError naming ``source`` if the prior cannot be built for the system.
    """

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


__all__ = ["PriorEvaluator", "subtract_prior", "topology_for_atoms"]
