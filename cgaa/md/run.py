"""Run, restart and guard molecular dynamics in OpenMM (the library behind ``cgaa simulate``).

:func:`run_simulation` takes a box file from ``cgaa build`` (PDB or PDBx/mmCIF; or a
recipe name, built on the fly, or a topology with positions), a deployed model and an
ensemble, minimises the energy, integrates, and writes a run directory::

    out_dir/
      topology.pdb          input topology (one residue per grain, CONECT, box);
                            topology.cif (PDBx/mmCIF) above 99,999 atoms
      model.pt              copy of the deployed model (the run is self-contained; none
                            for a run of a given System)
      traj.dcd              unwrapped trajectory (enforcePeriodicBox=False), frame 0 = step 0
      state.csv             step, time, energies, temperature, volume, density, ns/day
      checkpoint.chk        last good checkpoint (+ checkpoint.json: its step and file sizes)
      checkpoint.prev.chk   the one before it (+ checkpoint.prev.json)
      final_state.xml       the state at the end (or where the run stopped)
      run.json              settings, model summary, platform, history of (re)starts

Instead of a model, ``system=`` runs any ``openmm.System`` of the input's topology as it is
(e.g. the classical teacher's, :func:`cgaa.teacher.forcefield.create_system`): same
integrators, barostat, reports, checks and checkpoints, no model copy; the options that
build a CGAA System (``constraints``, ``bond_guard``, ``contact_guard``) must then be left
unset, and a restart needs the same System passed again.

A new run minimises the energy, draws velocities at the temperature and thermalises them
(``thermalize_ps`` of Langevin dynamics at ``thermalize_friction_per_ps``, not part of the
outputs); step 0 is the thermalised state. ``continue_from=`` starts a new run directory
from a finished run's final state (positions, velocities, box; no minimisation, no new
velocities by default).

``restart=True`` continues from the last checkpoint whose size and SHA-256 match its record
(else, with a warning, the previous one), truncating ``traj.dcd`` and ``state.csv`` to what
was written up to it (so a crashed, killed or interrupted run resumes without duplicated
frames) and appending. On the Reference platform a restarted run reproduces the
uninterrupted one exactly.

Safety: the input coordinates are checked first (finite, within 10 box lengths of the
origin) and its molecules made whole; at every report and checkpoint the energy must be
finite, the largest force and the temperature below limits; otherwise
:class:`SimulationError` names the step and the quantity and the last good checkpoint is
kept. A failed write (full disk) raises :class:`RunWriteError`; run.json then records the
failure. Ctrl-C (SIGINT) finishes the current chunk, saves a checkpoint and returns with
``interrupted=True``; during minimisation or thermalisation it stops there, records
"interrupted before the first step" and leaves a directory a new run may reuse.

:func:`run_simulation` is the sequence of its stages, each a function of this module:
:func:`prepare_run_dir` (settings, run.json of a restart, the directory),
:func:`load_run_input`, :func:`run_model` (the model and its copy), :func:`check_input`,
:func:`build_run_system` (the CGAA System, or the given one; hook, force groups, barostat),
:func:`make_simulation`, :func:`restore_checkpoint` or :func:`place_input`,
:func:`record_start` (run.json), :func:`run_dynamics` (minimisation, velocities, the MD
loop, a failure recorded) and :func:`finish_run` (final_state.xml, run.json, the result).

Units: temperature K, pressure bar, timestep fs, times ps, energies kJ/mol, forces
kJ/mol/nm, lengths nm, volume nm³, density g/cm³.
"""
from __future__ import annotations

import json
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple, Union

import numpy as np

from cgaa.core import units
from cgaa.core.fileio import atomic_path, write_text_atomic
from cgaa.core.modelfile import METADATA_FILE, load_model
from cgaa.md.inputs import (Continuation, check_coordinates, check_model_file, make_molecules_whole,
                            positions_nm, read_continuation)
from cgaa.md.minimize import capped_minimize, minimize_energy, openmm_message
from cgaa.md.reporter import Reporter, SimulationError, degrees_of_freedom
from cgaa.md.rundir import (CHECKPOINT_FILE, CHECKPOINT_META, FINAL_STATE_FILE, INPUT_FILE, MODEL_FILE,
                            PREV_CHECKPOINT_FILE, PREV_CHECKPOINT_META, RUN_FILE, STATE_COLUMNS, STATE_FILE,
                            TOPOLOGY_FILE, TRAJ_FILE, CheckpointError, Checkpointer, RunDirError, RunWriteError,
                            check_out_dir, has_checkpoint, load_state_csv, read_json, truncate_csv, truncate_dcd,
                            utc_now, writing)
from cgaa.md.settings import (CGAA_SYSTEM_SETTINGS, DEFAULTS, ENSEMBLES, INHERITED_BY_CONTINUATION, PLATFORMS,
                              PRECISIONS, resolve_settings)
from cgaa.openmm.mts import mts_integrator, split_force_groups
from cgaa.openmm.system import create_system
from cgaa.openmm.torchforce import check_cutoff, ensure_torch_plugins, resolve_model
from cgaa.systems.boxfile import RUN_TOPOLOGY_STEM, find_run_topology, read_box, run_topology_name, write_box
from cgaa.systems.build import box_suffix_for, build_box, list_recipes

#: Files of a run directory that a new run into it replaces (``overwrite=True``); a run of a
#: given System also removes an earlier run's model copy (``model.pt``).
RUN_OUTPUTS = (RUN_FILE, STATE_FILE, CHECKPOINT_FILE, CHECKPOINT_META, PREV_CHECKPOINT_FILE,
               PREV_CHECKPOINT_META, TRAJ_FILE, FINAL_STATE_FILE, TOPOLOGY_FILE, RUN_TOPOLOGY_STEM + ".cif")
#: Files whose presence means ``out_dir`` already holds a run.
RUN_MARKERS = (RUN_FILE, STATE_FILE, CHECKPOINT_FILE, TRAJ_FILE)
#: The folder ``cgaa analyze RUN_DIR`` writes (report.json, plots): a new run into the
#: directory (``overwrite``) removes it with the outputs it was made from.
ANALYSIS_DIR = "analysis"
#: run.json status of a run stopped by Ctrl-C during minimisation or thermalisation: no
#: checkpoint, no frame; a new run into the directory reuses it without ``overwrite``.
BEFORE_FIRST_STEP = "interrupted before the first step"
#: Units of run.json and state.csv (recorded in run.json).
RUN_UNITS = {"temperature": "K", "pressure": "bar", "timestep": "fs", "time": "ps",
             "energy": "kJ/mol", "force": "kJ/mol/nm", "length": "nm", "density": "g/cm^3"}


@dataclass
class SimulationResult:
    """What :func:`run_simulation` did. ``steps`` is the step count reached, ``time_ps``
    the simulated time, ``ns_per_day`` the speed of this invocation's MD steps (minimisation
    and thermalisation, timed apart in ``minimization_s`` and ``thermalization_s``, are not
    in it), ``mean_temperature_K`` the mean over the ``n_reports`` state rows this invocation
    wrote, ``last`` the last state.csv row, ``interrupted`` True after Ctrl-C (a checkpoint
    was saved, unless ``before_first_step``: Ctrl-C during minimisation or thermalisation)."""

    out_dir: Path
    steps: int
    time_ps: float
    ns_per_day: float
    interrupted: bool = False
    restarted_from: Optional[int] = None
    last: Dict[str, float] = field(default_factory=dict)
    files: Dict[str, Path] = field(default_factory=dict)
    mean_temperature_K: float = float("nan")
    n_reports: int = 0
    md_wall_s: float = 0.0
    minimization_s: Optional[float] = None
    thermalization_s: Optional[float] = None
    before_first_step: bool = False
    continued_from: Optional[Path] = None
    made_whole: int = 0
    warnings: list = field(default_factory=list)


def say(message: str, progress: bool = True) -> None:
    """A progress line of the run on stderr (``cgaa simulate: ...``), shown with ``progress``."""
    if progress:
        print(f"cgaa simulate: {message}", file=sys.stderr, flush=True)


def warn(message: str) -> None:
    """A warning on stderr, shown whatever ``progress`` (``cgaa simulate: warning: ...``)."""
    print(f"cgaa simulate: warning: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- inputs
def _load_input(system_input, out_dir: Path, settings: Dict[str, Any]):
    """(topology, positions Quantity, description) from a box file path (PDB or PDBx/mmCIF),
    a recipe name, a PDBFile-like object or a (topology, positions) pair."""
    from openmm.unit import is_quantity, nanometer

    if isinstance(system_input, (tuple, list)) and len(system_input) == 2:
        top, pos = system_input
        if not is_quantity(pos):
            pos = np.asarray(pos, dtype=float) * nanometer
        return top, pos, "topology given in Python"
    if hasattr(system_input, "topology") and hasattr(system_input, "positions"):
        return system_input.topology, system_input.positions, "PDBFile given in Python"
    if not isinstance(system_input, (str, Path)):
        raise TypeError("system_input must be a box file path (.pdb/.cif), a recipe name, a PDBFile or "
                        f"(topology, positions), not {type(system_input).__name__}")
    path = Path(system_input)
    if path.is_file():
        box = read_box(path)
        return box.topology, box.positions, str(path)
    name = str(system_input)
    if name in list_recipes() or name.endswith((".yaml", ".yml")):
        n_atoms = int(settings["n_atoms"])
        input_file = (out_dir / INPUT_FILE).with_suffix(box_suffix_for(name, n_atoms))
        res = build_box(name, n_atoms, input_file, seed=int(settings["seed"]))
        box = read_box(res.path)
        return box.topology, box.positions, f"recipe {name} ({res.n_atoms} atoms, built by cgaa.systems.build)"
    raise FileNotFoundError(f"no input file {path}, and '{name}' is not a recipe "
                            f"(recipes: {', '.join(list_recipes())})")


def _write_model_copy(model, out_dir: Path):
    """Copy the deployed model into the run directory; returns the DeployedModel."""
    import torch

    deployed = resolve_model(model)
    dest = out_dir / MODEL_FILE
    if deployed.path is not None and Path(deployed.path).resolve() == dest.resolve():
        return deployed
    with writing(dest), atomic_path(dest) as tmp:
        if deployed.path is not None:
            shutil.copyfile(deployed.path, tmp)
        else:
            torch.jit.save(deployed.module, str(tmp),
                           _extra_files={METADATA_FILE: json.dumps(deployed.metadata, indent=1)})
    return load_model(dest)


def model_summary(deployed) -> Dict[str, Any]:
    """The parts of a deployed model's metadata worth keeping in run.json."""
    m = deployed.metadata
    keys = ("cgaa_version", "torch_version", "created", "cutoff", "element_symbols", "force_mode",
            "all_atom", "dtype", "units")
    out = {k: m.get(k) for k in keys}
    out["grain_types"] = [t.get("name") for t in m.get("grain_types", [])]
    out["source"] = None if deployed.path is None else str(deployed.path)
    return out


# ---------------------------------------------------------------------------- OpenMM objects
def get_platform(name: str, precision: str) -> Tuple[Any, Dict[str, str]]:
    """(openmm.Platform, properties); ValueError listing the available platforms."""
    import openmm

    ensure_torch_plugins()
    try:
        platform = openmm.Platform.getPlatformByName(name)
    except Exception:
        avail = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
        raise ValueError(f"OpenMM platform {name!r} is not available here (available: {', '.join(avail)})") from None
    props: Dict[str, str] = {}
    if "Precision" in platform.getPropertyNames():
        props["Precision"] = precision
    return platform, props


def build_integrator(settings: Dict[str, Any]):
    """Langevin-middle (nvt, npt) or Verlet (nve) integrator from the settings; with
    ``fast_substeps`` > 1 their r-RESPA forms (:func:`cgaa.openmm.mts.mts_integrator`, over the
    force groups of :func:`cgaa.openmm.mts.split_force_groups`)."""
    import openmm
    from openmm.unit import femtosecond, kelvin, picosecond

    substeps = int(settings.get("fast_substeps", 1))
    if substeps > 1:
        nve = settings["ensemble"] == "nve"
        return mts_integrator(float(settings["timestep_fs"]), substeps,
                              temperature=None if nve else float(settings["temperature"]),
                              friction_per_ps=float(settings["friction_per_ps"]), seed=int(settings["seed"]))
    dt = float(settings["timestep_fs"]) * femtosecond
    if settings["ensemble"] == "nve":
        return openmm.VerletIntegrator(dt)
    integ = openmm.LangevinMiddleIntegrator(float(settings["temperature"]) * kelvin,
                                            float(settings["friction_per_ps"]) / picosecond, dt)
    integ.setRandomNumberSeed(int(settings["seed"]))
    return integ


def add_barostat(system, settings: Dict[str, Any]):
    """Add a MonteCarloBarostat (npt) to ``system``; returns it."""
    import openmm
    from openmm.unit import bar, kelvin

    baro = openmm.MonteCarloBarostat(float(settings["pressure"]) * bar, float(settings["temperature"]) * kelvin,
                                     int(settings["barostat_interval"]))
    baro.setRandomNumberSeed(int(settings["seed"]))
    system.addForce(baro)
    return baro


class SigintGuard:
    """First Ctrl-C sets ``requested`` (minimisation and thermalisation stop at their next
    iteration or chunk, the MD at its next chunk boundary); a second one raises
    KeyboardInterrupt. Only active in the main thread; :meth:`handle` is the handler."""

    def __init__(self):
        self.requested = False
        self._old = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self.handle)
        return self

    def handle(self, signum=signal.SIGINT, frame=None):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


# ---------------------------------------------------------------------------- given Systems
def system_summary(system) -> str:
    """How run.json names a given System (``run_simulation(system=...)``):
    ``"given (N forces: names; P particles, C constraints)"``. A restart compares it with
    the System passed again."""
    names = [f.getName() for f in system.getForces()]
    return (f"given ({len(names)} forces: {', '.join(names)}; {system.getNumParticles()} particles, "
            f"{system.getNumConstraints()} constraints)")


def check_given_system(system, model) -> None:
    """ValueError/TypeError unless ``system`` can be run as given: an ``openmm.System``,
    no model next to it, no barostat of its own (``ensemble="npt"`` adds the run's)."""
    import openmm

    if model is not None:
        raise ValueError("give a model or a System (system=), not both: a given openmm.System is run as it is, "
                         "without a model")
    if not isinstance(system, openmm.System):
        raise TypeError(f"system must be an openmm.System, not {type(system).__name__}")
    baro = [f.getName() for f in system.getForces() if "Barostat" in type(f).__name__]
    if baro:
        raise ValueError(f"the given System has a barostat ({', '.join(baro)}): leave it out and run "
                         "ensemble='npt', which adds one with the run's pressure, temperature, interval and seed")


def _check_restart_system(run_info: Dict[str, Any], system, out: Path) -> None:
    """A restart continues with the kind of System the run started with: the same given
    System again (its summary as in run.json), or, for a run from a model, none."""
    ran = run_info.get("system")
    if ran is None and system is not None:
        raise ValueError(f"restart: the run in {out} built its System from a model (run.json names no given "
                         "System); restart it without system=")
    if ran is not None and system is None:
        raise ValueError(f"restart: the run in {out} ran a given openmm.System ({ran}); pass the same System "
                         "again as system= to continue it")
    if ran is not None and system_summary(system) != ran:
        raise ValueError(f"restart: the System given is not the one the run in {out} started with: it is "
                         f"{system_summary(system)}, run.json has {ran}")


# ---------------------------------------------------------------------------- the stages of a run
@dataclass
class RunStart:
    """Where the integration of this invocation starts: the checkpoint step of a restart
    (``restarted_from``; None for a new run) and the DCD frames and state.csv rows that
    belong to it; for a continuation the run it continues (``continuation``) and whether it
    draws new velocities; warnings about checkpoints passed over."""

    restarted_from: Optional[int] = None
    dcd_frames: int = 0
    csv_rows: int = 0
    continuation: Optional[Continuation] = None
    new_velocities: bool = True
    checkpoint: Optional[str] = None
    warnings: list = field(default_factory=list)


def _last_status(out: Path) -> Optional[str]:
    try:
        hist = read_json(out / RUN_FILE).get("history") or []
    except (OSError, ValueError):
        return None
    return hist[-1].get("status") if hist else None


def reusable_run_dir(out: Path) -> bool:
    """Whether ``out`` holds only a run stopped before its first step (Ctrl-C during
    minimisation or thermalisation: run.json says so, no checkpoint, no state.csv, no
    traj.dcd), which a new run may replace without ``overwrite``."""
    return (_last_status(out) == BEFORE_FIRST_STEP and not has_checkpoint(out)
            and not (out / STATE_FILE).exists() and not (out / TRAJ_FILE).exists())


def clear_run_dir(out: Path, given_system: bool = False) -> None:
    """Remove an earlier run's outputs from ``out`` (and its analysis folder, whose report
    describes that run)."""
    for f in RUN_OUTPUTS + ((MODEL_FILE,) if given_system else ()):
        (out / f).unlink(missing_ok=True)
    if (out / ANALYSIS_DIR).is_dir():
        shutil.rmtree(out / ANALYSIS_DIR)


def _continuation_settings(given: Dict[str, Any], cont: Continuation, given_system: bool) -> Dict[str, Any]:
    """``given`` completed with the continued run's dynamics (:data:`INHERITED_BY_CONTINUATION`;
    the pressure and barostat interval only for npt, the CGAA System settings only without a
    given System); no minimisation unless asked."""
    src = cont.run_info.get("settings") or {}
    out = dict(given)
    ensemble = given.get("ensemble") or src.get("ensemble")
    for k in INHERITED_BY_CONTINUATION:
        if out.get(k) is not None or src.get(k) is None:
            continue
        if k in ("pressure", "barostat_interval") and ensemble != "npt":
            continue
        if given_system and k in CGAA_SYSTEM_SETTINGS:
            continue
        out[k] = src[k]
    if out.get("minimize") is None:
        out["minimize"] = False
    return out


def prepare_run_dir(out: Path, given: Dict[str, Any], *, restart: bool, overwrite: bool, system_input,
                    model=None, system=None, continue_from=None) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """(run_info, settings): check ``out`` (RunDirError for a file or an unwritable path)
    and the input against ``restart``; for a restart read run.json and merge ``given`` with
    its settings; for a new run refuse (or, with ``overwrite``, clear) an earlier run in
    ``out`` (a run stopped before its first step is reused), take a continuation's dynamics
    from its run.json, resolve the settings and create ``out``."""
    check_out_dir(out)
    check_model_file(model)
    if system is not None:
        check_given_system(system, model)
    given_system = system is not None
    if restart:
        if continue_from is not None:
            raise ValueError("restart continues the run in out_dir; continue_from starts a new one: give one of them")
        if not (out / RUN_FILE).is_file():
            raise FileNotFoundError(f"restart: {out / RUN_FILE} not found: {out} holds no cgaa run")
        if reusable_run_dir(out):
            raise RunDirError(f"restart: the run in {out} was {BEFORE_FIRST_STEP} (Ctrl-C during minimisation or "
                              "thermalisation), so it has no checkpoint to continue from: start it again with the "
                              "same input (the directory is reused, no --overwrite needed)")
        run_info = read_json(out / RUN_FILE)
        _check_restart_system(run_info, system, out)
        settings = resolve_settings(given, run_info["settings"], given_system=given_system)
        if system_input is not None:
            raise ValueError("restart continues the run in out_dir from its topology file; do not give an input")
        return run_info, settings
    run_info: Dict[str, Any] = {}
    if continue_from is not None:
        if system_input is not None:
            raise ValueError("continue_from starts from that run's final state; do not give an input as well")
        cont = read_continuation(continue_from)
        if out.exists() and out.resolve() == cont.source.resolve():
            raise RunDirError(f"out_dir {out} is the run continue_from names: continue a run in its own directory "
                              "with restart=True (--restart), or give a new directory")
        given = _continuation_settings(given, cont, given_system)
        run_info["_continuation"] = cont
    elif system_input is None:
        raise ValueError("give an input: a PDB file (cgaa build), a recipe name, continue_from, or restart=True")
    if out.exists() and any((out / f).exists() for f in RUN_MARKERS):
        if reusable_run_dir(out):
            say(f"{out} holds a run {BEFORE_FIRST_STEP}: starting it again there")
            overwrite = True
        if not overwrite:
            raise RunDirError(f"{out} already holds a run; continue it with restart=True (--restart), "
                              "replace it with overwrite=True (--overwrite), or choose another directory")
        settings = resolve_settings(given, given_system=given_system)  # (bad settings: nothing removed)
        with writing(out):
            clear_run_dir(out, given_system)
    settings = resolve_settings(given, given_system=given_system)
    with writing(out):
        out.mkdir(parents=True, exist_ok=True)
    return run_info, settings


def load_run_input(system_input, out: Path, settings: Dict[str, Any], run_info: Dict[str, Any],
                   restart: bool, continuation: Optional[Continuation] = None):
    """(topology, positions, description of the input): a restart's from the run's
    topology file, a continuation's from the run it continues (its final positions and box),
    a new run's from ``system_input`` (:func:`_load_input`)."""
    cont = continuation
    if cont is not None:
        return cont.topology, cont.state.getPositions(), (f"continued from {cont.source} (final_state.xml: step "
                                                          f"{cont.step}, {cont.time_ps:g} ps)")
    if not restart:
        return _load_input(system_input, out, settings)
    top_file = find_run_topology(out)
    if top_file is None:
        raise FileNotFoundError(f"restart: no {TOPOLOGY_FILE} (or {RUN_TOPOLOGY_STEM}.cif) in {out}")
    box = read_box(top_file)
    return box.topology, box.positions, run_info.get("input")


def run_model(model, out: Path, restart: bool, continuation: Optional[Continuation] = None):
    """The DeployedModel of the run: on a restart without ``model`` the run's copy, on a
    continuation without ``model`` the continued run's copy (the shipped model if it has
    none), otherwise ``model`` (None: the shipped one), copied to ``out/model.pt``."""
    if restart and model is None:
        return load_model(out / MODEL_FILE)
    if continuation is not None and model is None and continuation.model_path is not None:
        model = continuation.model_path
    return _write_model_copy(model, out)


def check_input(topology, positions, system=None, *, far: bool = True) -> None:
    """ValueError unless the input is a periodic box with one position per atom (and a
    given ``system`` one particle per atom), every position finite and (``far``) within
    10 box lengths of the origin (:func:`cgaa.md.inputs.check_coordinates`; the message
    names the atom by PDB serial, name and residue)."""
    from openmm.unit import nanometer

    if topology.getPeriodicBoxVectors() is None:
        raise ValueError("the input has no periodic box (PDB CRYST1 record): cgaa simulate runs periodic "
                         "boxes; build one with `cgaa build`")
    if len(positions) != topology.getNumAtoms():
        raise ValueError(f"{len(positions)} positions for {topology.getNumAtoms()} atoms")
    if system is not None and system.getNumParticles() != topology.getNumAtoms():
        raise ValueError(f"the given System has {system.getNumParticles()} particles, the input "
                         f"{topology.getNumAtoms()} atoms")
    box = np.array(topology.getPeriodicBoxVectors().value_in_unit(nanometer), dtype=float)
    check_coordinates(topology, positions_nm(positions), box, max_box_lengths=10.0 if far else np.inf)


def whole_molecules(topology, positions, progress: bool = True):
    """(positions, molecules made whole): :func:`cgaa.md.inputs.make_molecules_whole` on a
    new run's input, said in one line when it changed anything."""
    from openmm.unit import nanometer

    box = np.array(topology.getPeriodicBoxVectors().value_in_unit(nanometer), dtype=float)
    pos, n = make_molecules_whole(topology, positions_nm(positions), box)
    if n == 0:
        return positions, 0
    say(f"made {n} molecules whole: the input had atoms wrapped into the box one by one; each residue was "
        "rebuilt by minimum image about its first atom (same energy, whole molecules in traj.dcd)")
    return pos * nanometer, n


def build_run_system(topology, settings: Dict[str, Any], deployed=None, system=None,
                     customize_system: Optional[Callable[[Any, Any], None]] = None):
    """The System the run integrates: the CGAA System of ``deployed`` (constraints and
    guards from the settings), or a copy of the given ``system`` as it is; then
    ``customize_system(system, topology)``, the r-RESPA force groups (``fast_substeps`` > 1,
    which needs a CGAA TorchForce) and the barostat (npt)."""
    import openmm

    if system is not None:
        run_system = openmm.XmlSerializer.clone(system)  # the caller's System stays as it was
    else:
        guard = settings["bond_guard"]
        if guard == "auto":
            guard = deployed.config.prior == "none"
        run_system = create_system(topology, deployed, constraints=settings["constraints"], bond_guard=bool(guard),
                                   contact_guard=settings["contact_guard"])
    if customize_system is not None:
        customize_system(run_system, topology)
    if settings["fast_substeps"] > 1:
        split_force_groups(run_system)
    if settings["ensemble"] == "npt":
        add_barostat(run_system, settings)
    return run_system


def make_simulation(topology, system, settings: Dict[str, Any]):
    """(openmm.app.Simulation, platform, platform properties) of the run."""
    from openmm.app import Simulation

    integrator = build_integrator(settings)
    plat, props = get_platform(settings["platform"], settings["precision"])
    return Simulation(topology, system, integrator, plat, props), plat, props


def run_files(out: Path, topology, model_copy: bool = True) -> Dict[str, Path]:
    """The files of the run directory by role (``model`` only where the run has a model copy)."""
    names = [("trajectory", TRAJ_FILE), ("topology", run_topology_name(topology.getNumAtoms())),
             ("state", STATE_FILE), ("checkpoint", CHECKPOINT_FILE), ("final_state", FINAL_STATE_FILE),
             ("run", RUN_FILE)] + ([("model", MODEL_FILE)] if model_copy else [])
    return {k: out / v for k, v in names}


def _loaded_state_problem(simulation, meta: Dict[str, Any]) -> Optional[str]:
    """Why a loaded checkpoint's state is not the recorded one (None if it is): its step
    differs from the record's, or its positions or energy are not finite."""
    from openmm.unit import kilojoule_per_mole, nanometer

    try:
        st = simulation.context.getState(getPositions=True, getEnergy=True)
    except Exception as err:  # the model or OpenMM refuses the loaded positions
        return f"its state does not evaluate ({openmm_message(err)})"
    if st.getStepCount() != int(meta["step"]):
        return f"it holds step {st.getStepCount()}, its record step {meta['step']}"
    if not np.isfinite(st.getPositions(asNumpy=True).value_in_unit(nanometer)).all():
        return "its positions are not finite"
    e = st.getPotentialEnergy().value_in_unit(kilojoule_per_mole)
    if not np.isfinite(e):
        return f"its potential energy is {e}"
    return None


def restore_checkpoint(simulation, out: Path, run_info: Dict[str, Any], deployed=None) -> RunStart:
    """Load the newest checkpoint whose file matches its record (size and SHA-256 in
    checkpoint.json / checkpoint.prev.json, :meth:`Checkpointer.usable`) and whose loaded
    state is sane (the recorded step, finite positions and energy); a checkpoint passed over
    is a warning naming the file and why. Truncate traj.dcd and state.csv to what belonged
    to it, check the model's cutoff against its box (a run from a model). CheckpointError
    naming every file and why when none is usable."""
    chk = Checkpointer(out)
    found, problems = chk.usable()
    loaded = None
    for cand in found:
        data = cand.path.read_bytes()
        try:
            simulation.context.loadCheckpoint(data)
        except Exception as err:  # damaged in a way the checksum could not see (an old record), or another platform
            problems.append(f"{cand.path.name}: does not load ({openmm_message(err)})")
            continue
        bad = _loaded_state_problem(simulation, cand.meta)
        if bad is not None:
            problems.append(f"{cand.path.name}: loaded, but {bad} (damaged)")
            continue
        # load it again: the check's evaluation leaves forces cached for all force groups, which
        # an r-RESPA integrator would reuse for its first step (then no longer the uninterrupted run)
        simulation.context.loadCheckpoint(data)
        loaded = cand
        break
    if loaded is None:
        why = "; ".join(problems) or "no checkpoint files"
        raise CheckpointError(f"restart: no usable checkpoint in {out}: {why}. Checkpoints load only on the platform "
                              f"that wrote them ({run_info.get('platform')}); a damaged one cannot be repaired: start "
                              "a new run (overwrite=True / --overwrite), or continue_from= a finished copy of the run")
    meta = loaded.meta
    start = RunStart(restarted_from=int(meta["step"]), checkpoint=loaded.path.name)
    if problems or loaded.path != chk.path:
        msg = (f"{'; '.join(problems) or f'{chk.path.name} is not usable'} -- continuing from {loaded.path.name} "
               f"(step {meta['step']}, recorded in {loaded.meta_path.name})")
        warn(msg)
        start.warnings.append(msg)
    if not loaded.verified:
        start.warnings.append(f"{loaded.path.name} has no recorded size and SHA-256 (written by an older cgaa): "
                              "checked after loading only")
    if (out / TRAJ_FILE).exists():
        start.dcd_frames = truncate_dcd(out / TRAJ_FILE, int(meta["dcd_frames"]))
    if (out / STATE_FILE).exists():
        truncate_csv(out / STATE_FILE, int(meta["csv_rows"]))
        start.csv_rows = int(meta["csv_rows"])
    if deployed is not None:
        check_cutoff(deployed.config.cutoff, simulation.context.getState().getPeriodicBoxVectors())
    return start


def place_input(simulation, topology, positions, files: Dict[str, Path],
                continuation: Optional[Continuation] = None, new_velocities: bool = False) -> RunStart:
    """A new run: write the run's topology file, set the positions and the box; a
    continuation also the velocities of the run it continues (unless ``new_velocities``)."""
    with writing(files["topology"]):
        write_box(files["topology"], topology, positions, keep_ids=True)
    simulation.context.setPeriodicBoxVectors(*topology.getPeriodicBoxVectors())
    simulation.context.setPositions(positions)
    if continuation is None:
        return RunStart()
    if not new_velocities:
        simulation.context.setVelocities(continuation.state.getVelocities())
    return RunStart(continuation=continuation, new_velocities=new_velocities)


def record_start(out: Path, run_info: Dict[str, Any], *, settings: Dict[str, Any], source, deployed, system,
                 platform, props: Dict[str, str], topology, files: Dict[str, Path],
                 start: RunStart, made_whole: Optional[int] = None) -> Dict[str, Any]:
    """Update ``run_info`` for this invocation (versions, settings, model summary or the
    given System, platform, files, a continuation's source, molecules made whole), mark an
    earlier invocation that never recorded its end (killed), append this invocation's history
    entry (status "running") and write run.json; returns the entry."""
    import openmm

    run_info.setdefault("history", [])
    for h in run_info["history"]:
        if h.get("status") == "running":
            h["status"] = "ended without a record (killed or crashed)"
    run_info.update({
        "cgaa_version": __import__("cgaa").__version__,
        "openmm_version": openmm.__version__,
        "input": source,
        "settings": settings,
        "model": None if deployed is None else model_summary(deployed),
    })
    if system is not None:
        run_info["system"] = system_summary(system)
    if made_whole is not None:
        run_info["input_made_whole"] = (f"made {made_whole} molecules whole (minimum image about each residue's "
                                        "first atom)")
    cont = start.continuation
    if cont is not None:
        run_info["continued_from"] = {"run": str(cont.source), "step": cont.step, "time_ps": cont.time_ps,
                                      "velocities": f"new at {settings['temperature']} K" if start.new_velocities
                                      else "kept", "box": "kept", "minimized": bool(settings["minimize"])}
    run_info.update({
        "platform": platform.getName(),
        "platform_properties": props,
        "n_atoms": topology.getNumAtoms(),
        "n_residues": topology.getNumResidues(),
        "files": {k: v.name for k, v in files.items()},
        "units": dict(RUN_UNITS),
    })
    entry = {"started": utc_now(), "from_step": start.restarted_from or 0, "status": "running"}
    if start.checkpoint is not None:
        entry["checkpoint"] = start.checkpoint
    if start.warnings:
        entry["warnings"] = list(start.warnings)
    run_info["history"].append(entry)
    _write_run_json(out, run_info)
    return entry


def _write_run_json(out: Path, run_info: Dict[str, Any]) -> None:
    with writing(out / RUN_FILE):
        write_text_atomic(out / RUN_FILE, json.dumps(run_info, indent=1))


def _strong_friction(integrator, settings: Dict[str, Any], friction_per_ps: float):
    """Switch a Langevin integrator (``LangevinMiddleIntegrator``, or the r-RESPA
    ``MTSLangevinIntegrator`` through its globals ``a``, ``b``) to ``friction_per_ps``;
    returns the function that restores it exactly, or None for an integrator without friction
    (Verlet, nve)."""
    import math

    import openmm
    from openmm.unit import picosecond

    if isinstance(integrator, openmm.LangevinMiddleIntegrator):
        old = integrator.getFriction()
        integrator.setFriction(float(friction_per_ps) / picosecond)
        return lambda: integrator.setFriction(old)
    if isinstance(integrator, openmm.CustomIntegrator):
        names = {integrator.getGlobalVariableName(i) for i in range(integrator.getNumGlobalVariables())}
        if {"a", "b", "kT"} <= names:
            old = {k: integrator.getGlobalVariableByName(k) for k in ("a", "b")}
            inner_ps = float(settings["timestep_fs"]) * units.PS_PER_FS / int(settings.get("fast_substeps", 1))
            integrator.setGlobalVariableByName("a", math.exp(-float(friction_per_ps) * inner_ps))
            integrator.setGlobalVariableByName("b", math.sqrt(1 - math.exp(-2 * float(friction_per_ps) * inner_ps)))

            def restore():
                for k, v in old.items():
                    integrator.setGlobalVariableByName(k, v)

            return restore
    return None


def thermalise(simulation, system, settings: Dict[str, Any], reporter: Reporter, guard: "SigintGuard",
               progress: bool = True) -> Dict[str, Any]:
    """Bring freshly drawn velocities to the temperature before step 0: ``thermalize_ps`` of
    Langevin dynamics at ``thermalize_friction_per_ps`` (default 1 ps at 10/ps, ten times the
    run's friction), with the run's integrator (its friction switched and restored; npt keeps
    its barostat) or, for nve, a Langevin integrator in a Context of its own. A minimised
    box otherwise loses half its kinetic energy to the potential within ~25 fs and is then
    heated by its own relaxation (measured on a 1000-atom box at 1/ps: 188 K at 25 fs, 316 K
    on average 0.5-1 ps later, at 298 K). Checked like the run (SimulationError naming the
    thermalisation step); Ctrl-C stops it (``guard``). Step and time are 0 afterwards: none of
    it is in state.csv or traj.dcd. Returns its summary for run.json."""
    import openmm

    dt_ps = float(settings["timestep_fs"]) * units.PS_PER_FS
    n = int(round(float(settings["thermalize_ps"]) / dt_ps))
    gamma = float(settings["thermalize_friction_per_ps"])
    if n <= 0:
        return {}
    ctx, integ = simulation.context, simulation.integrator
    restore = _strong_friction(integ, settings, gamma)
    own = None
    how = f"the run's integrator at {gamma:g}/ps"
    if restore is None:
        integ = build_integrator(dict(settings, ensemble="nvt", friction_per_ps=gamma))
        plat = ctx.getPlatform()
        props = {"Precision": settings["precision"]} if "Precision" in plat.getPropertyNames() else {}
        own = openmm.Context(system, integ, plat, props)
        st = ctx.getState(getPositions=True, getVelocities=True)
        own.setPeriodicBoxVectors(*st.getPeriodicBoxVectors())
        own.setPositions(st.getPositions())
        own.setVelocities(st.getVelocities())
        ctx = own
        how = f"a Langevin integrator at {gamma:g}/ps (the run's has no friction)"
    say(f"thermalising: {n} steps ({n * dt_ps:g} ps) of Langevin dynamics at {gamma:g}/ps, "
        f"{float(settings['temperature']):g} K (not in the outputs)", progress)
    chunk = max(10, n // 10)  # about 10 checks (each evaluates energies and forces once)
    temps = []
    t0 = time.perf_counter()
    done = 0

    def temperature(where):
        st = ctx.getState(getEnergy=True, getForces=True)
        return reporter.check(st, 0, where=where)["temperature_K"]

    try:
        temps.append(temperature("thermalisation start (before step 0)"))
        while done < n and not guard.requested:
            k = min(chunk, n - done)
            try:
                integ.step(k)
            except openmm.OpenMMException as err:
                raise SimulationError(f"thermalisation step {done + k} of {n} (before step 0): OpenMM failed: "
                                      f"{openmm_message(err)}", 0, "integration") from None
            done += k
            temps.append(temperature(f"thermalisation step {done} of {n} (before step 0)"))
    finally:
        if own is not None:
            st = own.getState(getPositions=True, getVelocities=True)
            simulation.context.setPeriodicBoxVectors(*st.getPeriodicBoxVectors())
            simulation.context.setPositions(st.getPositions())
            simulation.context.setVelocities(st.getVelocities())
            del own
        if restore is not None:
            restore()
        simulation.context.setTime(0.0)
        simulation.context.setStepCount(0)
    half = temps[len(temps) // 2:]
    out = {"steps": done, "of_steps": n, "time_ps": done * dt_ps, "friction_per_ps": gamma, "integrator": how,
           "temperature_start_K": temps[0], "temperature_end_K": temps[-1],
           "temperature_mean_second_half_K": float(np.mean(half)), "temperatures_K": [round(t, 2) for t in temps],
           "check_every_steps": chunk, "wall_s": time.perf_counter() - t0,
           "in_outputs": False}
    if done < n:
        out["stopped"] = True
    say(f"thermalised in {out['wall_s']:.1f} s: {temps[0]:.1f} K -> {temps[-1]:.1f} K", progress)
    return out


def _apply_constraints_if_needed(simulation, start: RunStart, settings: Dict[str, Any]) -> None:
    """A continuation whose constraints differ from its source's: put positions and
    velocities on the new constraints (a no-op otherwise, so the state stays exactly the source's)."""
    src = (start.continuation.run_info.get("settings") or {}).get("constraints")
    if settings.get("constraints") != src and simulation.system.getNumConstraints() > 0:
        simulation.context.applyConstraints(1e-6)
        simulation.context.applyVelocityConstraints(1e-6)


def prepare_first_step(simulation, system, settings: Dict[str, Any], start: RunStart, entry: Dict[str, Any],
                       reporter: Reporter, guard: "SigintGuard", progress: bool = True) -> bool:
    """A new run (or a continuation): minimise (``minimize``; a continuation only if asked),
    draw velocities at the temperature (a new run, or a continuation with new velocities),
    check the state, thermalise the new velocities (:func:`thermalise`). Summaries and wall
    times go to ``entry``. False if Ctrl-C stopped it before the first step."""
    import openmm
    from openmm.unit import kelvin

    if start.continuation is not None:
        _apply_constraints_if_needed(simulation, start, settings)
    if settings["minimize"]:
        n_c = simulation.system.getNumConstraints()
        how = "capped steepest descent (the System has constraints)" if n_c else "L-BFGS"
        say(f"minimising the energy: {how}, at most {int(settings['minimize_iterations'])} iterations", progress)
        t0 = time.perf_counter()
        try:
            res = minimize_energy(simulation.context, int(settings["minimize_iterations"]),
                                  stop=lambda: guard.requested, progress=progress)
        except openmm.OpenMMException as err:
            raise SimulationError(f"energy minimisation failed: {openmm_message(err)}", 0, "minimisation") from None
        res["wall_s"] = time.perf_counter() - t0
        entry["minimization"] = res
        say(f"minimised in {res['wall_s']:.1f} s ({res['method']}, {res.get('iterations', '?')} iterations): "
            f"{res['energy_start_kJ_mol']:.6g} -> {res['energy_kJ_mol']:.6g} kJ/mol", progress)
        if res.get("stopped") or guard.requested:
            return False
    draw = start.continuation is None or start.new_velocities
    if draw:
        try:
            simulation.context.setVelocitiesToTemperature(float(settings["temperature"]) * kelvin,
                                                          int(settings["seed"]))
        except openmm.OpenMMException as err:
            raise SimulationError(f"drawing velocities failed: {openmm_message(err)}", 0, "velocities") from None
    reporter.check(reporter.state(False), 0)  # the start itself is sane (step 0: ...)
    if draw and float(settings["thermalize_ps"]) > 0:
        entry["thermalization"] = thermalise(simulation, system, settings, reporter, guard, progress)
        if guard.requested:
            return False
    return True


@dataclass
class Dynamics:
    """What :func:`run_dynamics` did: stopped by Ctrl-C (``interrupted``; before the first
    step: ``before_first_step``), the last state row, the temperatures of the rows written,
    the MD steps and their wall time."""

    interrupted: bool = False
    before_first_step: bool = False
    last: Dict[str, float] = field(default_factory=dict)
    temperatures: list = field(default_factory=list)
    md_steps: int = 0
    md_wall_s: float = 0.0


def run_dynamics(simulation, system, settings: Dict[str, Any], out: Path, start: RunStart,
                 run_info: Dict[str, Any], entry: Dict[str, Any], *, callback=None,
                 progress: bool = True) -> Dynamics:
    """A new run or continuation: :func:`prepare_first_step` (minimisation, velocities,
    thermalisation), then report and checkpoint step 0; integrate (:func:`_integrate`).
    Ctrl-C is caught throughout (:class:`SigintGuard`). A SimulationError or RunWriteError
    is recorded in run.json ("failed" with the error) and raised again naming the last good
    checkpoint; any other exception is recorded too before it propagates."""
    restart = start.restarted_from is not None
    chk = Checkpointer(out)
    reporter = None
    dyn = Dynamics()
    with SigintGuard() as guard:
        try:
            reporter = Reporter(simulation, system, settings, out, append=restart, dcd_frames=start.dcd_frames,
                                csv_rows=start.csv_rows, open_files=restart)
            if not restart:
                if not prepare_first_step(simulation, system, settings, start, entry, reporter, guard, progress):
                    dyn.interrupted = dyn.before_first_step = True
                    return dyn
                reporter.open()
                st = reporter.state(True)
                row = reporter.check(st, 0)
                reporter.write(st, row)
                chk.save(simulation.context, 0, 0.0, reporter.dcd_frames, reporter.csv_rows)
                if callback:
                    callback(row)
            reporter.restart_clock()
            t0, step0 = time.perf_counter(), simulation.currentStep
            dyn.interrupted = _integrate(simulation, settings, reporter, chk, callback, progress, guard)
            dyn.md_wall_s, dyn.md_steps = time.perf_counter() - t0, simulation.currentStep - step0
        except SimulationError as err:
            raise _record_failure(err, out, chk, run_info, entry) from None
        except RunWriteError as err:
            raise _record_write_failure(err, simulation, out, chk, run_info, entry) from None
        except BaseException as err:
            _record_abort(err, simulation, out, chk, run_info, entry)
            raise
        finally:
            if reporter is not None:
                reporter.close()
                dyn.last = dict(reporter.last)
                dyn.temperatures = list(reporter.temperatures)
    return dyn


def _checkpoint_note(chk: Checkpointer) -> Tuple[Optional[int], str]:
    """(step of the last checkpoint or None, how a message names it)."""
    if chk.path.exists() and chk.meta.exists():
        try:
            step = int(read_json(chk.meta)["step"])
        except (OSError, ValueError, KeyError):
            step = None
        return step, f"the last good checkpoint (step {'?' if step is None else step}) is kept in {chk.path}"
    return None, "no checkpoint was written"


def _try_write_run_json(out: Path, run_info: Dict[str, Any]) -> bool:
    try:
        _write_run_json(out, run_info)
        return True
    except OSError:
        return False


def _record_failure(err: SimulationError, out: Path, chk: Checkpointer, run_info: Dict[str, Any],
                    entry: Dict[str, Any]) -> SimulationError:
    """Mark the run failed in run.json; the SimulationError to raise, naming the last good
    checkpoint (kept) or saying there was none."""
    entry.update(status="failed", ended=utc_now(), error=str(err), at_step=err.step)
    if chk.path.exists():
        err.checkpoint = chk.path
        last = read_json(chk.meta)["step"] if chk.meta.exists() else "?"
        msg = (f"{err} -- stopped; the last good checkpoint (step {last}) is kept in {chk.path}. "
               "Check the model and the input (overlapping atoms?), try a smaller timestep, then "
               "continue with --restart")
    else:
        msg = f"{err} -- stopped before any checkpoint was written"
    _try_write_run_json(out, run_info)
    return SimulationError(msg, err.step, err.quantity, err.checkpoint)


def _record_write_failure(err: RunWriteError, simulation, out: Path, chk: Checkpointer, run_info: Dict[str, Any],
                          entry: Dict[str, Any]) -> RunWriteError:
    """A write failed mid-run (full disk): record "failed" with the error in run.json (if even
    that can be written) and return the one-line RunWriteError to raise."""
    step = simulation.currentStep
    entry.update(status="failed", ended=utc_now(), error=str(err), at_step=step)
    ok = _try_write_run_json(out, run_info)
    _, kept = _checkpoint_note(chk)
    new = RunWriteError(f"{err} -- stopped at step {step}; {kept}"
                        + ("" if ok else f" ({RUN_FILE} could not record the failure)")
                        + ". Free space or fix the directory, then continue with --restart")
    new.errno = err.errno
    return new


def _record_abort(err: BaseException, simulation, out: Path, chk: Checkpointer, run_info: Dict[str, Any],
                  entry: Dict[str, Any]) -> None:
    """Any other exception (a second Ctrl-C, a bug): run.json must not keep saying "running"."""
    step = simulation.currentStep
    if isinstance(err, KeyboardInterrupt):
        status = "interrupted" if chk.path.exists() else BEFORE_FIRST_STEP
        entry.update(status=status, ended=utc_now(), at_step=step, error="aborted by a second Ctrl-C")
    else:
        entry.update(status="failed", ended=utc_now(), at_step=step,
                     error=f"{type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err).strip() else ''}")
    _try_write_run_json(out, run_info)


def finish_run(simulation, settings: Dict[str, Any], out: Path, run_info: Dict[str, Any],
               entry: Dict[str, Any], *, dyn: Dynamics, start: RunStart,
               files: Dict[str, Path]) -> SimulationResult:
    """Write final_state.xml (not for a run stopped before its first step), the invocation's
    end (status, step, ns/day of the MD steps, mean temperature of its reports) to run.json;
    returns the :class:`SimulationResult`."""
    import openmm

    step = simulation.currentStep
    dt_ps = float(settings["timestep_fs"]) * units.PS_PER_FS
    if dyn.before_first_step:
        clear = [f for f in (FINAL_STATE_FILE,) if (out / f).exists()]
        for f in clear:
            (out / f).unlink()
        entry.update(status=BEFORE_FIRST_STEP, ended=utc_now(), to_step=0)
        _write_run_json(out, run_info)
        return _result(out, 0, dt_ps, 0.0, dyn, start, files, entry, interrupted=True)
    try:
        state = simulation.context.getState(getPositions=True, getVelocities=True, enforcePeriodicBox=False)
        with writing(out / FINAL_STATE_FILE), atomic_path(out / FINAL_STATE_FILE) as tmp:
            tmp.write_text(openmm.XmlSerializer.serialize(state))
    except RunWriteError as err:
        raise _record_write_failure(err, simulation, out, Checkpointer(out), run_info, entry) from None
    wall = dyn.md_wall_s
    speed = dyn.md_steps * dt_ps * units.NS_PER_PS / (wall / units.SECONDS_PER_DAY) if wall > 0 and dyn.md_steps else 0.0
    mean_t = float(np.mean(dyn.temperatures)) if dyn.temperatures else float("nan")
    entry.update(status="interrupted" if dyn.interrupted else "finished", ended=utc_now(), to_step=step,
                 ns_per_day=speed, md_wall_s=wall, reports=len(dyn.temperatures),
                 mean_temperature_K=mean_t if dyn.temperatures else None)
    _write_run_json(out, run_info)
    return _result(out, step, dt_ps, speed, dyn, start, files, entry, interrupted=dyn.interrupted)


def _result(out, step, dt_ps, speed, dyn: Dynamics, start: RunStart, files, entry, *, interrupted) -> SimulationResult:
    mini, therm = entry.get("minimization"), entry.get("thermalization")
    return SimulationResult(
        out_dir=out, steps=step, time_ps=step * dt_ps, ns_per_day=speed, interrupted=interrupted,
        restarted_from=start.restarted_from, last=dyn.last, files=files,
        mean_temperature_K=float(np.mean(dyn.temperatures)) if dyn.temperatures else float("nan"),
        n_reports=len(dyn.temperatures), md_wall_s=dyn.md_wall_s,
        minimization_s=None if not mini else mini.get("wall_s"),
        thermalization_s=None if not therm else therm.get("wall_s"),
        before_first_step=dyn.before_first_step,
        continued_from=None if start.continuation is None else start.continuation.source,
        warnings=list(start.warnings))


# ---------------------------------------------------------------------------- the run
def run_simulation(
    system_input: Union[str, Path, Any, None] = None,
    model: Any = None,
    out_dir: Union[str, Path] = "run",
    *,
    ensemble: Optional[str] = None,
    temperature: Optional[float] = None,
    pressure: Optional[float] = None,
    timestep_fs: Optional[float] = None,
    steps: Optional[int] = None,
    time_ps: Optional[float] = None,
    report_interval: Optional[int] = None,
    checkpoint_interval: Optional[int] = None,
    platform: Optional[str] = None,
    precision: Optional[str] = None,
    seed: Optional[int] = None,
    restart: bool = False,
    continue_from: Union[str, Path, None] = None,
    new_velocities: bool = False,
    minimize: Optional[bool] = None,
    minimize_iterations: Optional[int] = None,
    thermalize_ps: Optional[float] = None,
    thermalize_friction_per_ps: Optional[float] = None,
    friction_per_ps: Optional[float] = None,
    barostat_interval: Optional[int] = None,
    max_force: Optional[float] = None,
    max_temperature: Optional[float] = None,
    n_atoms: Optional[int] = None,
    constraints: Optional[str] = None,
    bond_guard: Optional[Union[bool, str]] = None,
    contact_guard: Optional[bool] = None,
    fast_substeps: Optional[int] = None,
    overwrite: bool = False,
    progress: bool = True,
    callback: Optional[Callable[[Dict[str, float]], None]] = None,
    customize_system: Optional[Callable[[Any, Any], None]] = None,
    system: Any = None,
) -> SimulationResult:
    """Run (or continue) CGAA molecular dynamics in OpenMM and write ``out_dir``.

    system_input: box file path (from ``cgaa build``; PDB with CONECT and CRYST1, or
        PDBx/mmCIF; one residue per grain), a recipe name or YAML path (built on the fly
        with ``n_atoms`` atoms, default 3000), an ``openmm.app.PDBFile``/``PDBxFile`` or a
        ``(topology, positions nm)`` pair. On restart or with ``continue_from`` it must be
        None. Its coordinates must be finite and within 10 box lengths of the origin
        (ValueError naming the atom by PDB serial, name and residue); each residue is made
        whole by minimum image about its first atom (run.json records how many were not).
    model: deployed model path, DeployedModel or eager CGAAModel; None: the shipped
        default (on restart: the run's copy, model.pt; with ``continue_from``: that run's
        copy). It is copied to ``out_dir/model.pt``. A training checkpoint (best.pt of
        ``cgaa train``) is refused with the ``cgaa deploy`` command that makes a model of it.
    ensemble: ``nvt`` (Langevin middle, default), ``npt`` (+ MonteCarloBarostat) or ``nve`` (Verlet).
    temperature: K (default 298.15; also the initial velocities in nve).
    pressure: bar (npt only, default 1.0: a ValueError with another ensemble).
    timestep_fs: fs (default 1.0).
    steps: total steps of the run, counted from its start (default 10000; a restart
        continues up to it); or time_ps: total simulated time in ps (a ValueError if it is
        shorter than half a time step).
    report_interval: steps between trajectory frames and state rows (default
        ``min(1000, max(1, steps // 10))``; one longer than the run is a ValueError).
    checkpoint_interval: steps between checkpoints (default 10000; step 0 and the last
        step always get one).
    platform: Reference, CPU (default), CUDA or OpenCL; precision: single, mixed
        (default) or double, where the platform has the property.
    seed: velocities, thermostat and barostat seed (default 0).
    restart: continue from the last checkpoint in ``out_dir`` (settings from run.json,
        the dynamics ones may not change). Each checkpoint's size and SHA-256 are recorded
        beside it and checked before it is loaded; a damaged last one is passed over for
        the previous one with a warning; none usable is a CheckpointError.
    continue_from: a finished run's directory: start this new run from its final state
        (final_state.xml: positions, velocities, box) and topology, with its dynamics
        settings unless given (ensemble, temperature, pressure for npt, timestep, friction,
        barostat interval, constraints, guards, fast_substeps, platform, precision); no
        minimisation (unless ``minimize=True``) and no new velocities (unless
        ``new_velocities=True``, which also thermalises them).
    minimize: minimise the energy first (default True for a new run, False for a
        continuation; never on restart), at most ``minimize_iterations`` iterations
        (default 1000): a capped steepest descent when the System has constraints (the
        default), else L-BFGS (cgaa.md.minimize).
    thermalize_ps: after drawing velocities at ``temperature``, this long of Langevin
        dynamics at ``thermalize_friction_per_ps`` (defaults 1.0 ps, 10/ps) before step 0,
        so the run starts at its temperature; 0 switches it off. Not in traj.dcd or
        state.csv; run.json records it.
    friction_per_ps: Langevin friction, 1/ps (default 1). barostat_interval: steps (25).
    max_force: kJ/mol/nm (default 1e5, ~100 eV/Å); max_temperature: K (default
        max(3T, T + 1000)): the safety limits.
    overwrite: replace a previous run in ``out_dir`` (otherwise refused), its analysis
        folder included. A run stopped before its first step (Ctrl-C during minimisation or
        thermalisation) is replaced without it.
    progress: show progress bars (minimisation, MD with ns/day) and progress lines.
    callback: called with each state row (dict) after it is written.
    constraints: ``"hbonds"`` (default: bonds to H held at the teacher's lengths, the ML
        model is least reliable for large bond stretches) or ``"none"``.
    bond_guard: a flat-bottom restraint, zero within ±0.1 Å of each bond's teacher length
        (``cgaa.openmm.add_bond_guard``), keeps bonds out of the untrained region. Default
        ``"auto"``: on for a model without a bonded prior, off for one with (its harmonic
        prior terms already hold bonds together, see :mod:`cgaa.priors`); True / False force
        it on / off (anything else is a ValueError).
    contact_guard: a repulsive wall between atoms of different grains at 0.9 × the closest
        approach of their elements in the model's training data
        (``cgaa.openmm.guards.add_contact_guard``; default True; models without a recorded
        contact floor get none): keeps MD out of close contacts the model never saw.
    fast_substeps: multiple time stepping (r-RESPA, :mod:`cgaa.openmm.mts`): the classical
        forces inside grains (the prior's bonds, angles, torsions, intramolecular pairs) are
        integrated ``fast_substeps`` times per step of ``timestep_fs``, the CGAA network and
        the forces between grains once (default 1: no splitting). ``timestep_fs=2,
        fast_substeps=2`` moves bonds at 1 fs and calls the network every 2 fs; steps,
        report and checkpoint intervals and the barostat interval count steps of
        ``timestep_fs``. Forces added by ``customize_system`` join the fast group. With the
        shipped model a 2 fs step keeps ion diffusion; a 4 fs step keeps density and structure
        but speeds up ion diffusion 2–3× (docs/simulate.md).
    customize_system: called as ``customize_system(system, topology)`` after the System is
        built (or copied from ``system``) and before the barostat and Context are: add
        restraints or classical terms here (pass the same function again on restart).
    system: an ``openmm.System`` for the input's topology (one particle per atom, in its
        order), run as it is instead of a CGAA System built from a model: ``model`` must then
        be None (ValueError otherwise) and nothing is copied to model.pt; ``constraints``,
        ``bond_guard`` and ``contact_guard``, which build the CGAA System, must be left unset
        (ValueError; put constraints or restraints into the System itself) and are recorded
        as None; the System may not hold a barostat (``ensemble="npt"`` adds the run's), and
        ``fast_substeps`` > 1 needs a CGAA TorchForce in it. The run works on a copy (the
        barostat, ``customize_system`` and force groups do not touch the caller's System);
        run.json records ``"system": "given (N forces: names; ...)"`` and ``"model": None``.
        A restart of such a run needs the same System passed again (ValueError without it,
        or with one whose forces, particles or constraints differ); a run from a model
        restarts without one.

    Raises RunDirError (a ValueError) for an ``out_dir`` that is a file, cannot be created
    or already holds a run; ValueError for bad settings or input coordinates, a model that
    does not cover the topology or a box too small for the cutoff (all before anything
    runs); CheckpointError when a restart finds no usable checkpoint; SimulationError when
    the dynamics becomes unphysical (last good checkpoint kept); RunWriteError (an OSError)
    when a file cannot be written (run.json then records the failure).
    """
    out = Path(out_dir)
    given = dict(ensemble=ensemble, temperature=temperature, pressure=pressure, timestep_fs=timestep_fs,
                 steps=steps, time_ps=time_ps, report_interval=report_interval,
                 checkpoint_interval=checkpoint_interval, platform=platform, precision=precision, seed=seed,
                 minimize=minimize, minimize_iterations=minimize_iterations, friction_per_ps=friction_per_ps,
                 barostat_interval=barostat_interval, max_force=max_force, max_temperature=max_temperature,
                 n_atoms=n_atoms, constraints=constraints, bond_guard=bond_guard,
                 contact_guard=contact_guard, fast_substeps=fast_substeps, thermalize_ps=thermalize_ps,
                 thermalize_friction_per_ps=thermalize_friction_per_ps)
    run_info, settings = prepare_run_dir(out, given, restart=restart, overwrite=overwrite,
                                         system_input=system_input, model=model, system=system,
                                         continue_from=continue_from)
    cont = run_info.pop("_continuation", None)
    topology, positions, source = load_run_input(system_input, out, settings, run_info, restart, cont)
    check_input(topology, positions, system, far=not restart and cont is None)
    made_whole = None
    if not restart and cont is None:
        positions, made_whole = whole_molecules(topology, positions, progress)
    deployed = None if system is not None else run_model(model, out, restart, cont)
    run_system = build_run_system(topology, settings, deployed, system, customize_system)
    simulation, plat, props = make_simulation(topology, run_system, settings)
    files = run_files(out, topology, model_copy=deployed is not None)
    if restart:
        start = restore_checkpoint(simulation, out, run_info, deployed)
    else:
        start = place_input(simulation, topology, positions, files, cont, new_velocities)
    entry = record_start(out, run_info, settings=settings, source=source, deployed=deployed, system=system,
                         platform=plat, props=props, topology=topology, files=files, start=start,
                         made_whole=made_whole)
    dyn = run_dynamics(simulation, run_system, settings, out, start, run_info, entry,
                       callback=callback, progress=progress)
    res = finish_run(simulation, settings, out, run_info, entry, dyn=dyn, start=start, files=files)
    res.made_whole = made_whole or 0
    return res


def _integrate(simulation, settings: Dict[str, Any], reporter: Reporter, chk: Checkpointer,
               callback, progress: bool, guard: SigintGuard) -> bool:
    """The MD loop: step in chunks to the next report/checkpoint, check, write. Returns
    True if stopped by Ctrl-C (``guard``; after saving a checkpoint)."""
    import openmm
    from tqdm import tqdm

    target = int(settings["steps"])
    rep = int(settings["report_interval"])
    cpi = int(settings["checkpoint_interval"])
    dt_ps = float(settings["timestep_fs"]) * units.PS_PER_FS
    current = simulation.currentStep
    bar = tqdm(total=target, initial=min(current, target), unit="step", disable=not progress,
               dynamic_ncols=True, desc="cgaa simulate")
    try:
        while current < target:
            nxt = min((current // rep + 1) * rep, (current // cpi + 1) * cpi, target)
            try:
                simulation.step(nxt - current)
            except openmm.OpenMMException as err:
                raise SimulationError(f"between step {current} and step {nxt}: OpenMM failed: {openmm_message(err)}",
                                      nxt, "integration") from None
            current = simulation.currentStep
            bar.update(current - bar.n)
            report_now = current % rep == 0
            checkpoint_now = current % cpi == 0 or current == target or guard.requested
            if report_now or checkpoint_now:
                st = reporter.state(report_now)
                row = reporter.check(st, current)
                if report_now:
                    reporter.write(st, row)
                    if callback:
                        callback(row)
                    bar.set_postfix_str(f"{reporter.speed:.3g} ns/day, T {row['temperature_K']:.0f} K",
                                        refresh=False)
                if checkpoint_now or guard.requested:
                    chk.save(simulation.context, current, current * dt_ps, reporter.dcd_frames,
                             reporter.csv_rows)
            if guard.requested:
                return True
    finally:
        bar.close()
    return False


__all__ = ["run_simulation", "SimulationError", "SimulationResult", "RunStart", "Dynamics", "resolve_settings",
           "load_state_csv", "truncate_dcd", "truncate_csv", "minimize_energy", "capped_minimize",
           "degrees_of_freedom", "get_platform", "build_integrator", "add_barostat", "system_summary",
           "check_given_system", "prepare_run_dir", "load_run_input", "run_model", "check_input",
           "whole_molecules", "build_run_system", "make_simulation", "run_files", "restore_checkpoint",
           "place_input", "record_start", "prepare_first_step", "thermalise", "run_dynamics", "finish_run",
           "reusable_run_dir", "clear_run_dir", "CheckpointError", "RunDirError", "RunWriteError",
           "BEFORE_FIRST_STEP", "DEFAULTS", "ENSEMBLES", "PLATFORMS", "PRECISIONS", "STATE_COLUMNS",
           "CGAA_SYSTEM_SETTINGS"]
