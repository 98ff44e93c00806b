"""The scripted module handed to ``openmmtorch.TorchForce``.

:class:`CGAAForceModule` holds a deployed (TorchScript) core model plus the topology's
buffers — the model's species index of each atom, the grain index of each atom and the
model's grain-type index of each grain — and converts between OpenMM's units (nm,
kJ/mol, kJ/mol/nm) and the model's (Å, eV, eV/Å) with the constants of
:mod:`cgaa.core.units`. It returns ``(energy, forces)`` so the TorchForce runs with
``setOutputsForces(True)``; with ``outputs_forces=False`` it returns the energy alone and
OpenMM-Torch differentiates it (conservative models only).

Positions from OpenMM are not wrapped into the box; the core model unwraps each grain by
minimum image itself, so nothing is wrapped here.

With a ``padded`` model (:class:`cgaa.core.padded.PaddedModel`) the module evaluates on
fixed-shape neighbour lists kept between calls (on every device, or on CUDA only): in its
sync-free mode nothing in ``forward`` reads values back to the host after the first call,
which OpenMM-Torch's ``useCUDAGraphs`` needs (docs/openmm.md, *CUDA graphs*).
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from cgaa.core import units


class CGAAForceModule(torch.nn.Module):
    """OpenMM-facing CGAA potential for one topology.

    Parameters
    ----------
    core: the deployed TorchScript core model (``DeployedModel.module``), Å/eV units.
    species: (n,) model species index of each CGAA atom.
    grain_index: (n,) grain of each CGAA atom, 0..G-1.
    grain_type: (G,) model grain-type index of each grain.
    atoms: indices (into the OpenMM System) of the atoms the model acts on, or None for
        all of them (then n equals the System's particle count).
    periodic: pass OpenMM's box vectors to the model (the topology has a box).
    outputs_forces: return (energy, forces) (True) or the energy alone (False).
    padded: None, or a :class:`cgaa.core.padded.PaddedModel` of the same weights (fixed-shape
        neighbour lists kept between calls; needs ``periodic``), used instead of ``core``
        on every device (``padded_on="any"``) or only when the positions are on a CUDA device
        (``padded_on="cuda"``: CPU runs keep the exact path; the choice reads the tensor's
        device, not its values, so it costs no synchronisation).

    ``forward(positions (N,3) nm, boxvectors (3,3) nm or None)`` returns the energy in
    kJ/mol and, with ``outputs_forces``, the forces (N,3) in kJ/mol/nm in the dtype of
    ``positions``; atoms outside ``atoms`` get zero force.
    """

    def __init__(self, core: torch.nn.Module, species: Sequence[int], grain_index: Sequence[int],
                 grain_type: Sequence[int], atoms: Optional[Sequence[int]] = None,
                 periodic: bool = True, outputs_forces: bool = True, padded: Optional[torch.nn.Module] = None,
                 padded_on: str = "any"):
        super().__init__()
        self.core = core
        if padded is not None:
            if not periodic:
                raise ValueError("the padded neighbour lists need a periodic box")
            if padded_on not in ("any", "cuda"):
                raise ValueError(f"padded_on must be 'any' or 'cuda', not {padded_on!r}")
            self.padded = padded  # TorchScript compiles the padded branch only when it exists
        self.padded_cuda_only = padded_on == "cuda"
        n = len(species)
        if len(grain_index) != n:
            raise ValueError(f"grain_index has {len(grain_index)} entries for {n} atoms")
        self.register_buffer("species", torch.as_tensor(np.asarray(species, dtype=np.int64)))
        self.register_buffer("grain_index", torch.as_tensor(np.asarray(grain_index, dtype=np.int64)))
        self.register_buffer("grain_type", torch.as_tensor(np.asarray(grain_type, dtype=np.int64)))
        self.subset = atoms is not None
        idx = np.arange(n) if atoms is None else np.asarray(list(atoms), dtype=np.int64)
        if len(idx) != n:
            raise ValueError(f"{len(idx)} atom indices given for {n} CGAA atoms")
        self.register_buffer("atoms", torch.as_tensor(idx))
        self.periodic = bool(periodic)
        self.outputs_forces = bool(outputs_forces)
        # unit conversions, all from cgaa.core.units
        self.angstrom_per_nm = float(units.ANGSTROM_PER_NM)
        self.kjmol_per_ev = float(units.KJMOL_PER_EV)
        self.force_factor = float(units.KJMOLNM_PER_EVANG)

    def forward(self, positions: Tensor, boxvectors: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        pos = positions
        if self.subset:
            pos = positions.index_select(0, self.atoms)
        pos = pos * self.angstrom_per_nm
        cell: Optional[Tensor] = None
        if self.periodic and boxvectors is not None:
            cell = boxvectors.to(pos.dtype) * self.angstrom_per_nm
        if hasattr(self, "padded"):  # compiled only when the module has one
            if pos.is_cuda or not self.padded_cuda_only:
                out = self.padded(pos, self.species, self.grain_index, self.grain_type, cell,
                                  self.outputs_forces, False)
            else:
                out = self.core(pos, self.species, self.grain_index, self.grain_type, cell,
                                self.outputs_forces, False)
        else:
            out = self.core(pos, self.species, self.grain_index, self.grain_type, cell,
                            self.outputs_forces, False)
        energy = out["energy"] * self.kjmol_per_ev
        if not self.outputs_forces:
            return energy, energy
        f = out["forces"].detach() * self.force_factor
        if self.subset:
            f = torch.zeros_like(positions).index_copy(0, self.atoms, f.to(positions.dtype))
        return energy.detach(), f.to(positions.dtype)


class CGAAEnergyModule(torch.nn.Module):
    """Energy-only view of a :class:`CGAAForceModule` (OpenMM-Torch backpropagates it)."""

    def __init__(self, inner: CGAAForceModule):
        super().__init__()
        self.inner = inner

    def forward(self, positions: Tensor, boxvectors: Optional[Tensor] = None) -> Tensor:
        return self.inner(positions, boxvectors)[0]


def script_force_module(core: torch.nn.Module, species, grain_index, grain_type,
                        atoms: Optional[Sequence[int]] = None, periodic: bool = True,
                        outputs_forces: bool = True, padded: Optional[torch.nn.Module] = None,
                        padded_on: str = "any") -> torch.jit.ScriptModule:
    """Build and TorchScript-compile the OpenMM-facing module (see :class:`CGAAForceModule`)."""
    inner = CGAAForceModule(core, species, grain_index, grain_type, atoms, periodic, outputs_forces,
                            padded, padded_on)
    module = inner if outputs_forces else CGAAEnergyModule(inner)
    return torch.jit.script(module.eval())
