"""Turn atoms and grain maps into the tensors a CGAA model takes, in its vocabulary.

Everything here is in the model's units (Å). Unknown elements or grain types raise a
ValueError naming the atom or grain and what the model knows.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch

from cgaa.core.model import ModelConfig
from cgaa.core.grains import GrainMap, atomic_grains, grains_from_atoms


def _symbol(z: int) -> str:
    from ase.data import chemical_symbols

    return chemical_symbols[int(z)]


def species_indices(numbers: Sequence[int], elements: Sequence[int]) -> np.ndarray:
    """Index of each atom's element in the model's element list (ValueError on unknown)."""
    lookup = {int(z): k for k, z in enumerate(elements)}
    out = np.empty(len(numbers), dtype=np.int64)
    for a, z in enumerate(numbers):
        k = lookup.get(int(z))
        if k is None:
            known = ", ".join(_symbol(e) for e in elements)
            raise ValueError(f"atom {a}: element {_symbol(z)} (Z={int(z)}) is not known by the model "
                             f"(it knows {known})")
        out[a] = k
    return out


def grain_type_indices(grain_map: GrainMap, grain_types: Sequence[str],
                       grain_type_names: Optional[Sequence[str]] = None) -> np.ndarray:
    """Index of each grain's chemistry key in the model's grain-type list (ValueError on unknown)."""
    lookup = {k: i for i, k in enumerate(grain_types)}
    out = np.empty(grain_map.n_grains, dtype=np.int64)
    for g, key in enumerate(grain_map.type_keys):
        i = lookup.get(key)
        if i is None:
            atoms = np.nonzero(grain_map.grain_index == g)[0]
            known = ", ".join(grain_type_names or grain_types)
            raise ValueError(
                f"grain {g} ({grain_map.type_names[g]}, atoms {atoms[0]}..{atoms[-1]}, key {key}) "
                f"is a grain type the model does not know (it knows {known})")
        out[g] = i
    return out


def vocabulary(grain_maps: Iterable[GrainMap], numbers: Iterable[Sequence[int]]) -> Tuple[List[int], List[str], List[str]]:
    """Sorted elements and grain types (keys, names) seen in some systems, for a new ModelConfig."""
    elements = sorted({int(z) for zs in numbers for z in zs})
    types: Dict[str, str] = {}
    for gm in grain_maps:
        for k, n in gm.unique_types().items():
            types.setdefault(k, n)
    keys = sorted(types, key=lambda k: (types[k], k))
    return elements, keys, [types[k] for k in keys]


def make_inputs(
    positions: np.ndarray,
    numbers: Sequence[int],
    grain_map: GrainMap,
    config: ModelConfig,
    cell: Optional[np.ndarray] = None,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> Dict[str, Optional[torch.Tensor]]:
    """Keyword arguments for ``CGAAModel.forward``: positions (Å), species, grain_index, grain_type, cell (Å)."""
    positions = np.asarray(positions, dtype=float)
    if positions.shape != (len(numbers), 3):
        raise ValueError(f"positions have shape {positions.shape}, expected ({len(numbers)}, 3)")
    if grain_map.n_atoms != len(numbers):
        raise ValueError(f"grain map has {grain_map.n_atoms} atoms, the system {len(numbers)}")
    sp = species_indices(numbers, config.elements)
    gt = grain_type_indices(grain_map, config.grain_types, config.grain_type_names)
    kw: Dict[str, Optional[torch.Tensor]] = {
        "pos": torch.tensor(positions, dtype=dtype, device=device),
        "species": torch.tensor(sp, device=device),
        "grain_index": torch.tensor(grain_map.grain_index, device=device),
        "grain_type": torch.tensor(gt, device=device),
        "cell": None if cell is None else torch.tensor(np.asarray(cell, dtype=float), dtype=dtype, device=device),
    }
    return kw


def inputs_from_atoms(atoms, config: ModelConfig, grain_map: Optional[GrainMap] = None,
                      dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"):
    """:func:`make_inputs` for ASE ``Atoms`` (grains perceived unless given or stored in ``atoms.arrays['grain']``)."""

    if grain_map is None:
        grain_map = atomic_grains(atoms.numbers) if config.all_atom else grains_from_atoms(atoms)
    cell = np.asarray(atoms.cell[:]) if atoms.pbc.any() else None
    return make_inputs(atoms.positions, atoms.numbers, grain_map, config, cell, dtype, device)
