"""CGAA in OpenMM: Systems with an ``openmmtorch.TorchForce`` wrapping a deployed model.

>>> from openmm.app import PDBFile
>>> from cgaa.openmm import create_system
>>> pdb = PDBFile("box.pdb")                       # from `cgaa build`
>>> system = create_system(pdb.topology, "model.pt")   # or model=None: the shipped default

:func:`add_cgaa_force` adds the potential to an existing System instead. The same
potential is available through openmm-ml as ``MLPotential('cgaa', model=...)``.

This package imports torch/openmm lazily, so importing it (e.g. by the openmm-ml entry
point) is cheap.
"""
from __future__ import annotations

__all__ = [
    "create_system", "add_cgaa_force", "make_torch_force", "resolve_model", "check_topology",
    "check_cutoff", "add_molecule_bonds", "topology_from_atoms", "default_model_path",
    "ensure_torch_plugins", "CGAAForceModule", "DEFAULT_MODEL_NAME",
]

_SYSTEM = {"create_system", "add_cgaa_force", "make_torch_force", "resolve_model", "check_topology",
           "check_cutoff", "add_molecule_bonds", "topology_from_atoms", "default_model_path",
           "ensure_torch_plugins", "DEFAULT_MODEL_NAME"}


def __getattr__(name: str):
    if name in _SYSTEM:
        from cgaa.openmm import system

        return getattr(system, name)
    if name == "CGAAForceModule":
        from cgaa.openmm.wrapper import CGAAForceModule

        return CGAAForceModule
    raise AttributeError(f"module 'cgaa.openmm' has no attribute {name!r}")
