"""Run, restart and guard CGAA molecular dynamics in OpenMM (the library behind ``cgaa simulate``).

:func:`run_simulation` takes a box file from ``cgaa build`` (PDB or PDBx/mmCIF; or a
recipe name, built on the fly, or a topology with positions), a deployed model and an
ensemble, minimises the energy, integrates, and writes a run directory::

    out_dir/
      topology.pdb          input topology (one residue per grain, CONECT, box);
                            topology.cif (PDBx/mmCIF) above 99,999 atoms
      model.pt              copy of the deployed model (the run is self-contained)
      traj.dcd              unwrapped trajectory (enforcePeriodicBox=False), frame 0 = step 0
      state.csv             step, time, energies, temperature, volume, density, ns/day
      checkpoint.chk        last good checkpoint (+ checkpoint.json: its step and file sizes)
      checkpoint.prev.chk   the one before it (+ checkpoint.prev.json)
      final_state.xml       the state at the end (or where the run stopped)
      run.json              settings, model summary, platform, history of (re)starts

``restart=True`` continues from the last checkpoint, truncating ``traj.dcd`` and
``state.csv`` to what was written up to it (so a crashed or interrupted run resumes
without duplicated frames) and appending. On the Reference platform a restarted run
reproduces the uninterrupted one exactly.

Safety: at every report and checkpoint the energy must be finite, the largest force and
the temperature below limits; otherwise :class:`SimulationError` names the step and the
quantity and the last good checkpoint is kept. Ctrl-C (SIGINT) finishes the current
chunk, saves a checkpoint and returns with ``interrupted=True``.

Units: temperature K, pressure bar, timestep fs, times ps, energies kJ/mol, forces
kJ/mol/nm, lengths nm, volume nm³, density g/cm³.
"""
from __future__ import annotations

import csv
import datetime
import json
import math
import os
import shutil
import signal
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np

from cgaa import units
from cgaa.boxfile import RUN_TOPOLOGY_STEM, find_run_topology, read_box, run_topology_name, write_box
from cgaa.fileio import atomic_path, write_text_atomic

ENSEMBLES = ("nvt", "npt", "nve")
PLATFORMS = ("Reference", "CPU", "CUDA", "OpenCL")
PRECISIONS = ("single", "mixed", "double")

TRAJ_FILE = "traj.dcd"
TOPOLOGY_FILE = "topology.pdb"  # topology.cif above 99,999 atoms (cgaa.boxfile.run_topology_name)
STATE_FILE = "state.csv"
CHECKPOINT_FILE = "checkpoint.chk"
CHECKPOINT_META = "checkpoint.json"
PREV_CHECKPOINT_FILE = "checkpoint.prev.chk"
PREV_CHECKPOINT_META = "checkpoint.prev.json"
FINAL_STATE_FILE = "final_state.xml"
RUN_FILE = "run.json"
MODEL_FILE = "model.pt"
INPUT_FILE = "input.pdb"  # a box built from a recipe; input.cif above 99,999 atoms

STATE_COLUMNS = ("step", "time_ps", "potential_energy_kJ_mol", "kinetic_energy_kJ_mol",
                 "total_energy_kJ_mol", "temperature_K", "volume_nm3", "density_g_cm3",
                 "speed_ns_day")

#: ps per fs and cm³ per nm³ (time and volume prefixes; energies and lengths of the
#: model boundary go through cgaa.units).
_PS_PER_FS = 1e-3
_CM3_PER_NM3 = 1e-21
_SECONDS_PER_DAY = 86400.0


#: Defaults of :func:`run_simulation` (None there means: this value, or the saved one on restart).
DEFAULTS: Dict[str, Any] = {
    "ensemble": "nvt",
    "temperature": 298.15,
    "pressure": 1.0,
    "timestep_fs": 1.0,
    "steps": 10000,
    "report_interval": 1000,
    "checkpoint_interval": 10000,
    "platform": "CPU",
    "precision": "mixed",
    "seed": 0,
    "minimize": True,
    "minimize_iterations": 1000,
    "friction_per_ps": 1.0,
    "barostat_interval": 25,
    "max_force": 1.0e5,
    "max_temperature": None,
    "n_atoms": 3000,
    "constraints": "hbonds",
    "bond_guard": "auto",
    "contact_guard": True,
    "fast_substeps": 1,
}
#: Settings that define the dynamics: a restart may not change them.
_FIXED_ON_RESTART = ("ensemble", "temperature", "pressure", "timestep_fs", "report_interval",
                     "seed", "friction_per_ps", "barostat_interval", "constraints",
                     "bond_guard", "contact_guard", "fast_substeps")


class SimulationError(RuntimeError):
    """The simulation became unphysical (NaN energy, absurd force or temperature) or
    OpenMM/the model failed during a step. ``step`` is where it was detected,
    ``quantity`` what failed, ``checkpoint`` the last good checkpoint (kept)."""

    def __init__(self, message: str, step: int, quantity: str, checkpoint: Optional[Path] = None):
        super().__init__(message)
        self.step = step
        self.quantity = quantity
        self.checkpoint = checkpoint


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


# ---------------------------------------------------------------------------- settings
def _check_bond_guard(value: Any) -> Any:
    """``"auto"`` or a bool (numpy bools become bools); ValueError naming the allowed values
    otherwise (a string such as ``"off"`` would otherwise switch the guard on)."""
    if isinstance(value, str) and value == "auto":
        return value
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ValueError(f"bond_guard must be 'auto', True or False, not {value!r}")


def resolve_settings(given: Dict[str, Any], saved: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Merge user settings (None = unset) with the saved ones (restart) and the defaults;
    ValueError naming any bad value, or a dynamics setting a restart tries to change."""
    if given.get("bond_guard") is not None:
        _check_bond_guard(given["bond_guard"])
    s: Dict[str, Any] = {}
    for k, default in DEFAULTS.items():
        v = given.get(k)
        if saved is not None and k in saved:
            if v is not None and k in _FIXED_ON_RESTART and v != saved[k]:
                raise ValueError(f"restart: {k} was {saved[k]!r} in this run, cannot change it to {v!r} "
                                 "(start a new run directory instead)")
            s[k] = saved[k] if v is None else v
        else:
            s[k] = default if v is None else v
    if saved is not None and "contact_guard" not in saved and given.get("contact_guard") is None:
        s["contact_guard"] = False  # a run from before the contact guard continues without one
    if given.get("time_ps") is not None:
        if given.get("steps") is not None:
            raise ValueError("give steps or time_ps, not both")
        s["steps"] = int(round(float(given["time_ps"]) / (float(s["timestep_fs"]) * _PS_PER_FS)))
    if s["ensemble"] not in ENSEMBLES:
        raise ValueError(f"ensemble must be one of {ENSEMBLES}, not {s['ensemble']!r}")
    s["constraints"] = str(s["constraints"]).lower()
    if s["constraints"] not in ("hbonds", "none"):
        raise ValueError(f"constraints must be 'hbonds' or 'none', not {s['constraints']!r}")
    s["bond_guard"] = _check_bond_guard(s["bond_guard"])
    if not isinstance(s["contact_guard"], (bool, np.bool_)):
        raise ValueError(f"contact_guard must be True or False, not {s['contact_guard']!r}")
    s["contact_guard"] = bool(s["contact_guard"])
    if s["platform"] not in PLATFORMS:
        raise ValueError(f"platform must be one of {PLATFORMS}, not {s['platform']!r}")
    if s["precision"] not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {s['precision']!r}")
    for k in ("temperature", "timestep_fs", "friction_per_ps", "max_force"):
        if not float(s[k]) > 0:
            raise ValueError(f"{k} must be > 0, got {s[k]}")
    if s["ensemble"] == "npt" and not float(s["pressure"]) > 0:
        raise ValueError(f"pressure must be > 0 bar for npt, got {s['pressure']}")
    for k in ("steps",):
        if int(s[k]) < 0:
            raise ValueError(f"{k} must be >= 0, got {s[k]}")
    from cgaa.openmm.mts import check_substeps

    s["fast_substeps"] = check_substeps(s["fast_substeps"])
    for k in ("report_interval", "checkpoint_interval", "barostat_interval", "n_atoms"):
        if int(s[k]) < 1:
            raise ValueError(f"{k} must be >= 1, got {s[k]}")
    if s["max_temperature"] is None:
        t = float(s["temperature"])
        s["max_temperature"] = max(3.0 * t, t + 1000.0)
    return s


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
    try:
        from cgaa.build import box_suffix_for, build_box, list_recipes
    except ImportError:  # pragma: no cover - cgaa.build missing
        raise FileNotFoundError(f"no input file {path}") from None
    name = str(system_input)
    if name in list_recipes() or name.endswith((".yaml", ".yml")):
        n_atoms = int(settings["n_atoms"])
        input_file = (out_dir / INPUT_FILE).with_suffix(box_suffix_for(name, n_atoms))
        res = build_box(name, n_atoms, input_file, seed=int(settings["seed"]))
        box = read_box(res.path)
        return box.topology, box.positions, f"recipe {name} ({res.n_atoms} atoms, built by cgaa.build)"
    raise FileNotFoundError(f"no input file {path}, and '{name}' is not a recipe "
                            f"(recipes: {', '.join(list_recipes())})")


def _write_model_copy(model, out_dir: Path):
    """Copy the deployed model into the run directory; returns the DeployedModel."""
    import torch

    from cgaa.deploy import METADATA_FILE, load_model
    from cgaa.openmm.system import resolve_model

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

    from cgaa.openmm.system import ensure_torch_plugins

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
        from cgaa.openmm.mts import mts_integrator

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


def degrees_of_freedom(system) -> int:
    """3N − constraints − 3 if a CMMotionRemover is present (massless particles excluded)."""
    import openmm

    dof = sum(3 for i in range(system.getNumParticles()) if system.getParticleMass(i)._value > 0)
    dof -= system.getNumConstraints()
    if any(isinstance(f, openmm.CMMotionRemover) for f in system.getForces()):
        dof -= 3
    return max(dof, 1)


# ---------------------------------------------------------------------------- files
def _dcd_layout(path: Path) -> Tuple[int, int, int]:
    """(header bytes, frame bytes, frames) of an OpenMM-written DCD file."""
    with open(path, "rb") as f:
        head = f.read(100)
        if len(head) < 100 or head[4:8] != b"CORD":
            raise ValueError(f"{path} is not a DCD file")
        nframes = struct.unpack("<i", head[8:12])[0]
        has_box = struct.unpack("<i", head[48:52])[0]
        comments = struct.unpack("<i", head[92:96])[0]
        f.seek(104 + comments)
        natoms = struct.unpack("<i", f.read(4))[0]
    header = 104 + comments + 8
    frame = (56 if has_box else 0) + 3 * (8 + 4 * natoms)
    return header, frame, nframes


def truncate_dcd(path: Path, frames: int) -> int:
    """Keep the first ``frames`` frames of an OpenMM DCD file (header updated); returns
    the frames it now holds."""
    header, frame, nframes = _dcd_layout(path)
    have = min(nframes, (path.stat().st_size - header) // frame)
    keep = max(0, min(frames, have))
    with open(path, "r+b") as f:
        f.truncate(header + keep * frame)
        f.seek(12)
        first, interval = struct.unpack("<ii", f.read(8))
        f.seek(8)
        f.write(struct.pack("<i", keep))
        f.seek(20)
        f.write(struct.pack("<i", first + max(keep - 1, 0) * interval))
    return keep


def truncate_csv(path: Path, rows: int) -> None:
    """Keep the header and the first ``rows`` data rows of a CSV file (atomically)."""
    with open(path, newline="") as f:
        lines = f.read().splitlines(keepends=True)
    write_text_atomic(path, "".join(lines[: 1 + rows]))


def _read_json(path: Path) -> Dict[str, Any]:
    return json.loads(path.read_text())


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class _Checkpointer:
    """Writes checkpoint.chk/.json atomically, keeping the previous pair."""

    def __init__(self, out_dir: Path):
        self.out = out_dir
        self.path = out_dir / CHECKPOINT_FILE
        self.meta = out_dir / CHECKPOINT_META
        self.last_step: Optional[int] = None

    def save(self, context, step: int, time_ps: float, dcd_frames: int, csv_rows: int) -> Path:
        data = context.createCheckpoint()
        meta = {"step": int(step), "time_ps": float(time_ps), "dcd_frames": int(dcd_frames),
                "csv_rows": int(csv_rows), "written": _now()}
        with atomic_path(self.path) as tmp_chk, atomic_path(self.meta) as tmp_meta:
            tmp_chk.write_bytes(data)
            tmp_meta.write_text(json.dumps(meta, indent=1))
            if self.path.exists() and self.meta.exists():
                os.replace(self.path, self.out / PREV_CHECKPOINT_FILE)
                os.replace(self.meta, self.out / PREV_CHECKPOINT_META)
        self.last_step = int(step)
        return self.path

    def candidates(self) -> List[Tuple[Path, Path]]:
        return [(self.path, self.meta),
                (self.out / PREV_CHECKPOINT_FILE, self.out / PREV_CHECKPOINT_META)]


def has_checkpoint(out_dir: Union[str, Path]) -> bool:
    """Whether ``out_dir`` holds a checkpoint pair (the last or the previous) that a restart
    (``run_simulation(restart=True)``) would try."""
    return any(c.is_file() and m.is_file() for c, m in _Checkpointer(Path(out_dir)).candidates())


# ---------------------------------------------------------------------------- reporting
class _Reporter:
    """Computes state rows, checks them, writes DCD frames and CSV rows."""

    def __init__(self, simulation, system, settings: Dict[str, Any], out_dir: Path,
                 append: bool, dcd_frames: int, csv_rows: int):
        from openmm.app import DCDFile
        from openmm.unit import picosecond

        self.sim = simulation
        self.settings = settings
        self.dt_ps = float(settings["timestep_fs"]) * _PS_PER_FS
        self.dof = degrees_of_freedom(system)
        self.mass_g = sum(system.getParticleMass(i)._value for i in range(system.getNumParticles())) \
            / units.AVOGADRO
        self.max_force = float(settings["max_force"])
        self.max_temperature = float(settings["max_temperature"])
        self.interval = int(settings["report_interval"])
        self.csv_path = out_dir / STATE_FILE
        self.dcd_path = out_dir / TRAJ_FILE
        self.csv_rows = csv_rows
        self.dcd_frames = dcd_frames
        new_csv = not (append and self.csv_path.exists())
        self._csv = open(self.csv_path, "w" if new_csv else "a", newline="")
        self._writer = csv.writer(self._csv)
        if new_csv:
            self._writer.writerow(STATE_COLUMNS)
            self._csv.flush()
            self.csv_rows = 0
        if append and self.dcd_path.exists():
            self._dcd_fh = open(self.dcd_path, "r+b")
            self._dcd = DCDFile(self._dcd_fh, simulation.topology, self.dt_ps * picosecond,
                                0, self.interval, append=True)
        else:
            self._dcd_fh = open(self.dcd_path, "wb")
            self._dcd = DCDFile(self._dcd_fh, simulation.topology, self.dt_ps * picosecond, 0, self.interval)
            self.dcd_frames = 0
        self._last_wall = time.perf_counter()
        self._last_step = simulation.currentStep
        self.speed = float("nan")
        self.last: Dict[str, float] = {}

    def close(self) -> None:
        for fh in (self._csv, self._dcd_fh):
            try:
                fh.close()
            except Exception:  # pragma: no cover
                pass

    def state(self, positions: bool):
        return self.sim.context.getState(getEnergy=True, getForces=True, getPositions=positions,
                                         enforcePeriodicBox=False)

    def check(self, state, step: int) -> Dict[str, float]:
        """Row of derived quantities; SimulationError if anything is unphysical."""
        from openmm.unit import kilojoule_per_mole, nanometer, picosecond

        pe = state.getPotentialEnergy().value_in_unit(kilojoule_per_mole)
        ke = state.getKineticEnergy().value_in_unit(kilojoule_per_mole)
        temp = 2.0 * ke / (self.dof * units.KB_KJMOL_PER_K)
        if not math.isfinite(pe):
            raise SimulationError(f"step {step}: potential energy is {pe} (not finite)", step, "potential energy")
        if not math.isfinite(ke):
            raise SimulationError(f"step {step}: kinetic energy is {ke} (not finite)", step, "kinetic energy")
        f = state.getForces(asNumpy=True).value_in_unit(kilojoule_per_mole / nanometer)
        fn = np.linalg.norm(f, axis=1)
        if not np.isfinite(fn).all():
            a = int(np.argmax(~np.isfinite(fn)))
            raise SimulationError(f"step {step}: force on atom {a} is not finite", step, "force")
        if fn.size and fn.max() > self.max_force:
            a = int(np.argmax(fn))
            raise SimulationError(
                f"step {step}: force on atom {a} is {fn.max():.4g} kJ/mol/nm "
                f"({units.forces_kjmol_nm_to_ev_ang(fn.max()):.4g} eV/A), above the limit "
                f"{self.max_force:g} kJ/mol/nm", step, "force")
        if temp > self.max_temperature:
            raise SimulationError(f"step {step}: temperature {temp:.1f} K is above the limit "
                                  f"{self.max_temperature:g} K", step, "temperature")
        box = state.getPeriodicBoxVectors(asNumpy=True)
        vol = float(abs(np.linalg.det(box.value_in_unit(nanometer)))) if box is not None else float("nan")
        now = time.perf_counter()
        if step > self._last_step and now > self._last_wall:
            ns = (step - self._last_step) * self.dt_ps * units.NS_PER_PS
            self.speed = ns / ((now - self._last_wall) / _SECONDS_PER_DAY)
        self._last_wall, self._last_step = now, step
        row = {"step": step, "time_ps": state.getTime().value_in_unit(picosecond),
               "potential_energy_kJ_mol": pe, "kinetic_energy_kJ_mol": ke, "total_energy_kJ_mol": pe + ke,
               "temperature_K": temp, "volume_nm3": vol,
               "density_g_cm3": self.mass_g / (vol * _CM3_PER_NM3) if vol == vol else float("nan"),
               "speed_ns_day": self.speed}
        return row

    def write(self, state, row: Dict[str, float]) -> None:
        pos = state.getPositions(asNumpy=True)
        self._dcd.writeModel(pos, periodicBoxVectors=state.getPeriodicBoxVectors())
        self.dcd_frames += 1
        self._writer.writerow([row["step"]] + [f"{row[k]:.10g}" for k in STATE_COLUMNS[1:]])
        self._csv.flush()
        self.csv_rows += 1
        self.last = row


class _SigintGuard:
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


def capped_minimize(context, max_iterations: int = 1000, tolerance: float = 10.0,
                    max_step_nm: float = 0.01) -> Dict[str, Any]:
    """Steepest descent whose largest atom displacement per iteration is at most
    ``max_step_nm`` (nm); stops when the largest force is below ``tolerance`` (kJ/mol/nm).

    Slower than OpenMM's L-BFGS but never stretches a molecule by a large trial step, which
    the model refuses (a grain wider than half the box). A trial point the model rejects
    (or with a higher energy) halves the step. Returns a summary dict.
    """
    import openmm
    from openmm.unit import kilojoule_per_mole, nanometer

    def evaluate(x):
        context.setPositions(x)
        st = context.getState(getEnergy=True, getForces=True)
        return (st.getPotentialEnergy().value_in_unit(kilojoule_per_mole),
                st.getForces(asNumpy=True).value_in_unit(kilojoule_per_mole / nanometer))

    x = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(nanometer)
    e, f = evaluate(x)
    e0 = e
    step = max_step_nm
    it = 0
    for it in range(1, int(max_iterations) + 1):
        fmax = float(np.linalg.norm(f, axis=1).max())
        if fmax < tolerance:
            break
        trial = x + f * (step / fmax)
        try:
            e2, f2 = evaluate(trial)
            ok = math.isfinite(e2) and e2 < e
        except openmm.OpenMMException:
            ok = False
        if ok:
            x, e, f = trial, e2, f2
            step = min(step * 1.2, max_step_nm)
        else:
            step *= 0.5
            if step < 1e-7:
                break
    context.setPositions(x)
    return {"method": "capped steepest descent", "iterations": it, "energy_start_kJ_mol": e0,
            "energy_kJ_mol": e, "max_force_kJ_mol_nm": float(np.linalg.norm(f, axis=1).max())}


def minimize_energy(context, max_iterations: int = 1000, tolerance: float = 10.0) -> Dict[str, Any]:
    """OpenMM's L-BFGS minimiser; if the model rejects one of its trial points (large
    first steps can stretch a molecule past what the model accepts), start again from the
    input positions with :func:`capped_minimize`. With constraints in the system,
    :func:`capped_minimize` then a projection onto the constraints. Energies kJ/mol,
    forces kJ/mol/nm."""
    import openmm
    from openmm.unit import kilojoule_per_mole

    start = context.getState(getPositions=True, getEnergy=True)
    e0 = start.getPotentialEnergy().value_in_unit(kilojoule_per_mole)
    if context.getSystem().getNumConstraints() > 0:
        # OpenMM's L-BFGS enforces constraints by repeated passes with ever stiffer
        # penalties, each costing up to max_iterations model evaluations; a bounded steepest
        # descent followed by a projection onto the constraints is far cheaper.
        out = capped_minimize(context, max_iterations, tolerance)
        context.applyConstraints(1e-6)
        out["energy_kJ_mol"] = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(kilojoule_per_mole)
        out["constraints"] = "applied after the descent"
        return out
    try:
        openmm.LocalEnergyMinimizer.minimize(context, tolerance, int(max_iterations))
        e = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(kilojoule_per_mole)
        if math.isfinite(e):
            return {"method": "L-BFGS (OpenMM)", "energy_start_kJ_mol": e0, "energy_kJ_mol": e}
        why = f"energy {e}"
    except openmm.OpenMMException as err:
        why = _openmm_message(err)
    context.setPositions(start.getPositions())
    out = capped_minimize(context, max_iterations, tolerance)
    out["lbfgs_failed"] = why
    return out


def _openmm_message(err: Exception) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    msg = next((ln for ln in reversed(lines) if "Error" in ln or "error" in ln), lines[-1] if lines else repr(err))
    return msg[:500]


def write_final_pdb(run_dir: Union[str, Path], path: Union[str, Path]) -> Path:
    """Write the last state of a run (``final_state.xml``: positions and box, nm) with the
    run's topology (``topology.pdb`` or ``.cif``) as a box file ``path`` (PDB, or
    PDBx/mmCIF for a ``.cif`` path), atomically — a start structure for another run, e.g. a
    CGAA run from a teacher run's equilibrated box."""
    import openmm

    run_dir = Path(run_dir)
    top_file = find_run_topology(run_dir) or run_dir / TOPOLOGY_FILE
    state_file = run_dir / FINAL_STATE_FILE
    for f in (top_file, state_file):
        if not f.is_file():
            raise FileNotFoundError(f"{f} not found: {run_dir} is not a finished cgaa run")
    try:
        state = openmm.XmlSerializer.deserialize(state_file.read_text())
    except Exception as err:  # OpenMM raises a bare Exception for a corrupt file
        raise ValueError(f"{state_file}: not a readable OpenMM state ({err})") from None
    topology = read_box(top_file).topology
    if state.getPositions(asNumpy=True).shape[0] != topology.getNumAtoms():
        raise ValueError(f"{state_file} has {state.getPositions(asNumpy=True).shape[0]} atoms but "
                         f"{top_file} has {topology.getNumAtoms()}")
    topology.setPeriodicBoxVectors(state.getPeriodicBoxVectors())
    return write_box(path, topology, state.getPositions(), keep_ids=True)


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
        prior terms already hold bonds together, see :mod:`cgaa.prior`); True / False force
        it on / off (anything else is a ValueError).
    contact_guard: a repulsive wall between atoms of different grains at 0.9 × the closest
        approach of their elements in the model's training data
        (``cgaa.openmm.system.add_contact_guard``; default True; models without a recorded
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
    customize_system: called as ``customize_system(system, topology)`` after the CGAA
        System is built and before the barostat and Context are: add restraints or
        classical terms here (pass the same function again on restart).

    Raises ValueError for bad settings, a model that does not cover the topology or a box
    too small for the cutoff (before anything runs); SimulationError when the dynamics
    becomes unphysical (last good checkpoint kept).
    """
    import openmm
    from openmm.app import Simulation
    from openmm.unit import kelvin

    from cgaa.openmm.system import check_cutoff, create_system

    out = Path(out_dir)
    given = dict(ensemble=ensemble, temperature=temperature, pressure=pressure, timestep_fs=timestep_fs,
                 steps=steps, time_ps=time_ps, report_interval=report_interval,
                 checkpoint_interval=checkpoint_interval, platform=platform, precision=precision, seed=seed,
                 minimize=minimize, minimize_iterations=minimize_iterations, friction_per_ps=friction_per_ps,
                 barostat_interval=barostat_interval, max_force=max_force, max_temperature=max_temperature,
                 n_atoms=n_atoms, constraints=constraints, bond_guard=bond_guard,
                 contact_guard=contact_guard, fast_substeps=fast_substeps)
    run_info: Dict[str, Any] = {}
    chk = _Checkpointer(out)
    if restart:
        if not (out / RUN_FILE).is_file():
            raise FileNotFoundError(f"restart: {out / RUN_FILE} not found: {out} holds no cgaa run")
        run_info = _read_json(out / RUN_FILE)
        settings = resolve_settings(given, run_info["settings"])
        if system_input is not None:
            raise ValueError("restart continues the run in out_dir from its topology file; do not give an input")
        top_file = find_run_topology(out)
        if top_file is None:
            raise FileNotFoundError(f"restart: no {TOPOLOGY_FILE} (or {RUN_TOPOLOGY_STEM}.cif) in {out}")
        box = read_box(top_file)
        topology, positions, source = box.topology, box.positions, run_info.get("input")
    else:
        if system_input is None:
            raise ValueError("give an input: a PDB file (cgaa build), a recipe name, or restart=True")
        if out.exists() and any((out / f).exists() for f in (RUN_FILE, STATE_FILE, CHECKPOINT_FILE, TRAJ_FILE)):
            if not overwrite:
                raise ValueError(f"{out} already holds a run; continue it with restart=True (--restart), "
                                 "replace it with overwrite=True (--overwrite), or choose another directory")
            for f in (RUN_FILE, STATE_FILE, CHECKPOINT_FILE, CHECKPOINT_META, PREV_CHECKPOINT_FILE,
                      PREV_CHECKPOINT_META, TRAJ_FILE, FINAL_STATE_FILE, TOPOLOGY_FILE, RUN_TOPOLOGY_STEM + ".cif"):
                (out / f).unlink(missing_ok=True)
        settings = resolve_settings(given)
        out.mkdir(parents=True, exist_ok=True)
        topology, positions, source = _load_input(system_input, out, settings)

    # --- model, system, checks before anything runs
    if restart and model is None:
        from cgaa.deploy import load_model

        deployed = load_model(out / MODEL_FILE)
    else:
        deployed = _write_model_copy(model, out)
    if topology.getPeriodicBoxVectors() is None:
        raise ValueError("the input has no periodic box (PDB CRYST1 record): cgaa simulate runs periodic "
                         "boxes; build one with `cgaa build`")
    if len(positions) != topology.getNumAtoms():
        raise ValueError(f"{len(positions)} positions for {topology.getNumAtoms()} atoms")
    guard = settings["bond_guard"]
    if guard == "auto":
        guard = deployed.config.prior == "none"
    system = create_system(topology, deployed, constraints=settings["constraints"], bond_guard=bool(guard),
                           contact_guard=settings["contact_guard"])
    if customize_system is not None:
        customize_system(system, topology)
    if settings["fast_substeps"] > 1:
        from cgaa.openmm.mts import split_force_groups

        split_force_groups(system)
    if settings["ensemble"] == "npt":
        add_barostat(system, settings)
    integrator = build_integrator(settings)
    plat, props = get_platform(settings["platform"], settings["precision"])
    simulation = Simulation(topology, system, integrator, plat, props)

    topology_file = run_topology_name(topology.getNumAtoms())
    files = {k: out / v for k, v in (("trajectory", TRAJ_FILE), ("topology", topology_file),
                                      ("state", STATE_FILE), ("checkpoint", CHECKPOINT_FILE),
                                      ("final_state", FINAL_STATE_FILE), ("run", RUN_FILE),
                                      ("model", MODEL_FILE))}
    restarted_from: Optional[int] = None
    dcd_frames = csv_rows = 0
    if restart:
        meta = None
        errors = []
        for c_path, m_path in chk.candidates():
            if not (c_path.is_file() and m_path.is_file()):
                continue
            try:
                simulation.context.loadCheckpoint(c_path.read_bytes())
                meta = _read_json(m_path)
                break
            except Exception as err:  # corrupt, or written by another platform
                errors.append(f"{c_path.name}: {_openmm_message(err)}")
        if meta is None:
            why = "; ".join(errors) or "no checkpoint files"
            raise FileNotFoundError(f"restart: no usable checkpoint in {out} ({why}); checkpoints only load "
                                    f"on the platform that wrote them ({run_info.get('platform')})")
        restarted_from = int(meta["step"])
        if (out / TRAJ_FILE).exists():
            dcd_frames = truncate_dcd(out / TRAJ_FILE, int(meta["dcd_frames"]))
        if (out / STATE_FILE).exists():
            truncate_csv(out / STATE_FILE, int(meta["csv_rows"]))
            csv_rows = int(meta["csv_rows"])
        box = simulation.context.getState().getPeriodicBoxVectors()
        check_cutoff(deployed.config.cutoff, box)
    else:
        write_box(files["topology"], topology, positions, keep_ids=True)
        simulation.context.setPositions(positions)
        simulation.context.setPeriodicBoxVectors(*topology.getPeriodicBoxVectors())

    run_info.setdefault("history", [])
    run_info.update({
        "cgaa_version": __import__("cgaa").__version__,
        "openmm_version": openmm.__version__,
        "input": source,
        "settings": settings,
        "model": model_summary(deployed),
        "platform": plat.getName(),
        "platform_properties": props,
        "n_atoms": topology.getNumAtoms(),
        "n_residues": topology.getNumResidues(),
        "files": {k: v.name for k, v in files.items()},
        "units": {"temperature": "K", "pressure": "bar", "timestep": "fs", "time": "ps",
                  "energy": "kJ/mol", "force": "kJ/mol/nm", "length": "nm", "density": "g/cm^3"},
    })
    entry = {"started": _now(), "from_step": restarted_from or 0, "status": "running"}
    run_info["history"].append(entry)
    write_text_atomic(out / RUN_FILE, json.dumps(run_info, indent=1))

    reporter = None
    t_start = time.perf_counter()
    step0 = simulation.currentStep
    interrupted = False
    try:
        try:
            if not restart:
                if settings["minimize"]:
                    entry["minimization"] = minimize_energy(simulation.context, int(settings["minimize_iterations"]))
                simulation.context.setVelocitiesToTemperature(float(settings["temperature"]) * kelvin,
                                                              int(settings["seed"]))
        except openmm.OpenMMException as err:
            raise SimulationError(f"energy minimisation failed: {_openmm_message(err)}", 0, "minimisation") from None
        reporter = _Reporter(simulation, system, settings, out, append=restart, dcd_frames=dcd_frames,
                             csv_rows=csv_rows)
        if not restart:
            st = reporter.state(True)
            row = reporter.check(st, 0)
            reporter.write(st, row)
            chk.save(simulation.context, 0, 0.0, reporter.dcd_frames, reporter.csv_rows)
            if callback:
                callback(row)
        interrupted = _integrate(simulation, settings, reporter, chk, callback, progress)
    except SimulationError as err:
        entry.update(status="failed", ended=_now(), error=str(err), at_step=err.step)
        if chk.path.exists():
            err.checkpoint = chk.path
            last = _read_json(chk.meta)["step"] if chk.meta.exists() else "?"
            msg = (f"{err} -- stopped; the last good checkpoint (step {last}) is kept in {chk.path}. "
                   "Check the model and the input (overlapping atoms?), try a smaller timestep, then "
                   "continue with --restart")
        else:
            msg = f"{err} -- stopped before any checkpoint was written"
        write_text_atomic(out / RUN_FILE, json.dumps(run_info, indent=1))
        raise SimulationError(msg, err.step, err.quantity, err.checkpoint) from None
    finally:
        if reporter is not None:
            reporter.close()

    step = simulation.currentStep
    state = simulation.context.getState(getPositions=True, getVelocities=True, enforcePeriodicBox=False)
    with atomic_path(out / FINAL_STATE_FILE) as tmp:
        tmp.write_text(openmm.XmlSerializer.serialize(state))
    wall = time.perf_counter() - t_start
    dt_ps = float(settings["timestep_fs"]) * _PS_PER_FS
    speed = (step - step0) * dt_ps * units.NS_PER_PS / (wall / _SECONDS_PER_DAY) if wall > 0 and step > step0 else 0.0
    entry.update(status="interrupted" if interrupted else "finished", ended=_now(), to_step=step,
                 ns_per_day=speed)
    write_text_atomic(out / RUN_FILE, json.dumps(run_info, indent=1))
    return SimulationResult(out_dir=out, steps=step, time_ps=step * dt_ps, ns_per_day=speed,
                            interrupted=interrupted, restarted_from=restarted_from,
                            last=dict(reporter.last) if reporter else {}, files=files)


def _integrate(simulation, settings: Dict[str, Any], reporter: _Reporter, chk: _Checkpointer,
               callback, progress: bool) -> bool:
    """The MD loop: step in chunks to the next report/checkpoint, check, write. Returns
    True if stopped by Ctrl-C (after saving a checkpoint)."""
    import openmm
    from tqdm import tqdm

    target = int(settings["steps"])
    rep = int(settings["report_interval"])
    cpi = int(settings["checkpoint_interval"])
    dt_ps = float(settings["timestep_fs"]) * _PS_PER_FS
    current = simulation.currentStep
    bar = tqdm(total=target, initial=min(current, target), unit="step", disable=not progress,
               dynamic_ncols=True, desc="cgaa simulate")
    try:
        with _SigintGuard() as guard:
            while current < target:
                nxt = min((current // rep + 1) * rep, (current // cpi + 1) * cpi, target)
                try:
                    simulation.step(nxt - current)
                except openmm.OpenMMException as err:
                    raise SimulationError(f"between step {current} and step {nxt}: OpenMM failed: {_openmm_message(err)}",
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


def load_state_csv(path: Union[str, Path]) -> Dict[str, np.ndarray]:
    """Columns of a ``state.csv`` as float arrays keyed by column name."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    data = np.array([[float(x) for x in r] for r in rows[1:]], dtype=float).reshape(-1, len(header))
    return {h: data[:, i] for i, h in enumerate(header)}


__all__ = ["run_simulation", "SimulationError", "SimulationResult", "resolve_settings", "load_state_csv",
           "truncate_dcd", "truncate_csv", "minimize_energy", "capped_minimize", "degrees_of_freedom", "get_platform", "build_integrator",
           "add_barostat", "DEFAULTS", "ENSEMBLES", "PLATFORMS", "PRECISIONS", "STATE_COLUMNS"]
