"""The CGAA potential as an ``openmmtorch.TorchForce``: model resolution (None, a path, a deployed
or an eager model), topology checks (elements, grain types, box height against the cutoff), and the
force itself (:func:`make_torch_force`), plus loading OpenMM-Torch's plugins whatever the import order.

Units at this boundary: nm, kJ/mol, kJ/mol/nm; the model works in Å, eV, eV/Å and
:mod:`cgaa.core.units` converts (inside :mod:`cgaa.openmm.wrapper`).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from cgaa.core import units
from cgaa.core.units import box_heights_nm
from cgaa.core.grains import atomic_grains, grains_from_index, grains_from_topology
from cgaa.core.inputs import grain_type_indices, species_indices
from cgaa.core.model import CGAAModel, ModelConfig
from cgaa.core.modelfile import DeployedModel, inference_only, load_model, model_metadata
from cgaa.core.padded import PaddedModel
from cgaa.core.resources import forcefields_dir
from cgaa.openmm.wrapper import script_force_module


#: Name of the shipped default model under ``forcefields/models/``.
DEFAULT_MODEL_NAME = "lipf6-ec-emc-1m.pt"


#: Name given to the CGAA TorchForce (``force.getName()``).
FORCE_NAME = "CGAA"


ModelLike = Union[None, str, Path, "DeployedModel", "CGAAModel"]  # noqa: F821


_RELOADED_PLUGINS: set = set()


def ensure_torch_plugins() -> None:
    """Make OpenMM-Torch's kernels available whatever the import order.

    OpenMM loads its plugins when ``openmm`` is first imported; the OpenMM-Torch kernel
    plugins link to libtorch's CUDA runtime libraries (libnvrtc, ...), which are only
    found once ``torch`` is imported. If ``openmm`` came first, those plugins failed to
    load and a Context with a TorchForce reports "does not support all required kernels".
    This imports torch and reloads the failed OpenMM-Torch plugins (idempotent).
    """
    import re

    import torch  # noqa: F401  (puts libtorch and its CUDA runtime libraries in the process)
    import openmm

    for msg in openmm.Platform.getPluginLoadFailures():
        m = re.match(r"Error loading library (\S*OpenMMTorch\S*?)\s*:", msg)
        if not m or "libOpenCL" in msg or m.group(1) in _RELOADED_PLUGINS:
            continue
        _RELOADED_PLUGINS.add(m.group(1))
        try:
            openmm.Platform.loadPluginLibrary(m.group(1))
        except Exception:  # e.g. the CUDA plugin without a CUDA driver: that platform is absent anyway
            pass


class _DropSimtkNotice(logging.Filter):
    """Drops the "importing 'simtk.openmm' is deprecated" notice that some openmmtorch builds'
    own ``import simtk.openmm`` logs on the root logger (not actionable by cgaa's users)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "simtk.openmm" not in record.getMessage()


def import_openmmtorch():
    """``import openmmtorch`` (after :func:`ensure_torch_plugins`), without its deprecation notice."""
    ensure_torch_plugins()
    root = logging.getLogger()
    quiet = _DropSimtkNotice()
    root.addFilter(quiet)
    try:
        import openmmtorch
    finally:
        root.removeFilter(quiet)
    return openmmtorch


def default_model_path() -> Path:
    """Path of the shipped default model (FileNotFoundError if none is shipped yet)."""

    path = forcefields_dir() / "models" / DEFAULT_MODEL_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"no default CGAA model is shipped yet (looked for {path}); pass model=<path to a "
            "deployed .pt file> (cgaa deploy writes one)")
    return path


def resolve_model(model: ModelLike = None, device: str = "cpu"):
    """A :class:`cgaa.core.modelfile.DeployedModel` from None (the shipped default), a path, the
    name of a shipped model (:func:`shipped_models`), a DeployedModel or an eager
    :class:`cgaa.core.model.CGAAModel` (scripted in memory)."""
    import torch

    if model is None:
        model = default_model_path()
    if isinstance(model, DeployedModel):
        return model
    if isinstance(model, CGAAModel):
        # a copy (same weights and buffers): the caller's model keeps its trainable parameters
        twin = CGAAModel(ModelConfig.from_dict(model.config.to_dict())).to(model.masses)
        twin.load_state_dict(model.state_dict())
        twin.eval()
        return DeployedModel(module=inference_only(torch.jit.script(twin)), metadata=model_metadata(twin), path=None)
    if isinstance(model, (str, Path)):
        return load_model(shipped_model_path(model), device)
    raise TypeError(f"model must be None, a path, a DeployedModel or a CGAAModel, not {type(model).__name__}")


def shipped_models() -> list:
    """Names of the deployed models shipped under ``forcefields/models/`` (``lipf6-ec-emc-1m``, ...)."""
    return sorted(p.stem for p in (forcefields_dir() / "models").glob("*.pt"))


def shipped_model_path(model: Union[str, Path]) -> Path:
    """``model`` as a path: an existing file as it is; else a shipped model's name (with or
    without ``.pt``, e.g. ``lipf6-ec-emc-1m``) as its file under ``forcefields/models/``. A name
    that is neither: FileNotFoundError naming the shipped models."""
    path = Path(model)
    if path.exists() or len(path.parts) != 1:
        return path
    shipped = forcefields_dir() / "models" / (path.name if path.suffix == ".pt" else path.name + ".pt")
    if not shipped.is_file():
        raise FileNotFoundError(f"no model file {path}, and no shipped model of that name "
                                f"(shipped: {', '.join(shipped_models())})")
    return shipped


def check_cutoff(cutoff_angstrom: float, box_vectors) -> None:
    """ValueError unless the model cutoff (Å) is below half the shortest box height."""
    h = float(box_heights_nm(box_vectors).min())
    half = units.nm_to_angstrom(0.5 * h)
    if not cutoff_angstrom < half:
        raise ValueError(
            f"model cutoff {cutoff_angstrom:g} A is not below half the shortest box height "
            f"({half:.3f} A = {units.angstrom_to_nm(half):.4f} nm): use a larger box "
            f"(shortest height > {2 * cutoff_angstrom:g} A)")


def topology_inputs(topology, deployed, atoms: Optional[Sequence[int]]):
    """(numbers, grain map, species idx, grain index, grain type idx) of the CGAA atoms."""

    cfg = deployed.config
    all_atoms = list(topology.atoms())
    sel = all_atoms if atoms is None else [all_atoms[i] for i in atoms]
    if not sel:
        raise ValueError("no atoms selected for the CGAA potential")
    for a in sel:
        if a.element is None:
            raise ValueError(f"topology atom {a.index} ({a.name} in residue {a.residue.name} "
                             f"{a.residue.id}) has no element")
    numbers = np.array([a.element.atomic_number for a in sel], dtype=np.int64)
    if cfg.all_atom:
        gm = atomic_grains(numbers)
    elif atoms is None:
        gm = grains_from_topology(topology)
    else:
        local = {a.index: k for k, a in enumerate(sel)}
        bonds = [(local[b[0].index], local[b[1].index]) for b in topology.bonds()
                 if b[0].index in local and b[1].index in local]
        res = [a.residue.index for a in sel]
        names = {a.residue.index: a.residue.name for a in sel}
        gm = grains_from_index(res, numbers, bonds, names=[names[r] for r in sorted(set(res))])
    sp = species_indices(numbers, cfg.elements)
    gt = grain_type_indices(gm, cfg.grain_types, cfg.grain_type_names)
    return numbers, gm, sp, gm.grain_index, gt


def check_topology(topology, model: ModelLike = None, atoms: Optional[Sequence[int]] = None,
                   box_vectors=None) -> None:
    """Refuse (ValueError naming the culprit) a topology the model cannot simulate:
    unknown element or grain type, or a box whose shortest height is not above twice the
    cutoff. ``box_vectors`` (nm) overrides the topology's box."""
    deployed = resolve_model(model)
    topology_inputs(topology, deployed, atoms)
    box = box_vectors if box_vectors is not None else topology.getPeriodicBoxVectors()
    if box is not None:
        check_cutoff(deployed.config.cutoff, box)


#: ``neighbor_list`` choices of :func:`make_torch_force` (docs/openmm.md, *CUDA graphs*).
NEIGHBOR_LISTS = ("exact", "padded", "sync_free", "auto")


def padded_model(deployed, sync_free: bool, skin: Optional[float] = None,
                 capacity_factor: float = 1.5):
    """A :class:`cgaa.core.padded.PaddedModel` on the weights of ``deployed`` (rebuilt as an
    eager model of this package's code, so files written by older versions work too).
    skin: Å; default 1.0 with host rebuilds, 0.0 sync-free (there the search runs at every call
    anyway and a skin only adds edges)."""
    if skin is None:
        skin = 0.0 if sync_free else 1.0
    twin = inference_only(deployed.to_eager().eval())
    return PaddedModel(twin, skin=float(skin), capacity_factor=float(capacity_factor), sync_free=sync_free)


def make_torch_force(topology, model: ModelLike = None, atoms: Optional[Sequence[int]] = None,
                     periodic: Optional[bool] = None, outputs_forces: Optional[bool] = None,
                     box_vectors=None, force_group: int = 0, properties: Optional[dict] = None,
                     neighbor_list: str = "exact", skin: Optional[float] = None,
                     capacity_factor: float = 1.5, cuda_graphs: bool = False):
    """An ``openmmtorch.TorchForce`` computing the CGAA potential of ``topology``'s atoms.

    model: None (shipped default), a path, a DeployedModel or an eager CGAAModel.
    atoms: System indices of the atoms the model acts on (None: all).
    periodic: use periodic boundaries (default: the topology, or ``box_vectors``, has a box).
    outputs_forces: the TorchForce takes forces from the model (default True, both force
        modes); False (conservative models only) lets OpenMM-Torch backpropagate the energy.
    force_group: OpenMM force group (0-31).
    properties: TorchForce properties, set as given (after those ``cuda_graphs`` sets).
    neighbor_list: ``"exact"`` (the model's own search at every call: data-dependent sizes and
        host reads), ``"padded"`` (:class:`cgaa.core.padded.PaddedModel` with host rebuilds: a
        skin, capacity grown at a rebuild), ``"sync_free"`` (the padded lists with no host reads
        after the first call) or ``"auto"`` (sync-free on a CUDA device, exact elsewhere). The
        padded lists need a periodic box; ``"auto"`` without one is exact.
    skin: Verlet skin of the padded lists (Å; default 1.0 padded, 0.0 sync-free).
    capacity_factor: padded capacities as a factor on the pair counts found at the first call.
    cuda_graphs: set the TorchForce properties ``useCUDAGraphs=true`` and
        ``CUDAGraphWarmupSteps=2`` (CUDA platform only; the CPU and Reference platforms ignore
        them). Needs ``neighbor_list`` ``"sync_free"`` or ``"auto"`` and a periodic box
        (ValueError otherwise: the exact path cannot be captured).
    """
    openmmtorch = import_openmmtorch()

    deployed = resolve_model(model)
    cfg = deployed.config
    _, _, sp, gidx, gt = topology_inputs(topology, deployed, atoms)
    box = box_vectors if box_vectors is not None else topology.getPeriodicBoxVectors()
    if periodic is None:
        periodic = box is not None
    if periodic:
        if box is None:
            raise ValueError("periodic=True but the topology has no box (set its periodic box vectors)")
        check_cutoff(cfg.cutoff, box)
    if outputs_forces is None:
        outputs_forces = True
    if not outputs_forces and cfg.force_mode != "conservative":
        raise ValueError(f"outputs_forces=False needs a conservative model; this one is "
                         f"{cfg.force_mode!r} (its forces are not the energy gradient)")
    if neighbor_list not in NEIGHBOR_LISTS:
        raise ValueError(f"neighbor_list must be one of {NEIGHBOR_LISTS}, not {neighbor_list!r}")
    if not periodic and neighbor_list in ("padded", "sync_free"):
        raise ValueError(f"neighbor_list={neighbor_list!r} needs a periodic box")
    if cuda_graphs and (neighbor_list not in ("sync_free", "auto") or not periodic):
        raise ValueError("cuda_graphs=True needs neighbor_list='sync_free' or 'auto' and a periodic box "
                         f"(got {neighbor_list!r}, periodic={bool(periodic)}): the exact neighbour search "
                         "reads sizes back to the host, which a CUDA graph cannot capture")
    padded = None
    padded_on = "any"
    if periodic and neighbor_list != "exact":
        padded = padded_model(deployed, neighbor_list != "padded", skin, capacity_factor)
        padded_on = "cuda" if neighbor_list == "auto" else "any"
    module = script_force_module(deployed.module, sp, gidx, gt, atoms, bool(periodic), bool(outputs_forces),
                                 padded, padded_on)
    force = openmmtorch.TorchForce(module)
    force.setOutputsForces(bool(outputs_forces))
    force.setUsesPeriodicBoundaryConditions(bool(periodic))
    force.setForceGroup(int(force_group))
    force.setName(FORCE_NAME)
    if cuda_graphs:
        force.setProperty("useCUDAGraphs", "true")
        force.setProperty("CUDAGraphWarmupSteps", "2")
    for k, v in (properties or {}).items():
        force.setProperty(str(k), str(v))
    return force
