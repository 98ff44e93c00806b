"""Build OpenMM Systems with the CGAA potential (a ``openmmtorch.TorchForce``).

Public entry points (re-exported by :mod:`cgaa.openmm`):

* :func:`create_system` — a new ``openmm.System`` for a topology: element masses, the
  periodic box, the CGAA TorchForce (and zero-strength bonds so a barostat scales whole
  molecules);
* :func:`add_cgaa_force` — add the CGAA TorchForce to an existing System (to combine it
  with other OpenMM forces, or to apply it to a subset of atoms);
* :func:`resolve_model` — a model argument (None, path, DeployedModel or eager
  CGAAModel) → :class:`cgaa.deploy.DeployedModel`;
* :func:`check_topology` — refuse a topology the model does not cover or whose box is too
  small for the cutoff, naming the culprit.

Units at this boundary: nm, kJ/mol, kJ/mol/nm; the model works in Å, eV, eV/Å and
:mod:`cgaa.units` converts.
"""
from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from cgaa import units
from cgaa.prior import add_prior, check_prior_fits

#: Name of the shipped default model under ``forcefields/models/``.
DEFAULT_MODEL_NAME = "lipf6-ec-emc-1m.pt"
#: Name given to the CGAA TorchForce (``force.getName()``).
FORCE_NAME = "CGAA"
#: Name of the zero-strength bond force that tells OpenMM which atoms form a molecule.
MOLECULE_BONDS_NAME = "CGAAMoleculeBonds"

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
    """Drops the "importing 'simtk.openmm' is deprecated" notice that openmmtorch 1.5's own
    ``import simtk.openmm`` logs on the root logger (not actionable by cgaa's users)."""

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
    from cgaa.resources import forcefields_dir

    path = forcefields_dir() / "models" / DEFAULT_MODEL_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"no default CGAA model is shipped yet (looked for {path}); pass model=<path to a "
            "deployed .pt file> (cgaa deploy writes one)")
    return path


def resolve_model(model: ModelLike = None, device: str = "cpu"):
    """A :class:`cgaa.deploy.DeployedModel` from None (the shipped default), a path, a
    DeployedModel or an eager :class:`cgaa.model.CGAAModel` (scripted in memory)."""
    import torch

    from cgaa.deploy import DeployedModel, inference_only, load_model, model_metadata
    from cgaa.model import CGAAModel, ModelConfig

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
        return load_model(model, device)
    raise TypeError(f"model must be None, a path, a DeployedModel or a CGAAModel, not {type(model).__name__}")


def box_matrix_nm(box_vectors) -> np.ndarray:
    """3x3 array (nm, rows = box vectors) from a Quantity, a list of (Quantity) Vec3 or numbers in nm."""
    from openmm.unit import is_quantity, nanometer

    if is_quantity(box_vectors):
        box_vectors = box_vectors.value_in_unit(nanometer)
    rows = [v.value_in_unit(nanometer) if is_quantity(v) else v for v in box_vectors]
    return np.array([[float(x) for x in r] for r in rows], dtype=float).reshape(3, 3)


def box_heights_nm(box_vectors) -> np.ndarray:
    """Perpendicular heights (nm) of a box given as three vectors (see :func:`box_matrix_nm`)."""
    cell = box_matrix_nm(box_vectors)
    vol = abs(np.linalg.det(cell))
    return np.array([vol / np.linalg.norm(np.cross(cell[(i + 1) % 3], cell[(i + 2) % 3]))
                     for i in range(3)])


def check_cutoff(cutoff_angstrom: float, box_vectors) -> None:
    """ValueError unless the model cutoff (Å) is below half the shortest box height."""
    h = float(box_heights_nm(box_vectors).min())
    half = units.nm_to_angstrom(0.5 * h)
    if not cutoff_angstrom < half:
        raise ValueError(
            f"model cutoff {cutoff_angstrom:g} A is not below half the shortest box height "
            f"({half:.3f} A = {units.angstrom_to_nm(half):.4f} nm): use a larger box "
            f"(shortest height > {2 * cutoff_angstrom:g} A)")


def _topology_inputs(topology, deployed, atoms: Optional[Sequence[int]]):
    """(numbers, grain map, species idx, grain index, grain type idx) of the CGAA atoms."""
    from cgaa.grains import atomic_grains, grains_from_index, grains_from_topology
    from cgaa.inputs import grain_type_indices, species_indices

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
    _topology_inputs(topology, deployed, atoms)
    box = box_vectors if box_vectors is not None else topology.getPeriodicBoxVectors()
    if box is not None:
        check_cutoff(deployed.config.cutoff, box)


def make_torch_force(topology, model: ModelLike = None, atoms: Optional[Sequence[int]] = None,
                     periodic: Optional[bool] = None, outputs_forces: Optional[bool] = None,
                     box_vectors=None, force_group: int = 0, properties: Optional[dict] = None):
    """An ``openmmtorch.TorchForce`` computing the CGAA potential of ``topology``'s atoms.

    model: None (shipped default), a path, a DeployedModel or an eager CGAAModel.
    atoms: System indices of the atoms the model acts on (None: all).
    periodic: use periodic boundaries (default: the topology, or ``box_vectors``, has a box).
    outputs_forces: the TorchForce takes forces from the model (default True, both force
        modes); False (conservative models only) lets OpenMM-Torch backpropagate the energy.
    force_group: OpenMM force group (0-31).
    properties: TorchForce properties, set as given (leave ``useCUDAGraphs`` off: the model has
        data-dependent shapes and reads values back from the device; docs/openmm.md).
    """
    openmmtorch = import_openmmtorch()

    from cgaa.openmm.wrapper import script_force_module

    deployed = resolve_model(model)
    cfg = deployed.config
    _, _, sp, gidx, gt = _topology_inputs(topology, deployed, atoms)
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
    module = script_force_module(deployed.module, sp, gidx, gt, atoms, bool(periodic), bool(outputs_forces))
    force = openmmtorch.TorchForce(module)
    force.setOutputsForces(bool(outputs_forces))
    force.setUsesPeriodicBoundaryConditions(bool(periodic))
    force.setForceGroup(int(force_group))
    force.setName(FORCE_NAME)
    for k, v in (properties or {}).items():
        force.setProperty(str(k), str(v))
    return force


def add_molecule_bonds(system, topology, atoms: Optional[Iterable[int]] = None):
    """Add a zero-strength ``HarmonicBondForce`` over ``topology``'s bonds (within ``atoms``).

    It adds no energy; it tells OpenMM which atoms form a molecule, so a
    ``MonteCarloBarostat`` scales molecule centres instead of pulling bonds apart.
    Returns the force (None if the topology has no bonds).
    """
    import openmm

    keep = None if atoms is None else set(int(a) for a in atoms)
    bonds = [(b[0].index, b[1].index) for b in topology.bonds()
             if keep is None or (b[0].index in keep and b[1].index in keep)]
    if not bonds:
        return None
    f = openmm.HarmonicBondForce()
    f.setName(MOLECULE_BONDS_NAME)
    for i, j in bonds:
        f.addBond(i, j, 0.1, 0.0)
    f.setUsesPeriodicBoundaryConditions(system.usesPeriodicBoundaryConditions())
    system.addForce(f)
    return f


def add_cgaa_force(system, topology, model: ModelLike = None, atoms: Optional[Sequence[int]] = None,
                   outputs_forces: Optional[bool] = None, force_group: int = 0,
                   properties: Optional[dict] = None):
    """Add the CGAA TorchForce to an existing ``openmm.System`` and return the force.

    The System's default box (if it has one) is the periodic box; ``atoms`` restricts the
    model to a subset (e.g. an ML region combined with classical forces). A model's
    classical prior (:mod:`cgaa.prior`) is added too, for the same atoms. See
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


#: Fallback X–H bond lengths (nm) for residues the teacher force field does not know.
XH_BOND_NM = {"C": 0.109, "N": 0.101, "O": 0.0945, "S": 0.134, "B": 0.119, "P": 0.142}
#: Cutoff (nm) of the teacher System :func:`teacher_bond_lengths` builds: only its bond
#: parameters are read, and a short cutoff lets small boxes through.
TEACHER_BONDS_CUTOFF_NM = 0.3

BondLengths = Tuple[Tuple[int, int, float], ...]


@functools.lru_cache(maxsize=4)
def teacher_bond_lengths(topology) -> Optional[BondLengths]:
    """(i, j, r0 in nm) for every bond of ``topology`` per the teacher force field, or None
    when the teacher does not know its residues. One teacher System serves both the H-bond
    constraints and the bond guard of a simulation."""
    import openmm

    from cgaa.teacher import create_system as teacher_system

    try:
        ref = teacher_system(topology, cutoff=TEACHER_BONDS_CUTOFF_NM)
    except ValueError:
        return None
    out = []
    for f in ref.getForces():
        if isinstance(f, openmm.HarmonicBondForce):
            for b in range(f.getNumBonds()):
                i, j, r0, _ = f.getBondParameters(b)
                out.append((i, j, r0.value_in_unit(openmm.unit.nanometer)))
    return tuple(out)


def _teacher_takes(topology) -> bool:
    """Whether :func:`teacher_bond_lengths` gets past the teacher's own checks
    (:func:`cgaa.teacher.check_topology` at :data:`TEACHER_BONDS_CUTOFF_NM`) for
    ``topology``. (Its force-field parametrisation, which matches templates by bond graph,
    is what the prior already did.)"""
    from cgaa.teacher import check_topology

    try:
        check_topology(topology, TEACHER_BONDS_CUTOFF_NM)
    except ValueError:
        return False
    return True


def prior_bond_lengths(system, topology) -> Optional[BondLengths]:
    """:func:`teacher_bond_lengths` read off a teacher prior (every one in :data:`cgaa.prior.PRIORS` but ``none``) already in ``system``
    (its ``HarmonicBondForce``, added for every atom of ``topology`` by
    :func:`create_system`, holds the teacher's r0 of every bond, in the same order), so the
    topology is not parametrised a second time. None where that would not give the same
    answer: no such prior force in ``system`` (or one over some molecules only), or a
    topology ``teacher_bond_lengths`` refuses (no box, a box too small for its cutoff, residue names the teacher does not
    know: those get :data:`XH_BOND_NM` constraint lengths and no bond guard).
    """
    import openmm

    from cgaa.prior import PRIOR_FORCE_PREFIX

    name = PRIOR_FORCE_PREFIX + "HarmonicBondForce"
    found = [f for f in system.getForces() if isinstance(f, openmm.HarmonicBondForce) and f.getName() == name]
    # one bond force over all of the topology's bonds (not a prior of some molecules only,
    # as add_cgaa_force(atoms=...) adds), and a topology the teacher route would take
    if len(found) != 1 or found[0].getNumBonds() != topology.getNumBonds() or not _teacher_takes(topology):
        return None
    f = found[0]
    out = []
    for b in range(f.getNumBonds()):
        i, j, r0, _ = f.getBondParameters(b)
        out.append((i, j, r0.value_in_unit(openmm.unit.nanometer)))
    return tuple(out)


def add_hbond_constraints(system, topology, bonds: Optional[BondLengths] = None) -> int:
    """Constrain every bond to a hydrogen (OpenMM ``HBonds``); returns the number added.

    Lengths are the teacher force field's equilibrium bond lengths (``cgaa.teacher``); for
    residues it does not know, typical X–H lengths (:data:`XH_BOND_NM`). Constraining
    X–H bonds keeps the fastest, stiffest motions out of the ML model's hands: a learned
    potential is least reliable for large bond stretches it never saw in training.
    bonds: the teacher's (i, j, r0 nm) when already known (default:
    :func:`teacher_bond_lengths`).
    """
    atoms = list(topology.atoms())
    is_h = [a.element is not None and a.element.symbol == "H" for a in atoms]
    if bonds is None:
        bonds = teacher_bond_lengths(topology)
    if bonds is not None:
        n = 0
        for i, j, r0 in bonds:
            if is_h[i] or is_h[j]:
                system.addConstraint(i, j, r0)
                n += 1
        return n
    n = 0
    for a, b in topology.bonds():
        if a.element is None or b.element is None:
            continue
        syms = {a.element.symbol, b.element.symbol}
        if "H" not in syms or syms == {"H"}:
            continue
        heavy = (syms - {"H"}).pop()
        system.addConstraint(a.index, b.index, XH_BOND_NM.get(heavy, 0.1))
        n += 1
    return n


#: Bond guard: half-width of the flat bottom (nm) and stiffness beyond it (kJ/mol/nm²).
BOND_GUARD_MARGIN_NM = 0.01
BOND_GUARD_K = 2.0e5
BOND_GUARD_NAME = "CGAABondGuard"


def add_bond_guard(system, topology, margin_nm: float = BOND_GUARD_MARGIN_NM, k: float = BOND_GUARD_K,
                   bonds: Optional[BondLengths] = None) -> int:
    """Flat-bottom restraint on every bond: zero while |r − r0| ≤ margin, k/2·(|r − r0| − margin)² beyond.

    r0 are the teacher force field's equilibrium lengths (nm). Inside the margin (0.1 Å by
    default, about twice the thermal amplitude of a bond at room temperature) it adds
    nothing to the ML potential; beyond it, it stops a bond from being pulled into the
    region the model never saw in training, where a learned energy can turn downhill.
    Returns the number of guarded bonds (0 when the teacher does not know the residues).
    bonds: the teacher's (i, j, r0 nm) when already known (default: :func:`teacher_bond_lengths`).
    """
    import openmm

    if bonds is None:
        bonds = teacher_bond_lengths(topology)
    if not bonds:
        return 0
    guard = openmm.CustomBondForce("0.5*kguard*step(dr - margin)*(dr - margin)^2; dr = abs(r - r0)")
    guard.setName(BOND_GUARD_NAME)
    guard.addGlobalParameter("kguard", float(k))
    guard.addGlobalParameter("margin", float(margin_nm))
    guard.addPerBondParameter("r0")
    guard.setUsesPeriodicBoundaryConditions(topology.getPeriodicBoxVectors() is not None)
    for i, j, r0 in bonds:
        guard.addBond(i, j, [r0])
    system.addForce(guard)
    return len(bonds)


#: Contact guard: the wall sits at this fraction of the closest inter-grain approach of each
#: element pair in the model's training data; stiffness inside it (kJ/mol/nm²).
CONTACT_GUARD_FRACTION = 0.9
CONTACT_GUARD_K = 2.0e5
CONTACT_GUARD_NAME = "CGAAContactGuard"


def add_contact_guard(system, topology, floor: Sequence[Sequence[float]],
                      fraction: float = CONTACT_GUARD_FRACTION, k: float = CONTACT_GUARD_K) -> int:
    """Repulsive wall between atoms of different grains (residues) that come closer than the
    model's training data ever did.

    floor: ``[[Z1, Z2, d_min Å], ...]``, the closest approach of each element pair between
        grains in the training frames (``ModelConfig.contact_floor``, from
        :func:`cgaa.data.contacts.closest_contacts`).
    For a pair at r (nm) with wall r_w = ``fraction`` · d_min (converted to nm):
    E = k/2 · (r_w − r)² for r < r_w, else 0 (k in kJ/mol/nm²). Outside the walls it adds
    nothing, so it leaves every training configuration's energy alone; inside, where a
    learned potential has no data and may turn attractive (a Li⁺ falling onto a carbon), it
    pushes the atoms apart, as the bond guard does for bonds. Pairs of elements not in
    ``floor`` are not guarded. Returns the number of guarded atoms (0: nothing added).
    """
    import openmm

    zs = [a.element.atomic_number if a.element is not None else 0 for a in topology.atoms()]
    wall = {}
    for z1, z2, d in floor:
        if not float(d) > 0:
            raise ValueError(f"contact floor of elements {int(z1)}-{int(z2)} must be > 0 Å, got {d}")
        r = float(units.angstrom_to_nm(float(fraction) * float(d)))
        wall[(int(z1), int(z2))] = wall[(int(z2), int(z1))] = r
    kinds = sorted(set(zs) & {a for a, _ in wall})
    if not kinds:
        return 0
    index = {z: i for i, z in enumerate(kinds)}
    n = len(kinds) + 1  # the last kind: atoms of elements without walls
    table = [wall.get((kinds[a], kinds[b]), 0.0) if a < n - 1 and b < n - 1 else 0.0
             for b in range(n) for a in range(n)]  # Discrete2DFunction: first index fastest
    force = openmm.CustomNonbondedForce("0.5*kcontact*step(rw - r)*(rw - r)^2; rw = cwall(kind1, kind2)")
    force.setName(CONTACT_GUARD_NAME)
    force.addGlobalParameter("kcontact", float(k))
    force.addTabulatedFunction("cwall", openmm.Discrete2DFunction(n, n, table))
    force.addPerParticleParameter("kind")
    for z in zs:
        force.addParticle([float(index.get(z, n - 1))])
    periodic = topology.getPeriodicBoxVectors() is not None
    force.setNonbondedMethod(openmm.CustomNonbondedForce.CutoffPeriodic if periodic
                             else openmm.CustomNonbondedForce.CutoffNonPeriodic)
    force.setCutoffDistance(max(wall.values()))
    force.setUseLongRangeCorrection(False)
    for res in topology.residues():  # no wall inside a grain: the model and its prior hold it
        idx = [a.index for a in res.atoms()]
        for a in range(len(idx)):
            for b in range(a + 1, len(idx)):
                force.addExclusion(idx[a], idx[b])
    system.addForce(force)
    return sum(z in index for z in zs)


def create_system(topology, model: ModelLike = None, *, outputs_forces: Optional[bool] = None,
                  remove_cm_motion: bool = True, molecule_bonds: bool = True,
                  force_group: int = 0, properties: Optional[dict] = None,
                  constraints: Optional[str] = None, bond_guard: bool = False, contact_guard: bool = False):
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

    A model trained over a classical prior (``model.config.prior``, see :mod:`cgaa.prior`)
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
    force = make_torch_force(topology, deployed, outputs_forces=outputs_forces, force_group=force_group,
                             properties=properties)
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


def topology_from_atoms(atoms, grain_index: Optional[Sequence[int]] = None,
                        names: Optional[Sequence[str]] = None) -> Tuple[object, np.ndarray]:
    """OpenMM Topology (one residue per grain, perceived bonds, the cell as box) and
    positions (nm, (N,3) array) from ASE ``Atoms`` (Å).

    grain_index: per-atom grain (default: molecules perceived from covalent radii).
    names: residue name per grain (default: the grain's readable type name).
    """
    from openmm.app import Element, Topology
    from openmm.unit import nanometer

    from cgaa.grains import grains_from_atoms, grains_from_index, perceive_bonds

    cell = np.asarray(atoms.cell[:]) if atoms.pbc.any() else None
    bonds = perceive_bonds(atoms.numbers, atoms.positions, cell)
    if grain_index is None:
        gm = grains_from_atoms(atoms)
    else:
        gm = grains_from_index(grain_index, atoms.numbers, bonds)
    top = Topology()
    chain = top.addChain()
    residues = [top.addResidue((names[g] if names is not None else gm.type_names[g])[:4], chain)
                for g in range(gm.n_grains)]
    symbols = atoms.get_chemical_symbols()
    out: List = []
    for i, (s, g) in enumerate(zip(symbols, gm.grain_index)):
        out.append(top.addAtom(f"{s}{i}"[:4], Element.getBySymbol(s), residues[int(g)]))
    for i, j in bonds:
        if gm.grain_index[i] == gm.grain_index[j]:
            top.addBond(out[i], out[j])
    if cell is not None:
        top.setPeriodicBoxVectors(units.box_vectors_nm(cell) * nanometer)
    return top, units.angstrom_to_nm(np.asarray(atoms.positions, dtype=float))
