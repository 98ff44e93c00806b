"""Build OpenMM Systems with the CGAA potential (a ``openmmtorch.TorchForce``).

Public entry points (re-exported by :mod:`cgaa.openmm`):

* :func:`create_system` — a new ``openmm.System`` for a topology: element masses, the
  periodic box, the CGAA TorchForce (and zero-strength bonds so a barostat scales whole
  molecules);
* :func:`add_cgaa_force` — add the CGAA TorchForce to an existing System (to combine it
  with other OpenMM forces, or to apply it to a subset of atoms);
* :func:`resolve_model` — a model argument (None, path, DeployedModel or eager
  CGAAModel) → :class:`cgaa.core.modelfile.DeployedModel`;
* :func:`check_topology` — refuse a topology the model does not cover or whose box is too
  small for the cutoff, naming the culprit.

Units at this boundary: nm, kJ/mol, kJ/mol/nm; the model works in Å, eV, eV/Å and
:mod:`cgaa.core.units` converts.
"""
from __future__ import annotations


from cgaa.core.units import box_matrix_nm
from cgaa.openmm.guards import add_bond_guard, add_contact_guard, add_hbond_constraints, add_molecule_bonds, prior_bond_lengths
from cgaa.openmm.torchforce import ModelLike, make_torch_force, resolve_model

import functools
import logging
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from cgaa.core import units
from cgaa.priors import add_prior, check_prior_fits


def add_cgaa_force(system, topology, model: ModelLike = None, atoms: Optional[Sequence[int]] = None,
                   outputs_forces: Optional[bool] = None, force_group: int = 0,
                   properties: Optional[dict] = None):
    """Add the CGAA TorchForce to an existing ``openmm.System`` and return the force.

    The System's default box (if it has one) is the periodic box; ``atoms`` restricts the
    model to a subset (e.g. an ML region combined with classical forces). A model's
    classical prior (:mod:`cgaa.priors`) is added too, for the same atoms. See
    :func:`make_torch_force` for the other arguments.
    """
    if system.getNumParticles() != topology.getNumAtoms():
        raise ValueError(f"System has {system.getNumParticles()} particles, topology {topology.getNumAtoms()} atoms")
    box = None
    if topology.getPeriodicBoxVectors() is not None or system.usesPeriodicBoundaryConditions():
        box = box_matrix_nm(system.getDefaultPeriodicBoxVectors())
    deployed = resolve_model(model)
    check_prior_fits(system, deployed.config.prior)  # before the System is changed
    force = make_torch_force(topology, deployed, atoms=atoms, periodic=box is not None,
                             outputs_forces=outputs_forces, box_vectors=box,
                             force_group=force_group, properties=properties)
    system.addForce(force)
    add_prior(system, topology, deployed.config.prior, atoms=atoms, force_group=force_group)
    return force


def create_system(topology, model: ModelLike = None, *, outputs_forces: Optional[bool] = None,
                  remove_cm_motion: bool = True, molecule_bonds: bool = True,
                  force_group: int = 0, properties: Optional[dict] = None,
                  constraints: Optional[str] = None, bond_guard: bool = False, contact_guard: bool = False,
                  cuda_graphs: Optional[bool] = None, neighbor_list: Optional[str] = None, skin: Optional[float] = None,
                  capacity_factor: float = 1.5):
    """An ``openmm.System`` for ``topology`` driven by the CGAA potential.

    topology: OpenMM Topology (one residue per grain, bonds e.g. from PDB CONECT records;
        its periodic box, in nm, is the System's box).
    model: None (the shipped default model), a deployed-model path, a DeployedModel or an
        eager CGAAModel.
    outputs_forces: see :func:`make_torch_force` (default: the model's own forces, both modes).
    remove_cm_motion: add a ``CMMotionRemover``.
    molecule_bonds: add zero-strength bonds so a barostat moves molecules as wholes.
    constraints: None or ``"hbonds"`` (constrain bonds to H, see :func:`add_hbond_constraints`).
    bond_guard: add the flat-bottom bond restraint of :func:`add_bond_guard`.
    contact_guard: add the repulsive wall of :func:`add_contact_guard` between atoms of
        different grains closer than the model's training data came
        (``model.config.contact_floor``; nothing is added for a model without one).

    cuda_graphs: on the CUDA platform, capture the CGAA force in a CUDA graph (OpenMM-Torch's
        ``useCUDAGraphs``) and evaluate it on the sync-free padded neighbour lists
        (``neighbor_list="auto"``: the CPU and Reference platforms keep the exact path and ignore
        the property). Default (None): on when this process sees a CUDA device
        (``torch.cuda.is_available()``), off otherwise, so a machine without a GPU does not pay for
        compiling the padded copy of the model (~5 s); True: on (e.g. a System serialised here
        for a GPU machine). ``cuda_graphs=False`` is the off switch: the exact path everywhere.
        A topology without a box gets no graphs (the padded lists need one).
    neighbor_list, skin, capacity_factor: see :func:`make_torch_force` (``neighbor_list``
        default: ``"auto"`` with ``cuda_graphs``, else ``"exact"``).

    A model trained over a classical prior (``model.config.prior``, see :mod:`cgaa.priors`)
    gets the prior's forces added next to its TorchForce, in the same ``force_group``; the
    constraint and bond-guard lengths are then read off its bond force
    (:func:`prior_bond_lengths`) instead of parametrising the topology again.
    Masses are the elements' (Da). Raises ValueError naming the atom or grain the model does
    not know, or the cutoff and box height when the box is too small.
    """
    import openmm

    system = openmm.System()
    box = topology.getPeriodicBoxVectors()
    if box is not None:
        system.setDefaultPeriodicBoxVectors(*box)
    for a in topology.atoms():
        if a.element is None:
            raise ValueError(f"topology atom {a.index} ({a.name} in residue {a.residue.name}) has no element")
        system.addParticle(a.element.mass)
    deployed = resolve_model(model)
    if cuda_graphs is None:
        import torch

        cuda_graphs = torch.cuda.is_available()
    graphs = bool(cuda_graphs) and box is not None
    if neighbor_list is None:
        neighbor_list = "auto" if graphs else "exact"
    force = make_torch_force(topology, deployed, outputs_forces=outputs_forces, force_group=force_group,
                             properties=properties, neighbor_list=neighbor_list, skin=skin,
                             capacity_factor=capacity_factor,
                             cuda_graphs=graphs and neighbor_list in ("auto", "sync_free"))
    system.addForce(force)
    add_prior(system, topology, deployed.config.prior, force_group=force_group)
    if molecule_bonds:
        add_molecule_bonds(system, topology)
    ckey = (constraints or "none").lower()
    if ckey not in ("none", "hbonds"):
        raise ValueError(f"constraints must be None, 'none' or 'hbonds', got {constraints!r}")
    # the teacher's bond lengths, from the prior's bond force when there is one (no second
    # parametrisation of the topology); None: teacher_bond_lengths
    bonds = prior_bond_lengths(system, topology) if (bond_guard or ckey == "hbonds") else None
    if bond_guard:
        add_bond_guard(system, topology, bonds=bonds)
    if ckey == "hbonds":
        add_hbond_constraints(system, topology, bonds=bonds)
    if contact_guard and deployed.config.contact_floor:
        add_contact_guard(system, topology, deployed.config.contact_floor)
    if remove_cm_motion:
        system.addForce(openmm.CMMotionRemover())
    return system


