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

``restart=True`` continues from the last checkpoint, truncating ``traj.dcd`` and
``state.csv`` to what was written up to it (so a crashed or interrupted run resumes
without duplicated frames) and appending. On the Reference platform a restarted run
reproduces the uninterrupted one exactly.

Safety: at every report and checkpoint the energy must be finite, the largest force and
the temperature below limits; otherwise :class:`SimulationError` names the step and the
quantity and the last good checkpoint is kept. Ctrl-C (SIGINT) finishes the current
chunk, saves a checkpoint and returns with ``interrupted=True``.

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
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple, Union

import numpy as np

from cgaa.core import units
from cgaa.core.fileio import atomic_path, write_text_atomic
from cgaa.core.modelfile import METADATA_FILE, load_model
from cgaa.md.minimize import capped_minimize, minimize_energy, openmm_message
from cgaa.md.reporter import Reporter, SimulationError, degrees_of_freedom
from cgaa.md.rundir import (CHECKPOINT_FILE, CHECKPOINT_META, FINAL_STATE_FILE, INPUT_FILE, MODEL_FILE,
                            PREV_CHECKPOINT_FILE, PREV_CHECKPOINT_META, RUN_FILE, STATE_COLUMNS, STATE_FILE,
                            TOPOLOGY_FILE, TRAJ_FILE, Checkpointer, load_state_csv, read_json, truncate_csv,
                            truncate_dcd, utc_now)
from cgaa.md.settings import CGAA_SYSTEM_SETTINGS, DEFAULTS, ENSEMBLES, PLATFORMS, PRECISIONS, resolve_settings
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
#: Units of run.json and state.csv (recorded in run.json).
RUN_UNITS = {"temperature": "K", "pressure": "bar", "timestep": "fs", "time": "ps",
             "energy": "kJ/mol", "force": "kJ/mol/nm", "length": "nm", "density": "g/cm^3"}


@dataclass
class SimulationResult:
    """What :func:`run_simulation` did. ``steps`` is the step count reached, ``time_ps``
    the simulated time, ``ns_per_day`` the mean speed of this invocation, ``last`` the last
    state.csv row, ``interrupted`` True after Ctrl-C (a checkpoint was saved)."""

    out_dir: Path
    steps: int
    time_ps: float
    ns_per_day: float
    interrupted: bool = False
    restarted_from: Optional[int] = None
    last: Dict[str, float] = field(default_factory=dict)
    files: Dict[str, Path] = field(default_factory=dict)


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
    with atomic_path(dest) as tmp:
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
    """First Ctrl-C sets ``requested`` (the run stops at the next chunk boundary); a second
    one raises KeyboardInterrupt. Only active in the main thread."""

    def __init__(self):
        self.requested = False
        self._old = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
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
    belong to it."""

    restarted_from: Optional[int] = None
    dcd_frames: int = 0
    csv_rows: int = 0


def prepare_run_dir(out: Path, given: Dict[str, Any], *, restart: bool, overwrite: bool, system_input,
                    model=None, system=None) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """(run_info, settings): check the input against ``restart``; for a restart read
    run.json and merge ``given`` with its settings, for a new run refuse (or, with
    ``overwrite``, clear) an earlier run in ``out``, resolve the settings and create ``out``."""
    if system is not None:
        check_given_system(system, model)
    given_system = system is not None
    if restart:
        if not (out / RUN_FILE).is_file():
            raise FileNotFoundError(f"restart: {out / RUN_FILE} not found: {out} holds no cgaa run")
        run_info = read_json(out / RUN_FILE)
        _check_restart_system(run_info, system, out)
        settings = resolve_settings(given, run_info["settings"], given_system=given_system)
        if system_input is not None:
            raise ValueError("restart continues the run in out_dir from its topology file; do not give an input")
        return run_info, settings
    if system_input is None:
        raise ValueError("give an input: a PDB file (cgaa build), a recipe name, or restart=True")
    if out.exists() and any((out / f).exists() for f in RUN_MARKERS):
        if not overwrite:
            raise ValueError(f"{out} already holds a run; continue it with restart=True (--restart), "
                             "replace it with overwrite=True (--overwrite), or choose another directory")
        for f in RUN_OUTPUTS + ((MODEL_FILE,) if given_system else ()):
            (out / f).unlink(missing_ok=True)
    settings = resolve_settings(given, given_system=given_system)
    out.mkdir(parents=True, exist_ok=True)
    return {}, settings


def load_run_input(system_input, out: Path, settings: Dict[str, Any], run_info: Dict[str, Any],
                   restart: bool):
    """(topology, positions, description of the input): a restart's from the run's
    topology file, a new run's from ``system_input`` (:func:`_load_input`)."""
    if not restart:
        return _load_input(system_input, out, settings)
    top_file = find_run_topology(out)
    if top_file is None:
        raise FileNotFoundError(f"restart: no {TOPOLOGY_FILE} (or {RUN_TOPOLOGY_STEM}.cif) in {out}")
    box = read_box(top_file)
    return box.topology, box.positions, run_info.get("input")


def run_model(model, out: Path, restart: bool):
    """The DeployedModel of the run: on a restart without ``model`` the run's copy,
    otherwise ``model`` (None: the shipped one), copied to ``out/model.pt``."""
    if restart and model is None:
        return load_model(out / MODEL_FILE)
    return _write_model_copy(model, out)


def check_input(topology, positions, system=None) -> None:
    """ValueError unless the input is a periodic box with one position per atom (and a
    given ``system`` one particle per atom)."""
    if topology.getPeriodicBoxVectors() is None:
        raise ValueError("the input has no periodic box (PDB CRYST1 record): cgaa simulate runs periodic "
                         "boxes; build one with `cgaa build`")
    if len(positions) != topology.getNumAtoms():
        raise ValueError(f"{len(positions)} positions for {topology.getNumAtoms()} atoms")
    if system is not None and system.getNumParticles() != topology.getNumAtoms():
        raise ValueError(f"the given System has {system.getNumParticles()} particles, the input "
                         f"{topology.getNumAtoms()} atoms")


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


def restore_checkpoint(simulation, out: Path, run_info: Dict[str, Any], deployed=None) -> RunStart:
    """Load the last usable checkpoint (the last, else the previous one), truncate
    traj.dcd and state.csv to what belonged to it, check the model's cutoff against its
    box (a run from a model); FileNotFoundError naming why no checkpoint loaded."""
    meta = None
    errors = []
    for c_path, m_path in Checkpointer(out).candidates():
        if not (c_path.is_file() and m_path.is_file()):
            continue
        try:
            simulation.context.loadCheckpoint(c_path.read_bytes())
            meta = read_json(m_path)
            break
        except Exception as err:  # corrupt, or written by another platform
            errors.append(f"{c_path.name}: {openmm_message(err)}")
    if meta is None:
        why = "; ".join(errors) or "no checkpoint files"
        raise FileNotFoundError(f"restart: no usable checkpoint in {out} ({why}); checkpoints only load "
                                f"on the platform that wrote them ({run_info.get('platform')})")
    start = RunStart(restarted_from=int(meta["step"]))
    if (out / TRAJ_FILE).exists():
        start.dcd_frames = truncate_dcd(out / TRAJ_FILE, int(meta["dcd_frames"]))
    if (out / STATE_FILE).exists():
        truncate_csv(out / STATE_FILE, int(meta["csv_rows"]))
        start.csv_rows = int(meta["csv_rows"])
    if deployed is not None:
        check_cutoff(deployed.config.cutoff, simulation.context.getState().getPeriodicBoxVectors())
    return start


def place_input(simulation, topology, positions, files: Dict[str, Path]) -> RunStart:
    """A new run: write the run's topology file, set the positions and the box."""
    write_box(files["topology"], topology, positions, keep_ids=True)
    simulation.context.setPositions(positions)
    simulation.context.setPeriodicBoxVectors(*topology.getPeriodicBoxVectors())
    return RunStart()


def record_start(out: Path, run_info: Dict[str, Any], *, settings: Dict[str, Any], source, deployed, system,
                 platform, props: Dict[str, str], topology, files: Dict[str, Path],
                 start: RunStart) -> Dict[str, Any]:
    """Update ``run_info`` for this invocation (versions, settings, model summary or the
    given System, platform, files), append its history entry (status "running") and write
    run.json; returns the entry."""
    import openmm

    run_info.setdefault("history", [])
    run_info.update({
        "cgaa_version": __import__("cgaa").__version__,
        "openmm_version": openmm.__version__,
        "input": source,
        "settings": settings,
        "model": None if deployed is None else model_summary(deployed),
    })
    if system is not None:
        run_info["system"] = system_summary(system)
    run_info.update({
        "platform": platform.getName(),
        "platform_properties": props,
        "n_atoms": topology.getNumAtoms(),
        "n_residues": topology.getNumResidues(),
        "files": {k: v.name for k, v in files.items()},
        "units": dict(RUN_UNITS),
    })
    entry = {"started": utc_now(), "from_step": start.restarted_from or 0, "status": "running"}
    run_info["history"].append(entry)
    write_text_atomic(out / RUN_FILE, json.dumps(run_info, indent=1))
    return entry


def minimise_and_thermalise(simulation, settings: Dict[str, Any], entry: Dict[str, Any]) -> None:
    """A new run: minimise the energy (``minimize``; its summary goes to ``entry``) and
    draw velocities at the temperature; SimulationError if OpenMM fails."""
    import openmm
    from openmm.unit import kelvin

    try:
        if settings["minimize"]:
            entry["minimization"] = minimize_energy(simulation.context, int(settings["minimize_iterations"]))
        simulation.context.setVelocitiesToTemperature(float(settings["temperature"]) * kelvin,
                                                      int(settings["seed"]))
    except openmm.OpenMMException as err:
        raise SimulationError(f"energy minimisation failed: {openmm_message(err)}", 0, "minimisation") from None


def run_dynamics(simulation, system, settings: Dict[str, Any], out: Path, start: RunStart,
                 run_info: Dict[str, Any], entry: Dict[str, Any], *, callback=None,
                 progress: bool = True) -> Tuple[bool, Dict[str, float]]:
    """Minimise and draw velocities (a new run), report and checkpoint step 0, integrate
    (:func:`_integrate`); returns (interrupted by Ctrl-C, the last state row). A
    SimulationError is recorded in run.json and raised again naming the last good checkpoint."""
    restart = start.restarted_from is not None
    chk = Checkpointer(out)
    reporter = None
    try:
        if not restart:
            minimise_and_thermalise(simulation, settings, entry)
        reporter = Reporter(simulation, system, settings, out, append=restart, dcd_frames=start.dcd_frames,
                            csv_rows=start.csv_rows)
        if not restart:
            st = reporter.state(True)
            row = reporter.check(st, 0)
            reporter.write(st, row)
            chk.save(simulation.context, 0, 0.0, reporter.dcd_frames, reporter.csv_rows)
            if callback:
                callback(row)
        interrupted = _integrate(simulation, settings, reporter, chk, callback, progress)
    except SimulationError as err:
        raise _record_failure(err, out, chk, run_info, entry) from None
    finally:
        if reporter is not None:
            reporter.close()
    return interrupted, dict(reporter.last)


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
    write_text_atomic(out / RUN_FILE, json.dumps(run_info, indent=1))
    return SimulationError(msg, err.step, err.quantity, err.checkpoint)


def finish_run(simulation, settings: Dict[str, Any], out: Path, run_info: Dict[str, Any],
               entry: Dict[str, Any], *, step0: int, t_start: float, interrupted: bool, start: RunStart,
               last: Dict[str, float], files: Dict[str, Path]) -> SimulationResult:
    """Write final_state.xml, the invocation's end (status, step, ns/day) to run.json;
    returns the :class:`SimulationResult`."""
    import openmm

    step = simulation.currentStep
    state = simulation.context.getState(getPositions=True, getVelocities=True, enforcePeriodicBox=False)
    with atomic_path(out / FINAL_STATE_FILE) as tmp:
        tmp.write_text(openmm.XmlSerializer.serialize(state))
    wall = time.perf_counter() - t_start
    dt_ps = float(settings["timestep_fs"]) * units.PS_PER_FS
    speed = (step - step0) * dt_ps * units.NS_PER_PS / (wall / units.SECONDS_PER_DAY) if wall > 0 and step > step0 else 0.0
    entry.update(status="interrupted" if interrupted else "finished", ended=utc_now(), to_step=step,
                 ns_per_day=speed)
    write_text_atomic(out / RUN_FILE, json.dumps(run_info, indent=1))
    return SimulationResult(out_dir=out, steps=step, time_ps=step * dt_ps, ns_per_day=speed,
                            interrupted=interrupted, restarted_from=start.restarted_from, last=last, files=files)


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
    minimize: Optional[bool] = None,
    minimize_iterations: Optional[int] = None,
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
        ``(topology, positions nm)`` pair. On restart it may be None (the run's topology
        file is used).
    model: deployed model path, DeployedModel or eager CGAAModel; None: the shipped
        default (on restart: the run's copy, model.pt). It is copied to ``out_dir/model.pt``.
    ensemble: ``nvt`` (Langevin middle, default), ``npt`` (+ MonteCarloBarostat) or ``nve`` (Verlet).
    temperature: K (default 298.15; also the initial velocities in nve).
    pressure: bar (npt, default 1.0). timestep_fs: fs (default 1.0).
    steps: total steps of the run, counted from its start (default 10000; a restart
        continues up to it); or time_ps: total simulated time in ps.
    report_interval: steps between trajectory frames and state rows (default 1000).
    checkpoint_interval: steps between checkpoints (default 10000).
    platform: Reference, CPU (default), CUDA or OpenCL; precision: single, mixed
        (default) or double, where the platform has the property.
    seed: velocities, thermostat and barostat seed (default 0).
    restart: continue from the last checkpoint in ``out_dir`` (settings from run.json,
        the dynamics ones may not change).
    minimize: minimise the energy first (default True; never on restart), at most
        ``minimize_iterations`` iterations (default 1000).
    friction_per_ps: Langevin friction, 1/ps (default 1). barostat_interval: steps (25).
    max_force: kJ/mol/nm (default 1e5, ~100 eV/Å); max_temperature: K (default
        max(3T, T + 1000)): the safety limits.
    overwrite: replace a previous run in ``out_dir`` (otherwise refused).
    progress: show a tqdm progress bar with ns/day.
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

    Raises ValueError for bad settings, a model that does not cover the topology or a box
    too small for the cutoff (before anything runs); SimulationError when the dynamics
    becomes unphysical (last good checkpoint kept).
    """
    out = Path(out_dir)
    given = dict(ensemble=ensemble, temperature=temperature, pressure=pressure, timestep_fs=timestep_fs,
                 steps=steps, time_ps=time_ps, report_interval=report_interval,
                 checkpoint_interval=checkpoint_interval, platform=platform, precision=precision, seed=seed,
                 minimize=minimize, minimize_iterations=minimize_iterations, friction_per_ps=friction_per_ps,
                 barostat_interval=barostat_interval, max_force=max_force, max_temperature=max_temperature,
                 n_atoms=n_atoms, constraints=constraints, bond_guard=bond_guard,
                 contact_guard=contact_guard, fast_substeps=fast_substeps)
    run_info, settings = prepare_run_dir(out, given, restart=restart, overwrite=overwrite,
                                         system_input=system_input, model=model, system=system)
    topology, positions, source = load_run_input(system_input, out, settings, run_info, restart)
    deployed = None if system is not None else run_model(model, out, restart)
    check_input(topology, positions, system)
    run_system = build_run_system(topology, settings, deployed, system, customize_system)
    simulation, plat, props = make_simulation(topology, run_system, settings)
    files = run_files(out, topology, model_copy=deployed is not None)
    if restart:
        start = restore_checkpoint(simulation, out, run_info, deployed)
    else:
        start = place_input(simulation, topology, positions, files)
    entry = record_start(out, run_info, settings=settings, source=source, deployed=deployed, system=system,
                         platform=plat, props=props, topology=topology, files=files, start=start)
    t_start, step0 = time.perf_counter(), simulation.currentStep
    interrupted, last = run_dynamics(simulation, run_system, settings, out, start, run_info, entry,
                                     callback=callback, progress=progress)
    return finish_run(simulation, settings, out, run_info, entry, step0=step0, t_start=t_start,
                      interrupted=interrupted, start=start, last=last, files=files)


def _integrate(simulation, settings: Dict[str, Any], reporter: Reporter, chk: Checkpointer,
               callback, progress: bool) -> bool:
    """The MD loop: step in chunks to the next report/checkpoint, check, write. Returns
    True if stopped by Ctrl-C (after saving a checkpoint)."""
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
        with SigintGuard() as guard:
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


__all__ = ["run_simulation", "SimulationError", "SimulationResult", "RunStart", "resolve_settings",
           "load_state_csv", "truncate_dcd", "truncate_csv", "minimize_energy", "capped_minimize",
           "degrees_of_freedom", "get_platform", "build_integrator", "add_barostat", "system_summary",
           "check_given_system", "prepare_run_dir", "load_run_input", "run_model", "check_input",
           "build_run_system", "make_simulation", "run_files", "restore_checkpoint", "place_input",
           "record_start", "minimise_and_thermalise", "run_dynamics", "finish_run", "DEFAULTS", "ENSEMBLES",
           "PLATFORMS", "PRECISIONS", "STATE_COLUMNS", "CGAA_SYSTEM_SETTINGS"]
