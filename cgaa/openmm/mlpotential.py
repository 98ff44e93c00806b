"""openmm-ml plugin: ``MLPotential('cgaa', model=...)``.

Registered through the ``openmmml.potentials`` entry point (``pyproject.toml``)::

    from openmmml import MLPotential
    potential = MLPotential("cgaa", model="model.pt")      # model=None: the shipped default
    system = potential.createSystem(pdb.topology)
    mixed = potential.createMixedSystem(pdb.topology, mm_system, ml_atoms)

This module is imported whenever openmm-ml is, so it imports nothing heavy at module
level (no torch): the model is loaded when a System is created.

Options of ``MLPotential('cgaa', ...)`` (also accepted by ``createSystem``, which wins):

* ``model``: deployed-model path, DeployedModel or eager CGAAModel (None: shipped default);
* ``outputs_forces``: see :func:`cgaa.openmm.make_torch_force` (default True);
* ``properties``: TorchForce properties, passed through (leave ``useCUDAGraphs`` off: the model has data-dependent shapes; docs/openmm.md).
"""
from __future__ import annotations

from typing import Any, Iterable, Optional

import sys


class _ImplFactoryBase:
    """Stand-in for ``openmmml.mlpotential.MLPotentialImplFactory`` (duck-typed API)."""


class _ImplBase:
    """Stand-in for ``openmmml.mlpotential.MLPotentialImpl`` (duck-typed API)."""

    def getSupportedEmbeddings(self) -> list:
        return []

    def getMLLongRange(self):
        return None

    def createMixedSystem(self, *args, **kwargs):
        raise NotImplementedError("cgaa has no potential-specific embedding; use 'mechanical'")


# Subclass openmm-ml's bases when openmm-ml is (being) imported: it loads this module from
# its entry-point loop after defining them. Importing openmmml here ourselves would be
# circular (its loop would load this half-initialised module), and openmm-ml only
# duck-types the objects, so without it the stand-ins are used.
_omm = sys.modules.get("openmmml.mlpotential")
MLPotentialImplFactory = getattr(_omm, "MLPotentialImplFactory", _ImplFactoryBase)
MLPotentialImpl = getattr(_omm, "MLPotentialImpl", _ImplBase)

_OPTIONS = ("model", "outputs_forces", "properties")


class CGAAPotentialImplFactory(MLPotentialImplFactory):
    """Creates :class:`CGAAPotentialImpl` objects for openmm-ml."""

    def createImpl(self, name: str, model: Any = None, **args: Any) -> "CGAAPotentialImpl":
        unknown = sorted(set(args) - set(_OPTIONS))
        if unknown:
            raise ValueError(f"MLPotential('{name}'): unknown option(s) {', '.join(unknown)} "
                             f"(known: {', '.join(_OPTIONS)})")
        return CGAAPotentialImpl(name, model=model, **args)


class CGAAPotentialImpl(MLPotentialImpl):
    """openmm-ml implementation of the CGAA potential (a TorchForce, see :mod:`cgaa.openmm`).

    The network is short-ranged (a cutoff between grain centres); a model whose classical prior
    acts between molecules (``coulomb``: PME; ``dispersion``: a periodic r⁻⁶ sum with its
    long-range correction, e.g. the shipped ``teacher_dispersion``) carries long-range
    interactions, so :meth:`getMLLongRange` is True for it and False otherwise.
    """

    def __init__(self, name: str = "cgaa", model: Any = None, outputs_forces: Optional[bool] = None,
                 properties: Optional[dict] = None):
        self.name = name
        self.model = model
        self.outputs_forces = outputs_forces
        self.properties = properties
        self._deployed = None

    def _resolve(self, model: Any):
        from cgaa.openmm.torchforce import resolve_model

        if model is not None and model is not self.model:
            return resolve_model(model)
        if self._deployed is None:
            self._deployed = resolve_model(self.model)
        return self._deployed

    def getMLLongRange(self) -> bool:
        """Whether the potential holds long-range interactions: its prior has a term between
        molecules (PME Coulomb or the dispersion sum). Loads the model (its metadata names the prior)."""
        from cgaa.priors import TERMS, prior_terms

        return any(TERMS[k].between_molecules for k in prior_terms(self._resolve(None).config.prior))

    def getSupportedEmbeddings(self) -> list:
        return []

    def addForces(self, topology, system, atoms: Optional[Iterable[int]], forceGroup: int,
                  **args: Any) -> None:
        """Add the CGAA TorchForce to ``system`` for ``atoms`` (None: all) in ``forceGroup``."""
        from cgaa.openmm.system import add_cgaa_force

        unknown = sorted(set(args) - set(_OPTIONS) - {"mlLongRange", "linkAtomDistances"})
        if unknown:
            raise ValueError(f"MLPotential('{self.name}').createSystem: unknown option(s) "
                             f"{', '.join(unknown)} (known: {', '.join(_OPTIONS)})")
        deployed = self._resolve(args.get("model"))
        outputs_forces = args.get("outputs_forces", self.outputs_forces)
        properties = args.get("properties", self.properties)
        add_cgaa_force(system, topology, deployed, atoms=None if atoms is None else list(atoms),
                       outputs_forces=outputs_forces, force_group=forceGroup, properties=properties)
