"""Reports of a run: :class:`Reporter` computes each state row (energies, temperature,
volume, density, ns/day), applies the safety checks (:class:`SimulationError` names the
step and the quantity) and writes DCD frames and ``state.csv`` rows; the degrees of freedom
come from the System (:func:`degrees_of_freedom`), so any System, a given one included, is
reported the same way."""
from __future__ import annotations

import csv
import math
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from cgaa.core import units
from cgaa.md.rundir import STATE_COLUMNS, STATE_FILE, TRAJ_FILE, writing


# ---------------------------------------------------------------------------- reporting
class Reporter:
    """Computes state rows, checks them, writes DCD frames and CSV rows."""

    def __init__(self, simulation, system, settings: Dict[str, Any], out_dir: Path,
                 append: bool, dcd_frames: int, csv_rows: int, open_files: bool = True):
        self.sim = simulation
        self.settings = settings
        self.dt_ps = float(settings["timestep_fs"]) * units.PS_PER_FS
        self.dof = degrees_of_freedom(system)
        self.mass_g = sum(system.getParticleMass(i)._value for i in range(system.getNumParticles())) \
            / units.AVOGADRO
        self.max_force = float(settings["max_force"])
        self.max_temperature = float(settings["max_temperature"])
        self.interval = int(settings["report_interval"])
        self.csv_path = out_dir / STATE_FILE
        self.dcd_path = out_dir / TRAJ_FILE
        self.append = append
        self.csv_rows = csv_rows
        self.dcd_frames = dcd_frames
        self._csv = self._dcd_fh = self._dcd = self._writer = None
        self.speed = float("nan")
        self.last: Dict[str, float] = {}
        #: temperatures (K) of the rows this invocation wrote (the printed summary's mean)
        self.temperatures: List[float] = []
        self.restart_clock()
        if open_files:
            self.open()

    def open(self) -> None:
        """Open (or, appending, continue) state.csv and traj.dcd; RunWriteError naming the
        file if that fails."""
        from openmm.app import DCDFile
        from openmm.unit import picosecond

        if self._csv is not None:
            return
        new_csv = not (self.append and self.csv_path.exists())
        with writing(self.csv_path):
            self._csv = open(self.csv_path, "w" if new_csv else "a", newline="")
            self._writer = csv.writer(self._csv)
            if new_csv:
                self._writer.writerow(STATE_COLUMNS)
                self._csv.flush()
                self.csv_rows = 0
        with writing(self.dcd_path):
            if self.append and self.dcd_path.exists():
                self._dcd_fh = open(self.dcd_path, "r+b")
                self._dcd = DCDFile(self._dcd_fh, self.sim.topology, self.dt_ps * picosecond,
                                    0, self.interval, append=True)
            else:
                self._dcd_fh = open(self.dcd_path, "wb")
                self._dcd = DCDFile(self._dcd_fh, self.sim.topology, self.dt_ps * picosecond, 0, self.interval)
                self.dcd_frames = 0

    def restart_clock(self) -> None:
        """Measure the next ns/day from now and the current step (after minimisation and
        thermalisation, which are not MD of the run)."""
        self._last_wall = time.perf_counter()
        self._last_step = self.sim.currentStep

    def close(self) -> None:
        for fh in (self._csv, self._dcd_fh):
            if fh is None:
                continue
            try:
                fh.close()
            except Exception:  # pragma: no cover
                pass

    def state(self, positions: bool):
        return self.sim.context.getState(getEnergy=True, getForces=True, getPositions=positions,
                                         enforcePeriodicBox=False)

    def check(self, state, step: int, where: Optional[str] = None) -> Dict[str, float]:
        """Row of derived quantities; SimulationError if anything is unphysical. ``where``
        replaces ``step N`` at the start of a message (e.g. a thermalisation step, which is
        not a step of the run); such checks leave the ns/day clock alone."""
        from openmm.unit import kilojoule_per_mole, nanometer, picosecond

        at = where or f"step {step}"
        pe = state.getPotentialEnergy().value_in_unit(kilojoule_per_mole)
        ke = state.getKineticEnergy().value_in_unit(kilojoule_per_mole)
        temp = 2.0 * ke / (self.dof * units.KB_KJMOL_PER_K)
        if not math.isfinite(pe):
            raise SimulationError(f"{at}: potential energy is {pe} (not finite)", step, "potential energy")
        if not math.isfinite(ke):
            raise SimulationError(f"{at}: kinetic energy is {ke} (not finite)", step, "kinetic energy")
        f = state.getForces(asNumpy=True).value_in_unit(kilojoule_per_mole / nanometer)
        fn = np.linalg.norm(f, axis=1)
        if not np.isfinite(fn).all():
            a = int(np.argmax(~np.isfinite(fn)))
            raise SimulationError(f"{at}: force on atom {a} is not finite", step, "force")
        if fn.size and fn.max() > self.max_force:
            a = int(np.argmax(fn))
            raise SimulationError(
                f"{at}: force on atom {a} is {fn.max():.4g} kJ/mol/nm "
                f"({units.forces_kjmol_nm_to_ev_ang(fn.max()):.4g} eV/A), above the limit "
                f"{self.max_force:g} kJ/mol/nm", step, "force")
        if temp > self.max_temperature:
            raise SimulationError(f"{at}: temperature {temp:.1f} K is above the limit "
                                  f"{self.max_temperature:g} K", step, "temperature")
        box = state.getPeriodicBoxVectors(asNumpy=True)
        vol = float(abs(np.linalg.det(box.value_in_unit(nanometer)))) if box is not None else float("nan")
        if where is None:
            now = time.perf_counter()
            if step > self._last_step and now > self._last_wall:
                ns = (step - self._last_step) * self.dt_ps * units.NS_PER_PS
                self.speed = ns / ((now - self._last_wall) / units.SECONDS_PER_DAY)
            self._last_wall, self._last_step = now, step
        row = {"step": step, "time_ps": state.getTime().value_in_unit(picosecond),
               "potential_energy_kJ_mol": pe, "kinetic_energy_kJ_mol": ke, "total_energy_kJ_mol": pe + ke,
               "temperature_K": temp, "volume_nm3": vol,
               "density_g_cm3": self.mass_g / (vol * units.CM3_PER_NM3) if vol == vol else float("nan"),
               "speed_ns_day": self.speed}
        return row

    def write(self, state, row: Dict[str, float]) -> None:
        """Append the frame to traj.dcd and the row to state.csv (both flushed); RunWriteError
        naming the file if the disk refuses."""
        self.open()
        pos = state.getPositions(asNumpy=True)
        with writing(self.dcd_path):
            self._dcd.writeModel(pos, periodicBoxVectors=state.getPeriodicBoxVectors())
        self.dcd_frames += 1
        with writing(self.csv_path):
            self._writer.writerow([row["step"]] + [f"{row[k]:.10g}" for k in STATE_COLUMNS[1:]])
            self._csv.flush()
        self.csv_rows += 1
        self.last = row
        self.temperatures.append(float(row["temperature_K"]))


class SimulationError(RuntimeError):
    """The simulation became unphysical (NaN energy, absurd force or temperature) or
    OpenMM/the model failed during a step. ``step`` is where it was detected,
    ``quantity`` what failed, ``checkpoint`` the last good checkpoint (kept)."""

    def __init__(self, message: str, step: int, quantity: str, checkpoint: Optional[Path] = None):
        super().__init__(message)
        self.step = step
        self.quantity = quantity
        self.checkpoint = checkpoint


def degrees_of_freedom(system) -> int:
    """3N − constraints − 3 if a CMMotionRemover is present (massless particles excluded)."""
    import openmm

    dof = sum(3 for i in range(system.getNumParticles()) if system.getParticleMass(i)._value > 0)
    dof -= system.getNumConstraints()
    if any(isinstance(f, openmm.CMMotionRemover) for f in system.getForces()):
        dof -= 3
    return max(dof, 1)
