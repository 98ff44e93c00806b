"""Loading trajectories for analysis, with checks that name the culprit.

Any format mdtraj reads works (DCD, XTC, TRR, NetCDF, HDF5, PDB frames ...) with a topology
file (PDB or PDBx/mmCIF with one residue per molecule, ideally with bonds). mdtraj converts
every format's lengths to nm on reading (from the unit the format fixes: Å in DCD, NetCDF,
PDB; nm in XTC, TRR, GRO); formats whose unit the file does not fix (LAMMPS dumps, HOOMD
files) are accepted only when the topology's box confirms the unit.

**The time between frames** (docs/analysis.md, *Conventions accepted and refused*) comes from,
in order:

1. ``dt_ps`` (``--dt-ps``), which overrides everything (with a note when it disagrees with a
   trustworthy record);
2. for the trajectory of a ``cgaa simulate`` run directory, the run's own records
   (:func:`read_run_records`: ``run.json`` settings ``timestep_fs`` × ``report_interval``,
   cross-checked against ``state.csv``'s ``time_ps`` column), cross-checked against the DCD
   header; a disagreement is an error naming both values and files;
3. a DCD header written by OpenMM (``DCDFile``/``DCDReporter`` store the real step size and
   report interval there). Other writers' headers are refused: the VMD DCD plugin (VMD,
   mdtraj) stores a default step of 1 AKMA unit × 1, MDAnalysis a default of 1 ps;
4. frame times stored in the file (XTC, TRR, NetCDF ...), unless they look like frame
   numbers (integers: 0, 1, 2 ... or 0, 5, 10 ... after a stride — what mdtraj and
   MDAnalysis write when the times are unknown), are all zero, unevenly spaced, or spaced by
   1 AKMA (a DCD default carried over) — and the file does not say they are times: XTC/TRR
   step numbers advancing by more than one per frame with time = step × δt (GROMACS), or a
   NetCDF file written by an AMBER engine.

Anything else is refused with a message asking for ``--dt-ps``.

A run directory from ``cgaa simulate`` holds ``traj.dcd`` and ``topology.pdb`` (or
``topology.cif`` above 99,999 atoms; else the single ``*.pdb``/``*.cif`` of the directory
is used), ``run.json`` and ``state.csv`` (one row per DCD frame; its mean temperature is used
when none is given; a plain OpenMM StateDataReporter file works for the temperature).
"""
from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import re
import struct
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
from cgaa.analysis.checks import check_atom_order, check_elements
from cgaa.core import units
from cgaa.systems.boxfile import (BOX_SUFFIXES, PDBX_SUFFIXES, RUN_JSON_FILE, RUN_STATE_FILE, RUN_TRAJ_FILE,
                                  find_run_topology)

PathLike = Union[str, os.PathLike]

#: One AKMA time unit in ps (the DCD header stores the time step in AKMA units).
AKMA_TIME_PS: float = 0.04888821


#: Formats whose length unit the file does not fix (mdtraj assumes one): accepted only when
#: the topology's box confirms it.
UNITLESS_SUFFIXES = (".lammpstrj", ".gsd", ".hoomdxml")
#: Formats that carry their own atoms (names, elements): their element sequence is compared
#: with the topology's.
SELF_DESCRIBING_SUFFIXES = (".pdb", ".pdb.gz", ".gro", ".h5", ".hdf5", ".mol2") + PDBX_SUFFIXES
#: The length unit mdtraj assumes for each format (for messages).
FILE_LENGTH_UNIT = {".dcd": "Å", ".nc": "Å", ".ncdf": "Å", ".netcdf": "Å", ".mdcrd": "Å", ".crd": "Å",
                    ".pdb": "Å", ".xyz": "Å", ".arc": "Å", ".dtr": "Å", ".lammpstrj": "Å (LAMMPS units real/metal)",
                    ".xtc": "nm", ".trr": "nm", ".gro": "nm", ".h5": "nm", ".hdf5": "nm",
                    ".gsd": "nm (HOOMD files have no unit)", ".hoomdxml": "nm (HOOMD files have no unit)"}
#: Formats that store no frame times (mdtraj numbers their frames 0, 1, 2, ...).
TIMELESS_SUFFIXES = (".pdb", ".pdb.gz", ".xyz", ".xyz.gz", ".lammpstrj", ".mdcrd", ".crd", ".arc", ".mol2",
                     ".hoomdxml") + PDBX_SUFFIXES
#: NetCDF ``program`` attributes of AMBER MD engines, which store real frame times.
AMBER_PROGRAMS = ("sander", "pmemd")
#: A trajectory box may differ from the topology's by this factor in any length (NPT, a
#: box built before equilibration) before the length unit is called wrong.
BOX_UNIT_TOLERANCE = 2.0
#: Relative tolerance when two records of the time between frames are compared (DCD
#: headers store DELTA as float32; state.csv writes 10 digits).
DT_RTOL = 1e-3


def _suffix(path: Path) -> str:
    """The format suffix, with a compression suffix kept (".pdb.gz")."""
    sfx = [x.lower() for x in Path(path).suffixes]
    if len(sfx) >= 2 and sfx[-1] == ".gz":
        return sfx[-2] + sfx[-1]
    return Path(path).suffix.lower()


# ---------------------------------------------------------------------------- DCD header
@dataclass
class DCDHeader:
    """What a DCD file's header says (CHARMM or X-PLOR flavour, either byte order).

    Attributes:
        n_frames: NSET, the frame count the header claims.
        first_step, interval: ISTART, NSAVC (steps between saved frames).
        delta_akma: DELTA, the integration step in AKMA time units.
        n_atoms: atoms per frame.
        has_box: frames carry a unit-cell record (CHARMM flavour).
        n_fixed: fixed atoms (frames after the first then hold only the free ones).
        title: the title lines, joined by newlines.
        header_bytes: size of the header; frame_bytes: size of one frame (None if fixed atoms).
    """

    n_frames: int
    first_step: int
    interval: int
    delta_akma: float
    n_atoms: int
    has_box: bool
    n_fixed: int
    title: str
    header_bytes: int
    frame_bytes: Optional[int]

    @property
    def dt_ps(self) -> Optional[float]:
        """NSAVC × DELTA in ps, or None if not positive."""
        dt = float(f"{self.interval * self.delta_akma * AKMA_TIME_PS:.6g}")  # DELTA is float32
        return dt if math.isfinite(dt) and dt > 0 else None

    @property
    def writer(self) -> str:
        """Who wrote the file, from its title: "OpenMM", "VMD DCD plugin (VMD, mdtraj)",
        "MDAnalysis", or "unknown (first title line)"."""
        t = self.title.lower()
        if "created by openmm" in t:
            return "OpenMM"
        if "created by dcd plugin" in t:
            return "VMD DCD plugin (VMD, mdtraj)"
        if "created by dcdwriter" in t:
            return "MDAnalysis"
        first = next((ln.strip() for ln in self.title.splitlines() if ln.strip()), "")
        return f"unknown ({first[:60]!r})" if first else "unknown (no title)"

    @property
    def trusted(self) -> bool:
        """The header's time step is the simulation's: written by OpenMM (DCDFile and
        DCDReporter store the integrator's step size and the report interval)."""
        return self.writer == "OpenMM" and self.dt_ps is not None and self.interval > 0


def read_dcd_header(path: PathLike) -> Optional[DCDHeader]:
    """The header of a DCD file, or None if ``path`` does not start like one (32-bit record
    markers, either byte order)."""
    p = Path(path)
    with open(p, "rb") as f:
        head = f.read(92)
        if len(head) < 92:
            return None
        for endian in ("<", ">"):
            if struct.unpack(endian + "i", head[:4])[0] == 84 and head[4:8] == b"CORD":
                break
        else:
            return None
        icntrl = struct.unpack(endian + "20i", head[8:88])
        charmm = icntrl[19] != 0
        if charmm:
            delta = struct.unpack(endian + "f", head[44:48])[0]
        else:
            delta = struct.unpack(endian + "d", head[44:52])[0]
        rec = f.read(4)
        if len(rec) < 4:
            return None
        title_len = struct.unpack(endian + "i", rec)[0]
        block = f.read(title_len + 4)
        if title_len < 4 or len(block) < title_len + 4:
            return None
        n_title = struct.unpack(endian + "i", block[:4])[0]
        raw = block[4:4 + 80 * max(0, min(n_title, (title_len - 4) // 80))]
        title = "\n".join(raw[i:i + 80].split(b"\0")[0].decode("ascii", "replace").rstrip()
                          for i in range(0, len(raw), 80))
        rec = f.read(12)
        if len(rec) < 12:
            return None
        n_atoms = struct.unpack(endian + "i", rec[4:8])[0]
    n_fixed = int(icntrl[8])
    header_bytes = 92 + 4 + title_len + 4 + 12
    has_box = charmm and icntrl[10] != 0
    frame_bytes = None
    if n_fixed == 0:
        frame_bytes = (56 if has_box else 0) + (4 if charmm and icntrl[11] else 3) * (8 + 4 * n_atoms)
    return DCDHeader(n_frames=int(icntrl[0]), first_step=int(icntrl[1]), interval=int(icntrl[2]),
                     delta_akma=float(delta), n_atoms=int(n_atoms), has_box=bool(has_box), n_fixed=n_fixed,
                     title=title, header_bytes=header_bytes, frame_bytes=frame_bytes)


def dcd_timestep_ps(path: PathLike) -> Optional[float]:
    """Time between saved frames (ps) that a DCD header states (NSAVC × DELTA), or None if
    it states none — whoever wrote it: only OpenMM's headers hold the real value
    (:attr:`DCDHeader.trusted`; the VMD plugin and mdtraj write a default)."""
    h = read_dcd_header(path)
    return None if h is None else h.dt_ps


def dcd_frame_count(path: PathLike, header: Optional[DCDHeader] = None) -> Tuple[Optional[int], int]:
    """(complete frames in the file, bytes of a partial last frame); (None, 0) when the
    layout is not known (fixed atoms)."""
    h = header or read_dcd_header(path)
    if h is None or h.frame_bytes is None or h.frame_bytes <= 0:
        return None, 0
    body = max(0, Path(path).stat().st_size - h.header_bytes)
    return body // h.frame_bytes, body % h.frame_bytes


# ---------------------------------------------------------------------------- run records
@dataclass
class RunRecords:
    """What a ``cgaa simulate`` run directory says about its trajectory (``traj.dcd``).

    Attributes:
        run_dir: the directory.
        trajectory: the run's own trajectory file.
        dt_ps: time between frames by the records (None if they say nothing).
        dt_source: e.g. "run.json: 1 fs × 100 steps", or "state.csv: time_ps".
        expected_frames: rows of the run's state.csv (one per DCD frame), or None.
        status: the last entry of run.json's history ("running", "finished", ...), or None.
        checks: the cross-checks made ("state.csv time_ps agrees").
    """

    run_dir: Path
    trajectory: Path
    dt_ps: Optional[float] = None
    dt_source: str = ""
    expected_frames: Optional[int] = None
    status: Optional[str] = None
    checks: List[str] = field(default_factory=list)


def _cgaa_state_times(path: Path) -> Optional[np.ndarray]:
    """The time_ps column of a cgaa ``state.csv`` (columns step, time_ps, ...), or None for
    another file (an OpenMM StateDataReporter file, whose rows need not match the frames)."""
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or [h.strip() for h in rows[0][:2]] != ["step", "time_ps"]:
        return None
    out = []
    for r in rows[1:]:
        try:
            out.append(float(r[1]))
        except (IndexError, ValueError):
            continue
    return np.array(out, dtype=float)


def _even_spacing(t: np.ndarray) -> Optional[float]:
    """The spacing of strictly increasing, evenly spaced values (float32 rounding allowed), else None."""
    t = np.asarray(t, dtype=float)
    if len(t) < 2:
        return None
    d = np.diff(t)
    dt = (t[-1] - t[0]) / (len(t) - 1)
    if not (np.all(d > 0) and dt > 0):
        return None
    tol = DT_RTOL * dt + 4 * float(np.finfo(np.float32).eps) * float(np.max(np.abs(t)))
    return float(dt) if np.all(np.abs(d - dt) <= tol) else None


def records_for(traj_path: PathLike) -> Optional[RunRecords]:
    """The run records that apply to ``traj_path``: those of its directory when it is the
    ``traj.dcd`` of a ``cgaa simulate`` run directory (None otherwise)."""
    p = Path(traj_path)
    return read_run_records(p.parent) if p.name == RUN_TRAJ_FILE else None


def read_run_records(run_dir: PathLike) -> Optional[RunRecords]:
    """The records of a ``cgaa simulate`` run directory (run.json, a cgaa state.csv), or None
    when it has neither (e.g. a directory written by a plain OpenMM script).

    Raises:
        ValueError: run.json and state.csv disagree about the time between frames (both
            values and files named), or run.json's settings are unreadable.
    """
    d = Path(run_dir)
    js, st = d / RUN_JSON_FILE, d / RUN_STATE_FILE
    times = _cgaa_state_times(st)
    info = None
    if js.is_file():
        try:
            info = json.loads(js.read_text())
        except (OSError, ValueError) as err:
            raise ValueError(f"cannot read {js}: {err}") from None
    if info is None and times is None:
        return None
    rec = RunRecords(run_dir=d, trajectory=d / RUN_TRAJ_FILE)
    if isinstance(info, dict):
        hist = info.get("history") or []
        if hist and isinstance(hist[-1], dict):
            rec.status = hist[-1].get("status")
        s = info.get("settings") or {}
        if "timestep_fs" in s and "report_interval" in s:
            try:
                ts, every = float(s["timestep_fs"]), int(s["report_interval"])
            except (TypeError, ValueError):
                raise ValueError(f"{js}: settings timestep_fs={s['timestep_fs']!r}, "
                                 f"report_interval={s['report_interval']!r} are not numbers") from None
            if ts > 0 and every > 0:
                rec.dt_ps = ts * units.PS_PER_FS * every
                rec.dt_source = f"run.json: {ts:g} fs × {every} steps"
    if times is not None:
        rec.expected_frames = int(len(times))
        dt_csv = _even_spacing(times)
        if len(times) >= 2 and dt_csv is None:
            raise ValueError(f"{st}: the time_ps column is not evenly spaced, so it cannot give the time between "
                             f"frames (a damaged file?): give --dt-ps")
        if dt_csv is not None:
            if rec.dt_ps is None:
                rec.dt_ps, rec.dt_source = dt_csv, "state.csv: time_ps"
            elif not math.isclose(dt_csv, rec.dt_ps, rel_tol=DT_RTOL):
                raise ValueError(f"time between frames disagrees in {d}: {rec.dt_source} = {rec.dt_ps:g} ps "
                                 f"({js}) but the time_ps column of {st} advances by {dt_csv:g} ps per row")
            else:
                rec.checks.append("state.csv time_ps agrees")
    return rec


# ---------------------------------------------------------------------------- frame times
def _integer_valued(t: np.ndarray) -> bool:
    t = np.asarray(t, dtype=float)
    return bool(np.all(np.abs(t - np.round(t)) <= 1e-5))


def _file_steps(path: Path, suffix: str, n: int = 10) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """(step numbers, times) of the first frames of an XTC/TRR file (None if unreadable)."""
    from mdtraj.formats import TRRTrajectoryFile, XTCTrajectoryFile

    try:
        cls = XTCTrajectoryFile if suffix == ".xtc" else TRRTrajectoryFile
        with cls(str(path)) as f:
            out = f.read(n_frames=n)
        return np.asarray(out[2], dtype=np.int64), np.asarray(out[1], dtype=float)
    except Exception:
        return None


def _netcdf_head(path: Path, n: int = 10) -> Tuple[str, Optional[np.ndarray]]:
    """(``program`` attribute, times of the first frames) of an AMBER NetCDF file ("" / None
    if absent or unreadable)."""
    from scipy.io import netcdf_file

    try:
        with netcdf_file(str(path), "r", mmap=False) as f:
            prog = getattr(f, "program", b"")
            tv = f.variables.get("time")
            head = None if tv is None else np.array(tv[:n], dtype=float)
        prog = (prog.decode("ascii", "replace") if isinstance(prog, bytes) else str(prog)).strip()
        return prog, head
    except Exception:
        return "", None


def file_frame_times(times: Sequence[float], path: Optional[Path] = None,
                     stride: int = 1) -> Tuple[Optional[float], str]:
    """Judge frame times read from a file (or an in-memory trajectory's ``time``, path None).

    Args:
        times: the times of the loaded frames (every ``stride``-th frame of the file).
        path: the file (XTC/TRR step numbers and NetCDF attributes are read from it).
        stride: the stride the frames were loaded with.

    Returns (time between the file's frames in ps, source) when trustworthy, else
    (None, why not) — see the module docstring for the rules.
    """
    what = f"{path}" if path is not None else "the in-memory trajectory"
    kind = (_suffix(path).lstrip(".").upper() if path is not None else "trajectory.time")
    t = np.asarray(times, dtype=float)
    if len(t) < 2:
        return None, f"{what} has fewer than two frames"
    if np.all(t == 0):
        return None, f"the frame times of {what} are all zero"
    spacing = _even_spacing(t)
    if spacing is None:
        return None, f"the frame times of {what} are not evenly increasing"
    dt = spacing / stride
    suffix = _suffix(path) if path is not None else ""
    if suffix in TIMELESS_SUFFIXES:
        return None, f"{kind} files such as {what} store no frame times"
    head = t if stride == 1 else None  # the file's own first times (not strided) decide "frame numbers"
    if suffix in (".xtc", ".trr"):
        first = _file_steps(path, suffix)
        if first is not None and len(first[1]) >= 2:
            head = first[1]
        if first is not None and len(first[0]) >= 2:
            steps, tf = first
            ds = np.diff(steps)
            if np.all(ds == ds[0]) and ds[0] > 1:
                dt_step = (tf[1] - tf[0]) / ds[0]
                if dt_step > 0 and np.allclose(tf, tf[0] + (steps - steps[0]) * dt_step,
                                               rtol=DT_RTOL, atol=1e-4 * (tf[1] - tf[0])):
                    return dt, f"{kind} frame times ({int(ds[0])} steps × {dt_step:.6g} ps)"
    if suffix in (".nc", ".ncdf", ".netcdf"):
        prog, nc_head = _netcdf_head(path)
        if nc_head is not None and len(nc_head) >= 2:
            head = nc_head
        if prog.lower().startswith(AMBER_PROGRAMS):
            return dt, f"NetCDF frame times ({prog})"
    if math.isclose(dt, AKMA_TIME_PS, rel_tol=1e-4):
        return None, (f"{what} has frame times spaced by 1 AKMA unit ({AKMA_TIME_PS} ps), a DCD writer's default "
                      f"carried over, not a real time step")
    if head is None:  # strided frames of a format whose first times cannot be read apart
        head = t / stride
    if _integer_valued(head) and _integer_valued(t):
        shown = ", ".join(f"{v:g}" for v in head[:3])
        return None, (f"the frame times of {what} are frame numbers ({shown}, ...), what mdtraj and MDAnalysis "
                      f"write when the real times are unknown, and nothing in the file says they are times")
    return dt, f"{kind} frame times"


@dataclass
class TimeStep:
    """The time between saved frames chosen for one trajectory (ps, before striding), where
    it came from, and the notes made on the way."""

    dt_ps: float
    source: str
    notes: List[str] = field(default_factory=list)


def frame_time_step(traj_path: Optional[Path], times, *, stride: int = 1, dt_ps: Optional[float] = None,
                    records: Optional[RunRecords] = None, header: Optional[DCDHeader] = None) -> TimeStep:
    """Decide the time between saved frames of one trajectory (rules: module docstring).

    Args:
        traj_path: the file (None for an in-memory trajectory).
        times: the frame times mdtraj read (of the loaded, strided frames).
        stride: the stride the frames were loaded with.
        dt_ps: given by the user (overrides).
        records: the run directory's records, when ``traj_path`` is its trajectory.
        header: the DCD header of ``traj_path`` (read if None and it is a DCD file).

    Raises:
        ValueError: unknown or untrustworthy time step, or records that disagree.
    """
    name = str(traj_path) if traj_path is not None else "the in-memory trajectory"
    notes: List[str] = []
    if traj_path is not None and header is None and _suffix(traj_path) == ".dcd":
        header = read_dcd_header(traj_path)
    # the best record the files hold
    rec_dt, rec_src = None, ""
    if records is not None and records.dt_ps is not None:
        rec_dt, rec_src = records.dt_ps, records.dt_source
        if header is not None and header.trusted:
            if not math.isclose(header.dt_ps, rec_dt, rel_tol=DT_RTOL):
                rec_file = records.run_dir / (RUN_JSON_FILE if rec_src.startswith("run.json") else RUN_STATE_FILE)
                conflict = (f"time between frames disagrees: {rec_src} = {rec_dt:g} ps ({rec_file}) but the DCD "
                            f"header of {traj_path} says {header.dt_ps:g} ps ({header.interval} steps × "
                            f"{header.delta_akma * AKMA_TIME_PS:.6g} ps): is {traj_path.name} from another run?")
                if dt_ps is None:
                    raise ValueError(conflict)
                notes.append(conflict)
            elif "DCD header agrees" not in records.checks:
                records.checks.append("DCD header agrees")
        why = ""
    elif header is not None:
        if header.trusted:
            rec_dt, rec_src = header.dt_ps, "DCD header (OpenMM)"
            why = ""
        else:
            said = (f"NSAVC {header.interval} × DELTA {header.delta_akma:g} AKMA = {header.dt_ps:.4g} ps"
                    if header.dt_ps is not None else "no positive time step")
            if header.writer.startswith("VMD"):
                why = (f"the DCD header of {name} was written by the {header.writer}, which stores a default time "
                       f"step ({said}), not the simulation's")
            elif header.writer == "MDAnalysis":
                why = (f"the DCD header of {name} was written by MDAnalysis, whose time step is a default "
                       f"(1 ps) unless the writer was given one ({said})")
            else:
                why = (f"the DCD header of {name} (writer {header.writer}) says {said}; cgaa trusts only "
                       f"OpenMM's DCD headers, which hold the real step size and report interval"
                       + (f" (if {header.dt_ps:g} ps is right, pass it)" if header.dt_ps is not None else ""))
    elif traj_path is not None and _suffix(traj_path) == ".dcd":
        why = f"{name} has no readable DCD header"
    else:
        rec_dt, why = file_frame_times(times, traj_path, stride)
        rec_src, why = (why, "") if rec_dt is not None else ("", why)
    if dt_ps is not None:
        if not (dt_ps > 0 and math.isfinite(dt_ps)):
            raise ValueError(f"time step between frames must be > 0 ps, got {dt_ps}")
        if rec_dt is not None and not math.isclose(dt_ps, rec_dt, rel_tol=DT_RTOL):
            notes.append(f"{name}: --dt-ps {dt_ps:g} ps overrides {rec_src} = {rec_dt:g} ps")
        return TimeStep(float(dt_ps), "--dt-ps", notes)
    if rec_dt is None:
        raise ValueError(f"time between frames unknown: {why}. Give it with --dt-ps PS (dt_ps= in Python), "
                         f"the time between saved frames in ps")
    return TimeStep(float(rec_dt), rec_src, notes)


# ---------------------------------------------------------------------------- loading
@contextlib.contextmanager
def _quiet_c_stdout():
    """Silence C-level stdout (mdtraj's DCD plugin prints 'dcdplugin) ...' lines)."""
    try:
        sys.stdout.flush()
        fd = sys.__stdout__.fileno() if sys.__stdout__ is not None else 1
        saved = os.dup(fd)
    except (OSError, ValueError, AttributeError):
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def _n_atoms_in_file(path: Path) -> Optional[int]:
    """Number of atoms per frame stored in a trajectory file (None if unknown)."""
    import mdtraj as md

    try:
        with _quiet_c_stdout(), md.open(str(path)) as f:
            out = f.read(n_frames=1)
            xyz = out[0] if isinstance(out, tuple) else getattr(out, "xyz", out)
            return int(np.asarray(xyz).shape[1])
    except Exception:
        return None


def topology_box_lengths_nm(path: PathLike) -> Optional[np.ndarray]:
    """Box edge lengths (nm) stated by a PDB (CRYST1) or PDBx/mmCIF (_cell.length_*) file,
    or None when it states none (or the 1 Å placeholder some programs write)."""
    p = Path(path)
    vals: List[float] = []
    try:
        with open(p, errors="replace") as f:
            if p.suffix.lower() in PDBX_SUFFIXES:
                found = {}
                for line in f:
                    m = re.match(r"\s*_cell\.length_([abc])\s+([-+0-9.eE]+)", line)
                    if m:
                        found[m.group(1)] = float(m.group(2))
                    if len(found) == 3:
                        break
                vals = [found[k] for k in "abc"] if len(found) == 3 else []
            else:
                for line in f:
                    if line.startswith("CRYST1"):
                        vals = [float(line[6:15]), float(line[15:24]), float(line[24:33])]
                        break
                    if line.startswith(("ATOM", "HETATM")):
                        break
    except (OSError, ValueError):
        return None
    a = np.array(vals, dtype=float) * units.NM_PER_ANGSTROM
    if len(a) != 3 or not np.all(a > 0) or np.allclose(vals, 1.0):
        return None
    return a


def check_length_unit(traj, traj_path: Path, top_path: Path) -> None:
    """Refuse a trajectory whose box (as mdtraj read it, nm) differs from the topology's box
    by more than a factor BOX_UNIT_TOLERANCE in a length (a wrong length unit), and a file
    of a format without a fixed unit (LAMMPS dump, HOOMD) that the topology's box cannot confirm."""
    suffix = _suffix(traj_path)
    top_box = topology_box_lengths_nm(top_path)
    assumed = FILE_LENGTH_UNIT.get(suffix, "the unit mdtraj assumes")
    if top_box is None:
        if suffix in UNITLESS_SUFFIXES:
            raise ValueError(
                f"{traj_path}: {suffix} files do not record their length unit (mdtraj assumes {assumed}) and the "
                f"topology {top_path} has no box (CRYST1) to check it against: give a topology with the box, or "
                f"convert the trajectory to DCD/XTC")
        return
    lengths = np.asarray(traj.unitcell_lengths[0], dtype=float)
    ratio = lengths / top_box
    if np.any(ratio > BOX_UNIT_TOLERANCE) or np.any(ratio < 1.0 / BOX_UNIT_TOLERANCE):
        raise ValueError(
            f"length unit mismatch: the box of {traj_path} (first frame {' x '.join(f'{v:.4g}' for v in lengths)} nm, "
            f"read as {assumed}) is {float(np.median(ratio)):.3g} times the box of the topology {top_path} "
            f"({' x '.join(f'{v:.4g}' for v in top_box)} nm): the trajectory's lengths are not in the unit its "
            f"format implies")


def check_dcd_complete(traj_path: Path, header: Optional[DCDHeader], n_read: int, stride: int,
                       records: Optional[RunRecords] = None) -> List[str]:
    """Notes on a DCD file that ends mid-frame or holds fewer frames than its header (or the
    run's state.csv) says; the complete frames are used."""
    notes: List[str] = []
    if header is None:
        return notes
    complete, partial = dcd_frame_count(traj_path, header)
    if complete is None:
        return notes
    running = records is not None and records.status == "running"
    tail = " (the run is still being written: run.json says running)" if running else ""
    if partial:
        notes.append(f"{traj_path} ends mid-frame ({partial} bytes of a partial frame after {complete} complete "
                     f"frames{tail}): the analysis uses the {complete} complete frames")
    elif header.n_frames > complete:
        notes.append(f"{traj_path} holds {complete} frames but its header says {header.n_frames}: the file was cut; "
                     f"the analysis uses the {complete} frames it holds")
    if records is not None and records.expected_frames is not None and records.expected_frames != complete:
        notes.append(f"{records.run_dir / RUN_STATE_FILE} lists {records.expected_frames} frames but {traj_path} "
                     f"holds {complete}{tail}: the analysis uses the {complete} frames of the trajectory")
    expected_read = -(-complete // stride) if complete else 0
    if complete and n_read != expected_read:
        notes.append(f"{traj_path}: mdtraj read {n_read} frames of the {complete} complete ones (stride {stride})")
    return notes


@dataclass
class LoadedTrajectory:
    """One trajectory loaded and checked by :func:`read_trajectory`.

    Attributes:
        traj: the mdtraj Trajectory (times set to k × dt_ps).
        dt_ps: time between the loaded (strided) frames, ps.
        dt_source: where the time step came from ("DCD header (OpenMM)", "--dt-ps", ...).
        notes: warnings made on the way (truncated file, overrides, molecules).
        path: the file.
    """

    traj: object
    dt_ps: float
    dt_source: str
    notes: List[str]
    path: Path


def read_trajectory(traj_path: PathLike, top_path: PathLike, stride: int = 1, dt_ps: Optional[float] = None,
                    records: Optional[RunRecords] = None) -> LoadedTrajectory:
    """Load one trajectory with its topology and check both (the conventions of
    docs/analysis.md: time step, length unit, atom count and order, truncation).

    Args:
        traj_path: trajectory file (DCD, XTC, ...); mdtraj converts positions to nm.
        top_path: topology file (PDB or PDBx/mmCIF).
        stride: keep every ``stride``-th frame.
        dt_ps: time between saved frames in ps (before striding); overrides the files.
        records: the run directory's records (:func:`read_run_records`) when ``traj_path``
            is the run's own trajectory.

    Raises:
        FileNotFoundError: a file is missing.
        ValueError: atom-count or atom-order mismatch, wrong length unit, no frames, no box,
            unknown or disagreeing time step.
    """
    import mdtraj as md

    traj_path, top_path = Path(traj_path), Path(top_path)
    for p, what in ((traj_path, "trajectory"), (top_path, "topology")):
        if not p.is_file():
            raise FileNotFoundError(f"{what} file not found: {p}")
    try:
        top = md.load_topology(str(top_path))
    except Exception as err:
        raise ValueError(f"cannot read topology {top_path}: {err}") from None
    if top.n_atoms == 0:
        raise ValueError(f"topology {top_path} has no atoms")
    suffix = _suffix(traj_path)
    header = read_dcd_header(traj_path) if suffix == ".dcd" else None
    n_file = header.n_atoms if header is not None else _n_atoms_in_file(traj_path)
    if n_file is not None and n_file != top.n_atoms:
        raise ValueError(
            f"atom count mismatch: trajectory {traj_path} has {n_file} atoms per frame but topology "
            f"{top_path} has {top.n_atoms} (is the topology missing atoms, or the wrong file?)")
    notes: List[str] = []
    if suffix in SELF_DESCRIBING_SUFFIXES:
        notes += check_elements(top, traj_path, top_path)
    try:
        with _quiet_c_stdout():
            traj = md.load(str(traj_path), top=top, stride=stride)
    except Exception as err:
        hint = " (is the file cut mid-frame, or still being written?)" if suffix in (".xtc", ".trr") else ""
        raise ValueError(f"cannot read trajectory {traj_path} with topology {top_path}: {err}{hint}") from None
    if traj.n_atoms != top.n_atoms:
        raise ValueError(f"atom count mismatch: trajectory {traj_path} has {traj.n_atoms} atoms per frame but "
                         f"topology {top_path} has {top.n_atoms}")
    if suffix == ".dcd":
        notes += check_dcd_complete(traj_path, header, traj.n_frames, stride, records)
    if traj.n_frames < 2:
        raise ValueError(f"trajectory {traj_path} has {traj.n_frames} frame(s); need many for transport")
    if traj.unitcell_vectors is None:
        raise ValueError(f"trajectory {traj_path} has no periodic box (unit cell); write it with the box")
    check_length_unit(traj, traj_path, top_path)
    notes += check_atom_order(traj.topology, traj.xyz[0], traj.unitcell_vectors[0], traj_path, top_path)
    step = frame_time_step(traj_path, traj.time, stride=stride, dt_ps=dt_ps, records=records, header=header)
    notes += step.notes
    traj.time = np.arange(traj.n_frames) * step.dt_ps * stride
    return LoadedTrajectory(traj=traj, dt_ps=float(step.dt_ps) * stride, dt_source=step.source, notes=notes,
                            path=traj_path)


def load_trajectory(traj_path: PathLike, top_path: PathLike, stride: int = 1,
                    dt_ps: Optional[float] = None):
    """Load one trajectory with its topology, checking both (:func:`read_trajectory`; its
    notes — a truncated file, an override — are issued as warnings).

    Args:
        traj_path: trajectory file (DCD, XTC, ...), positions in nm (mdtraj convention).
        top_path: topology file (PDB).
        stride: keep every ``stride``-th frame.
        dt_ps: time between saved frames in ps (before striding); from the files if None.

    Returns:
        (mdtraj.Trajectory, dt_ps between the loaded frames).

    Raises:
        FileNotFoundError: a file is missing.
        ValueError: atom-count mismatch, no frames, no box, unknown time step.
    """
    traj_path = Path(traj_path)
    records = records_for(traj_path)
    out = read_trajectory(traj_path, top_path, stride=stride, dt_ps=dt_ps, records=records)
    for n in out.notes:
        warnings.warn(n, stacklevel=2)
    return out.traj, out.dt_ps


def find_run_files(run_dir: PathLike, trajectory: bool = True,
                   topology: bool = True) -> Tuple[List[Path], Optional[Path]]:
    """Trajectory and topology of a ``cgaa simulate`` run directory.

    Looks for ``traj.dcd`` (else all ``*.dcd``/``*.xtc`` files, sorted, as replicas) and
    ``topology.pdb`` or ``topology.cif`` (else the single ``*.pdb``/``*.cif`` in the
    directory). ``trajectory=False`` / ``topology=False``: that file is given elsewhere, do
    not look for it (it is returned as ``[]`` / None).
    """

    d = Path(run_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"run directory not found: {d}")
    trajs: List[Path] = []
    if trajectory:
        trajs = [d / RUN_TRAJ_FILE] if (d / RUN_TRAJ_FILE).is_file() else sorted(
            list(d.glob("*.dcd")) + list(d.glob("*.xtc")))
        if not trajs:
            raise FileNotFoundError(f"no trajectory in {d}: expected traj.dcd (or *.dcd / *.xtc), or give --traj")
    top = None
    if topology:
        top = find_run_topology(d)
        if top is None:
            boxes = sorted(p for p in d.iterdir() if p.suffix.lower() in BOX_SUFFIXES and p.is_file())
            if len(boxes) != 1:
                raise FileNotFoundError(
                    f"no topology.pdb or topology.cif in {d} and {'no' if not boxes else 'several'} other "
                    f"*.pdb/*.cif ({', '.join(p.name for p in boxes)}): give --top")
            top = boxes[0]
    return trajs, top


def read_state_temperature(path: PathLike) -> Optional[float]:
    """Mean temperature (K) from an OpenMM StateDataReporter CSV, or None if absent."""
    p = Path(path)
    if not p.is_file():
        return None
    with open(p, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return None
    header = [h.strip().lstrip("#").strip().strip('"') for h in rows[0]]
    col = next((i for i, h in enumerate(header) if h.lower().startswith("temperature")), None)
    if col is None:
        return None
    vals = []
    for r in rows[1:]:
        try:
            vals.append(float(r[col]))
        except (IndexError, ValueError):
            continue
    return float(np.mean(vals)) if vals else None


def join_checked(trajs: Sequence) -> None:
    """Raise ValueError if replica trajectories do not share the atom count."""
    n = {t.n_atoms for t in trajs}
    if len(n) > 1:
        raise ValueError(f"replica trajectories differ in atom count: {sorted(n)}")
