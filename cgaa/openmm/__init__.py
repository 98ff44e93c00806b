"""CGAA in OpenMM: Systems with an ``openmmtorch.TorchForce`` wrapping a deployed model.

>>> from openmm.app import PDBFile
>>> from cgaa.openmm import create_system
>>> pdb = PDBFile("box.pdb")                       # from `cgaa build`
>>> system = create_system(pdb.topology, "model.pt")   # or model=None: the shipped default

:func:`add_cgaa_force` adds the potential to an existing System instead. The same
potential is available through openmm-ml as ``MLPotential('cgaa', model=...)``.

This package imports torch/openmm lazily (``__getattr__``), so importing it (e.g. by the
openmm-ml entry point, which every ``import openmmml`` loads) is cheap.

Modules: :mod:`~cgaa.openmm.system` (``create_system``, ``add_cgaa_force``),
:mod:`~cgaa.openmm.torchforce` (the TorchForce and model resolution), :mod:`~cgaa.openmm.wrapper`
(the scripted module holding a topology's buffers), :mod:`~cgaa.openmm.guards` (H-bond
constraints, bond and contact guards, molecule bonds), :mod:`~cgaa.openmm.mts` (r-RESPA) and
:mod:`~cgaa.openmm.mlpotential` (openmm-ml). May import :mod:`cgaa.core`, :mod:`cgaa.systems`,
:mod:`cgaa.teacher` and :mod:`cgaa.priors`.
"""
from __future__ import annotations

__all__ = [
    "create_system", "add_cgaa_force", "make_torch_force", "resolve_model", "check_topology",
    "check_cutoff", "add_molecule_bonds", "topology_from_atoms", "default_model_path",
    "ensure_torch_plugins", "CGAAForceModule", "DEFAULT_MODEL_NAME", "add_hbond_constraints", "add_bond_guard",
    "add_contact_guard",
]

#: Where each public name lives (imported on first use: openmm-ml imports this package at start-up).
_WHERE = {
    "create_system": "system", "add_cgaa_force": "system",
    "make_torch_force": "torchforce", "resolve_model": "torchforce", "check_topology": "torchforce",
    "check_cutoff": "torchforce", "default_model_path": "torchforce", "ensure_torch_plugins": "torchforce",
    "DEFAULT_MODEL_NAME": "torchforce",
    "add_molecule_bonds": "guards", "add_hbond_constraints": "guards", "add_bond_guard": "guards",
    "add_contact_guard": "guards",
    "CGAAForceModule": "wrapper",
}


def __getattr__(name: str):
    if name == "topology_from_atoms":  # kept here for scripts; it lives with the other topologies
        from cgaa.systems.topology import topology_from_atoms

        return topology_from_atoms
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"cgaa.openmm.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'cgaa.openmm' has no attribute {name!r}")
